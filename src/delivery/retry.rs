//! Retry policy for failed deliveries: exponential backoff with caller-supplied jitter,
//! `Retry-After` parsing, and the retry/give-up decision. Pure functions so they are
//! deterministic under test; randomness comes only from [`random_jitter`].

use std::time::{Duration, SystemTime};

use crate::domain::RetryConfig;

/// Upper bound on any single wait between attempts, whatever the policy or the
/// receiver's `Retry-After` asks for, so a delivery is never parked indefinitely.
pub const MAX_DELAY: Duration = Duration::from_secs(60 * 60);

/// Outcome of [`decide`]: wait and try again, or stop retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Schedule the next attempt after this delay.
    Retry(Duration),
    /// The attempt budget is exhausted.
    GiveUp,
}

/// Delay before the next attempt after `attempts_made` attempts have failed.
///
/// Attempt `n + 1` waits `backoff_ms × 2^(n-1)` (with `n = attempts_made`, treated as at
/// least 1), scaled by `1 + 0.2 × jitter` where `jitter` is clamped to `[-1, 1]`, and
/// capped at [`MAX_DELAY`]. Jitter is a parameter so the function stays pure; it spreads
/// retries so many deliveries failing together do not hammer a receiver in lockstep.
/// The arithmetic is done in `f64` so large `attempts_made` saturate at the cap instead
/// of overflowing.
pub fn backoff_delay(policy: &RetryConfig, attempts_made: u32, jitter: f64) -> Duration {
    let n = attempts_made.max(1);
    // NaN would poison the whole computation; treat it as "no jitter".
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(-1.0, 1.0)
    };
    // Exponent is bounded so powi never sees an enormous value; 2^1023 is already
    // far beyond the cap, and f64 handles it without overflow to infinity.
    let exp = i32::try_from(n - 1).unwrap_or(i32::MAX).min(1023);
    let ms = policy.backoff_ms as f64 * 2f64.powi(exp) * (1.0 + 0.2 * jitter);
    let cap_ms = MAX_DELAY.as_millis() as f64;
    if !ms.is_finite() || ms >= cap_ms {
        return MAX_DELAY;
    }
    Duration::from_millis(ms.max(0.0).round() as u64)
}

/// A jitter value uniformly distributed in `[-1, 1]`, drawn from the OS random source.
///
/// Falls back to `0.0` (plain exponential backoff) if the random source fails: jitter is
/// a load-spreading nicety, not a security property, so it is not worth failing a retry.
pub fn random_jitter() -> f64 {
    match getrandom::u64() {
        // Use the top 53 bits for a uniform value in [0, 1], then map to [-1, 1].
        Ok(v) => {
            let unit = (v >> 11) as f64 / ((1u64 << 53) - 1) as f64;
            unit * 2.0 - 1.0
        }
        Err(_) => 0.0,
    }
}

/// Parses a `Retry-After` header value relative to `now`.
///
/// Accepts delta-seconds (a non-negative decimal integer) or an HTTP-date; a date in the
/// past yields zero. The result is capped at [`MAX_DELAY`] so a hostile or buggy receiver
/// cannot stall a delivery forever. Returns `None` for anything unparseable.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only overflow can fail, and an absurdly large delay is simply capped.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_DELAY));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let wait = at.duration_since(now).unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_DELAY))
}

/// Decides whether to retry after `attempts_made` attempts have been made.
///
/// Gives up once `attempts_made >= max_attempts`. Otherwise a receiver-supplied
/// `retry_after` wins (capped at [`MAX_DELAY`]) because the receiver knows its own load
/// best; without one, [`backoff_delay`] is used.
pub fn decide(
    policy: &RetryConfig,
    attempts_made: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> RetryDecision {
    if attempts_made >= policy.max_attempts {
        return RetryDecision::GiveUp;
    }
    match retry_after {
        Some(d) => RetryDecision::Retry(d.min(MAX_DELAY)),
        None => RetryDecision::Retry(backoff_delay(policy, attempts_made, jitter)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryConfig = RetryConfig {
        max_attempts: 5,
        backoff_ms: 1000,
    };

    #[test]
    fn backoff_doubles() {
        assert_eq!(backoff_delay(&POLICY, 1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff_delay(&POLICY, 2, 0.0), Duration::from_secs(2));
        assert_eq!(backoff_delay(&POLICY, 3, 0.0), Duration::from_secs(4));
        assert_eq!(backoff_delay(&POLICY, 4, 0.0), Duration::from_secs(8));
    }

    #[test]
    fn backoff_zero_attempts_treated_as_one() {
        assert_eq!(backoff_delay(&POLICY, 0, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn backoff_applies_jitter() {
        assert_eq!(backoff_delay(&POLICY, 1, 1.0), Duration::from_millis(1200));
        assert_eq!(backoff_delay(&POLICY, 1, -1.0), Duration::from_millis(800));
        assert_eq!(backoff_delay(&POLICY, 2, 0.5), Duration::from_millis(2200));
        // Out-of-range jitter is clamped; NaN means none.
        assert_eq!(backoff_delay(&POLICY, 1, 5.0), Duration::from_millis(1200));
        assert_eq!(backoff_delay(&POLICY, 1, -5.0), Duration::from_millis(800));
        assert_eq!(backoff_delay(&POLICY, 1, f64::NAN), Duration::from_secs(1));
    }

    #[test]
    fn backoff_caps_and_saturates() {
        assert_eq!(backoff_delay(&POLICY, 13, 0.0), MAX_DELAY); // 4096 s > 3600 s
        for n in [20, 50, 64, 1000, u32::MAX] {
            assert_eq!(backoff_delay(&POLICY, n, 1.0), MAX_DELAY, "n = {n}");
        }
        let huge = RetryConfig {
            max_attempts: 100,
            backoff_ms: u64::MAX,
        };
        assert_eq!(backoff_delay(&huge, 50, 1.0), MAX_DELAY);
        assert_eq!(backoff_delay(&huge, 1, -1.0), MAX_DELAY);
    }

    #[test]
    fn backoff_zero_base() {
        let p = RetryConfig {
            max_attempts: 3,
            backoff_ms: 0,
        };
        assert_eq!(backoff_delay(&p, 50, 1.0), Duration::ZERO);
    }

    #[test]
    fn random_jitter_in_range() {
        for _ in 0..1000 {
            let j = random_jitter();
            assert!((-1.0..=1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn retry_after_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("999999", now), Some(MAX_DELAY));
        assert_eq!(
            parse_retry_after("99999999999999999999999999", now),
            Some(MAX_DELAY)
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("+5", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_http_date() {
        // 1994-11-06T08:49:37Z
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let header = "Sun, 06 Nov 1994 08:49:37 GMT";
        let now = date - Duration::from_secs(90);
        assert_eq!(
            parse_retry_after(header, now),
            Some(Duration::from_secs(90))
        );
        // In the past: retry immediately.
        let later = date + Duration::from_secs(10);
        assert_eq!(parse_retry_after(header, later), Some(Duration::ZERO));
        // Far in the future: capped.
        let long_before = date - Duration::from_secs(86_400);
        assert_eq!(parse_retry_after(header, long_before), Some(MAX_DELAY));
        // Round-trip through httpdate's formatter.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let in_five = httpdate::fmt_http_date(now + Duration::from_secs(300));
        assert_eq!(
            parse_retry_after(&in_five, now),
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn decide_gives_up_at_budget() {
        assert_eq!(decide(&POLICY, 5, None, 0.0), RetryDecision::GiveUp);
        assert_eq!(decide(&POLICY, 6, None, 0.0), RetryDecision::GiveUp);
        assert_eq!(
            decide(&POLICY, 5, Some(Duration::from_secs(1)), 0.0),
            RetryDecision::GiveUp
        );
        let none = RetryConfig {
            max_attempts: 0,
            backoff_ms: 10,
        };
        assert_eq!(decide(&none, 0, None, 0.0), RetryDecision::GiveUp);
    }

    #[test]
    fn decide_uses_backoff_or_retry_after() {
        assert_eq!(
            decide(&POLICY, 1, None, 0.0),
            RetryDecision::Retry(Duration::from_secs(1))
        );
        assert_eq!(
            decide(&POLICY, 4, None, 0.0),
            RetryDecision::Retry(Duration::from_secs(8))
        );
        assert_eq!(
            decide(&POLICY, 1, Some(Duration::from_secs(42)), 1.0),
            RetryDecision::Retry(Duration::from_secs(42))
        );
        assert_eq!(
            decide(&POLICY, 1, Some(Duration::from_secs(86_400)), 0.0),
            RetryDecision::Retry(MAX_DELAY)
        );
    }
}
