//! The adaptive jitter margin: how long past the server's period a rate-limit slot is held, sized from the round-trip times the client observes.
//!
//! The server counts a call when it arrives, some varying delay after the limiter admitted
//! it. If one call is seen late and another N calls later is seen early, the server sees N+1
//! inside one of its windows. Holding each slot for `period + d`, where `d` bounds how much
//! later than the quickest call this one reached the server, keeps every server window at N.
//! That `d` is not observable directly, but each call's round trip bounds it: the server
//! answers only after counting, and the part of a round trip above the recent minimum round
//! trip (its *excess*) includes all of the extra delay on the way in.
//!
//! So a slot is held while its call is unanswered (up to [`MAX_HOLD`]), and once the answer
//! arrives, for that call's own excess plus a small pad ([`RateLimiter::settle`]): most calls
//! reach the server far sooner than the worst case, and their slots free sooner. The margin
//! itself, a high quantile of recent excesses, is what a limiter that cannot be told about
//! each call holds every slot for. Any 429 from the per-period limit means the estimate was
//! short: the margin and the holds widen at once (×2, at most once per period), then narrow
//! back slowly (half-life 30 s).
//!
//! Time is injected ([`Clock`]), so the estimator is tested without sleeping.
//!
//! [`RateLimiter::settle`]: crate::limit::RateLimiter::settle

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::Clock;

/// The shortest hold or margin: what covers the timer and scheduling noise of an idle link.
pub const MIN_MARGIN: Duration = Duration::from_millis(10);

/// The longest margin the estimate sets (a configured starting margin may be longer).
pub const MAX_MARGIN: Duration = Duration::from_millis(500);

/// The longest a slot is held past the period: a call still unanswered, or one measured that
/// slow. Beyond this, a call that reaches the server even later may draw a 429.
pub const MAX_HOLD: Duration = Duration::from_secs(3);

/// Added to each call's measured excess: the way back and the server's own work vary a
/// little too, and the minimum they are measured against is itself a sample.
const PAD: Duration = Duration::from_millis(5);

/// Round trips seen before holds are measured against the minimum (which needs a few samples
/// to mean something); until then a call's hold is its whole round trip.
const WARM_UP: u64 = 20;

/// The minimum round trip is the least seen in the current and the previous bucket of this
/// length: it follows a link that got slower within one to two buckets.
const MIN_BUCKET: Duration = Duration::from_secs(10);

/// Recent excesses kept for the quantile.
const RECENT: usize = 128;

/// The quantile of recent excesses the margin covers.
const QUANTILE: f64 = 0.98;

/// How far toward a lower quantile the margin moves at each update (every 8 round trips).
const NARROW: f64 = 0.05;

/// After a 429, the widening halves every this long.
const WIDEN_HALF_LIFE: Duration = Duration::from_secs(30);

/// The most a run of 429s widens by.
const MAX_WIDEN: f64 = 16.0;

/// The adaptive margin of one API host (a client talks to one).
///
/// ```
/// use servicetitan::clock::ManualClock;
/// use servicetitan::margin::AdaptiveMargin;
/// use std::{sync::Arc, time::Duration};
///
/// let margin = AdaptiveMargin::new(Duration::from_millis(100), Arc::new(ManualClock::new()));
/// assert_eq!(margin.margin(), Duration::from_millis(100)); // the configured start
/// for i in 0..1000 {
///     // Round trips of 20–24 ms: the link varies by about 4 ms.
///     margin.observe(Duration::from_millis(20 + i % 5));
/// }
/// // The 4 ms spread plus a small pad, within the bounds.
/// assert!(margin.margin() <= Duration::from_millis(10));
/// ```
pub struct AdaptiveMargin {
    clock: Arc<dyn Clock>,
    start: Duration,
    ceiling: Duration,
    state: Mutex<Estimate>,
    /// The current margin in nanoseconds, read on every admission without the lock.
    current: AtomicU64,
}

struct Estimate {
    samples: u64,
    min_now: Duration,
    min_before: Duration,
    min_since: Option<Instant>,
    recent: Vec<u32>,
    next: usize,
    /// The smoothed high quantile of excesses.
    spread: Duration,
    /// The widening a 429 set, as it was at `widened_at`.
    widen: f64,
    widened_at: Option<Instant>,
}

impl AdaptiveMargin {
    /// An estimator starting from `start` (the configured margin), on `clock`.
    pub fn new(start: Duration, clock: Arc<dyn Clock>) -> Self {
        let ceiling = MAX_MARGIN.max(start);
        let margin = AdaptiveMargin {
            clock,
            start,
            ceiling,
            state: Mutex::new(Estimate {
                samples: 0,
                min_now: Duration::MAX,
                min_before: Duration::MAX,
                min_since: None,
                recent: Vec::with_capacity(RECENT),
                next: 0,
                spread: start,
                widen: 1.0,
                widened_at: None,
            }),
            current: AtomicU64::new(0),
        };
        margin.current.store(start.as_nanos() as u64, Ordering::Relaxed);
        margin
    }

    /// The margin to admit with: how long past the period a new slot is held until its call
    /// has been measured.
    pub fn margin(&self) -> Duration {
        Duration::from_nanos(self.current.load(Ordering::Relaxed))
    }

    /// Records one call's round trip (from its admission to the answer's headers) and
    /// returns how long past the period its slot needs holding.
    pub fn observe(&self, round_trip: Duration) -> Duration {
        let now = self.clock.now();
        let mut state = crate::sync::lock(&self.state);
        state.samples += 1;
        let floor = state.min_round_trip(now, round_trip);
        let excess = round_trip.saturating_sub(floor);
        let micros = excess.as_micros().min(u128::from(u32::MAX)) as u32;
        if state.recent.len() < RECENT {
            state.recent.push(micros);
        } else {
            let next = state.next;
            state.recent[next] = micros;
        }
        state.next = (state.next + 1) % RECENT;
        let widen = state.widening(now);
        if state.samples >= WARM_UP && state.samples.is_multiple_of(8) {
            let quantile = state.quantile();
            state.spread = if quantile >= state.spread {
                // Worse at once: a slot held too briefly is a 429.
                quantile
            } else {
                state.spread.saturating_sub((state.spread - quantile).mul_f64(NARROW))
            };
        }
        self.publish(&state, widen);
        if state.samples < WARM_UP {
            // The server counted the call before answering: the whole round trip is enough.
            return round_trip.min(MAX_HOLD);
        }
        (excess + PAD).mul_f64(widen).clamp(MIN_MARGIN, MAX_HOLD)
    }

    /// A 429 from the per-period limit: the estimate was short. Widens the margin and every
    /// later hold at once; a burst of 429s from one window widens once.
    pub fn rate_limited(&self) {
        let now = self.clock.now();
        let mut state = crate::sync::lock(&self.state);
        let recent = state.widened_at.is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1));
        if !recent {
            state.widen = (state.widening(now) * 2.0).min(MAX_WIDEN);
            state.widened_at = Some(now);
        }
        let widen = state.widening(now);
        self.publish(&state, widen);
    }

    fn publish(&self, state: &Estimate, widen: f64) {
        let margin = if state.samples >= WARM_UP {
            self.bound((state.spread + PAD).mul_f64(widen))
        } else {
            // Until measured, the configured start as given (even below the floor).
            self.start.mul_f64(widen).min(self.ceiling)
        };
        self.current.store(margin.as_nanos() as u64, Ordering::Relaxed);
    }

    fn bound(&self, d: Duration) -> Duration {
        d.clamp(MIN_MARGIN, self.ceiling)
    }
}

impl Estimate {
    /// The least round trip of the current and the previous bucket, `sample` included.
    fn min_round_trip(&mut self, now: Instant, sample: Duration) -> Duration {
        match self.min_since {
            Some(since) if now.saturating_duration_since(since) < MIN_BUCKET => {}
            Some(since) if now.saturating_duration_since(since) < 2 * MIN_BUCKET => {
                self.min_before = self.min_now;
                self.min_now = Duration::MAX;
                self.min_since = Some(now);
            }
            _ => {
                self.min_before = Duration::MAX;
                self.min_now = Duration::MAX;
                self.min_since = Some(now);
            }
        }
        self.min_now = self.min_now.min(sample);
        self.min_now.min(self.min_before)
    }

    fn quantile(&self) -> Duration {
        let mut sorted = self.recent.clone();
        sorted.sort_unstable();
        let rank = ((sorted.len() as f64 * QUANTILE) as usize).min(sorted.len() - 1);
        Duration::from_micros(u64::from(sorted[rank]))
    }

    /// The 429 widening in force at `now`: halving toward 1 every half-life.
    fn widening(&self, now: Instant) -> f64 {
        match self.widened_at {
            None => 1.0,
            Some(at) => {
                let halves = now.saturating_duration_since(at).as_secs_f64() / WIDEN_HALF_LIFE.as_secs_f64();
                1.0 + (self.widen - 1.0) * 0.5f64.powf(halves)
            }
        }
    }
}

impl fmt::Debug for AdaptiveMargin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveMargin").field("margin", &self.margin()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const MS: Duration = Duration::from_millis(1);

    fn estimator(start_ms: u32) -> (AdaptiveMargin, ManualClock) {
        let clock = ManualClock::new();
        (AdaptiveMargin::new(start_ms * MS, Arc::new(clock.clone())), clock)
    }

    /// Feeds round trips of `base` plus a spread drawn evenly from 0..`spread_ms`, one every
    /// 16 ms (60 a second), and returns the holds measured once warmed up.
    fn feed(m: &AdaptiveMargin, clock: &ManualClock, n: usize, base_ms: u32, spread_ms: u32) -> Vec<Duration> {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut holds = Vec::new();
        for _ in 0..n {
            clock.advance(16 * MS);
            let jitter = Duration::from_micros(rng.u64(0..=u64::from(spread_ms) * 1000));
            let round_trip = base_ms * MS + jitter;
            let hold = m.observe(round_trip);
            if crate::sync::lock(&m.state).samples >= WARM_UP {
                holds.push(hold);
            } else {
                assert_eq!(hold, round_trip, "warming up, a call is held for its whole round trip");
            }
        }
        holds
    }

    #[test]
    fn starts_at_the_configured_margin_and_settles_on_the_measured_spread() {
        let (m, clock) = estimator(100);
        assert_eq!(m.margin(), 100 * MS);
        // Warming up: each call is held for its round trip, and the margin stays at the start.
        assert!(feed(&m, &clock, (WARM_UP - 1) as usize, 30, 80).is_empty());
        assert_eq!(m.margin(), 100 * MS);
        let holds = feed(&m, &clock, 600, 30, 80);
        // 0–80 ms of jitter: the margin covers nearly all of it (and no more than the bound).
        let margin = m.margin();
        assert!(margin >= 75 * MS && margin <= 90 * MS, "{margin:?}");
        // Each call's own hold follows its own delay: on average about half the spread.
        let mean = holds.iter().sum::<Duration>() / holds.len() as u32;
        assert!(mean >= 35 * MS && mean <= 55 * MS, "{mean:?}");
        assert!(holds.iter().all(|h| *h >= MIN_MARGIN && *h <= 90 * MS));
    }

    #[test]
    fn a_quiet_link_gets_the_minimum_and_a_worse_one_widens_at_once() {
        let (m, clock) = estimator(100);
        feed(&m, &clock, 1000, 2, 1);
        assert_eq!(m.margin(), MIN_MARGIN);
        // The link gets worse: the very next call's hold is its own, large, delay; the margin
        // follows within a few updates.
        clock.advance(16 * MS);
        assert!(m.observe(2 * MS + 70 * MS) >= 70 * MS);
        feed(&m, &clock, 40, 2, 80);
        assert!(m.margin() >= 60 * MS, "{:?}", m.margin());
        // And better again: once the bad samples have left the recent ones, the margin
        // narrows, slowly.
        let before = m.margin();
        feed(&m, &clock, 200, 2, 1);
        assert!(m.margin() < before && m.margin() > before / 2, "{before:?} {:?}", m.margin());
        feed(&m, &clock, 2000, 2, 1);
        assert_eq!(m.margin(), MIN_MARGIN);
    }

    #[test]
    fn the_floor_is_a_recent_minimum_so_a_slower_route_is_not_taken_for_jitter_forever() {
        let (m, clock) = estimator(100);
        feed(&m, &clock, 200, 2, 1);
        // Every round trip is now 40 ms longer (a new route), steadily.
        let holds = feed(&m, &clock, 3000, 42, 1);
        // At first that reads as 40 ms of excess (safe); after two buckets it is the new floor.
        assert!(holds[0] >= 40 * MS);
        assert!(*holds.last().unwrap() <= 10 * MS, "{:?}", holds.last());
        assert_eq!(m.margin(), MIN_MARGIN);
    }

    #[test]
    fn a_429_widens_at_once_once_per_period_and_narrows_back_slowly() {
        let (m, clock) = estimator(100);
        feed(&m, &clock, 400, 2, 20);
        let settled = m.margin();
        m.rate_limited();
        assert!(m.margin() >= settled * 2 - MS, "{settled:?} {:?}", m.margin());
        // More 429s from the same moment do not compound.
        m.rate_limited();
        m.rate_limited();
        assert!(m.margin() <= settled * 2 + MS);
        // The holds widen too.
        clock.advance(MS);
        let widened = m.observe(2 * MS + 10 * MS);
        assert!(widened >= 28 * MS, "{widened:?}");
        // Half a minute later, about half of the widening is left; minutes later, none.
        feed(&m, &clock, 1875, 2, 0);
        let half = m.observe(2 * MS + 10 * MS);
        assert!(half > 20 * MS && half < 26 * MS, "{half:?}");
        feed(&m, &clock, 20_000, 2, 0);
        let unwidened = m.observe(2 * MS + 10 * MS);
        assert!(unwidened >= 15 * MS && unwidened < 15 * MS + MS / 10, "{unwidened:?}");
        // Repeated 429s a period apart compound, up to ×16; holds stay within the bound.
        for _ in 0..10 {
            clock.advance(Duration::from_secs(1));
            m.rate_limited();
        }
        assert!(m.margin() >= 75 * MS && m.margin() <= 90 * MS, "{:?}", m.margin());
        assert_eq!(m.observe(2 * MS + 400 * MS), MAX_HOLD);
    }

    #[test]
    fn a_long_configured_start_is_kept_until_measured_and_bounds_hold() {
        let (m, clock) = estimator(800);
        assert_eq!(m.margin(), 800 * MS);
        feed(&m, &clock, 100, 5, 3000);
        assert!(m.margin() <= 800 * MS);
        let (m, _) = estimator(0);
        assert_eq!(m.margin(), Duration::ZERO, "the start is used as given until measured");
    }
}
