//! Remembering which webhook events were handled: in this process by default, in Redis to share it between workers.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::redis::RedisBackend;

/// Where handled events are remembered. `claim` must be atomic: of two concurrent claims of a
/// key, exactly one wins.
pub trait WebhookDedupe: Send + Sync + fmt::Debug {
    /// Records `key` for `ttl`: `true` if it was not recorded yet (handle the event), `false`
    /// if it was (a retry or a replay).
    fn claim<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>>;
    /// Forgets `key`, so that the next delivery of the event is handled again.
    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// Events remembered in this process, each for its TTL, at most [`MemoryDedupe::DEFAULT_CAPACITY`]
/// of them (the oldest are forgotten first when a flood exceeds it).
pub struct MemoryDedupe {
    clock: Arc<dyn Clock>,
    capacity: usize,
    state: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    expiry: HashMap<String, Instant>,
    // Claim order; with one TTL per store that is expiry order, so purging pops from the front.
    order: VecDeque<(Instant, String)>,
}

impl fmt::Debug for MemoryDedupe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.state.lock().map(|s| s.expiry.len()).unwrap_or(0);
        f.debug_struct("MemoryDedupe").field("remembered", &len).field("capacity", &self.capacity).finish()
    }
}

impl Default for MemoryDedupe {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl MemoryDedupe {
    /// Events remembered at most, by default (about 10 MB).
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A store on the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store on `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryDedupe { clock, capacity: Self::DEFAULT_CAPACITY, state: Mutex::new(Seen::default()) }
    }

    /// Remember at most `capacity` events (at least one).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    fn claim_now(&self, key: &str, ttl: Duration) -> bool {
        let now = self.clock.now();
        let mut seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Seen { expiry, order } = &mut *seen;
        fn forget_front(expiry: &mut HashMap<String, Instant>, order: &mut VecDeque<(Instant, String)>) {
            let (at, old) = order.pop_front().expect("front exists");
            // A released and re-claimed key has a newer entry further back: keep that one.
            if expiry.get(&old) == Some(&at) {
                expiry.remove(&old);
            }
        }
        while order.front().is_some_and(|(at, _)| *at <= now) {
            forget_front(expiry, order);
        }
        if expiry.get(key).is_some_and(|until| *until > now) {
            return false;
        }
        while expiry.len() >= self.capacity && !order.is_empty() {
            forget_front(expiry, order);
        }
        let until = now + ttl;
        expiry.insert(key.to_owned(), until);
        order.push_back((until, key.to_owned()));
        true
    }
}

impl WebhookDedupe for MemoryDedupe {
    fn claim<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>> {
        let claimed = self.claim_now(key, ttl);
        Box::pin(async move { Ok(claimed) })
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).expiry.remove(key);
        Box::pin(async { Ok(()) })
    }
}

/// Events remembered in Redis with `SET key 1 NX PX ttl`: one atomic command, so that of the
/// workers receiving the same event at once exactly one handles it. Keys are
/// `{prefix}:webhook:{hash of source and id}`.
pub struct RedisDedupe {
    backend: Arc<RedisBackend>,
}

impl fmt::Debug for RedisDedupe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDedupe").field("backend", &self.backend).finish()
    }
}

impl RedisDedupe {
    /// A store on `backend` (the client's, or one of its own).
    pub fn new(backend: Arc<RedisBackend>) -> Self {
        RedisDedupe { backend }
    }

    fn explain(error: Error) -> Error {
        Error::new(error.code(), format!("webhook deduplication: {}", error.message()))
    }
}

impl WebhookDedupe for RedisDedupe {
    fn claim<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let redis_key = self.backend.key("webhook", key);
            let millis = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
            let set: Option<String> = self
                .backend
                .run("the webhook deduplication", |mut c| {
                    let redis_key = &redis_key;
                    async move {
                        redis::cmd("SET")
                            .arg(redis_key)
                            .arg(1)
                            .arg("NX")
                            .arg("PX")
                            .arg(millis)
                            .query_async::<Option<String>>(&mut c)
                            .await
                    }
                })
                .await
                .map_err(Self::explain)?;
            Ok(set.is_some())
        })
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let redis_key = self.backend.key("webhook", key);
            self.backend
                .run("the webhook deduplication", |mut c| {
                    let redis_key = &redis_key;
                    async move { redis::cmd("DEL").arg(redis_key).query_async::<i64>(&mut c).await }
                })
                .await
                .map_err(Self::explain)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn a_key_is_claimed_once_per_ttl_and_can_be_released() {
        let clock = ManualClock::new();
        let store = MemoryDedupe::with_clock(Arc::new(clock.clone()));
        let ttl = Duration::from_secs(60);
        assert!(store.claim("a", ttl).await.unwrap());
        assert!(!store.claim("a", ttl).await.unwrap());
        assert!(store.claim("b", ttl).await.unwrap());
        clock.advance(Duration::from_secs(59));
        assert!(!store.claim("a", ttl).await.unwrap());
        clock.advance(Duration::from_secs(2));
        assert!(store.claim("a", ttl).await.unwrap(), "expired");
        store.release("a").await.unwrap();
        assert!(store.claim("a", ttl).await.unwrap(), "released");
        assert!(!store.claim("a", ttl).await.unwrap());
    }

    #[tokio::test]
    async fn a_flood_forgets_the_oldest_beyond_capacity() {
        let store = MemoryDedupe::with_clock(Arc::new(ManualClock::new())).capacity(3);
        let ttl = Duration::from_secs(60);
        for key in ["1", "2", "3", "4"] {
            assert!(store.claim(key, ttl).await.unwrap());
        }
        assert_eq!(store.state.lock().unwrap().expiry.len(), 3);
        assert!(!store.claim("4", ttl).await.unwrap());
        assert!(store.claim("1", ttl).await.unwrap(), "the oldest was forgotten");
    }
}
