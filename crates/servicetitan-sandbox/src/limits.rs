//! The server side of rate limiting: admits or rejects each call as the real service would, and
//! records the most calls it ever admitted inside one window, so tests can prove a client kept
//! within the limit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{JitterConfig, JitterDistribution, LimitConfig, WindowMode};
use crate::util::mix_all;

/// What a limiter has seen; serialised into `/__sandbox/stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LimitStats {
    pub admitted: u64,
    pub rejected: u64,
    /// The most calls admitted inside one of the limiter's own windows (sliding or fixed).
    pub max_in_window: u64,
    /// The most calls admitted inside any interval of one window's length, wherever it starts.
    /// Equal to `max_in_window` in sliding mode; in fixed mode it may reach twice the limit
    /// across a boundary, which the fixed-window server allows.
    pub max_in_sliding_window: u64,
}

impl LimitStats {
    pub fn merge(&mut self, other: &LimitStats) {
        self.admitted += other.admitted;
        self.rejected += other.rejected;
        self.max_in_window = self.max_in_window.max(other.max_in_window);
        self.max_in_sliding_window = self.max_in_sliding_window.max(other.max_in_sliding_window);
    }
}

/// One counter, e.g. for one (app key, tenant).
#[derive(Debug)]
pub struct WindowLimiter {
    config: LimitConfig,
    window: Duration,
    /// Origin of fixed windows.
    origin: Instant,
    /// Admission times within the last window, oldest first (kept in both modes for the stats).
    recent: VecDeque<Instant>,
    fixed_index: u64,
    fixed_count: u64,
    pub stats: LimitStats,
}

impl WindowLimiter {
    pub fn new(config: LimitConfig, origin: Instant) -> Self {
        let window = Duration::from_millis(config.window_ms.max(1));
        WindowLimiter {
            config,
            window,
            origin,
            recent: VecDeque::new(),
            fixed_index: u64::MAX,
            fixed_count: 0,
            stats: LimitStats::default(),
        }
    }

    /// Admits the call at `now`, or says how long until a call would be admitted.
    pub fn try_admit(&mut self, now: Instant) -> Result<(), Duration> {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) >= self.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.config.enabled {
            let limit = u64::from(self.config.calls);
            match self.config.mode {
                WindowMode::Sliding => {
                    if self.recent.len() as u64 >= limit {
                        self.stats.rejected += 1;
                        // The oldest of the last `limit` admissions leaves the window first.
                        let oldest = self.recent[self.recent.len() - limit as usize];
                        return Err((oldest + self.window).saturating_duration_since(now));
                    }
                }
                WindowMode::Fixed => {
                    let since =
                        now.saturating_duration_since(self.origin) + Duration::from_millis(self.config.phase_ms);
                    let index = (since.as_nanos() / self.window.as_nanos()) as u64;
                    if index != self.fixed_index {
                        self.fixed_index = index;
                        self.fixed_count = 0;
                    }
                    if self.fixed_count >= limit {
                        self.stats.rejected += 1;
                        let next_start = self.window.as_nanos() * (u128::from(index) + 1);
                        return Err(Duration::from_nanos((next_start - since.as_nanos()) as u64));
                    }
                }
            }
        }
        self.fixed_count += 1;
        self.recent.push_back(now);
        self.stats.admitted += 1;
        let sliding = self.recent.len() as u64;
        self.stats.max_in_sliding_window = self.stats.max_in_sliding_window.max(sliding);
        let own = match self.config.mode {
            WindowMode::Sliding => sliding,
            WindowMode::Fixed => self.fixed_count,
        };
        self.stats.max_in_window = self.stats.max_in_window.max(own);
        Ok(())
    }
}

/// Draws each call's inbound delay (see [`JitterConfig`]), deterministically from the seed and
/// the call's number, so that a run can be replayed.
#[derive(Debug)]
pub struct Jitter {
    seed: u64,
    config: std::sync::Mutex<JitterConfig>,
    draws: std::sync::atomic::AtomicU64,
}

impl Jitter {
    pub fn new(seed: u64, config: JitterConfig) -> Self {
        Jitter { seed, config: std::sync::Mutex::new(config), draws: std::sync::atomic::AtomicU64::new(0) }
    }

    pub fn get(&self) -> JitterConfig {
        *self.config.lock().unwrap()
    }

    pub fn set(&self, config: JitterConfig) -> Result<(), String> {
        config.validate()?;
        *self.config.lock().unwrap() = config;
        Ok(())
    }

    /// The delay for the next call.
    pub fn next_delay(&self) -> Duration {
        let config = self.get();
        if config.distribution == JitterDistribution::None || config.max_ms == 0 {
            return Duration::ZERO;
        }
        let n = self.draws.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        delay(config, mix_all(&[self.seed, n, 0x7177]))
    }
}

/// The delay `config` gives for the random 64-bit `draw`.
fn delay(config: JitterConfig, draw: u64) -> Duration {
    // A uniform draw in [0, 1) with 53 bits.
    let u = (draw >> 11) as f64 / (1u64 << 53) as f64;
    let max = config.max_ms as f64;
    let ms = match config.distribution {
        JitterDistribution::None => 0.0,
        JitterDistribution::Uniform => u * max,
        JitterDistribution::LongTailed => {
            // Pareto (Lomax) with shape 1.16 and scale max/40, cut at max.
            const SHAPE: f64 = 1.16;
            let scale = max / 40.0;
            (scale * ((1.0 - u).powf(-1.0 / SHAPE) - 1.0)).min(max)
        }
    };
    Duration::from_micros((ms * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limit(mode: WindowMode, calls: u32, window_ms: u64, phase_ms: u64) -> LimitConfig {
        LimitConfig { enabled: true, calls, window_ms, mode, phase_ms }
    }

    #[test]
    fn sliding_admits_n_then_waits_for_the_oldest() {
        let t0 = Instant::now();
        let mut l = WindowLimiter::new(limit(WindowMode::Sliding, 3, 1000, 0), t0);
        for ms in [0, 100, 200] {
            assert!(l.try_admit(t0 + Duration::from_millis(ms)).is_ok());
        }
        assert_eq!(l.try_admit(t0 + Duration::from_millis(300)), Err(Duration::from_millis(700)));
        assert!(l.try_admit(t0 + Duration::from_millis(1000)).is_ok());
        assert_eq!(l.stats, LimitStats { admitted: 4, rejected: 1, max_in_window: 3, max_in_sliding_window: 3 });
    }

    #[test]
    fn fixed_resets_at_the_boundary_and_honours_the_phase() {
        let t0 = Instant::now();
        let mut l = WindowLimiter::new(limit(WindowMode::Fixed, 2, 1000, 300), t0);
        // With a 300 ms phase, the first window ends at 700 ms after the origin.
        assert!(l.try_admit(t0 + Duration::from_millis(600)).is_ok());
        assert!(l.try_admit(t0 + Duration::from_millis(650)).is_ok());
        assert_eq!(l.try_admit(t0 + Duration::from_millis(690)), Err(Duration::from_millis(10)));
        assert!(l.try_admit(t0 + Duration::from_millis(700)).is_ok());
        assert!(l.try_admit(t0 + Duration::from_millis(701)).is_ok());
        assert_eq!(l.stats.max_in_window, 2);
        assert_eq!(l.stats.max_in_sliding_window, 4);
    }

    #[test]
    fn disabled_admits_everything_but_still_counts() {
        let t0 = Instant::now();
        let mut l = WindowLimiter::new(LimitConfig::disabled(), t0);
        for _ in 0..500 {
            assert!(l.try_admit(t0).is_ok());
        }
        assert_eq!(l.stats.max_in_window, 500);
    }

    #[test]
    fn jitter_draws_follow_their_distribution_and_are_replayable() {
        let draws = |config: JitterConfig| -> Vec<f64> {
            let j = Jitter::new(42, config);
            let mut v: Vec<f64> = (0..20_000).map(|_| j.next_delay().as_secs_f64() * 1000.0).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        assert!(draws(JitterConfig::default()).iter().all(|d| *d == 0.0));
        let uniform = draws(JitterConfig::uniform(80));
        assert!(uniform[0] >= 0.0 && uniform[uniform.len() - 1] < 80.0);
        let median = uniform[uniform.len() / 2];
        assert!((38.0..42.0).contains(&median), "{median}");
        let tail = draws(JitterConfig::long_tailed(200));
        let (median, p99) = (tail[tail.len() / 2], tail[tail.len() * 99 / 100]);
        assert!(median < 8.0 && p99 > 50.0 && tail[tail.len() - 1] <= 200.0, "{median} {p99}");
        // The same seed replays the same delays.
        assert_eq!(draws(JitterConfig::uniform(80)), uniform);
        // Changing the setting takes effect at the next call; bad settings are refused.
        let j = Jitter::new(1, JitterConfig::uniform(5));
        assert!(j.next_delay() < Duration::from_millis(5));
        j.set(JitterConfig::uniform(0)).unwrap();
        assert_eq!(j.next_delay(), Duration::ZERO);
        assert!(j.set(JitterConfig::uniform(3_600_000)).is_err());
    }

    proptest! {
        /// Whatever the arrival times, no interval of one window ever holds more than the limit
        /// of admissions (sliding), and no fixed window does (fixed).
        #[test]
        fn never_more_than_the_limit_in_a_window(
            gaps in proptest::collection::vec(0u64..400, 1..400),
            calls in 1u32..20,
            window_ms in 50u64..2000,
            phase_ms in 0u64..2000,
            fixed in any::<bool>(),
        ) {
            let mode = if fixed { WindowMode::Fixed } else { WindowMode::Sliding };
            let t0 = Instant::now();
            let mut l = WindowLimiter::new(limit(mode, calls, window_ms, phase_ms), t0);
            let mut now = t0;
            let mut admitted = Vec::new();
            for gap in gaps {
                now += Duration::from_millis(gap);
                if l.try_admit(now).is_ok() {
                    admitted.push(now);
                }
            }
            let window = Duration::from_millis(window_ms);
            for (i, start) in admitted.iter().enumerate() {
                let inside = admitted[i..].iter().take_while(|t| t.duration_since(*start) < window).count() as u64;
                if mode == WindowMode::Sliding {
                    prop_assert!(inside <= u64::from(calls));
                }
                prop_assert!(inside <= l.stats.max_in_sliding_window);
            }
            if mode == WindowMode::Fixed {
                let phase = Duration::from_millis(phase_ms);
                let mut per_window = std::collections::HashMap::new();
                for t in &admitted {
                    let k = ((t.duration_since(t0) + phase).as_millis() / u128::from(window_ms)) as u64;
                    *per_window.entry(k).or_insert(0u64) += 1;
                }
                prop_assert!(per_window.values().all(|&n| n <= u64::from(calls)));
            }
            prop_assert!(l.stats.max_in_window <= u64::from(calls));
        }
    }
}
