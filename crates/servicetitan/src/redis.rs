//! Redis-backed token store and rate limiter: any number of processes, on any number of machines, share one token per credential and one call budget per tenant.
//!
//! Opt in with one setting: [`ClientBuilder::redis_url`](crate::ClientBuilder::redis_url) or
//! `ST_REDIS_URL` (Python `redis_url=`, Node `redisUrl`). The client then uses a
//! [`RedisTokenStore`] and a [`RedisLimiter`] on one shared [`RedisBackend`]:
//!
//! - **Admission** is one Lua script per try: it drops admissions older than one window
//!   (`period + margin`), honours the key's 429 cooldown, records the call if fewer than N
//!   remain, else returns how long until a slot frees, so a caller sleeps once instead of
//!   polling. Time comes from Redis (`TIME`), so hosts with skewed clocks agree; where
//!   `TIME` is not allowed in scripts, [`RedisSettings::client_time`] passes this host's time.
//!   Keys carry a hash tag (`{…}`), so both keys of a limiter live in one Redis Cluster slot.
//! - **Tokens** are stored under a hash of (token URL, client id, secret fingerprint), never
//!   the secret, and expire with the token (`PX`). One process fetches under a short lock
//!   (`SET NX PX` with a random owner, released by a compare-and-delete script) while the
//!   others wait for the value. Tokens can be encrypted with AES-256-GCM
//!   ([`RedisSettings::token_key`]); an entry that does not decrypt is a miss, logged.
//! - **When Redis fails**, calls retry the connection for up to [`RedisSettings::wait`]
//!   (default 30 s, and never past the call's deadline), then fail with a `connection` error
//!   naming Redis. With [`RedisSettings::fallback_share`] they instead fall back at once to an
//!   in-process limiter at that share of the budget (and an in-process token cache), and go
//!   back to Redis when it answers again. Neither mode ever sends an unlimited burst: when
//!   Redis answers again after a failure, the process that notices pauses the key for one
//!   window (a restarted Redis has forgotten the calls the server still counts).
//!
//! ```no_run
//! let client = servicetitan::Client::builder()
//!     .app_key("ak1.example")
//!     .redis_url("redis://127.0.0.1:6379/0")
//!     .redis_key_prefix("billing-workers")
//!     .build()?;
//! # Ok::<(), servicetitan::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine as _;
use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{CachedToken, FetchLock, TokenKey, TokenStore};
use crate::clock::{Clock, SystemClock};
use crate::config::Secret;
use crate::error::{Error, ErrorCode, Result};
use crate::limit::{InProcessLimiter, Quota, RateLimiter};

/// The Redis settings of a client (see the [module docs](self)). `Debug` hides the URL's
/// password and the token key.
///
/// ```
/// use servicetitan::redis::RedisSettings;
/// let settings = RedisSettings::new("redis://:hunter2@cache.internal:6379/0").unwrap();
/// assert!(!format!("{settings:?}").contains("hunter2"));
/// assert_eq!(settings.redacted_url(), "redis://:***@cache.internal:6379/0");
/// ```
#[derive(Clone)]
pub struct RedisSettings {
    url: Secret,
    redacted_url: String,
    key_prefix: String,
    token_key: Option<TokenKeyBytes>,
    fallback_share: Option<f64>,
    wait: Duration,
    client_time: bool,
}

#[derive(Clone)]
struct TokenKeyBytes([u8; 32]);

impl fmt::Debug for TokenKeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl RedisSettings {
    /// Settings for `url` (`redis://[[user]:password@]host[:port][/db]`; TLS, `rediss://`, is
    /// not compiled in), with the defaults: prefix `servicetitan`, no token encryption, no
    /// fallback, 30 s of waiting for Redis, Redis's clock.
    pub fn new(url: &str) -> Result<Self> {
        let url = url.trim();
        let redacted_url = redact_url(url);
        let parsed = redis::Client::open(url);
        if let Err(e) = parsed {
            return Err(Error::configuration(
                "redis_url",
                format!("{redacted_url:?} is not a Redis URL ({})", redact(&e.to_string(), url)),
            ));
        }
        Ok(RedisSettings {
            url: Secret::new(url),
            redacted_url,
            key_prefix: "servicetitan".into(),
            token_key: None,
            fallback_share: None,
            wait: Duration::from_secs(30),
            client_time: false,
        })
    }

    /// Prefixes every key (default `servicetitan`): clients with different prefixes share
    /// nothing. Env: `ST_REDIS_KEY_PREFIX`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Result<Self> {
        let prefix = prefix.into();
        if prefix.is_empty() || prefix.contains(['{', '}']) || prefix.chars().any(char::is_whitespace) {
            return Err(Error::configuration("redis_key_prefix", "non-empty, without spaces, '{' or '}'"));
        }
        self.key_prefix = prefix;
        Ok(self)
    }

    /// Encrypts cached tokens with AES-256-GCM under this key: 32 bytes as 64 hex digits or
    /// base64. Every process sharing the tokens needs the same key; an entry that does not
    /// decrypt is treated as a miss (and logged), never a crash. Env: `ST_REDIS_TOKEN_KEY`.
    pub fn token_key(mut self, key: &str) -> Result<Self> {
        self.token_key = Some(parse_token_key(key)?);
        Ok(self)
    }

    /// When Redis cannot be reached, fall back at once to an in-process limiter allowing this
    /// share of the budget (0 < share ≤ 1, e.g. 0.25 for four processes), instead of waiting
    /// for Redis. Env: `ST_REDIS_FALLBACK_SHARE`.
    pub fn fallback_share(mut self, share: f64) -> Result<Self> {
        if !(share.is_finite() && share > 0.0 && share <= 1.0) {
            return Err(Error::configuration("redis_fallback_share", "a share of the budget in (0, 1]"));
        }
        self.fallback_share = Some(share);
        Ok(self)
    }

    /// How long a call waits for Redis to answer again before failing with a `connection`
    /// error (never past the call's own deadline). Default 30 s. Env: `ST_REDIS_WAIT_SECS`.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Sends this host's wall-clock time to the admission script instead of using Redis's
    /// `TIME` (for servers that forbid `TIME` in scripts). Hosts must then keep their clocks
    /// in sync. Env: `ST_REDIS_CLIENT_TIME=1`.
    pub fn client_time(mut self, on: bool) -> Self {
        self.client_time = on;
        self
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The fallback share, if any.
    pub fn fallback(&self) -> Option<f64> {
        self.fallback_share
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.redacted_url)
            .field("key_prefix", &self.key_prefix)
            .field("token_encryption", &self.token_key.is_some())
            .field("fallback_share", &self.fallback_share)
            .field("wait", &self.wait)
            .field("client_time", &self.client_time)
            .finish()
    }
}

fn parse_token_key(raw: &str) -> Result<TokenKeyBytes> {
    let raw = raw.trim();
    let bytes = if raw.len() == 64 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32).map(|i| u8::from_str_radix(&raw[2 * i..2 * i + 2], 16).expect("hex checked")).collect()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(raw))
            .unwrap_or_default()
    };
    let key: [u8; 32] = bytes.try_into().map_err(|_| {
        Error::configuration(
            "redis_token_key",
            "expected 32 bytes, as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)",
        )
    })?;
    Ok(TokenKeyBytes(key))
}

/// Replaces the password of a Redis URL with `***`.
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        // Not a URL: show only the scheme-ish start, the rest may hold anything.
        Err(_) => format!("{}…", url.chars().take_while(|c| *c != ':' && *c != '@').collect::<String>()),
    }
}

/// Removes the URL's password from a message (driver errors may quote the URL).
fn redact(message: &str, url: &str) -> String {
    match reqwest::Url::parse(url).ok().and_then(|u| u.password().map(str::to_owned)) {
        Some(password) if !password.is_empty() => message.replace(&password, "***"),
        _ => message.to_owned(),
    }
}

// Admission: KEYS = [log, cooldown]; ARGV = [calls (0: cooldown only), window µs, now µs or "", member].
// Returns 0 when admitted (recorded), else the µs until a slot may free.
const ADMIT: &str = r#"
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local cool = tonumber(redis.call('GET', KEYS[2]) or '0')
if cool > now then return math.ceil(cool - now) end
local calls = tonumber(ARGV[1])
if calls <= 0 then return 0 end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local n = redis.call('ZCARD', KEYS[1])
if n < calls then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], n - calls, n - calls, 'WITHSCORES')
return math.max(1, math.ceil(tonumber(oldest[2]) + window - now))
"#;

// KEYS = [cooldown]; ARGV = [pause µs, now µs or ""]. Never shortens a pause in force.
const COOL_DOWN: &str = r#"
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local pause = tonumber(ARGV[1])
local untl = now + pause
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > cur then
  redis.call('SET', KEYS[1], string.format('%.0f', untl), 'PX', math.ceil(pause / 1000) + 1)
end
return 0
"#;

// KEYS = [key]; ARGV = [expected value]. Deletes only if the value is still the expected one:
// a lock only by its owner, a token only if no other process replaced it.
const COMPARE_AND_DELETE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// One Redis connection (multiplexed, reconnecting) shared by a [`RedisLimiter`] and a
/// [`RedisTokenStore`], with the retry-or-fall-back policy of [`RedisSettings`].
pub struct RedisBackend {
    settings: RedisSettings,
    client: redis::Client,
    connection: tokio::sync::OnceCell<ConnectionManager>,
    clock: Arc<dyn Clock>,
    // In fallback mode, after a failure, Redis is not asked again before this instant, so
    // that an unreachable host costs one connect timeout per second, not one per call.
    down_until: Mutex<Option<Instant>>,
    // Set by a failure; turned into `recovered` by the next success. A Redis that comes back
    // may have lost its admission logs (a restart without persistence), while the calls they
    // recorded still count at the server.
    failing: AtomicBool,
    recovered: AtomicBool,
    admit: redis::Script,
    cool_down: redis::Script,
    compare_and_delete: redis::Script,
    // Unique admission ids: the same call time from two processes must be two entries.
    instance: u64,
    sequence: AtomicU64,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A backend for `settings`. Connects lazily, on first use.
    pub fn new(settings: RedisSettings, clock: Arc<dyn Clock>) -> Result<Self> {
        let client = redis::Client::open(settings.url.expose())
            .map_err(|e| Error::configuration("redis_url", redact(&e.to_string(), settings.url.expose())))?;
        Ok(RedisBackend {
            settings,
            client,
            connection: tokio::sync::OnceCell::new(),
            clock,
            down_until: Mutex::new(None),
            failing: AtomicBool::new(false),
            recovered: AtomicBool::new(false),
            admit: redis::Script::new(ADMIT),
            cool_down: redis::Script::new(COOL_DOWN),
            compare_and_delete: redis::Script::new(COMPARE_AND_DELETE),
            instance: fastrand::u64(..),
            sequence: AtomicU64::new(0),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    pub(crate) fn key(&self, kind: &str, id: &str) -> String {
        // The hash tag keeps every key of one limiter (or token) in one Cluster slot.
        format!("{}:{kind}:{{{}}}", self.settings.key_prefix, id.replace(['{', '}'], "_"))
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let connection = self
            .connection
            .get_or_try_init(|| async {
                // Short timeouts and no retries inside the driver: our own loop retries within
                // the caller's budget (or falls back at once), and a hung connection must not
                // hold a call past it.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(0);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(connection.clone())
    }

    fn now_arg(&self, at: Option<SystemTime>) -> String {
        match at {
            Some(t) => micros(t).to_string(),
            None if self.settings.client_time => micros(self.clock.wall()).to_string(),
            None => String::new(),
        }
    }

    /// Runs `op`, retrying failures within the wait budget; in fallback mode fails at once.
    pub(crate) async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let fallback = self.settings.fallback_share.is_some();
        if fallback {
            let down = *self.down_until.lock().expect("redis state lock");
            if down.is_some_and(|until| self.clock.now() < until) {
                return Err(self.unreachable(what, "it failed less than a second ago", Duration::ZERO));
            }
        }
        let started = self.clock.now();
        let mut attempt = 0u32;
        loop {
            let result = match self.connection().await {
                Ok(connection) => op(connection).await,
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(value) => {
                    if self.failing.swap(false, Ordering::Relaxed) {
                        self.recovered.store(true, Ordering::Relaxed);
                    }
                    return Ok(value);
                }
                Err(e) => e,
            };
            self.failing.store(true, Ordering::Relaxed);
            let detail = redact(&error.to_string(), self.settings.url.expose());
            let elapsed = self.clock.now().saturating_duration_since(started);
            if fallback {
                *self.down_until.lock().expect("redis state lock") = Some(self.clock.now() + Duration::from_secs(1));
                return Err(self.unreachable(what, &detail, elapsed));
            }
            if elapsed >= self.settings.wait {
                return Err(self.unreachable(what, &detail, elapsed));
            }
            // Backoff with jitter, capped, so that many processes do not reconnect in step.
            let cap = Duration::from_millis(50 << attempt.min(4)).min(self.settings.wait - elapsed);
            attempt += 1;
            tracing::debug!(attempt, error = %detail, "Redis failed; retrying");
            self.clock.sleep(cap.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
        }
    }

    fn unreachable(&self, what: &str, detail: &str, waited: Duration) -> Error {
        let next = if self.settings.fallback_share.is_some() {
            "falling back to this process's own limiter and token cache"
        } else {
            "check that Redis is running, or set redis_fallback_share (ST_REDIS_FALLBACK_SHARE) \
             to fall back to an in-process limiter"
        };
        Error::new(
            ErrorCode::Connection,
            format!(
                "Redis at {} did not answer {what} ({detail}; waited {:.1} s); {next}. \
                 The ServiceTitan API was not called",
                self.settings.redacted_url,
                waited.as_secs_f64()
            ),
        )
    }

    /// One admission try for `key` at `at` (Redis's clock, or the client's with
    /// [`RedisSettings::client_time`], when `None`): `None` if admitted and recorded, else
    /// how long until a slot may free (or the cooldown ends). `quota == None` only checks the
    /// cooldown. The building block of [`RedisLimiter`]; public for tests and benchmarks.
    pub async fn try_admit(&self, key: &str, quota: Option<Quota>, at: Option<SystemTime>) -> Result<Option<Duration>> {
        let log = format!("{}:log", self.key("rl", key));
        let cool = format!("{}:cool", self.key("rl", key));
        let (calls, window) = match quota {
            Some(q) => (q.calls, q.window().as_micros() as u64),
            None => (0, 0),
        };
        let now = self.now_arg(at);
        let member = format!("{:016x}-{}", self.instance, self.sequence.fetch_add(1, Ordering::Relaxed));
        let wait: u64 = self
            .run("the rate limiter", |mut c| {
                let (log, cool, now, member) = (&log, &cool, &now, &member);
                async move {
                    self.admit.key(log).key(cool).arg(calls).arg(window).arg(now).arg(member).invoke_async(&mut c).await
                }
            })
            .await?;
        Ok((wait > 0).then(|| Duration::from_micros(wait)))
    }

    /// Sets the shared cooldown of `key` to `pause` from `at` (or now), unless a longer one is
    /// in force.
    pub async fn set_cooldown(&self, key: &str, pause: Duration, at: Option<SystemTime>) -> Result<()> {
        let cool = format!("{}:cool", self.key("rl", key));
        let now = self.now_arg(at);
        let pause = pause.as_micros().max(1) as u64;
        self.run("the cooldown", |mut c| {
            let (cool, now) = (&cool, &now);
            async move { self.cool_down.key(cool).arg(pause).arg(now).invoke_async::<i64>(&mut c).await }
        })
        .await?;
        Ok(())
    }

    fn token_key(&self, key: &TokenKey) -> String {
        let mut hash = Sha256::new();
        for part in [&key.environment, &key.client_id, &key.secret_fingerprint] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let id: String = hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.key("token", &id)
    }
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// A [`RateLimiter`] in Redis: the in-process limiter's rule (at most N calls in any window
/// of `period + margin` per key), shared by every process using the same Redis and prefix.
///
/// Within a process, callers of a key queue first come, first served, and only the head of
/// the queue asks Redis; it sleeps exactly as long as the script says. A caller dropped
/// while waiting has recorded nothing (a slot is recorded only by the script call that
/// admits it).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> servicetitan::Result<()> {
/// use servicetitan::limit::{Quota, RateLimiter};
/// use servicetitan::redis::{RedisBackend, RedisLimiter, RedisSettings};
/// use std::{sync::Arc, time::Duration};
///
/// let backend = RedisBackend::new(RedisSettings::new("redis://127.0.0.1:6379")?, Arc::new(servicetitan::clock::SystemClock))?;
/// let limiter = RedisLimiter::new(Arc::new(backend));
/// let quota = Quota { calls: 60, period: Duration::from_secs(1), margin: Duration::from_millis(100) };
/// limiter.acquire("tenant:1234", Some(quota)).await?;
/// # Ok(()) }
/// ```
pub struct RedisLimiter {
    backend: Arc<RedisBackend>,
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    fallback: Option<InProcessLimiter>,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// A limiter on `backend`, falling back as its settings say.
    pub fn new(backend: Arc<RedisBackend>) -> Self {
        let fallback = backend.settings.fallback_share.map(|_| InProcessLimiter::with_clock(backend.clock.clone()));
        RedisLimiter { backend, turns: Mutex::new(HashMap::new()), fallback }
    }

    fn turn(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.turns.lock().expect("limiter lock").entry(key.to_owned()).or_default().clone()
    }

    async fn acquire_inner(&self, key: &str, quota: Option<Quota>) -> Result<()> {
        let turn = self.turn(key);
        // Cooldown-only checks do not queue: there is no slot to wait for.
        let _turn = match quota {
            Some(_) => Some(turn.lock().await),
            None => None,
        };
        loop {
            let admitted = self.backend.try_admit(key, quota, None).await;
            if let (Ok(_), Some(q)) = (&admitted, quota) {
                if self.backend.recovered.swap(false, Ordering::Relaxed) {
                    // Redis just came back and may have forgotten the calls of the last
                    // window (or this process admitted some under its fallback limit):
                    // every process pauses one window, so they cannot burst on top of them.
                    tracing::warn!("Redis is back; pausing the key for one window before admitting again");
                    // If this fails, Redis is gone again and the next try says what to do.
                    let _ = self.backend.set_cooldown(key, q.window(), None).await;
                    continue;
                }
            }
            match admitted {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => self.backend.clock.sleep(wait).await,
                Err(error) => match (&self.fallback, self.backend.settings.fallback_share) {
                    (Some(local), Some(share)) => {
                        tracing::warn!(error = %error, "Redis unavailable: admitting under the in-process fallback limit");
                        let quota = quota.map(|q| Quota { calls: ((q.calls as f64 * share) as u32).max(1), ..q });
                        return local.acquire(key, quota).await;
                    }
                    _ => return Err(error),
                },
            }
        }
    }
}

impl RateLimiter for RedisLimiter {
    fn acquire<'a>(&'a self, key: &'a str, quota: Option<Quota>) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.acquire_inner(key, quota))
    }

    fn cool_down<'a>(&'a self, key: &'a str, pause: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let Some(local) = &self.fallback {
                // Kept locally too, so that the fallback honours it if Redis goes away.
                local.cool_down(key, pause).await?;
            }
            match self.backend.set_cooldown(key, pause, None).await {
                Err(_) if self.fallback.is_some() => Ok(()),
                other => other,
            }
        })
    }
}

/// A [`TokenStore`] in Redis: one token per credential for every process, fetched by one of
/// them under a short lock, optionally encrypted.
///
/// ```no_run
/// use servicetitan::redis::{RedisBackend, RedisSettings, RedisTokenStore};
/// use std::sync::Arc;
///
/// let settings = RedisSettings::new("redis://127.0.0.1:6379")?.token_key(&"00".repeat(32))?;
/// let backend = Arc::new(RedisBackend::new(settings, Arc::new(servicetitan::clock::SystemClock))?);
/// let client = servicetitan::Client::builder()
///     .app_key("ak1.example")
///     .token_store(Arc::new(RedisTokenStore::new(backend)))
///     .build()?;
/// # Ok::<(), servicetitan::Error>(())
/// ```
pub struct RedisTokenStore {
    backend: Arc<RedisBackend>,
}

impl fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStore").field("backend", &self.backend).finish()
    }
}

#[derive(Serialize, Deserialize)]
struct StoredToken {
    access_token: String,
    expires_at_ms: u64,
    refresh_at_ms: u64,
    stale_at_ms: u64,
}

const PLAIN: &str = "p1:";
const SEALED: &str = "e1:";

impl RedisTokenStore {
    /// A store on `backend`.
    pub fn new(backend: Arc<RedisBackend>) -> Self {
        RedisTokenStore { backend }
    }

    fn fallback(&self) -> bool {
        self.backend.settings.fallback_share.is_some()
    }

    /// Serializes (and encrypts, with a key) a token; the Redis key is the associated data,
    /// so a sealed value copied under another key does not open.
    fn encode(&self, redis_key: &str, token: &CachedToken) -> String {
        let millis = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let json = serde_json::to_vec(&StoredToken {
            access_token: token.access_token.expose().to_owned(),
            expires_at_ms: millis(token.expires_at),
            refresh_at_ms: millis(token.refresh_at),
            stale_at_ms: millis(token.stale_at),
        })
        .expect("a token serializes");
        match &self.backend.settings.token_key {
            None => format!("{PLAIN}{}", String::from_utf8(json).expect("JSON is UTF-8")),
            Some(key) => {
                let cipher = Aes256Gcm::new((&key.0).into());
                let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
                let sealed = cipher
                    .encrypt(&nonce, Payload { msg: &json, aad: redis_key.as_bytes() })
                    .expect("AES-GCM encrypts any length we store");
                let mut bytes = nonce.to_vec();
                bytes.extend_from_slice(&sealed);
                format!("{SEALED}{}", base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }

    /// The token in a stored value, or `None` (logged) when it cannot be read with our key.
    fn decode(&self, redis_key: &str, value: &str) -> Option<CachedToken> {
        let json = if let Some(plain) = value.strip_prefix(PLAIN) {
            if self.backend.settings.token_key.is_some() {
                // A plaintext entry in an encrypted deployment: someone is writing without the
                // key. Do not trust it.
                tracing::error!("a cached token in Redis is not encrypted but redis_token_key is set; ignoring it");
                return None;
            }
            plain.as_bytes().to_vec()
        } else if let Some(sealed) = value.strip_prefix(SEALED) {
            let Some(key) = &self.backend.settings.token_key else {
                tracing::error!(
                    "a cached token in Redis is encrypted but no redis_token_key (ST_REDIS_TOKEN_KEY) is set; \
                     fetching a new token"
                );
                return None;
            };
            let bytes = base64::engine::general_purpose::STANDARD.decode(sealed).ok()?;
            if bytes.len() < 12 {
                return None;
            }
            let cipher = Aes256Gcm::new((&key.0).into());
            match cipher
                .decrypt(Nonce::from_slice(&bytes[..12]), Payload { msg: &bytes[12..], aad: redis_key.as_bytes() })
            {
                Ok(json) => json,
                Err(_) => {
                    tracing::error!(
                        "a cached token in Redis does not decrypt with redis_token_key: another process uses a \
                         different key (all processes sharing tokens need the same one); fetching a new token"
                    );
                    return None;
                }
            }
        } else {
            tracing::error!("a cached token in Redis has an unknown format; ignoring it");
            return None;
        };
        let stored: StoredToken = serde_json::from_slice(&json).ok()?;
        Some(CachedToken {
            access_token: Secret::new(stored.access_token),
            expires_at: from_millis(stored.expires_at_ms),
            refresh_at: from_millis(stored.refresh_at_ms),
            stale_at: from_millis(stored.stale_at_ms),
        })
    }

    async fn get_raw(&self, redis_key: &str) -> Result<Option<String>> {
        self.backend
            .run("a token lookup", |mut c| async move {
                redis::cmd("GET").arg(redis_key).query_async::<Option<String>>(&mut c).await
            })
            .await
    }
}

impl TokenStore for RedisTokenStore {
    fn get<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, Result<Option<CachedToken>>> {
        Box::pin(async move {
            let redis_key = self.backend.token_key(key);
            match self.get_raw(&redis_key).await {
                Ok(value) => Ok(value.and_then(|v| self.decode(&redis_key, &v))),
                // In fallback mode a Redis failure is a miss: the process's own cache takes over.
                Err(_) if self.fallback() => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn put<'a>(&'a self, key: &'a TokenKey, token: &'a CachedToken) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let redis_key = self.backend.token_key(key);
            let ttl = token.expires_at.duration_since(self.backend.clock.wall()).unwrap_or_default();
            if ttl < Duration::from_millis(1) {
                return Ok(());
            }
            let value = self.encode(&redis_key, token);
            let result = self
                .backend
                .run("storing a token", |mut c| {
                    let (redis_key, value) = (&redis_key, &value);
                    async move {
                        redis::cmd("SET")
                            .arg(redis_key)
                            .arg(value)
                            .arg("PX")
                            .arg(ttl.as_millis() as u64)
                            .query_async::<()>(&mut c)
                            .await
                    }
                })
                .await;
            match result {
                Err(_) if self.fallback() => Ok(()),
                other => other,
            }
        })
    }

    fn remove_if<'a>(&'a self, key: &'a TokenKey, access_token: &'a Secret) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let redis_key = self.backend.token_key(key);
            let raw = match self.get_raw(&redis_key).await {
                Ok(raw) => raw,
                Err(_) if self.fallback() => return Ok(()),
                Err(e) => return Err(e),
            };
            let Some(raw) = raw else { return Ok(()) };
            // An entry we cannot read is removed too: it is of no use to anyone with our key.
            let same = self.decode(&redis_key, &raw).is_none_or(|t| &t.access_token == access_token);
            if !same {
                return Ok(());
            }
            // Compared on the stored bytes, so a token another process stored meanwhile stays.
            let result =
                self.backend
                    .run("removing a token", |mut c| {
                        let (redis_key, raw) = (&redis_key, &raw);
                        async move {
                            self.backend.compare_and_delete.key(redis_key).arg(raw).invoke_async::<i64>(&mut c).await
                        }
                    })
                    .await;
            match result {
                Err(_) if self.fallback() => Ok(()),
                Err(e) => Err(e),
                Ok(_) => Ok(()),
            }
        })
    }

    fn try_lock_fetch<'a>(&'a self, key: &'a TokenKey, ttl: Duration) -> BoxFuture<'a, Result<Option<FetchLock>>> {
        Box::pin(async move {
            let lock_key = format!("{}:lock", self.backend.token_key(key));
            let owner = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            let result = self
                .backend
                .run("the token lock", |mut c| {
                    let (lock_key, owner) = (&lock_key, &owner);
                    async move {
                        redis::cmd("SET")
                            .arg(lock_key)
                            .arg(owner)
                            .arg("NX")
                            .arg("PX")
                            .arg(ttl.as_millis().max(1) as u64)
                            .query_async::<Option<String>>(&mut c)
                            .await
                    }
                })
                .await;
            match result {
                Ok(Some(_)) => Ok(Some(FetchLock::shared(owner))),
                Ok(None) => Ok(None),
                // Redis is gone: this process fetches for itself (its own single flight holds).
                Err(_) if self.fallback() => Ok(Some(FetchLock::local())),
                Err(e) => Err(e),
            }
        })
    }

    fn unlock_fetch<'a>(&'a self, key: &'a TokenKey, lock: &'a FetchLock) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some(owner) = lock.owner() else { return Ok(()) };
            let lock_key = format!("{}:lock", self.backend.token_key(key));
            let result =
                self.backend
                    .run("releasing the token lock", |mut c| {
                        let lock_key = &lock_key;
                        async move {
                            self.backend.compare_and_delete.key(lock_key).arg(owner).invoke_async::<i64>(&mut c).await
                        }
                    })
                    .await;
            match result {
                // An unreleased lock expires by itself within its TTL.
                Err(_) if self.fallback() => Ok(()),
                Err(e) => Err(e),
                Ok(_) => Ok(()),
            }
        })
    }
}

/// A backend on the system clock, for callers that build one by hand.
impl RedisBackend {
    /// [`RedisBackend::new`] on the system clock.
    pub fn connect_lazily(settings: RedisSettings) -> Result<Self> {
        Self::new(settings, Arc::new(SystemClock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("redis://user:pw@h:1"), "redis://user:***@h:1");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(redact("error at redis://:pw@h", "redis://:pw@h"), "error at redis://:***@h");
        let e = RedisSettings::new("nope://:pw@h").unwrap_err();
        assert!(!e.to_string().contains("pw@"), "{e}");
    }

    #[test]
    fn token_keys_parse_as_hex_or_base64_and_nothing_else() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_token_key(&hex).unwrap().0, [0xab; 32]);
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(parse_token_key(&b64).unwrap().0, [7; 32]);
        for bad in ["", "abcd", &"ab".repeat(31)] {
            assert_eq!(parse_token_key(bad).unwrap_err().code(), ErrorCode::Configuration);
        }
    }

    fn store(key: Option<&str>) -> RedisTokenStore {
        let mut settings = RedisSettings::new("redis://127.0.0.1:1").unwrap();
        if let Some(key) = key {
            settings = settings.token_key(key).unwrap();
        }
        RedisTokenStore::new(Arc::new(RedisBackend::connect_lazily(settings).unwrap()))
    }

    #[test]
    fn encrypted_tokens_round_trip_and_hide_the_token() {
        let store = store(Some(&"11".repeat(32)));
        let token = CachedToken::schedule(Secret::new("tok-secret"), SystemTime::now(), Duration::from_secs(900));
        let sealed = store.encode("k", &token);
        assert!(sealed.starts_with(SEALED) && !sealed.contains("tok-secret"));
        let opened = store.decode("k", &sealed).unwrap();
        assert_eq!(opened.access_token, token.access_token);
        assert_eq!(micros(opened.expires_at) / 1000, micros(token.expires_at) / 1000);
        // Bound to its key: the same bytes under another key do not open.
        assert!(store.decode("other", &sealed).is_none());
    }

    #[test]
    fn a_wrong_key_or_a_missing_key_is_a_miss_not_a_crash() {
        let token = CachedToken::schedule(Secret::new("tok"), SystemTime::now(), Duration::from_secs(900));
        let sealed = store(Some(&"11".repeat(32))).encode("k", &token);
        assert!(store(Some(&"22".repeat(32))).decode("k", &sealed).is_none());
        assert!(store(None).decode("k", &sealed).is_none());
        assert!(store(None).decode("k", "e1:!!!").is_none());
        let plain = store(None).encode("k", &token);
        assert!(store(None).decode("k", &plain).is_some());
        assert!(store(Some(&"11".repeat(32))).decode("k", &plain).is_none());
    }
}
