//! The keyword arguments of `Client(...)` and `AsyncClient(...)` as an engine `ClientBuilder`:
//! durations in seconds become `Duration`s, everything else passes through unchanged.

use std::time::Duration;

use pyo3::prelude::*;
use servicetitan::ClientBuilder;

use crate::errors::configuration_error;

/// The keyword arguments of `Client(...)` and `AsyncClient(...)`. Durations are in seconds, as
/// everywhere in Python; anything left out falls back to its environment variable, then to the
/// engine's default.
#[derive(Default)]
pub(crate) struct Settings {
    pub(crate) app_key: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) auth_url: Option<String>,
    pub(crate) api_url: Option<String>,
    pub(crate) rate_limit_calls: Option<u32>,
    pub(crate) rate_limit_period: Option<f64>,
    pub(crate) rate_limit_margin: Option<f64>,
    pub(crate) rate_limit_margin_adaptive: Option<bool>,
    pub(crate) report_rate_limit_calls: Option<u32>,
    pub(crate) report_rate_limit_period: Option<f64>,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) backoff_base: Option<f64>,
    pub(crate) backoff_max: Option<f64>,
    pub(crate) timeout: Option<f64>,
    pub(crate) connect_timeout: Option<f64>,
    pub(crate) attempt_timeout: Option<f64>,
    pub(crate) max_retry_after: Option<f64>,
    pub(crate) ca_certificates: Option<Vec<String>>,
    pub(crate) redis_url: Option<String>,
    pub(crate) redis_key_prefix: Option<String>,
    pub(crate) redis_token_key: Option<String>,
    pub(crate) redis_fallback_share: Option<f64>,
}

pub(crate) fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        configuration_error(name, format!("invalid {name}: expected a non-negative number of seconds, got {value}"))
    })
}

impl Settings {
    pub(crate) fn builder(self) -> PyResult<ClientBuilder> {
        let mut b = servicetitan::Client::builder().language("python");
        if let Some(v) = self.app_key {
            b = b.app_key(v);
        }
        if let Some(v) = self.environment {
            b = b.environment_name(v);
        }
        if let Some(v) = self.auth_url {
            b = b.auth_url(v);
        }
        if let Some(v) = self.api_url {
            b = b.api_url(v);
        }
        // Each half of a pair on its own: the engine takes a missing one from its environment
        // variable, then its default.
        if let Some(v) = self.rate_limit_calls {
            b = b.rate_limit_calls(v);
        }
        if let Some(v) = self.rate_limit_period {
            b = b.rate_limit_period(seconds("rate_limit_period", v)?);
        }
        if let Some(v) = self.rate_limit_margin {
            b = b.rate_limit_margin(seconds("rate_limit_margin", v)?);
        }
        if let Some(on) = self.rate_limit_margin_adaptive {
            b = b.rate_limit_margin_adaptive(on);
        }
        if let Some(v) = self.report_rate_limit_calls {
            b = b.report_rate_limit_calls(v);
        }
        if let Some(v) = self.report_rate_limit_period {
            b = b.report_rate_limit_period(seconds("report_rate_limit_period", v)?);
        }
        if let Some(v) = self.max_attempts {
            b = b.max_attempts(v);
        }
        if let Some(v) = self.backoff_base {
            b = b.backoff_base(seconds("backoff_base", v)?);
        }
        if let Some(v) = self.backoff_max {
            b = b.backoff_max(seconds("backoff_max", v)?);
        }
        if let Some(v) = self.timeout {
            b = b.timeout(seconds("timeout", v)?);
        }
        if let Some(v) = self.connect_timeout {
            b = b.connect_timeout(seconds("connect_timeout", v)?);
        }
        if let Some(v) = self.attempt_timeout {
            b = b.attempt_timeout(seconds("attempt_timeout", v)?);
        }
        if let Some(v) = self.max_retry_after {
            b = b.max_retry_after(seconds("max_retry_after", v)?);
        }
        for pem in self.ca_certificates.unwrap_or_default() {
            b = b.add_root_certificate_pem(pem.into_bytes());
        }
        if let Some(v) = self.redis_url {
            b = b.redis_url(v);
        }
        if let Some(v) = self.redis_key_prefix {
            b = b.redis_key_prefix(v);
        }
        if let Some(v) = self.redis_token_key {
            b = b.redis_token_key(v);
        }
        if let Some(v) = self.redis_fallback_share {
            b = b.redis_fallback_share(v);
        }
        Ok(b)
    }
}
