//! Client-side rate limiting: at most N calls in any window of (period + margin) per key, FIFO-fair, asynchronous and cancellation-safe, plus the shared cooldown a 429 sets.
//!
//! Each admission holds its slot for the period plus a margin: the quota's, or, for a slot
//! taken with [`RateLimiter::acquire_slot`], whatever its caller says once the call has been
//! answered ([`RateLimiter::settle`], see [`crate::margin`]); until then the slot is held.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::clock::{Clock, SystemClock};
use crate::error::Result;

/// At most `calls` in any window of `period + margin`.
///
/// The server counts `calls` per `period` in windows we cannot see; the calls it sees are
/// shifted by network delay that varies from call to call. Keeping every window of
/// `period + margin` at `calls` or fewer keeps every server window of `period` at `calls` or
/// fewer as long as the delay varies by less than `margin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Calls allowed per window.
    pub calls: u32,
    /// The server's period (1 s for the API, 1 min for reports).
    pub period: Duration,
    /// Added to the period to absorb jitter in network delay.
    pub margin: Duration,
}

impl Quota {
    /// `period + margin`.
    pub fn window(&self) -> Duration {
        self.period + self.margin
    }
}

/// One admission, named so that its hold can be changed later ([`RateLimiter::settle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    /// The limiter's own name for the admission (unique per limiter and key).
    pub id: u64,
    /// How long past the period the slot is held as admitted, until settled
    /// ([`MAX_HOLD`](crate::margin::MAX_HOLD)).
    pub hold: Duration,
    /// When, on the client's clock, the limiter was asked for the admission it granted (the
    /// admission itself for an in-process limiter): a call's round trip is measured from here,
    /// so that the way back from a shared limiter counts as delay too.
    pub asked: Instant,
}

/// Grants permission to send, per key (one key per app and tenant, one per tenant and report).
///
/// Implementations must be fair (first come, first served), must not spin while waiting,
/// and must take no slot for a waiter that is dropped before it is admitted. The in-process
/// [`InProcessLimiter`] is the default; a shared one (Redis) coordinates many processes.
///
/// ```
/// use futures::future::BoxFuture;
/// use servicetitan::limit::{InProcessLimiter, Quota, RateLimiter};
/// use std::{sync::Arc, time::Duration};
///
/// /// A limiter that logs each admission, then defers to the in-process one.
/// #[derive(Debug, Default)]
/// struct Logged(InProcessLimiter);
///
/// impl RateLimiter for Logged {
///     fn acquire<'a>(&'a self, key: &'a str, quota: Option<Quota>) -> BoxFuture<'a, servicetitan::Result<()>> {
///         Box::pin(async move {
///             self.0.acquire(key, quota).await?;
///             println!("admitted {key}");
///             Ok(())
///         })
///     }
///     fn cool_down<'a>(&'a self, key: &'a str, pause: Duration) -> BoxFuture<'a, servicetitan::Result<()>> {
///         self.0.cool_down(key, pause)
///     }
/// }
///
/// let client = servicetitan::Client::builder()
///     .app_key("ak1.example")
///     .rate_limiter(Arc::new(Logged::default()))
///     .build();
/// ```
pub trait RateLimiter: Send + Sync + fmt::Debug + 'static {
    /// Waits until one more call under `key` fits `quota`, then records it. With
    /// `quota == None` only the key's cooldown is waited for.
    fn acquire<'a>(&'a self, key: &'a str, quota: Option<Quota>) -> BoxFuture<'a, Result<()>>;

    /// Pauses every caller of `key` for `pause` from now (a 429's `Retry-After`). Never
    /// shortens a pause already in force.
    fn cool_down<'a>(&'a self, key: &'a str, pause: Duration) -> BoxFuture<'a, Result<()>>;

    /// Like [`acquire`](Self::acquire), and names the admission if this limiter can change
    /// its hold later. Such a slot is held, instead of for the quota's margin, until
    /// [`settle`](Self::settle)d, and past the period for at most
    /// [`MAX_HOLD`](crate::margin::MAX_HOLD) if never settled: a call not answered yet may not
    /// have reached the server yet. The default admits with `acquire` and names nothing: the
    /// quota's margin then holds for every call.
    fn acquire_slot<'a>(&'a self, key: &'a str, quota: Option<Quota>) -> BoxFuture<'a, Result<Option<Slot>>> {
        Box::pin(async move { self.acquire(key, quota).await.map(|()| None) })
    }

    /// Holds `slot` for `hold` past the period from its admission, now that its call has been
    /// answered (or has failed) and `hold` bounds how late it reached the server. A slot that
    /// has already left the window stays out. The default does nothing.
    fn settle<'a>(&'a self, key: &'a str, slot: Slot, hold: Duration) -> BoxFuture<'a, Result<()>> {
        let _ = (key, slot, hold);
        Box::pin(futures::future::ready(Ok(())))
    }
}

/// The default limiter: a sliding log of admission times per key, in this process.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> servicetitan::Result<()> {
/// use servicetitan::limit::{InProcessLimiter, Quota, RateLimiter};
/// use std::time::Duration;
///
/// let limiter = InProcessLimiter::new();
/// let quota = Quota { calls: 60, period: Duration::from_secs(1), margin: Duration::from_millis(100) };
/// limiter.acquire("tenant:1234", Some(quota)).await?; // returns at once: the window is empty
/// # Ok(()) }
/// ```
pub struct InProcessLimiter {
    clock: Arc<dyn Clock>,
    keys: Mutex<Keys>,
    next_id: std::sync::atomic::AtomicU64,
}

/// The keys seen, each with its state. Idle keys (nothing held, no cooldown, nobody waiting)
/// are dropped whenever the map has doubled since the last sweep: memory follows the keys in
/// use, not every tenant ever called, at an amortised constant cost per new key.
struct Keys {
    map: HashMap<String, Arc<KeyLimiter>>,
    sweep_at: usize,
}

/// No sweep below this many keys.
const SWEEP_FROM: usize = 1024;

struct KeyLimiter {
    // tokio's Mutex queues waiters first come, first served, and drops a waiter that is
    // cancelled: the holder is the head of the queue, the only one computing its wait.
    turn: tokio::sync::Mutex<()>,
    state: Mutex<KeyState>,
    // Wakes the head of the queue when a settled slot frees sooner than it was waiting for.
    freed: tokio::sync::Notify,
}

#[derive(Default)]
struct KeyState {
    /// Slots still held, in the order admitted (so by increasing id).
    held: VecDeque<Held>,
    cooldown_until: Option<Instant>,
}

struct Held {
    id: u64,
    /// Admission time plus the period: the hold is counted from here.
    period_end: Instant,
    until: Instant,
}

impl KeyState {
    fn cooldown(&mut self, now: Instant) -> Option<Instant> {
        match self.cooldown_until {
            Some(until) if until > now => Some(until),
            Some(_) => {
                self.cooldown_until = None;
                None
            }
            None => None,
        }
    }

    /// Records the call and returns its slot if it fits, else when to look again.
    /// `id` names the slot if admitted, held `hold` past the period until settled.
    fn try_admit(&mut self, now: Instant, quota: Quota, id: u64, hold: Duration) -> std::result::Result<Slot, Instant> {
        if let Some(until) = self.cooldown(now) {
            return Err(until);
        }
        // Settled holds differ, so slots leave out of order; there are only about N of them.
        self.held.retain(|h| h.until > now);
        let calls = quota.calls as usize;
        if self.held.len() < calls {
            let period_end = now + quota.period;
            self.held.push_back(Held { id, period_end, until: period_end + hold });
            Ok(Slot { id, hold, asked: now })
        } else {
            // A slot frees when enough of the held ones have left.
            let mut until: Vec<Instant> = self.held.iter().map(|h| h.until).collect();
            let k = self.held.len() - calls;
            Err(*until.select_nth_unstable(k).1)
        }
    }

    /// Nothing held and no cooldown at `now`: the key's state can go.
    fn idle(&self, now: Instant) -> bool {
        self.held.iter().all(|h| h.until <= now) && self.cooldown_until.is_none_or(|until| until <= now)
    }

    /// Re-holds slot `id` for `hold` past its period; true if it now frees sooner.
    fn settle(&mut self, id: u64, hold: Duration) -> bool {
        let Ok(i) = self.held.binary_search_by_key(&id, |h| h.id) else { return false };
        let held = &mut self.held[i];
        let until = held.period_end + hold.min(crate::retry::MAX_ANNOUNCED_WAIT);
        let sooner = until < held.until;
        held.until = until;
        sooner
    }
}

impl InProcessLimiter {
    /// A limiter on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A limiter on the given clock (tests use a manual one).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        InProcessLimiter {
            clock,
            keys: Mutex::new(Keys { map: HashMap::new(), sweep_at: SWEEP_FROM }),
            next_id: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn key(&self, key: &str) -> Arc<KeyLimiter> {
        let mut keys = crate::sync::lock(&self.keys);
        if let Some(k) = keys.map.get(key) {
            return k.clone();
        }
        if keys.map.len() >= keys.sweep_at {
            let now = self.clock.now();
            // Whoever holds a key's Arc (a caller waiting or admitting) keeps it.
            keys.map.retain(|_, k| Arc::strong_count(k) > 1 || !crate::sync::lock(&k.state).idle(now));
            keys.sweep_at = (2 * keys.map.len()).max(SWEEP_FROM);
        }
        let k = Arc::new(KeyLimiter {
            turn: tokio::sync::Mutex::new(()),
            state: Mutex::new(KeyState::default()),
            freed: tokio::sync::Notify::new(),
        });
        keys.map.insert(key.to_owned(), k.clone());
        k
    }

    /// Admits under `quota`; a slot is held for the margin, or with `slotted` until settled.
    async fn acquire_inner(&self, key: &str, quota: Option<Quota>, slotted: bool) -> Result<Option<Slot>> {
        let limiter = self.key(key);
        let Some(quota) = quota else {
            // No quota: only a cooldown can hold the call, and there is no slot to queue for.
            loop {
                let now = self.clock.now();
                let until = crate::sync::lock(&limiter.state).cooldown(now);
                match until {
                    None => return Ok(None),
                    Some(until) => self.clock.sleep_until(until).await,
                }
            }
        };
        let _turn = limiter.turn.lock().await;
        loop {
            // Registered before looking, so that a slot settled meanwhile is not missed.
            let freed = limiter.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            let now = self.clock.now();
            // Unique across keys: a key dropped while idle and made again never reuses an id
            // that a late settlement could name.
            let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let hold = if slotted { crate::margin::MAX_HOLD.max(quota.margin) } else { quota.margin };
            let next = crate::sync::lock(&limiter.state).try_admit(now, quota, id, hold);
            match next {
                Ok(slot) => return Ok(Some(slot)),
                // Sleep to the exact moment a slot frees (or the cooldown ends, or a settled
                // slot frees sooner), then look again: a cooldown may have been set meanwhile.
                Err(until) => {
                    futures::future::select(self.clock.sleep_until(until), freed).await;
                }
            }
        }
    }
}

impl Default for InProcessLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InProcessLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = crate::sync::lock(&self.keys).map.len();
        f.debug_struct("InProcessLimiter").field("keys", &keys).finish()
    }
}

impl RateLimiter for InProcessLimiter {
    fn acquire<'a>(&'a self, key: &'a str, quota: Option<Quota>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.acquire_inner(key, quota, false).await.map(|_| ()) })
    }

    fn acquire_slot<'a>(&'a self, key: &'a str, quota: Option<Quota>) -> BoxFuture<'a, Result<Option<Slot>>> {
        Box::pin(self.acquire_inner(key, quota, true))
    }

    fn settle<'a>(&'a self, key: &'a str, slot: Slot, hold: Duration) -> BoxFuture<'a, Result<()>> {
        let limiter = crate::sync::lock(&self.keys).map.get(key).cloned();
        if let Some(limiter) = limiter {
            let sooner = crate::sync::lock(&limiter.state).settle(slot.id, hold);
            if sooner {
                limiter.freed.notify_waiters();
            }
        }
        Box::pin(futures::future::ready(Ok(())))
    }

    fn cool_down<'a>(&'a self, key: &'a str, pause: Duration) -> BoxFuture<'a, Result<()>> {
        // Bounded: a caller's Duration::MAX would overflow the clock.
        let until = self.clock.now() + pause.min(crate::retry::MAX_ANNOUNCED_WAIT);
        let limiter = self.key(key);
        let mut state = crate::sync::lock(&limiter.state);
        if state.cooldown_until.is_none_or(|current| current < until) {
            state.cooldown_until = Some(until);
        }
        Box::pin(futures::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn quota(calls: u32, period_ms: u64, margin_ms: u64) -> Quota {
        Quota { calls, period: Duration::from_millis(period_ms), margin: Duration::from_millis(margin_ms) }
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    /// Spawns `n` acquirers and returns the clock offsets (ms) at which each was admitted.
    async fn run_demand(
        clock: &ManualClock,
        limiter: Arc<InProcessLimiter>,
        q: Quota,
        n: usize,
        step: Duration,
        steps: usize,
    ) -> Vec<u128> {
        let admitted = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..n {
            let (limiter, admitted, clock) = (limiter.clone(), admitted.clone(), clock.clone());
            tokio::spawn(async move {
                limiter.acquire("t", Some(q)).await.unwrap();
                admitted.lock().unwrap().push(clock.elapsed().as_millis());
            });
        }
        settle().await;
        for _ in 0..steps {
            clock.advance(step);
            settle().await;
        }
        let mut v = admitted.lock().unwrap().clone();
        v.sort();
        v
    }

    fn max_in_any_window(times: &[u128], window_ms: u128) -> usize {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| times[i..].iter().take_while(|u| **u < t + window_ms).count())
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn admits_n_then_waits_for_the_oldest_slot_to_leave_the_window() {
        let clock = ManualClock::new();
        let limiter = Arc::new(InProcessLimiter::with_clock(Arc::new(clock.clone())));
        let times = run_demand(&clock, limiter, quota(5, 1000, 100), 6, Duration::from_millis(100), 11).await;
        assert_eq!(times, vec![0, 0, 0, 0, 0, 1100]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sustained_demand_never_exceeds_n_per_window_and_uses_the_budget() {
        let clock = ManualClock::new();
        let limiter = Arc::new(InProcessLimiter::with_clock(Arc::new(clock.clone())));
        // Ten simulated seconds of unlimited demand, in 10 ms steps.
        let times = run_demand(&clock, limiter, quota(60, 1000, 100), 2000, Duration::from_millis(10), 1000).await;
        assert!(max_in_any_window(&times, 1100) <= 60);
        assert!(max_in_any_window(&times, 1000) <= 60);
        let in_ten_seconds = times.iter().filter(|t| **t < 10_000).count();
        // 60 per 1.1 s: 545 in 10 s; at least 90% of the nominal 600.
        assert!(in_ten_seconds >= 540, "{in_ten_seconds}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiters_are_served_in_arrival_order() {
        let clock = ManualClock::new();
        let limiter = Arc::new(InProcessLimiter::with_clock(Arc::new(clock.clone())));
        let q = quota(1, 1000, 0);
        let order = Arc::new(Mutex::new(Vec::new()));
        for i in 0..5 {
            let (limiter, order) = (limiter.clone(), order.clone());
            tokio::spawn(async move {
                limiter.acquire("t", Some(q)).await.unwrap();
                order.lock().unwrap().push(i);
            });
            // Each spawned task reaches the queue before the next is spawned.
            settle().await;
        }
        for _ in 0..5 {
            clock.advance(Duration::from_secs(1));
            settle().await;
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_waiter_takes_no_slot() {
        let clock = ManualClock::new();
        let limiter = Arc::new(InProcessLimiter::with_clock(Arc::new(clock.clone())));
        let q = quota(1, 1000, 0);
        limiter.acquire("t", Some(q)).await.unwrap();
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire("t", Some(q)).await })
        };
        settle().await;
        waiter.abort();
        settle().await;
        clock.advance(Duration::from_secs(1));
        // The slot freed at 1 s is still there for the next caller.
        let mut next = limiter.acquire("t", Some(q));
        assert!(futures::poll!(&mut next).is_ready());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cooldown_holds_every_caller_of_the_key_and_no_other() {
        let clock = ManualClock::new();
        let limiter = Arc::new(InProcessLimiter::with_clock(Arc::new(clock.clone())));
        let q = quota(60, 1000, 100);
        limiter.cool_down("t", Duration::from_secs(5)).await.unwrap();
        // A shorter pause does not shorten the one in force.
        limiter.cool_down("t", Duration::from_secs(1)).await.unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        for quota in [Some(q), None, Some(q)] {
            let (limiter, done) = (limiter.clone(), done.clone());
            tokio::spawn(async move {
                limiter.acquire("t", quota).await.unwrap();
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        let mut other = limiter.acquire("u", Some(q));
        assert!(futures::poll!(&mut other).is_ready());
        settle().await;
        clock.advance(Duration::from_millis(4900));
        settle().await;
        assert_eq!(done.load(Ordering::SeqCst), 0);
        clock.advance(Duration::from_millis(100));
        settle().await;
        assert_eq!(done.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_settled_slot_frees_at_its_own_hold_and_wakes_the_waiter() {
        let clock = ManualClock::new();
        let limiter = Arc::new(InProcessLimiter::with_clock(Arc::new(clock.clone())));
        let q = quota(2, 1000, 100);
        let first = limiter.acquire_slot("t", Some(q)).await.unwrap().unwrap();
        let second = limiter.acquire_slot("t", Some(q)).await.unwrap().unwrap();
        // Held until answered.
        assert_eq!((first.hold, second.hold), (crate::margin::MAX_HOLD, crate::margin::MAX_HOLD));
        assert_ne!(first.id, second.id);
        let admitted = Arc::new(Mutex::new(None));
        {
            let (limiter, admitted, clock) = (limiter.clone(), admitted.clone(), clock.clone());
            tokio::spawn(async move {
                limiter.acquire("t", Some(q)).await.unwrap();
                *admitted.lock().unwrap() = Some(clock.elapsed().as_millis());
            });
        }
        settle().await;
        // The waiter sleeps until 4000 ms (both calls unanswered); the first is answered at
        // 50 ms and needs only 10 ms past the period, so its slot frees at 1010 ms.
        clock.advance(Duration::from_millis(50));
        limiter.settle("t", first, Duration::from_millis(10)).await.unwrap();
        // The second needed 300 ms.
        limiter.settle("t", second, Duration::from_millis(300)).await.unwrap();
        for _ in 0..96 {
            clock.advance(Duration::from_millis(10));
            settle().await;
        }
        assert_eq!(*admitted.lock().unwrap(), Some(1010));
        // The second slot, held to 1300 ms, keeps the window full until then.
        let mut next = limiter.acquire("t", Some(q));
        assert!(futures::poll!(&mut next).is_pending());
        clock.advance(Duration::from_millis(290));
        assert!(futures::poll!(&mut next).is_ready());
        // Settling a slot that has left the window, or of an unknown key, changes nothing.
        limiter.settle("t", first, Duration::from_secs(5)).await.unwrap();
        limiter.settle("nobody", first, Duration::from_secs(5)).await.unwrap();
        let mut after = limiter.acquire("t", Some(q));
        assert!(futures::poll!(&mut after).is_pending(), "two slots held: the waiter's and `next`'s");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_limiter_without_slots_keeps_the_margin() {
        #[derive(Debug, Default)]
        struct Plain(InProcessLimiter);
        impl RateLimiter for Plain {
            fn acquire<'a>(&'a self, key: &'a str, quota: Option<Quota>) -> BoxFuture<'a, Result<()>> {
                self.0.acquire(key, quota)
            }
            fn cool_down<'a>(&'a self, key: &'a str, pause: Duration) -> BoxFuture<'a, Result<()>> {
                self.0.cool_down(key, pause)
            }
        }
        let plain = Plain::default();
        assert_eq!(plain.acquire_slot("t", Some(quota(1, 1000, 100))).await.unwrap(), None);
        plain.settle("t", Slot { id: 0, hold: Duration::ZERO, asked: Instant::now() }, Duration::ZERO).await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn idle_keys_are_dropped_as_the_map_grows_and_busy_ones_kept() {
        let clock = ManualClock::new();
        let limiter = InProcessLimiter::with_clock(Arc::new(clock.clone()));
        let q = quota(60, 1000, 100);
        for tenant in 0..1500 {
            limiter.acquire(&format!("t{tenant}"), Some(q)).await.unwrap();
        }
        limiter.cool_down("t7", Duration::from_secs(60)).await.unwrap();
        clock.advance(Duration::from_secs(2));
        limiter.acquire("t8", Some(q)).await.unwrap();
        let keys = || crate::sync::lock(&limiter.keys).map.len();
        assert_eq!(keys(), 1500, "no sweep before the map doubles");
        for tenant in 1500..2100 {
            limiter.acquire(&format!("t{tenant}"), Some(q)).await.unwrap();
        }
        // The sweep at 2048 keys dropped every idle one: t7 (cooling down) and t8 (a slot held)
        // stay, with the 548 keys called since the sweep… and the ones called just before it.
        assert!(keys() < 700, "{}", keys());
        let state =
            |k: &str| crate::sync::lock(&limiter.keys).map.get(k).map(|l| crate::sync::lock(&l.state).held.len());
        assert_eq!(state("t8"), Some(1));
        assert!(state("t7").is_some(), "a cooldown in force is kept");
        assert_eq!(state("t9"), None);
        // A dropped key comes back empty, as it would have been.
        let mut again = limiter.acquire("t9", Some(q));
        assert!(futures::poll!(&mut again).is_ready());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn report_quota_over_minutes_runs_in_milliseconds() {
        let clock = ManualClock::new();
        let limiter = Arc::new(InProcessLimiter::with_clock(Arc::new(clock.clone())));
        // 5 runs per minute: 11 runs need two full windows.
        let times = run_demand(&clock, limiter, quota(5, 60_000, 100), 11, Duration::from_secs(1), 130).await;
        assert_eq!(times.len(), 11);
        assert_eq!(&times[..5], &[0; 5]);
        assert!(times[5..10].iter().all(|t| *t == 61_000));
        assert_eq!(times[10], 122_000);
    }
}
