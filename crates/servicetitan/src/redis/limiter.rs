//! The rate limiter in Redis.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use super::backend::{Admission, RedisBackend};
use crate::error::Result;
use crate::limit::{InProcessLimiter, Quota, RateLimiter, Slot};

/// One queue per key, so that a process's callers of one key ask Redis in turn.
type Turns = HashMap<String, Arc<tokio::sync::Mutex<()>>>;

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
    /// Each key's queue, and the size at which to drop the unused ones.
    turns: Mutex<(Turns, usize)>,
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
        RedisLimiter { backend, turns: Mutex::new((HashMap::new(), 1024)), fallback }
    }

    /// The backend it admits through.
    pub fn backend(&self) -> &Arc<RedisBackend> {
        &self.backend
    }

    fn turn(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().expect("limiter lock");
        if let Some(turn) = turns.0.get(key) {
            return turn.clone();
        }
        // The queue of a key nobody is in is dropped once the map has doubled: memory follows
        // the tenants being called, at an amortised constant cost per new key.
        if turns.0.len() >= turns.1 {
            turns.0.retain(|_, turn| Arc::strong_count(turn) > 1);
            turns.1 = (2 * turns.0.len()).max(1024);
        }
        turns.0.entry(key.to_owned()).or_default().clone()
    }

    /// Admits under `quota`; a slot is held for the margin, or with `slotted` until settled.
    async fn acquire_inner(&self, key: &str, quota: Option<Quota>, slotted: bool) -> Result<Option<Slot>> {
        let turn = self.turn(key);
        // Cooldown-only checks do not queue: there is no slot to wait for.
        let _turn = match quota {
            Some(_) => Some(turn.lock().await),
            None => None,
        };
        // What is left of the cooldown this caller sits out. Once spent, a cooldown still in
        // Redis is ignored: it is longer than any this client would have set or accepted.
        let mut cooldown_left = self.backend.cooldown_bound(quota);
        loop {
            let admitted = self.backend.admit(key, quota, None, cooldown_left, slotted).await;
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
                Ok(Admission::Admitted(slot)) => return Ok(slot),
                Ok(Admission::Wait(wait, cooling)) => {
                    if cooling {
                        cooldown_left = cooldown_left.saturating_sub(wait);
                    }
                    self.backend.clock.sleep(wait).await
                }
                Err(error) => match (&self.fallback, self.backend.settings.fallback_share) {
                    (Some(local), Some(share)) => {
                        tracing::warn!(error = %error, "Redis unavailable: admitting under the in-process fallback limit");
                        let quota = quota.map(|q| Quota { calls: ((q.calls as f64 * share) as u32).max(1), ..q });
                        // No slot: its id would name some other admission in Redis.
                        return local.acquire(key, quota).await.map(|()| None);
                    }
                    _ => return Err(error),
                },
            }
        }
    }
}

impl RateLimiter for RedisLimiter {
    fn acquire<'a>(&'a self, key: &'a str, quota: Option<Quota>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.acquire_inner(key, quota, false).await.map(|_| ()) })
    }

    fn acquire_slot<'a>(&'a self, key: &'a str, quota: Option<Quota>) -> BoxFuture<'a, Result<Option<Slot>>> {
        Box::pin(self.acquire_inner(key, quota, true))
    }

    /// Settles in the background: the call that was measured need not wait for Redis, and a
    /// settlement that fails only leaves the slot at its margin.
    fn settle<'a>(&'a self, key: &'a str, slot: Slot, hold: Duration) -> BoxFuture<'a, Result<()>> {
        let (backend, key) = (self.backend.clone(), key.to_owned());
        let settling = async move {
            if let Err(e) = backend.settle(&key, slot, hold).await {
                tracing::debug!(error = %e, "could not settle a rate-limit slot in Redis");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(settling);
                Box::pin(futures::future::ready(Ok(())))
            }
            Err(_) => Box::pin(async move {
                settling.await;
                Ok(())
            }),
        }
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
