//! The shared connection to Redis, its retry-or-fall-back policy, and the limiter's primitives.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

use super::notices::FetchNotices;
use super::scripts::{ADMIT, COMPARE_AND_DELETE, COOL_DOWN, GET_TOKEN, LOCK_FETCH, SETTLE};
use super::settings::RedisSettings;
use crate::auth::TokenKey;
use crate::classify::{classify, failure_in, Answer, Cause, Failure, Outcome, Sent};
use crate::clock::{Clock, SystemClock};
use crate::config::redact_in;
use crate::error::{Error, ErrorCode, Result};
use crate::limit::{Quota, Slot};
use crate::margin::MAX_HOLD;
use crate::retry::RetryPolicy;

/// One Redis connection (multiplexed, reconnecting) shared by a [`RedisLimiter`](super::RedisLimiter) and a
/// [`RedisTokenStore`](super::RedisTokenStore), with the retry-or-fall-back policy of [`RedisSettings`].
pub struct RedisBackend {
    pub(super) settings: RedisSettings,
    client: redis::Client,
    connection: tokio::sync::OnceCell<ConnectionManager>,
    pub(super) clock: Arc<dyn Clock>,
    // In fallback mode, after a failure, Redis is not asked again before this instant, so
    // that an unreachable host costs one connect timeout per second, not one per call.
    down_until: Mutex<Option<Instant>>,
    // Set by a failure; turned into `recovered` by the next success. A Redis that comes back
    // may have lost its admission logs (a restart without persistence), while the calls they
    // recorded still count at the server.
    failing: AtomicBool,
    pub(super) recovered: AtomicBool,
    admit: redis::Script,
    settle: redis::Script,
    cool_down: redis::Script,
    pub(super) compare_and_delete: redis::Script,
    pub(super) get_token: redis::Script,
    pub(super) lock_fetch: redis::Script,
    pub(super) notices: FetchNotices,
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
        // rustls picks the process's default provider; the engine uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = settings
            .client()
            .map_err(|e| Error::configuration("redis_url", redact_in(&e.to_string(), settings.url.expose())))?;
        let notices = FetchNotices::new(client.clone(), &settings.key_prefix);
        Ok(RedisBackend {
            settings,
            client,
            connection: tokio::sync::OnceCell::new(),
            clock,
            down_until: Mutex::new(None),
            failing: AtomicBool::new(false),
            recovered: AtomicBool::new(false),
            admit: redis::Script::new(ADMIT),
            settle: redis::Script::new(SETTLE),
            cool_down: redis::Script::new(COOL_DOWN),
            compare_and_delete: redis::Script::new(COMPARE_AND_DELETE),
            get_token: redis::Script::new(GET_TOKEN),
            lock_fetch: redis::Script::new(LOCK_FETCH),
            notices,
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
                return Err(self.unreachable(what, "it failed less than a second ago", Duration::ZERO, None));
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
            let detail = redact_in(&error.to_string(), self.settings.url.expose());
            let elapsed = self.clock.now().saturating_duration_since(started);
            let outcome = classify(Sent::Redis, &answer_of(&error), self.clock.wall(), Duration::ZERO);
            let (cause, failed) = match outcome {
                Outcome::Resend { cause, .. } => (cause, None),
                Outcome::Fail { cause, .. } | Outcome::NotResent { cause, .. } => (cause, Some(cause)),
                Outcome::Success | Outcome::RefetchToken => (Cause::RedisError, Some(Cause::RedisError)),
            };
            if fallback || failed.is_some() || elapsed >= self.settings.wait {
                if fallback {
                    *self.down_until.lock().expect("redis state lock") =
                        Some(self.clock.now() + Duration::from_secs(1));
                }
                return Err(self.unreachable(what, &detail, elapsed, failed));
            }
            let wait = outcome.wait(&REDIS_BACKOFF, attempt).min(self.settings.wait - elapsed);
            attempt += 1;
            tracing::info!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                reason = cause.describe(),
                error = %detail,
                "Redis failed; retrying"
            );
            self.clock.sleep(wait).await;
        }
    }

    /// The error when Redis cannot serve `what`; `failed`: the cause, when it failed for good
    /// rather than for want of time.
    fn unreachable(&self, what: &str, detail: &str, waited: Duration, failed: Option<Cause>) -> Error {
        let next = if self.settings.fallback_share.is_some() {
            "falling back to this process's own limiter and token cache"
        } else {
            "check that Redis is running, or set redis_fallback_share (ST_REDIS_FALLBACK_SHARE) \
             to fall back to an in-process limiter"
        };
        let (verb, next) = match failed {
            Some(Cause::RedisError) => {
                ("refused", "check the Redis URL's user and password, and the commands Redis allows")
            }
            Some(Cause::Transport(Failure::NameNotResolved)) => {
                ("could not be reached for", "check the host name of redis_url (ST_REDIS_URL)")
            }
            Some(Cause::Transport(Failure::Tls)) => (
                "failed the TLS handshake for",
                "the server's certificate must chain to redis_tls_ca (ST_REDIS_TLS_CA), or to the system's \
                 roots when that is not set, and name the host of redis_url",
            ),
            _ => ("did not answer", next),
        };
        Error::new(
            ErrorCode::Connection,
            format!(
                "Redis at {} {verb} {what} ({detail}; waited {:.1} s); {next}. \
                 The ServiceTitan API was not called",
                self.settings.redacted_url,
                waited.as_secs_f64()
            ),
        )
    }

    /// One admission try for `key` at `at` (Redis's clock, or the client's with
    /// [`RedisSettings::client_time`], when `None`): `None` if admitted and recorded, else
    /// how long until a slot may free (or the cooldown ends, as far as
    /// [`cooldown_bound`](Self::cooldown_bound) allows). `quota == None` only checks the
    /// cooldown. The building block of [`RedisLimiter`](super::RedisLimiter); public for tests
    /// and benchmarks.
    pub async fn try_admit(&self, key: &str, quota: Option<Quota>, at: Option<SystemTime>) -> Result<Option<Duration>> {
        Ok(match self.admit(key, quota, at, self.cooldown_bound(quota), false).await? {
            Admission::Admitted(_) => None,
            Admission::Wait(wait, _) => Some(wait),
        })
    }

    /// The longest cooldown read from Redis that a caller of `quota` sits out: the longest
    /// `Retry-After` a client waits for ([`RedisSettings::max_cooldown`], its
    /// `max_retry_after`), or one window, the pause after Redis comes back, if longer. A
    /// longer one was not set by a client with these settings (another deployment with a
    /// larger `max_retry_after`, or whoever can write to Redis) and must not stall this one
    /// beyond what it would accept from the server itself.
    pub fn cooldown_bound(&self, quota: Option<Quota>) -> Duration {
        self.settings.max_cooldown.max(quota.map_or(Duration::ZERO, |q| q.window()))
    }

    /// [`try_admit`](Self::try_admit) honouring cooldowns for at most `longest` (zero: not at
    /// all); with `slotted`, the slot is held until settled (see
    /// [`RateLimiter::acquire_slot`](crate::limit::RateLimiter::acquire_slot)).
    pub(super) async fn admit(
        &self,
        key: &str,
        quota: Option<Quota>,
        at: Option<SystemTime>,
        longest: Duration,
        slotted: bool,
    ) -> Result<Admission> {
        let log = format!("{}:log", self.key("rl", key));
        let cool = format!("{}:cool", self.key("rl", key));
        let (calls, period, margin) = match quota {
            Some(q) => (q.calls, q.period, q.margin),
            None => (0, Duration::ZERO, Duration::ZERO),
        };
        let hold = if slotted { MAX_HOLD.max(margin) } else { margin };
        let longest_hold = longest_hold(hold);
        let span = period + longest_hold;
        let longest_us = longest.as_micros() as u64;
        let now = self.now_arg(at);
        let id = self.sequence.fetch_add(1, Ordering::Relaxed);
        let member = self.member(id, hold);
        let asked = self.clock.now();
        let (wait, cooling): (u64, u64) = self
            .run("the rate limiter", |mut c| {
                let (log, cool, now, member) = (&log, &cool, &now, &member);
                async move {
                    self.admit
                        .key(log)
                        .key(cool)
                        .arg(calls)
                        .arg(period.as_micros() as u64)
                        .arg(now)
                        .arg(member)
                        .arg(longest_us)
                        .arg(margin.as_micros() as u64)
                        .arg(longest_hold.as_micros() as u64)
                        .invoke_async(&mut c)
                        .await
                }
            })
            .await?;
        if wait == 0 {
            return Ok(Admission::Admitted(quota.map(|_| Slot { id, hold, asked })));
        }
        // The script bounds both waits already; bounded here again so that no answer from
        // Redis, whatever it runs, can put a caller to sleep for longer.
        let cooling = cooling != 0;
        let wait = Duration::from_micros(wait).min(if cooling { longest } else { span });
        Ok(Admission::Wait(wait.max(Duration::from_micros(1)), cooling))
    }

    /// The log member of admission `id`, held `hold` past the period.
    fn member(&self, id: u64, hold: Duration) -> String {
        format!("{:016x}-{id}/{}", self.instance, hold.as_micros())
    }

    /// Holds `slot` of `key` for `hold` past the period instead of the hold it was admitted
    /// with (see [`RateLimiter::settle`](crate::limit::RateLimiter::settle)).
    pub async fn settle(&self, key: &str, slot: Slot, hold: Duration) -> Result<()> {
        let log = format!("{}:log", self.key("rl", key));
        let admitted = self.member(slot.id, slot.hold);
        let measured = self.member(slot.id, hold.min(longest_hold(slot.hold)));
        self.run("settling a rate-limit slot", |mut c| {
            let (log, admitted, measured) = (&log, &admitted, &measured);
            async move { self.settle.key(log).arg(admitted).arg(measured).invoke_async::<i64>(&mut c).await }
        })
        .await?;
        Ok(())
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

    pub(super) fn token_key(&self, key: &TokenKey) -> String {
        let mut hash = Sha256::new();
        for part in [&key.environment, &key.client_id, &key.secret_fingerprint] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let id: String = hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.key("token", &id)
    }
}

/// The backoff between tries of Redis: short, as Redis answers in microseconds when it answers
/// at all; the number of tries is bounded by [`RedisSettings::wait`] instead.
const REDIS_BACKOFF: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    base_delay: Duration::from_millis(50),
    max_delay: Duration::from_millis(800),
};

/// A failed Redis command as the classifier sees it: a failed connection, or an error answer
/// (transient when Redis says to try again, or when the connection must be remade).
fn answer_of(error: &redis::RedisError) -> Answer<'static> {
    let failure = if is_tls_failure(error) {
        Some(Failure::Tls)
    } else if error.is_timeout() {
        Some(Failure::Timeout)
    } else if error.is_connection_refusal() {
        Some(Failure::Refused)
    } else if error.is_connection_dropped() {
        Some(Failure::Reset)
    } else if error.to_string().contains("failed to lookup address information") {
        // The driver resolves with the standard library, which says so in words only.
        Some(Failure::NameNotResolved)
    } else if error.is_io_error() {
        Some(failure_in(error))
    } else {
        None
    };
    match failure {
        Some(failure) => Answer::Transport { failure, delivered: true },
        None => Answer::RedisError {
            transient: !matches!(error.retry_method(), redis::RetryMethod::NoRetry)
                && error.kind() != redis::ErrorKind::AuthenticationFailed,
        },
    }
}

/// A failed TLS handshake: the same certificate comes back on every try. The driver keeps the
/// first connection's error only as text in the errors it hands out afterwards, so the
/// words of rustls are recognised as well as its error type.
fn is_tls_failure(error: &redis::RedisError) -> bool {
    let text = error.to_string();
    matches!(failure_in(error), Failure::Tls)
        || ["invalid peer certificate", "received fatal alert", "peer is incompatible", "peer misbehaved"]
            .iter()
            .any(|words| text.contains(words))
}

/// What one admission try came to.
pub(super) enum Admission {
    /// Admitted and recorded (a slot when there was a quota).
    Admitted(Option<Slot>),
    /// Not yet: wait this long, for the cooldown (`true`) or a slot.
    Wait(Duration, bool),
}

/// The longest any slot is held past the period, for a caller admitting with `hold`.
fn longest_hold(hold: Duration) -> Duration {
    MAX_HOLD.max(hold)
}

pub(super) fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
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

    fn outcome(error: redis::RedisError) -> String {
        match classify(Sent::Redis, &answer_of(&error), SystemTime::UNIX_EPOCH, Duration::ZERO) {
            Outcome::Resend { cause, .. } => format!("resend {cause:?}"),
            Outcome::Fail { cause, .. } => format!("fail {cause:?}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn redis_failures_are_classified_like_any_other() {
        let io = |kind| redis::RedisError::from(std::io::Error::new(kind, "x"));
        assert_eq!(outcome(io(std::io::ErrorKind::ConnectionRefused)), "resend Transport(Refused)");
        assert_eq!(outcome(io(std::io::ErrorKind::ConnectionReset)), "resend Transport(Reset)");
        assert_eq!(outcome(io(std::io::ErrorKind::TimedOut)), "resend Transport(Timeout)");
        let dns = std::io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(outcome(redis::RedisError::from(dns)), "fail Transport(NameNotResolved)");
        let refused = redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, "WRONGPASS"));
        assert_eq!(outcome(refused), "fail RedisError");
        let untrusted = redis::RedisError::from((
            redis::ErrorKind::Io,
            "connection failed",
            "invalid peer certificate: UnknownIssuer".to_string(),
        ));
        assert_eq!(outcome(untrusted), "fail Transport(Tls)");
    }

    #[tokio::test]
    async fn a_redis_host_that_does_not_resolve_fails_without_waiting() {
        let settings =
            RedisSettings::new("redis://cache.sandbox.invalid:6379/0").unwrap().wait(Duration::from_secs(30));
        let backend = RedisBackend::connect_lazily(settings).unwrap();
        let started = std::time::Instant::now();
        let e = backend.try_admit("k", None, None).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        assert_eq!(e.code(), ErrorCode::Connection);
        assert!(e.to_string().contains("could not be reached") && e.to_string().contains("ST_REDIS_URL"), "{e}");
    }
}
