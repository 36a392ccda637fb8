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

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use crate::auth::TokenStore;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::limit::{Quota, RateLimiter};
use crate::redis::RedisSettings;
use crate::retry::RetryPolicy;
use crate::settings::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RETRY_AFTER, DEFAULT_RATE_LIMIT_CALLS, DEFAULT_RATE_LIMIT_MARGIN, DEFAULT_RATE_LIMIT_MARGIN_ADAPTIVE,
    DEFAULT_RATE_LIMIT_PERIOD, DEFAULT_REPORT_RATE_LIMIT_CALLS, DEFAULT_REPORT_RATE_LIMIT_PERIOD, DEFAULT_TIMEOUT,
    MAX_DURATION,
};

/// A secret string (client secret, app key, access token): `Debug` and `Display` print `***`.
///
/// ```
/// let secret = servicetitan::Secret::new("cs1.very-secret");
/// assert_eq!(format!("{secret} {secret:?}"), "*** ***");
/// assert_eq!(secret.expose(), "cs1.very-secret");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
    }

    /// The secret itself: only for sending it where it belongs (or storing it in a token store).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (or only whitespace).
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

/// Where tokens come from and calls go.
///
/// Credentials are environment specific: integration client ids and secrets do not work in
/// production and vice versa. The app key works in both. `Debug` and `Display` show custom
/// URLs redacted ([`redact_url`]).
#[derive(Clone, PartialEq, Eq)]
pub enum Environment {
    /// `https://auth.servicetitan.io`, `https://api.servicetitan.io`.
    Production,
    /// `https://auth-integration.servicetitan.io`, `https://api-integration.servicetitan.io`.
    Integration,
    /// Any other pair of base URLs, e.g. the local sandbox. `http://` only on loopback.
    Custom {
        /// Base URL of the token endpoint (`/connect/token` is appended unless present).
        auth_url: String,
        /// Base URL of the API.
        api_url: String,
    },
}

impl Environment {
    /// Parses `production` or `integration` (case-insensitive).
    ///
    /// ```
    /// use servicetitan::Environment;
    /// assert_eq!(Environment::parse("Integration").unwrap(), Environment::Integration);
    /// assert_eq!(Environment::parse("staging").unwrap_err().code().as_str(), "configuration");
    /// ```
    pub fn parse(name: &str) -> Result<Self> {
        Self::parse_named(name, "environment")
    }

    fn parse_named(name: &str, argument: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "production" | "prod" => Ok(Environment::Production),
            "integration" => Ok(Environment::Integration),
            other => Err(Error::configuration(
                argument,
                format!(
                    "unknown environment {other:?}: expected \"production\" or \"integration\", \
                     or give auth_url and api_url for a custom one"
                ),
            )),
        }
    }

    /// `"production"`, `"integration"` or `"custom"`.
    pub fn name(&self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Integration => "integration",
            Environment::Custom { .. } => "custom",
        }
    }

    fn urls(&self) -> (&str, &str) {
        match self {
            Environment::Production => ("https://auth.servicetitan.io", "https://api.servicetitan.io"),
            Environment::Integration => {
                ("https://auth-integration.servicetitan.io", "https://api-integration.servicetitan.io")
            }
            Environment::Custom { auth_url, api_url } => (auth_url, api_url),
        }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Environment::Production => f.write_str("Production"),
            Environment::Integration => f.write_str("Integration"),
            Environment::Custom { auth_url, api_url } => f
                .debug_struct("Custom")
                .field("auth_url", &redact_url(auth_url))
                .field("api_url", &redact_url(api_url))
                .finish(),
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Environment::Custom { auth_url, .. } => write!(f, "custom ({})", redact_url(auth_url)),
            other => f.write_str(other.name()),
        }
    }
}

/// One tenant's credentials: tenant id, client id and client secret (environment specific).
///
/// Two tenants may share one pair (Enterprise Hub); they then share one token.
///
/// ```
/// let creds = servicetitan::TenantCredentials::new(1234567, "cid.abc", "cs1.secret");
/// assert!(!format!("{creds:?}").contains("cs1.secret"));
/// ```
#[derive(Clone, Debug)]
pub struct TenantCredentials {
    pub(crate) tenant_id: i64,
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
}

impl TenantCredentials {
    /// Credentials from arguments. Checked when the tenant is made (see [`crate::Client::tenant`]).
    pub fn new(tenant_id: i64, client_id: impl Into<String>, client_secret: impl Into<Secret>) -> Self {
        TenantCredentials { tenant_id, client_id: client_id.into(), client_secret: client_secret.into() }
    }

    /// Credentials from `ST_TENANT_ID`, `ST_CLIENT_ID` and `ST_CLIENT_SECRET`.
    pub fn from_env() -> Result<Self> {
        Self::resolve(None, None, None)
    }

    /// Each value from its argument, else its environment variable (`ST_TENANT_ID`,
    /// `ST_CLIENT_ID`, `ST_CLIENT_SECRET`); a `configuration` error names what is missing.
    pub fn resolve(tenant_id: Option<i64>, client_id: Option<String>, client_secret: Option<String>) -> Result<Self> {
        Self::resolve_with(tenant_id, client_id, client_secret, &|n| std::env::var(n).ok())
    }

    pub(crate) fn resolve_with(
        tenant_id: Option<i64>,
        client_id: Option<String>,
        client_secret: Option<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let tenant_id = match tenant_id {
            Some(id) => id,
            None => match env("ST_TENANT_ID") {
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| Error::configuration("ST_TENANT_ID", format!("{v:?} is not an integer")))?,
                None => {
                    return Err(Error::configuration("tenant_id", "no tenant id given and ST_TENANT_ID is not set"))
                }
            },
        };
        let client_id = client_id
            .or_else(|| env("ST_CLIENT_ID"))
            .ok_or_else(|| Error::configuration("client_id", "no client id given and ST_CLIENT_ID is not set"))?;
        let client_secret = client_secret.or_else(|| env("ST_CLIENT_SECRET")).ok_or_else(|| {
            Error::configuration("client_secret", "no client secret given and ST_CLIENT_SECRET is not set")
        })?;
        let creds = TenantCredentials::new(tenant_id, client_id, client_secret);
        creds.validate()?;
        Ok(creds)
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> i64 {
        self.tenant_id
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.tenant_id <= 0 {
            return Err(Error::configuration(
                "tenant_id",
                format!("tenant ids are positive integers, got {}", self.tenant_id),
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(Error::configuration("client_id", "the client id is empty"));
        }
        if self.client_secret.is_blank() {
            return Err(Error::configuration("client_secret", "the client secret is empty"));
        }
        Ok(())
    }
}

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

/// Builds a [`crate::Client`]: every setting from its method, else its environment variable,
/// else its default (see the [module docs](self) for the table).
///
/// ```no_run
/// use servicetitan::{Client, Environment};
/// use std::time::Duration;
///
/// let client = Client::builder()
///     .app_key("ak1.example")
///     .environment(Environment::Integration)
///     .rate_limit(60, Duration::from_secs(1))
///     .timeout(Duration::from_secs(120))
///     .build()?;
/// # Ok::<(), servicetitan::Error>(())
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct ClientBuilder {
    app_key: Option<Secret>,
    environment: Option<Environment>,
    environment_name: Option<String>,
    auth_url: Option<String>,
    api_url: Option<String>,
    rate_limit_calls: Option<u32>,
    rate_limit_period: Option<Duration>,
    rate_limit_margin: Option<Duration>,
    report_rate_limit_calls: Option<u32>,
    report_rate_limit_period: Option<Duration>,
    rate_limit_margin_adaptive: Option<bool>,
    limits_off: bool,
    max_attempts: Option<u32>,
    backoff_base: Option<Duration>,
    backoff_max: Option<Duration>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    max_retry_after: Option<Duration>,
    root_certificates: Vec<Vec<u8>>,
    language: Option<String>,
    redis_url: Option<Secret>,
    redis_key_prefix: Option<String>,
    redis_token_key: Option<Secret>,
    redis_tls_ca: Option<Vec<u8>>,
    redis_fallback_share: Option<f64>,
    redis_wait: Option<Duration>,
    redis_client_time: Option<bool>,
    pub(crate) token_store: Option<Arc<dyn TokenStore>>,
    pub(crate) rate_limiter: Option<Arc<dyn RateLimiter>>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
    env: Option<EnvLookup>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("app_key", &self.app_key)
            .field("environment", &self.environment)
            .field("auth_url", &self.auth_url.as_deref().map(redact_url))
            .field("api_url", &self.api_url.as_deref().map(redact_url))
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The application key (`ak1.…`), sent as `ST-App-Key`. Env: `ST_APP_KEY`. Required.
    pub fn app_key(mut self, app_key: impl Into<Secret>) -> Self {
        self.app_key = Some(app_key.into());
        self
    }

    /// The environment. Env: `ST_ENVIRONMENT`. Default: production, or custom when
    /// `auth_url`/`api_url` are given. Not together with `auth_url`/`api_url`: that is a
    /// `configuration` error at [`build`](Self::build).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// The environment by name (`"production"`, `"integration"`); an unknown name is a
    /// `configuration` error at [`build`](Self::build). For bindings that receive strings.
    pub fn environment_name(mut self, name: impl Into<String>) -> Self {
        self.environment_name = Some(name.into());
        self
    }

    /// Base URL of the token service (a custom environment, e.g. the sandbox). Env: `ST_AUTH_URL`.
    pub fn auth_url(mut self, url: impl Into<String>) -> Self {
        self.auth_url = Some(url.into());
        self
    }

    /// Base URL of the API (a custom environment, e.g. the sandbox). Env: `ST_API_URL`.
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = Some(url.into());
        self
    }

    /// At most `calls` per `period` per tenant (plus the margin). `calls == 0` turns the
    /// limiter off. Env: `ST_RATE_LIMIT_PER_SECOND`, `ST_RATE_LIMIT_PERIOD_MS`. Default 60 per second.
    pub fn rate_limit(self, calls: u32, period: Duration) -> Self {
        self.rate_limit_calls(calls).rate_limit_period(period)
    }

    /// The calls of [`rate_limit`](Self::rate_limit) alone (0 turns the limiter off); the
    /// period then comes from `ST_RATE_LIMIT_PERIOD_MS`, else its default. Env:
    /// `ST_RATE_LIMIT_PER_SECOND`.
    pub fn rate_limit_calls(mut self, calls: u32) -> Self {
        self.rate_limit_calls = Some(calls);
        self
    }

    /// The period of [`rate_limit`](Self::rate_limit) alone; the calls then come from
    /// `ST_RATE_LIMIT_PER_SECOND`, else their default. Env: `ST_RATE_LIMIT_PERIOD_MS`.
    pub fn rate_limit_period(mut self, period: Duration) -> Self {
        self.rate_limit_period = Some(period);
        self
    }

    /// Added to every limiter window to absorb network jitter: N calls in any window of
    /// (period + margin). With the adaptive margin (the default) this is where it starts;
    /// otherwise it is fixed. Env: `ST_RATE_LIMIT_MARGIN_MS`. Default 100 ms.
    pub fn rate_limit_margin(mut self, margin: Duration) -> Self {
        self.rate_limit_margin = Some(margin);
        self
    }

    /// Whether the per-tenant margin is sized from the round trips the client measures (on)
    /// or stays at [`rate_limit_margin`](Self::rate_limit_margin) (off). Adaptive, each slot
    /// is held until its call is answered, then for the period plus what that call turned out
    /// to need; a 429 widens the holds at once (see [`crate::margin`]).
    /// Env: `ST_RATE_LIMIT_MARGIN_ADAPTIVE` (`1`/`0`, `true`/`false`). Default on.
    pub fn rate_limit_margin_adaptive(mut self, adaptive: bool) -> Self {
        self.rate_limit_margin_adaptive = Some(adaptive);
        self
    }

    /// At most `calls` runs of one report per tenant per `period`. `calls == 0` turns it off.
    /// Env: `ST_REPORT_RATE_LIMIT_PER_MINUTE`, `ST_REPORT_RATE_LIMIT_PERIOD_SECS`. Default 5 per minute.
    pub fn report_rate_limit(self, calls: u32, period: Duration) -> Self {
        self.report_rate_limit_calls(calls).report_rate_limit_period(period)
    }

    /// The calls of [`report_rate_limit`](Self::report_rate_limit) alone (0 turns it off).
    /// Env: `ST_REPORT_RATE_LIMIT_PER_MINUTE`.
    pub fn report_rate_limit_calls(mut self, calls: u32) -> Self {
        self.report_rate_limit_calls = Some(calls);
        self
    }

    /// The period of [`report_rate_limit`](Self::report_rate_limit) alone. Env:
    /// `ST_REPORT_RATE_LIMIT_PERIOD_SECS`.
    pub fn report_rate_limit_period(mut self, period: Duration) -> Self {
        self.report_rate_limit_period = Some(period);
        self
    }

    /// Turns both client-side limiters off (429 cooldowns still apply).
    pub fn disable_rate_limits(mut self) -> Self {
        self.limits_off = true;
        self
    }

    /// Attempts per call, first one included (≥ 1). Env: `ST_MAX_ATTEMPTS`. Default 10.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Exponential backoff with full jitter: attempt n waits a random time in
    /// `[0, min(cap, base × 2ⁿ)]`. Env: `ST_BACKOFF_BASE_MS`, `ST_BACKOFF_MAX_MS`. Default 250 ms, 20 s.
    pub fn backoff(self, base: Duration, cap: Duration) -> Self {
        self.backoff_base(base).backoff_max(cap)
    }

    /// The base of [`backoff`](Self::backoff) alone; the cap then comes from
    /// `ST_BACKOFF_MAX_MS`, else its default. Env: `ST_BACKOFF_BASE_MS`.
    pub fn backoff_base(mut self, base: Duration) -> Self {
        self.backoff_base = Some(base);
        self
    }

    /// The cap of [`backoff`](Self::backoff) alone. Env: `ST_BACKOFF_MAX_MS`.
    pub fn backoff_max(mut self, cap: Duration) -> Self {
        self.backoff_max = Some(cap);
        self
    }

    /// Total deadline of one call (token, limiter waits, attempts, backoff). Env:
    /// `ST_TIMEOUT_SECS`. Default 300 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Connect timeout. Env: `ST_CONNECT_TIMEOUT_SECS`. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Timeout of one attempt. Env: `ST_ATTEMPT_TIMEOUT_SECS`. Default 110 s.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// The longest `Retry-After` the client waits for; a longer one fails the call with
    /// `rate_limited`. Env: `ST_MAX_RETRY_AFTER_SECS`. Default 120 s.
    pub fn max_retry_after(mut self, wait: Duration) -> Self {
        self.max_retry_after = Some(wait);
        self
    }

    /// Trusts extra root certificates (PEM, one or more) besides the system's. Env:
    /// `ST_CA_BUNDLE` (path to a PEM file).
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// The language named in `User-Agent: servicetitan-<language>/<version>` (default `rust`);
    /// set by the Python and Node bindings.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// Shares the token cache and the rate limiters with every process using the same Redis
    /// (and key prefix): `redis://[:password@]host[:port][/db]`. Env: `ST_REDIS_URL`. Default:
    /// off, everything in process. An explicit [`token_store`](Self::token_store) or
    /// [`rate_limiter`](Self::rate_limiter) still wins. See [`crate::redis`] for what is shared
    /// and what happens when Redis fails.
    ///
    /// ```no_run
    /// let client = servicetitan::Client::builder()
    ///     .app_key("ak1.example")
    ///     .redis_url("redis://127.0.0.1:6379/0")
    ///     .redis_fallback_share(0.25)
    ///     .build()?;
    /// # Ok::<(), servicetitan::Error>(())
    /// ```
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(Secret::new(url.into()));
        self
    }

    /// The CA certificates (PEM) that a `rediss://` server's certificate must chain to,
    /// instead of the system's roots. Env: `ST_REDIS_TLS_CA` (path to a PEM file). The check
    /// cannot be turned off: a `#insecure` URL is refused.
    pub fn redis_tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.redis_tls_ca = Some(pem.into());
        self
    }

    /// Prefix of every Redis key (default `servicetitan`); clients with different prefixes
    /// share nothing. Env: `ST_REDIS_KEY_PREFIX`.
    pub fn redis_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.redis_key_prefix = Some(prefix.into());
        self
    }

    /// A second key for the tokens cached in Redis, 32 bytes (64 hex digits or base64).
    /// Tokens are always encrypted with AES-256-GCM under a key derived from their client
    /// secret; with this key, under one derived from both. Every process needs the same key.
    /// Env: `ST_REDIS_TOKEN_KEY`. Default: none.
    pub fn redis_token_key(mut self, key: impl Into<Secret>) -> Self {
        self.redis_token_key = Some(key.into());
        self
    }

    /// When Redis fails, admit calls at once under an in-process limit of this share of the
    /// budget (0 < share ≤ 1) instead of waiting for Redis. Env: `ST_REDIS_FALLBACK_SHARE`.
    /// Default: off (calls wait up to [`redis_wait`](Self::redis_wait), then fail).
    pub fn redis_fallback_share(mut self, share: f64) -> Self {
        self.redis_fallback_share = Some(share);
        self
    }

    /// How long a call waits for Redis to come back before failing with a `connection`
    /// error naming Redis. Env: `ST_REDIS_WAIT_SECS`. Default 30 s.
    pub fn redis_wait(mut self, wait: Duration) -> Self {
        self.redis_wait = Some(wait);
        self
    }

    /// Passes this host's time to the Redis limiter script instead of using Redis's `TIME`
    /// (for servers that forbid it). Env: `ST_REDIS_CLIENT_TIME=1`. Default off.
    pub fn redis_client_time(mut self, on: bool) -> Self {
        self.redis_client_time = Some(on);
        self
    }

    /// Where tokens are cached (default: in memory, per client).
    pub fn token_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.token_store = Some(store);
        self
    }

    /// The rate limiter (default: in process, per client).
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.rate_limiter = Some(limiter);
        self
    }

    /// The clock (default: [`crate::clock::SystemClock`]); tests inject a manual one.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Reads "environment variables" from this function instead of the process environment
    /// (tests, and hosts that keep settings elsewhere).
    pub fn env_lookup(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Some(Arc::new(lookup));
        self
    }

    /// Checks every setting and makes the client. No request is made.
    pub fn build(self) -> Result<crate::Client> {
        let config = self.resolve()?;
        crate::client::Client::from_parts(config, self)
    }

    pub(crate) fn lookup(&self) -> EnvLookup {
        self.env.clone().unwrap_or_else(|| Arc::new(|name: &str| std::env::var(name).ok()))
    }

    pub(crate) fn root_certificates(&self, env: &EnvLookup) -> Result<Vec<reqwest::Certificate>> {
        let mut pems = self.root_certificates.clone();
        if let Some(path) = env("ST_CA_BUNDLE").filter(|p| !p.trim().is_empty()) {
            let pem = std::fs::read(&path)
                .map_err(|e| Error::configuration("ST_CA_BUNDLE", format!("cannot read {path:?}: {e}")))?;
            pems.push(pem);
        }
        let mut certs = Vec::new();
        for pem in pems {
            let bundle = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::configuration("root_certificate", format!("not a PEM certificate: {e}")))?;
            if bundle.is_empty() {
                return Err(Error::configuration("root_certificate", "no certificate found in the PEM data"));
            }
            certs.extend(bundle);
        }
        Ok(certs)
    }

    pub(crate) fn resolve(&self) -> Result<Config> {
        let env = self.lookup();

        let app_key = match &self.app_key {
            Some(k) => k.clone(),
            None => env("ST_APP_KEY")
                .map(Secret::new)
                .ok_or_else(|| Error::configuration("app_key", "no app key given and ST_APP_KEY is not set"))?,
        };
        if app_key.is_blank() {
            return Err(Error::configuration("app_key", "the app key is empty"));
        }

        let environment = self.resolve_environment(&env)?;
        let (auth_base, api_base) = environment.urls();
        let (auth_arg, api_arg) = match &environment {
            Environment::Custom { .. } => ("auth_url", "api_url"),
            _ => ("environment", "environment"),
        };
        let token_url = token_url(auth_base, auth_arg)?;
        let api_url = parse_base_url(api_base, api_arg)?.as_str().trim_end_matches('/').to_owned();

        // Every setting on its own: its argument, else its variable, else its default (see
        // `crate::settings`). A problem is reported under the name the value came by.
        let count = |arg: Option<u32>, var: &str, default: u32| -> Result<(u32, String)> {
            match arg {
                Some(n) => Ok((n, String::new())),
                None => Ok((env_parse::<u32>(&env, var)?.unwrap_or(default), var.to_owned())),
            }
        };
        type FromEnv = fn(&EnvLookup, &str) -> Result<Option<Duration>>;
        let duration =
            |arg: Option<Duration>, argument: &str, var: &str, from_env: FromEnv, default: Duration| match arg {
                Some(d) => at_most(argument, d).map(|d| (d, argument.to_owned())),
                None => from_env(&env, var).map(|d| (d.unwrap_or(default), var.to_owned())),
            };
        let (margin, _) = duration(
            self.rate_limit_margin,
            "rate_limit_margin",
            "ST_RATE_LIMIT_MARGIN_MS",
            env_millis,
            DEFAULT_RATE_LIMIT_MARGIN,
        )?;
        let quota = |(calls, _): (u32, String), (period, name): (Duration, String)| -> Result<Option<Quota>> {
            if calls == 0 || self.limits_off {
                return Ok(None);
            }
            if period.is_zero() {
                return Err(Error::configuration(name, "the period must be positive"));
            }
            Ok(Some(Quota { calls, period, margin }))
        };
        let rate_limit = quota(
            count(self.rate_limit_calls, "ST_RATE_LIMIT_PER_SECOND", DEFAULT_RATE_LIMIT_CALLS)?,
            duration(
                self.rate_limit_period,
                "rate_limit_period",
                "ST_RATE_LIMIT_PERIOD_MS",
                env_millis,
                DEFAULT_RATE_LIMIT_PERIOD,
            )?,
        )?;
        let report_rate_limit = quota(
            count(self.report_rate_limit_calls, "ST_REPORT_RATE_LIMIT_PER_MINUTE", DEFAULT_REPORT_RATE_LIMIT_CALLS)?,
            duration(
                self.report_rate_limit_period,
                "report_rate_limit_period",
                "ST_REPORT_RATE_LIMIT_PERIOD_SECS",
                env_secs,
                DEFAULT_REPORT_RATE_LIMIT_PERIOD,
            )?,
        )?;
        let adaptive_margin = match self.rate_limit_margin_adaptive {
            Some(on) => on,
            None => env_bool(&env, "ST_RATE_LIMIT_MARGIN_ADAPTIVE")?.unwrap_or(DEFAULT_RATE_LIMIT_MARGIN_ADAPTIVE),
        };

        let (max_attempts, _) = count(self.max_attempts, "ST_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)?;
        if max_attempts == 0 {
            return Err(Error::configuration("max_attempts", "at least one attempt is needed"));
        }
        let (base_delay, _) =
            duration(self.backoff_base, "backoff_base", "ST_BACKOFF_BASE_MS", env_millis, DEFAULT_BACKOFF_BASE)?;
        let (max_delay, _) =
            duration(self.backoff_max, "backoff_max", "ST_BACKOFF_MAX_MS", env_millis, DEFAULT_BACKOFF_MAX)?;
        let retry = RetryPolicy { max_attempts, base_delay, max_delay };

        let timeout = |arg: Option<Duration>, argument: &str, var: &str, default: Duration| -> Result<Duration> {
            let (d, name) = duration(arg, argument, var, env_secs, default)?;
            if d.is_zero() {
                return Err(Error::configuration(name, "a timeout must be positive"));
            }
            Ok(d)
        };
        let timeouts = Timeouts {
            connect: timeout(
                self.connect_timeout,
                "connect_timeout",
                "ST_CONNECT_TIMEOUT_SECS",
                DEFAULT_CONNECT_TIMEOUT,
            )?,
            attempt: timeout(
                self.attempt_timeout,
                "attempt_timeout",
                "ST_ATTEMPT_TIMEOUT_SECS",
                DEFAULT_ATTEMPT_TIMEOUT,
            )?,
            total: timeout(self.timeout, "timeout", "ST_TIMEOUT_SECS", DEFAULT_TIMEOUT)?,
        };
        let (max_retry_after, _) = duration(
            self.max_retry_after,
            "max_retry_after",
            "ST_MAX_RETRY_AFTER_SECS",
            env_secs,
            DEFAULT_MAX_RETRY_AFTER,
        )?;

        let language = self.language.as_deref().unwrap_or("rust");
        if language.is_empty() || !language.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(Error::configuration("language", "letters, digits, '-', '_' and '.' only"));
        }
        let user_agent = format!("servicetitan-{language}/{}", env!("CARGO_PKG_VERSION"));

        let redis = self.resolve_redis(&env, max_retry_after)?;

        Ok(Config {
            app_key,
            environment,
            token_url,
            api_url,
            rate_limit,
            adaptive_margin,
            report_rate_limit,
            retry,
            timeouts,
            max_retry_after,
            user_agent,
            redis,
        })
    }

    fn resolve_redis(&self, env: &EnvLookup, max_retry_after: Duration) -> Result<Option<RedisSettings>> {
        let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let url = match &self.redis_url {
            Some(url) => Some(url.expose().to_owned()),
            None => set(env("ST_REDIS_URL")),
        };
        let Some(url) = url.filter(|u| !u.trim().is_empty()) else { return Ok(None) };
        // A cooldown in Redis is honoured as long as a 429's Retry-After would be, no longer.
        let mut settings = RedisSettings::new(&url)?.max_cooldown(max_retry_after);
        let tls_ca =
            match (&self.redis_tls_ca, set(env("ST_REDIS_TLS_CA"))) {
                (Some(pem), _) => Some(pem.clone()),
                (None, Some(path)) => Some(std::fs::read(path.trim()).map_err(|e| {
                    Error::configuration("ST_REDIS_TLS_CA", format!("cannot read {:?}: {e}", path.trim()))
                })?),
                (None, None) => None,
            };
        if let Some(pem) = tls_ca {
            settings = settings.tls_ca_pem(&pem)?;
        }
        if let Some(prefix) = self.redis_key_prefix.clone().or_else(|| set(env("ST_REDIS_KEY_PREFIX"))) {
            settings = settings.key_prefix(prefix)?;
        }
        let token_key = match &self.redis_token_key {
            Some(k) => Some(k.expose().to_owned()),
            None => set(env("ST_REDIS_TOKEN_KEY")),
        };
        if let Some(key) = token_key {
            settings = settings.token_key(&key)?;
        }
        let share = match self.redis_fallback_share {
            Some(s) => Some(s),
            None => env_parse::<f64>(env, "ST_REDIS_FALLBACK_SHARE")?,
        };
        if let Some(share) = share {
            settings = settings.fallback_share(share)?;
        }
        let wait = match self.redis_wait {
            Some(w) => Some(w),
            None => env_secs(env, "ST_REDIS_WAIT_SECS")?,
        };
        if let Some(wait) = wait {
            settings = settings.wait(wait);
        }
        let client_time = match self.redis_client_time {
            Some(on) => on,
            None => set(env("ST_REDIS_CLIENT_TIME")).is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on")),
        };
        Ok(Some(settings.client_time(client_time)))
    }

    /// The environment: a known one by name, or a custom one from both URLs, never both.
    ///
    /// Arguments win over environment variables: an `environment` argument ignores
    /// `ST_AUTH_URL`/`ST_API_URL`, URL arguments ignore `ST_ENVIRONMENT`. Given together at
    /// the same level (both as arguments, or both as variables), a name and URLs are refused:
    /// one would silently override the other.
    fn resolve_environment(&self, env: &EnvLookup) -> Result<Environment> {
        let named = match (&self.environment, &self.environment_name) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(name)) => Some(Environment::parse_named(name, "environment")?),
            (None, None) => None,
        };
        let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        if named.is_some() || self.auth_url.is_some() || self.api_url.is_some() {
            return match (named, self.auth_url.clone(), self.api_url.clone()) {
                (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(mixed("environment", "auth_url and api_url")),
                (Some(e), None, None) => Ok(e),
                (None, Some(auth_url), Some(api_url)) => Ok(Environment::Custom { auth_url, api_url }),
                (None, Some(_), None) => Err(Error::configuration(
                    "api_url",
                    "auth_url was given without api_url: a custom environment needs both",
                )),
                (None, None, _) => Err(Error::configuration(
                    "auth_url",
                    "api_url was given without auth_url: a custom environment needs both",
                )),
            };
        }
        let name = given(env("ST_ENVIRONMENT"));
        match (name, given(env("ST_AUTH_URL")), given(env("ST_API_URL"))) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(mixed("ST_ENVIRONMENT", "ST_AUTH_URL and ST_API_URL")),
            (Some(name), None, None) => Environment::parse_named(&name, "ST_ENVIRONMENT"),
            (None, Some(auth_url), Some(api_url)) => Ok(Environment::Custom { auth_url, api_url }),
            (None, Some(_), None) => Err(Error::configuration(
                "ST_API_URL",
                "ST_AUTH_URL is set but ST_API_URL is not: a custom environment needs both",
            )),
            (None, None, Some(_)) => Err(Error::configuration(
                "ST_AUTH_URL",
                "ST_API_URL is set but ST_AUTH_URL is not: a custom environment needs both",
            )),
            (None, None, None) => Ok(Environment::Production),
        }
    }
}

/// The error for a known environment and custom URLs given together.
fn mixed(environment: &str, urls: &str) -> Error {
    Error::configuration(
        environment,
        format!(
            "{environment} was given together with {urls}: name a known environment (production, \
             integration) or give {urls} for a custom one (such as the sandbox), not both"
        ),
    )
}

fn parse_base_url(raw: &str, argument: &str) -> Result<Url> {
    // The URL is echoed only redacted: it may carry a password or a token the user put there.
    let shown = redact_url(raw);
    let url =
        Url::parse(raw.trim()).map_err(|e| Error::configuration(argument, format!("{shown:?} is not a URL: {e}")))?;
    if url.cannot_be_a_base() {
        // `user:pw@host` parses with the user as its scheme: never echo that "scheme".
        return Err(Error::configuration(argument, format!("{shown:?} is not a URL like https://host")));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(Error::configuration(
                argument,
                format!("{shown:?}: plain http:// is only allowed on loopback; use https://"),
            ))
        }
        other => return Err(Error::configuration(argument, format!("{shown:?}: unsupported scheme {other:?}"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::configuration(argument, format!("{shown:?}: credentials do not belong in the URL")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::configuration(argument, format!("{shown:?}: a base URL has no query or fragment")));
    }
    Ok(url)
}

fn token_url(auth_base: &str, argument: &str) -> Result<Url> {
    let mut url = parse_base_url(auth_base, argument)?;
    if !url.path().trim_end_matches('/').ends_with("/connect/token") {
        let path = format!("{}/connect/token", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url)
}

/// Query-string (and fragment) parameters whose names contain one of these words, in any
/// case, have their values shown as `***` by [`redact_url`].
const SECRET_PARAMETER_WORDS: [&str; 7] = ["pass", "password", "secret", "token", "key", "auth", "user"];

/// What [`redact_url`] shows for a URL it cannot take apart.
const UNPARSEABLE_URL: &str = "<unparseable URL>";

/// The longest redacted URL shown: a setting holding megabytes must not fill an error with them.
const MAX_SHOWN_URL: usize = 300;

/// A URL the user gave, made fit for an error message or a log line: the user and password
/// of its userinfo, and the values of query-string or fragment parameters whose names look
/// secret (`pass`, `password`, `secret`, `token`, `key`, `auth`, `user`, in any case and
/// anywhere in the name) become `***`. A URL that does not parse shows only its scheme and
/// host, or `<unparseable URL>` when even those are in doubt. Every message that quotes a URL
/// the user gave goes through here.
///
/// ```
/// use servicetitan::config::redact_url;
/// assert_eq!(redact_url("redis://:hunter2@cache:6379/0"), "redis://:***@cache:6379/0");
/// assert_eq!(redact_url("https://bob:hunter2@example.com/"), "https://***:***@example.com/");
/// assert_eq!(redact_url("redis+unix:///run/redis.sock?db=1&pass=hunter2"), "redis+unix:///run/redis.sock?db=1&pass=***");
/// assert_eq!(redact_url("https://example.com/?api_KEY=hunter2&page=2"), "https://example.com/?api_KEY=***&page=2");
/// assert_eq!(redact_url("redis://:hunter2@cache:99999"), "redis://cache");
/// assert_eq!(redact_url("bob:hunter2@cache"), "<unparseable URL>");
/// ```
pub fn redact_url(url: &str) -> String {
    let text = url.trim();
    let shown = match Url::parse(text) {
        // A URL without `//` (`user:pw@host`, `host:6379`) parses as a scheme and an opaque
        // path, which may be anything: only URLs with an authority are shown.
        Ok(parsed) if !parsed.cannot_be_a_base() && !at_sign_after_authority(text) => redact_parsed(parsed),
        _ => None,
    };
    let shown = shown.or_else(|| scheme_and_host(text)).unwrap_or_else(|| UNPARSEABLE_URL.to_owned());
    if shown.chars().count() > MAX_SHOWN_URL {
        let cut: String = shown.chars().take(MAX_SHOWN_URL).collect();
        return format!("{cut}…");
    }
    shown
}

/// `message` with every secret of `url` (as [`redact_url`] sees them, raw and percent-decoded)
/// and `url` itself replaced: for messages of other libraries that may quote either.
pub(crate) fn redact_in(message: &str, url: &str) -> String {
    let mut secrets: Vec<String> = vec![url.trim().to_owned()];
    if let Ok(parsed) = Url::parse(url.trim()) {
        secrets.push(parsed.username().to_owned());
        secrets.extend(parsed.password().map(str::to_owned));
        for part in [parsed.query(), parsed.fragment()].into_iter().flatten() {
            for (name, value) in part.split('&').filter_map(|pair| pair.split_once('=')) {
                if looks_secret(name) {
                    secrets.push(value.to_owned());
                }
            }
        }
    }
    let decoded: Vec<String> = secrets.iter().map(|s| decode_component(s)).collect();
    secrets.extend(decoded);
    // Longest first, so that no part of a longer secret survives the replacement of a shorter one.
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut message = message.to_owned();
    for secret in &secrets {
        if message.contains(secret.as_str()) {
            let replacement = if secret == url.trim() { redact_url(url) } else { "***".to_owned() };
            message = message.replace(secret.as_str(), &replacement);
        }
    }
    message
}

fn redact_parsed(mut url: Url) -> Option<String> {
    if !url.username().is_empty() {
        url.set_username("***").ok()?;
    }
    if url.password().is_some() {
        url.set_password(Some("***")).ok()?;
    }
    if let Some(query) = url.query().map(redact_parameters) {
        url.set_query(Some(&query));
    }
    if let Some(fragment) = url.fragment().map(redact_parameters) {
        url.set_fragment(Some(&fragment));
    }
    // Every setter above can refuse on some URL; then nothing of it is shown.
    let clean = matches!(url.username(), "" | "***") && matches!(url.password(), None | Some("***"));
    clean.then(|| url.to_string())
}

/// Whether an `@` follows the authority of `scheme://authority…`, outside the value of a
/// secret-looking parameter: a password with a `/`, `?` or `#` moves its tail (and the host)
/// into the path, query or fragment, where nothing would redact it. Such a URL is shown by
/// [`scheme_and_host`], which refuses the ambiguity.
fn at_sign_after_authority(text: &str) -> bool {
    let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
    let tail = &rest[rest.find(['/', '?', '#']).unwrap_or(rest.len())..];
    let (path, parameters) = tail.split_at(tail.find(['?', '#']).unwrap_or(tail.len()));
    path.contains('@')
        || parameters.split(['?', '#', '&']).any(|pair| match pair.split_once('=') {
            Some((name, _)) if looks_secret(name) => false,
            _ => pair.contains('@'),
        })
}

/// `a=1&token=x` → `a=1&token=***`, keeping every other byte as it was.
fn redact_parameters(parameters: &str) -> String {
    parameters
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if looks_secret(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn looks_secret(name: &str) -> bool {
    let name = decode_component(name).to_lowercase();
    SECRET_PARAMETER_WORDS.iter().any(|word| name.contains(word))
}

fn decode_component(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// `scheme://host` of something that does not parse as a URL, when both are unambiguous.
fn scheme_and_host(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return None;
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    // An `@` after the authority means the userinfo itself may hold a `/`, `?` or `#`: the
    // host cannot be told from the password.
    if !authority.contains('@') && rest.contains('@') {
        return None;
    }
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if host_port.starts_with('[') {
        &host_port[..host_port.find(']').map_or(0, |end| end + 1)]
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host_ok = !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c))
        && (host.starts_with('[') || !host.contains(':'));
    host_ok.then(|| format!("{scheme}://{host}"))
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn env_parse<T: std::str::FromStr>(env: &EnvLookup, name: &str) -> Result<Option<T>> {
    match env(name) {
        Some(v) if !v.trim().is_empty() => {
            v.trim().parse().map(Some).map_err(|_| Error::configuration(name, format!("{v:?} is not a valid number")))
        }
        _ => Ok(None),
    }
}

fn env_bool(env: &EnvLookup, name: &str) -> Result<Option<bool>> {
    match env(name) {
        Some(v) if !v.trim().is_empty() => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            "0" | "false" | "no" | "off" => Ok(Some(false)),
            _ => Err(Error::configuration(name, format!("{v:?} is not one of 1, 0, true, false, yes, no, on, off"))),
        },
        _ => Ok(None),
    }
}

/// `d`, or a `configuration` error naming `argument` if it is longer than [`MAX_DURATION`].
pub(crate) fn at_most(argument: &str, d: Duration) -> Result<Duration> {
    if d > MAX_DURATION {
        return Err(Error::configuration(argument, "durations are limited to 30 days"));
    }
    Ok(d)
}

fn env_secs(env: &EnvLookup, name: &str) -> Result<Option<Duration>> {
    let secs = env_parse::<f64>(env, name)?;
    match secs {
        Some(s) if s.is_finite() && s >= 0.0 => match Duration::try_from_secs_f64(s) {
            Ok(d) => at_most(name, d).map(Some),
            Err(_) => Err(Error::configuration(name, "durations are limited to 30 days")),
        },
        Some(_) => Err(Error::configuration(name, "must be a non-negative number of seconds")),
        None => Ok(None),
    }
}

fn env_millis(env: &EnvLookup, name: &str) -> Result<Option<Duration>> {
    env_parse::<u64>(env, name)?.map(|ms| at_most(name, Duration::from_millis(ms))).transpose()
}
