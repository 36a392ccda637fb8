//! What reached the server, for tests to assert on: token requests, admitted and rejected calls,
//! the fullest window, 401s, and requests per route.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::limits::LimitStats;
use crate::report_queries::ReportQueryStats;

#[derive(Default)]
pub struct Stats {
    inner: Mutex<Counters>,
}

#[derive(Default, Clone)]
struct Counters {
    token_requests: BTreeMap<String, u64>,
    unauthorized: u64,
    faults_fired: u64,
    routes: BTreeMap<String, u64>,
}

/// The answer of `GET /__sandbox/stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StatsSnapshot {
    /// Token requests per client id (including refused ones).
    pub token_requests: BTreeMap<String, u64>,
    pub token_requests_total: u64,
    /// Per tenant id: calls admitted and rejected (429) by the per-tenant limiter.
    pub tenants: BTreeMap<String, LimitStats>,
    /// Per `"{tenant}/{report id}"`: report data runs admitted and rejected.
    pub reports: BTreeMap<String, LimitStats>,
    /// 401 answers (missing or bad app key or token).
    pub unauthorized: u64,
    pub faults_fired: u64,
    /// Requests per `"METHOD route-template"`, e.g. `"GET crm/v2/tenant/{tenant}/customers"`.
    pub routes: BTreeMap<String, u64>,
    /// Asynchronous report queries: started, polls, cancellations.
    pub report_queries: ReportQueryStats,
}

impl Stats {
    pub fn token_request(&self, client_id: &str) {
        *self.inner.lock().unwrap().token_requests.entry(client_id.to_string()).or_default() += 1;
    }

    pub fn unauthorized(&self) {
        self.inner.lock().unwrap().unauthorized += 1;
    }

    pub fn fault_fired(&self) {
        self.inner.lock().unwrap().faults_fired += 1;
    }

    pub fn route(&self, method: &str, template: &str) {
        let mut inner = self.inner.lock().unwrap();
        // Look up before allocating: this runs on every request.
        if let Some(n) = inner.routes.get_mut(&RouteKey(method, template).to_string()) {
            *n += 1;
        } else {
            inner.routes.insert(RouteKey(method, template).to_string(), 1);
        }
    }

    pub fn reset(&self) {
        *self.inner.lock().unwrap() = Counters::default();
    }

    pub fn snapshot(
        &self,
        tenants: BTreeMap<String, LimitStats>,
        reports: BTreeMap<String, LimitStats>,
        report_queries: ReportQueryStats,
    ) -> StatsSnapshot {
        let c = self.inner.lock().unwrap().clone();
        StatsSnapshot {
            token_requests_total: c.token_requests.values().sum(),
            token_requests: c.token_requests,
            tenants,
            reports,
            unauthorized: c.unauthorized,
            faults_fired: c.faults_fired,
            routes: c.routes,
            report_queries,
        }
    }
}

struct RouteKey<'a>(&'a str, &'a str);

impl std::fmt::Display for RouteKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}
