//! Retry decisions: which failures may be resent, and how long to wait first (backoff with full jitter, `Retry-After`, the "N seconds" in a 429's title).

use std::time::{Duration, SystemTime};

use reqwest::Method;

/// How often and how patiently a call is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The first backoff's upper bound.
    pub base_delay: Duration,
    /// No backoff is longer than this.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        use crate::settings::{DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, DEFAULT_MAX_ATTEMPTS};
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: DEFAULT_BACKOFF_BASE,
            max_delay: DEFAULT_BACKOFF_MAX,
        }
    }
}

impl RetryPolicy {
    /// The wait before resend number `retry` (0 for the first resend): a uniformly random
    /// time in `[0, min(max_delay, base_delay × 2^retry)]` ("full jitter", so that clients
    /// that failed together do not come back together).
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling =
            self.base_delay.saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX)).min(self.max_delay);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Methods that change nothing more when repeated: resent after a 5xx, a timeout or a
/// connection failure. Others (POST, PATCH) only when the caller says so.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS)
}

/// A `Retry-After` value: delay-seconds (integer, or a decimal as some servers send), or an
/// HTTP date, taken relative to `now`. A date in the past means "now".
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| announced(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_ANNOUNCED_WAIT))
}

/// The longest wait a server's answer is taken to announce: anything longer (a mistake, or a
/// hostile proxy) is read as this, which is far above any `max_retry_after`, so the call fails.
pub(crate) const MAX_ANNOUNCED_WAIT: Duration = Duration::from_secs(24 * 3600);

fn announced(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(MAX_ANNOUNCED_WAIT).min(MAX_ANNOUNCED_WAIT)
}

/// The wait announced in a 429's title, e.g. "Rate limit is exceeded. Try again in 12 seconds."
pub(crate) fn seconds_in_title(title: &str) -> Option<Duration> {
    let words: Vec<&str> = title.split_whitespace().collect();
    words.windows(2).rev().find_map(|pair| {
        let unit = pair[1].to_ascii_lowercase();
        if !unit.starts_with("second") && !unit.starts_with("sec.") && unit != "s" && unit != "s." {
            return None;
        }
        let secs: f64 = pair[0].parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| announced(secs))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_announced_waits_are_capped_not_panics() {
        let now = SystemTime::UNIX_EPOCH;
        for value in ["1e20", "10000000000000000000", "1e308"] {
            assert_eq!(parse_retry_after(value, now), Some(MAX_ANNOUNCED_WAIT), "{value}");
        }
        assert_eq!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), Some(MAX_ANNOUNCED_WAIT));
        assert_eq!(seconds_in_title("Try again in 1e30 seconds."), Some(MAX_ANNOUNCED_WAIT));
        assert_eq!(parse_retry_after("2.5", now), Some(Duration::from_millis(2500)));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let policy =
            RetryPolicy { max_attempts: 10, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(2) };
        for retry in 0..40 {
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
                .min(Duration::from_secs(2));
            for _ in 0..50 {
                assert!(policy.backoff(retry) <= ceiling);
            }
        }
        // Full jitter: waits spread over the range rather than sitting at the ceiling.
        let waits: Vec<_> = (0..200).map(|_| policy.backoff(10)).collect();
        assert!(waits.iter().any(|w| *w < Duration::from_millis(500)));
        assert!(waits.iter().any(|w| *w > Duration::from_millis(1500)));
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 1.5 ", now), Some(Duration::from_millis(1500)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn title_seconds_are_found() {
        assert_eq!(seconds_in_title("Rate limit is exceeded. Try again in 12 seconds."), Some(Duration::from_secs(12)));
        assert_eq!(seconds_in_title("Too many requests, retry in 1 second"), Some(Duration::from_secs(1)));
        assert_eq!(seconds_in_title("Too many requests"), None);
    }

    #[test]
    fn only_safe_methods_are_idempotent() {
        for m in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE, Method::OPTIONS] {
            assert!(is_idempotent(&m));
        }
        assert!(!is_idempotent(&Method::POST));
        assert!(!is_idempotent(&Method::PATCH));
    }
}
