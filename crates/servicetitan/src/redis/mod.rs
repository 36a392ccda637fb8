//! Redis-backed token store and rate limiter: any number of processes, on any number of machines, share one token per credential and one call budget per tenant.
//!
//! Opt in with one setting: [`ClientBuilder::redis_url`](crate::ClientBuilder::redis_url) or
//! `ST_REDIS_URL` (Python `redis_url=`, Node `redisUrl`). The client then uses a
//! [`RedisTokenStore`] and a [`RedisLimiter`] on one shared [`RedisBackend`]:
//!
//! - **Admission** is one Lua script per try: each admission is held for the period plus its
//!   own hold (set by the process that made it: its margin, or held until the call is
//!   answered and then what it measured, settled in one more script call off the call's
//!   path), it drops admissions that no hold can keep any longer, honours the key's 429 cooldown (for at most
//!   [`RedisSettings::max_cooldown`], the client's `max_retry_after`), records the call if
//!   fewer than N remain, else returns how long until a slot frees (at most one window), so
//!   a caller sleeps once instead of polling. Time comes from Redis (`TIME`), so hosts with skewed clocks agree; where
//!   `TIME` is not allowed in scripts, [`RedisSettings::client_time`] passes this host's time.
//!   Keys carry a hash tag (`{…}`), so both keys of a limiter live in one Redis Cluster slot.
//! - **Tokens** are stored under a hash of (token URL, client id, secret fingerprint), never
//!   the secret, and expire with the token (`PX`). One process fetches under a short lock
//!   (`SET NX PX` with a random owner, released by a compare-and-delete script) while the
//!   others wait for the value (a lock is never held longer than its TTL, however it was
//!   set). The fetcher publishes on the token's channel when it is done, and the waiters,
//!   subscribed through one pub/sub connection per process, wake at once; they still look
//!   every 200 ms in case a message was lost. Tokens are encrypted with AES-256-GCM under a key derived from the client secret
//!   ([`StoreKey`](crate::auth::StoreKey)), combined with [`RedisSettings::token_key`] when
//!   set; an entry that does not decrypt is a miss, logged, and replaced.
//! - **Whoever can write to Redis** can delete tokens (more token fetches) and delay calls,
//!   but not indefinitely: every value read from Redis is bounded (see the README's "Redis at
//!   rest"), and nothing read there is sent to the API unless it decrypts under the
//!   credential's key.
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

mod backend;
mod limiter;
mod notices;
mod scripts;
mod settings;
mod tokens;

pub use backend::RedisBackend;
pub use limiter::RedisLimiter;
pub use settings::RedisSettings;
pub use tokens::RedisTokenStore;
