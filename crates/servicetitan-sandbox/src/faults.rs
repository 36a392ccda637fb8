//! Faults on demand: the next N calls matching a route pattern fail, slow down or lose their
//! connection, so clients' retries and error handling meet the failures they must survive.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::util::glob_match;

/// One injected fault. Set through `POST /__sandbox/faults` (JSON) or `Sandbox::add_fault`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    /// Path pattern without the leading slash and query, `*` matching anything:
    /// `"crm/v2/tenant/*/customers*"`, `"connect/token"`, `"*"`.
    pub route: String,
    /// Only calls with this method (any method if absent).
    pub method: Option<String>,
    /// Answer with this status (an RFC 7807 body, or RFC 6749 on the token route).
    pub status: Option<u16>,
    /// How many matching calls the fault hits; 0 means every one until the faults are cleared.
    pub count: u32,
    /// Delay before answering (or before failing), in milliseconds.
    pub delay_ms: u64,
    /// Close the connection without an answer.
    pub drop_connection: bool,
    /// `Retry-After` header value sent with the status (e.g. `"2"` or an HTTP date).
    pub retry_after: Option<String>,
    /// Title of the error body (default: the status's reason, marked as injected).
    pub title: Option<String>,
}

impl Default for Fault {
    fn default() -> Self {
        Fault {
            route: "*".to_string(),
            method: None,
            status: None,
            count: 1,
            delay_ms: 0,
            drop_connection: false,
            retry_after: None,
            title: None,
        }
    }
}

impl Fault {
    pub fn validate(&self) -> Result<(), String> {
        if self.route.is_empty() {
            return Err("route: expected a path pattern such as \"crm/v2/tenant/*/customers*\"".into());
        }
        if let Some(s) = self.status {
            if !(400..=599).contains(&s) {
                return Err(format!("status: expected an error status 400..599, got {s}"));
            }
        }
        if self.status.is_none() && self.delay_ms == 0 && !self.drop_connection {
            return Err("a fault needs at least one of status, delay_ms or drop_connection".into());
        }
        Ok(())
    }
}

struct Armed {
    fault: Fault,
    remaining: Option<u32>,
}

/// The armed faults, first added first matched.
#[derive(Default)]
pub struct Faults {
    armed: Mutex<Vec<Armed>>,
}

impl Faults {
    pub fn add(&self, fault: Fault) {
        let remaining = (fault.count > 0).then_some(fault.count);
        self.armed.lock().unwrap().push(Armed { fault, remaining });
    }

    pub fn clear(&self) {
        self.armed.lock().unwrap().clear();
    }

    pub fn list(&self) -> Vec<Fault> {
        self.armed.lock().unwrap().iter().map(|a| a.fault.clone()).collect()
    }

    /// The fault this call runs into, if any; consumes one of its shots.
    pub fn take(&self, method: &str, path: &str) -> Option<Fault> {
        let mut armed = self.armed.lock().unwrap();
        if armed.is_empty() {
            return None;
        }
        let index = armed.iter().position(|a| {
            a.fault.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method)) && glob_match(&a.fault.route, path)
        })?;
        let fault = armed[index].fault.clone();
        if let Some(left) = armed[index].remaining.as_mut() {
            *left -= 1;
            if *left == 0 {
                armed.remove(index);
            }
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_fires_count_times_on_matching_calls_only() {
        let faults = Faults::default();
        faults.add(Fault {
            route: "crm/*".into(),
            method: Some("GET".into()),
            status: Some(503),
            count: 2,
            ..Fault::default()
        });
        assert!(faults.take("POST", "crm/v2/tenant/1/customers").is_none());
        assert!(faults.take("GET", "jpm/v2/tenant/1/jobs").is_none());
        assert_eq!(faults.take("get", "crm/v2/tenant/1/customers").unwrap().status, Some(503));
        assert!(faults.take("GET", "crm/v2/tenant/1/customers").is_some());
        assert!(faults.take("GET", "crm/v2/tenant/1/customers").is_none());
    }

    #[test]
    fn count_zero_fires_until_cleared() {
        let faults = Faults::default();
        faults.add(Fault { delay_ms: 5, count: 0, ..Fault::default() });
        for _ in 0..10 {
            assert!(faults.take("GET", "anything").is_some());
        }
        faults.clear();
        assert!(faults.take("GET", "anything").is_none());
    }
}
