//! Time, injected: the system clock for real use and a manual clock so that behaviour over minutes is tested in milliseconds.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;

/// A source of time for the limiter, the token cache and the retry loop.
///
/// Two readings are needed: a monotonic one ([`Clock::now`]) for rate-limit windows and
/// deadlines, and a wall-clock one ([`Clock::wall`]) for token expiry (a token store may be
/// shared by several processes, which share no monotonic clock) and HTTP dates.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// A monotonic reading.
    fn now(&self) -> Instant;
    /// The wall-clock time.
    fn wall(&self) -> SystemTime;
    /// Completes once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;
    /// Completes after `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.sleep_until(self.now() + duration)
    }
}

/// The real clock, on tokio's timer.
///
/// Reads tokio's time, so a test runtime with paused time (`start_paused`) moves it too.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)))
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]), for unit tests.
///
/// Sleepers wake when an `advance` takes the clock past their deadline. Clones share one time.
///
/// ```
/// use servicetitan::clock::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(600));
/// assert_eq!(clock.now() - start, Duration::from_secs(600));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    state: Arc<Mutex<ManualState>>,
}

struct ManualState {
    origin: Instant,
    wall_origin: SystemTime,
    elapsed: Duration,
    sleepers: Vec<Waker>,
}

impl ManualClock {
    /// A clock at the current real time, which then stands still.
    pub fn new() -> Self {
        ManualClock {
            state: Arc::new(Mutex::new(ManualState {
                origin: Instant::now(),
                wall_origin: SystemTime::now(),
                elapsed: Duration::ZERO,
                sleepers: Vec::new(),
            })),
        }
    }

    /// Moves time forward and wakes every sleeper whose deadline has come.
    pub fn advance(&self, by: Duration) {
        let sleepers = {
            let mut state = self.state.lock().expect("clock lock");
            state.elapsed += by;
            std::mem::take(&mut state.sleepers)
        };
        // Woken sleepers re-check their own deadline and re-register if it is still ahead.
        for waker in sleepers {
            waker.wake();
        }
    }

    /// How far the clock has been advanced since it was made.
    pub fn elapsed(&self) -> Duration {
        self.state.lock().expect("clock lock").elapsed
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock").field("elapsed", &self.elapsed()).finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let state = self.state.lock().expect("clock lock");
        state.origin + state.elapsed
    }

    fn wall(&self) -> SystemTime {
        let state = self.state.lock().expect("clock lock");
        state.wall_origin + state.elapsed
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(ManualSleep { state: self.state.clone(), deadline })
    }
}

struct ManualSleep {
    state: Arc<Mutex<ManualState>>,
    deadline: Instant,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.lock().expect("clock lock");
        if state.origin + state.elapsed >= self.deadline {
            Poll::Ready(())
        } else {
            state.sleepers.push(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleep_wakes_only_after_advance() {
        let clock = ManualClock::new();
        let mut sleep = clock.sleep(Duration::from_secs(60));
        assert!(futures::poll!(&mut sleep).is_pending());
        clock.advance(Duration::from_secs(59));
        assert!(futures::poll!(&mut sleep).is_pending());
        clock.advance(Duration::from_secs(1));
        assert!(futures::poll!(&mut sleep).is_ready());
    }

    #[test]
    fn wall_and_monotonic_move_together() {
        let clock = ManualClock::new();
        let (n0, w0) = (clock.now(), clock.wall());
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now() - n0, Duration::from_millis(1500));
        assert_eq!(clock.wall().duration_since(w0).unwrap(), Duration::from_millis(1500));
    }
}
