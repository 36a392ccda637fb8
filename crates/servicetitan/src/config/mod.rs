//! Configuration: environments, limits, retries and timeouts; every setting from an argument, else an environment variable, else a documented default.
//!
//! Every setting, its name in each language, its environment variable, default, unit and
//! bounds are listed once, in [`crate::settings::SETTINGS`] (the README's table is made from
//! it). Each setting is resolved on its own: half of a pair (`rate_limit_calls` without
//! `rate_limit_period`, `backoff_base` without `backoff_max`) takes the other half from its
//! own environment variable, then its default. Proxies come from `HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY` and `NO_PROXY`.
//!
//! Tenant credentials (see [`TenantCredentials::resolve`]): `ST_TENANT_ID`, `ST_CLIENT_ID`, `ST_CLIENT_SECRET`.
//!
//! An environment and custom URLs are never mixed: an environment given together with
//! `auth_url`/`api_url` (both as arguments, or both as environment variables) is a
//! `configuration` error. An argument beats a variable of the other kind: an `environment`
//! argument ignores `ST_AUTH_URL`/`ST_API_URL`, URL arguments ignore `ST_ENVIRONMENT`.
//!
//! By job: [`Secret`] and URL redaction (`secret.rs`), [`Environment`] and base URL checks
//! (`environment.rs`), [`TenantCredentials`] (`credentials.rs`), the [`ClientBuilder`]'s setters
//! (`builder.rs`), and the resolution of a builder into a [`Config`] (`resolve.rs`).

mod builder;
mod credentials;
mod environment;
mod resolve;
mod secret;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

pub use builder::ClientBuilder;
pub use credentials::TenantCredentials;
pub(crate) use environment::is_loopback;
pub use environment::Environment;
pub(crate) use resolve::at_most;
pub(crate) use secret::redact_in;
pub use secret::{redact_url, Secret};

use crate::limit::Quota;
use crate::redis::RedisSettings;
use crate::retry::RetryPolicy;

/// Timeouts applied to every call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (`ST_CONNECT_TIMEOUT_SECS`, default 10 s).
    pub connect: Duration,
    /// One attempt, from sending to the end of the body (`ST_ATTEMPT_TIMEOUT_SECS`, default 110 s).
    pub attempt: Duration,
    /// A whole call, with its token fetch, limiter waits, retries and backoff (`ST_TIMEOUT_SECS`, default 300 s).
    pub total: Duration,
}

/// The resolved settings of a client. Printing it never shows a secret.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) app_key: Secret,
    pub(crate) environment: Environment,
    pub(crate) token_url: Url,
    pub(crate) api_url: String,
    pub(crate) rate_limit: Option<Quota>,
    pub(crate) adaptive_margin: bool,
    pub(crate) report_rate_limit: Option<Quota>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeouts: Timeouts,
    pub(crate) max_retry_after: Duration,
    pub(crate) user_agent: String,
    pub(crate) redis: Option<RedisSettings>,
}

impl Config {
    /// The environment in use.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }
    /// The token endpoint.
    pub fn token_url(&self) -> &str {
        self.token_url.as_str()
    }
    /// The API base URL, without a trailing slash.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }
    /// The per-tenant limit, `None` when off. Its margin is the configured one: with an
    /// adaptive margin, the start (see [`Client::rate_limit_margin`](crate::Client::rate_limit_margin)
    /// for the margin in force).
    pub fn rate_limit(&self) -> Option<Quota> {
        self.rate_limit
    }
    /// Whether the per-tenant margin is sized from measured round trips (else fixed).
    pub fn rate_limit_margin_adaptive(&self) -> bool {
        self.adaptive_margin
    }
    /// The per-report limit, `None` when off.
    pub fn report_rate_limit(&self) -> Option<Quota> {
        self.report_rate_limit
    }
    /// Retry settings.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }
    /// Timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }
    /// Whether both endpoints are on this machine (the sandbox): no proxy is used for them.
    pub fn is_local(&self) -> bool {
        is_loopback(&self.token_url) && Url::parse(&self.api_url).is_ok_and(|u| is_loopback(&u))
    }
    /// The `User-Agent` sent.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }
    /// The Redis settings, when tokens and limits are shared through Redis.
    pub fn redis(&self) -> Option<&RedisSettings> {
        self.redis.as_ref()
    }
}

pub(crate) type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
