//! [`ClientBuilder`]: one method per setting; nothing is checked until `build`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{redact_url, EnvLookup, Environment, Secret};
use crate::auth::TokenStore;
use crate::clock::Clock;
use crate::error::Result;
use crate::limit::RateLimiter;

/// Builds a [`crate::Client`]: every setting from its method, else its environment variable,
/// else its default (see the [module docs](crate::config) for the table).
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
    pub(super) app_key: Option<Secret>,
    pub(super) environment: Option<Environment>,
    pub(super) environment_name: Option<String>,
    pub(super) auth_url: Option<String>,
    pub(super) api_url: Option<String>,
    pub(super) rate_limit_calls: Option<u32>,
    pub(super) rate_limit_period: Option<Duration>,
    pub(super) rate_limit_margin: Option<Duration>,
    pub(super) report_rate_limit_calls: Option<u32>,
    pub(super) report_rate_limit_period: Option<Duration>,
    pub(super) rate_limit_margin_adaptive: Option<bool>,
    pub(super) limits_off: bool,
    pub(super) max_attempts: Option<u32>,
    pub(super) backoff_base: Option<Duration>,
    pub(super) backoff_max: Option<Duration>,
    pub(super) timeout: Option<Duration>,
    pub(super) connect_timeout: Option<Duration>,
    pub(super) attempt_timeout: Option<Duration>,
    pub(super) max_retry_after: Option<Duration>,
    pub(super) root_certificates: Vec<Vec<u8>>,
    pub(super) language: Option<String>,
    pub(super) redis_url: Option<Secret>,
    pub(super) redis_key_prefix: Option<String>,
    pub(super) redis_token_key: Option<Secret>,
    pub(super) redis_tls_ca: Option<Vec<u8>>,
    pub(super) redis_fallback_share: Option<f64>,
    pub(super) redis_wait: Option<Duration>,
    pub(super) redis_client_time: Option<bool>,
    pub(crate) token_store: Option<Arc<dyn TokenStore>>,
    pub(crate) rate_limiter: Option<Arc<dyn RateLimiter>>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
    pub(super) env: Option<EnvLookup>,
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
}
