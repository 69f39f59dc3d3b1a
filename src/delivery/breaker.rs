//! Per-endpoint circuit breaker. The clock is passed in (`DateTime<Utc>`) so the state
//! machine is deterministic under test and its timestamps can be shown on health pages.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::BreakerSettings;

/// Longest an open circuit waits before a probe, however often probes keep failing.
/// Also caps a configured cooldown, so an endpoint is always re-tried within this bound.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(10 * 60);

/// The three classic breaker states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Deliveries flow normally.
    Closed,
    /// Deliveries are held until the cooldown expires.
    Open,
    /// One probe delivery is in flight to test whether the endpoint recovered.
    HalfOpen,
}

impl CircuitState {
    /// Stable lowercase name for metrics, logs and the health endpoint.
    pub fn as_str(&self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// What of a breaker is kept in the database, so that a new owner of the webhook resumes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BreakerSnapshot {
    /// Open or half-open.
    pub open: bool,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// The cooldown of the current open period.
    pub cooldown_ms: u64,
    /// When it opened.
    pub opened_at: Option<DateTime<Utc>>,
    /// When the next probe may go.
    pub retry_at: Option<DateTime<Utc>>,
}

/// Circuit breaker state machine for one endpoint.
///
/// Closed → (threshold consecutive failures) → Open → (cooldown elapsed, probe acquired)
/// → HalfOpen → success: Closed / failure: Open with doubled cooldown.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    cfg: BreakerSettings,
    state: CircuitState,
    consecutive_failures: u32,
    /// Cooldown used for the next (or current) open period; doubles on failed probes.
    current_cooldown: Duration,
    opened_at: Option<DateTime<Utc>>,
    retry_at: Option<DateTime<Utc>>,
    probe_in_flight: bool,
}

/// Converts a std duration to chrono; durations here are capped at [`MAX_COOLDOWN`], so
/// the fallback only guards against misuse without panicking.
fn to_chrono(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// `now + d`, saturating at the maximum representable time instead of panicking.
fn add(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now.checked_add_signed(to_chrono(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl CircuitBreaker {
    /// Creates a closed breaker with no recorded failures.
    pub fn new(cfg: BreakerSettings) -> Self {
        CircuitBreaker {
            cfg,
            state: CircuitState::Closed,
            consecutive_failures: 0,
            current_cooldown: cfg.cooldown().min(MAX_COOLDOWN),
            opened_at: None,
            retry_at: None,
            probe_in_flight: false,
        }
    }

    /// Replaces the configuration (e.g. after an endpoint update) without resetting state.
    ///
    /// A closed breaker adopts the new cooldown immediately; an open or half-open one keeps
    /// its current schedule and picks up the new cooldown when it next closes, so editing
    /// an endpoint cannot be used to skip a cooldown in progress.
    pub fn set_config(&mut self, cfg: BreakerSettings) {
        self.cfg = cfg;
        if self.state == CircuitState::Closed {
            self.current_cooldown = cfg.cooldown().min(MAX_COOLDOWN);
        }
    }

    /// The current configuration.
    pub fn config(&self) -> BreakerSettings {
        self.cfg
    }

    /// Current state.
    pub fn state(&self) -> CircuitState {
        self.state
    }

    /// Failures recorded since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// When the circuit last opened; `None` while closed.
    pub fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.opened_at
    }

    /// When the next probe may go out; `None` while closed. Kept while half-open so a
    /// released probe returns to the same schedule.
    pub fn retry_at(&self) -> Option<DateTime<Utc>> {
        self.retry_at
    }

    /// Whether a delivery attempt may proceed at `now`.
    ///
    /// Closed: always. Open: only once `now >= retry_at`, which moves to half-open and
    /// hands out the single probe permit. Half-open: refused while the probe is in flight.
    /// A caller that gets `true` in half-open must report [`on_success`](Self::on_success),
    /// [`on_failure`](Self::on_failure) or [`release_probe`](Self::release_probe).
    pub fn try_acquire(&mut self, now: DateTime<Utc>) -> bool {
        match self.state {
            CircuitState::Closed => true,
            CircuitState::Open => {
                // retry_at is always set while open; treat a missing one as "due".
                let due = self.retry_at.is_none_or(|at| now >= at);
                if due {
                    self.state = CircuitState::HalfOpen;
                    self.probe_in_flight = true;
                }
                due
            }
            CircuitState::HalfOpen => {
                if self.probe_in_flight {
                    false
                } else {
                    self.probe_in_flight = true;
                    true
                }
            }
        }
    }

    /// Records a successful delivery: closes the circuit and resets the failure count and
    /// the cooldown to the configured value. Any success is evidence the endpoint is
    /// healthy, so this closes from every state.
    pub fn on_success(&mut self, _now: DateTime<Utc>) {
        self.state = CircuitState::Closed;
        self.consecutive_failures = 0;
        self.current_cooldown = self.cfg.cooldown().min(MAX_COOLDOWN);
        self.opened_at = None;
        self.retry_at = None;
        self.probe_in_flight = false;
    }

    /// Records a failed delivery at `now`.
    ///
    /// Closed: counts it and opens once the threshold is reached. Half-open: the probe
    /// failed, so reopen with the cooldown doubled (capped at [`MAX_COOLDOWN`]). Open: the
    /// attempt started before the circuit opened; it is counted but must not extend or
    /// reset the cooldown, otherwise stragglers would keep the endpoint locked out.
    pub fn on_failure(&mut self, now: DateTime<Utc>) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.state {
            CircuitState::Closed => {
                if self.consecutive_failures >= self.cfg.failure_threshold.max(1) {
                    self.open(now);
                }
            }
            CircuitState::HalfOpen => {
                self.current_cooldown = self.current_cooldown.saturating_mul(2).min(MAX_COOLDOWN);
                self.open(now);
            }
            CircuitState::Open => {}
        }
    }

    /// Returns an acquired probe permit whose request was never sent (e.g. shutdown or a
    /// local error): back to open with the same `retry_at`, so another probe can go as
    /// soon as it is due without penalising the endpoint.
    pub fn release_probe(&mut self) {
        if self.state == CircuitState::HalfOpen {
            self.state = CircuitState::Open;
            self.probe_in_flight = false;
        }
    }

    /// The state that moves with the webhook to its next owner (a probe in flight counts as
    /// open: the next owner sends its own probe when due).
    pub fn snapshot(&self) -> BreakerSnapshot {
        BreakerSnapshot {
            open: self.state != CircuitState::Closed,
            consecutive_failures: self.consecutive_failures,
            cooldown_ms: u64::try_from(self.current_cooldown.as_millis()).unwrap_or(u64::MAX),
            opened_at: self.opened_at,
            retry_at: self.retry_at,
        }
    }

    /// A breaker with `cfg` that resumes `snap`, as the previous owner left it.
    pub fn restore(cfg: BreakerSettings, snap: &BreakerSnapshot) -> Self {
        let mut b = Self::new(cfg);
        b.consecutive_failures = snap.consecutive_failures;
        if snap.open {
            b.state = CircuitState::Open;
            b.current_cooldown = Duration::from_millis(snap.cooldown_ms).min(MAX_COOLDOWN);
            b.opened_at = snap.opened_at;
            b.retry_at = snap.retry_at;
        }
        b
    }

    /// While open, how long until a probe may go out (zero if already due); otherwise `None`.
    pub fn wait_time(&self, now: DateTime<Utc>) -> Option<Duration> {
        if self.state != CircuitState::Open {
            return None;
        }
        let at = self.retry_at?;
        // Negative remaining time (already due) becomes zero.
        Some((at - now).to_std().unwrap_or(Duration::ZERO))
    }

    /// Enters the open state at `now` using the current cooldown.
    fn open(&mut self, now: DateTime<Utc>) {
        self.state = CircuitState::Open;
        self.opened_at = Some(now);
        self.retry_at = Some(add(now, self.current_cooldown));
        self.probe_in_flight = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().unwrap()
    }

    fn secs(s: i64) -> TimeDelta {
        TimeDelta::seconds(s)
    }

    fn cfg(threshold: u32, cooldown_secs: u64) -> BreakerSettings {
        BreakerSettings {
            failure_threshold: threshold,
            cooldown_ms: cooldown_secs * 1000,
        }
    }

    /// A breaker that has just opened at t0 with a 30 s cooldown.
    fn opened() -> CircuitBreaker {
        let mut b = CircuitBreaker::new(cfg(2, 30));
        b.on_failure(t0());
        b.on_failure(t0());
        assert_eq!(b.state(), CircuitState::Open);
        b
    }

    #[test]
    fn state_names() {
        assert_eq!(CircuitState::Closed.as_str(), "closed");
        assert_eq!(CircuitState::Open.as_str(), "open");
        assert_eq!(CircuitState::HalfOpen.as_str(), "half_open");
    }

    #[test]
    fn new_is_closed() {
        let mut b = CircuitBreaker::new(cfg(3, 30));
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
        assert_eq!(b.opened_at(), None);
        assert_eq!(b.retry_at(), None);
        assert_eq!(b.wait_time(t0()), None);
        assert!(b.try_acquire(t0()));
        assert!(b.try_acquire(t0()));
        assert_eq!(b.config(), cfg(3, 30));
    }

    #[test]
    fn opens_at_threshold() {
        let mut b = CircuitBreaker::new(cfg(3, 30));
        b.on_failure(t0());
        b.on_failure(t0());
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.consecutive_failures(), 2);
        let now = t0() + secs(5);
        b.on_failure(now);
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.consecutive_failures(), 3);
        assert_eq!(b.opened_at(), Some(now));
        assert_eq!(b.retry_at(), Some(now + secs(30)));
        assert_eq!(b.wait_time(now), Some(Duration::from_secs(30)));
        assert_eq!(b.wait_time(now + secs(10)), Some(Duration::from_secs(20)));
        assert_eq!(b.wait_time(now + secs(100)), Some(Duration::ZERO));
    }

    #[test]
    fn success_resets_failure_count() {
        let mut b = CircuitBreaker::new(cfg(3, 30));
        b.on_failure(t0());
        b.on_failure(t0());
        b.on_success(t0());
        assert_eq!(b.consecutive_failures(), 0);
        b.on_failure(t0());
        b.on_failure(t0());
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn threshold_zero_behaves_like_one() {
        let mut b = CircuitBreaker::new(cfg(0, 30));
        assert!(b.try_acquire(t0()));
        b.on_failure(t0());
        assert_eq!(b.state(), CircuitState::Open);
        let mut one = CircuitBreaker::new(cfg(1, 30));
        one.on_failure(t0());
        assert_eq!(one.state(), CircuitState::Open);
        assert_eq!(one.retry_at(), b.retry_at());
    }

    #[test]
    fn open_refuses_until_retry_at() {
        let mut b = opened();
        assert!(!b.try_acquire(t0()));
        assert!(!b.try_acquire(t0() + secs(29)));
        assert_eq!(b.state(), CircuitState::Open);
        assert!(b.try_acquire(t0() + secs(30)));
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert_eq!(b.wait_time(t0() + secs(30)), None);
    }

    #[test]
    fn half_open_allows_single_probe() {
        let mut b = opened();
        assert!(b.try_acquire(t0() + secs(31)));
        assert!(!b.try_acquire(t0() + secs(31)));
        assert!(!b.try_acquire(t0() + secs(3600)));
        assert_eq!(b.state(), CircuitState::HalfOpen);
    }

    #[test]
    fn probe_success_closes_and_resets() {
        let mut b = opened();
        assert!(b.try_acquire(t0() + secs(30)));
        b.on_failure(t0() + secs(31)); // probe fails: cooldown 60
        assert!(b.try_acquire(t0() + secs(91)));
        b.on_success(t0() + secs(92));
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
        assert_eq!(b.opened_at(), None);
        assert_eq!(b.retry_at(), None);
        assert!(b.try_acquire(t0() + secs(92)));
        assert!(b.try_acquire(t0() + secs(92)));
        // Cooldown is back to the configured 30 s on the next opening.
        b.on_failure(t0() + secs(100));
        b.on_failure(t0() + secs(100));
        assert_eq!(b.retry_at(), Some(t0() + secs(130)));
    }

    #[test]
    fn probe_failure_doubles_cooldown_up_to_cap() {
        let mut b = CircuitBreaker::new(cfg(1, 100));
        let mut now = t0();
        b.on_failure(now);
        assert_eq!(b.retry_at(), Some(now + secs(100)));
        let mut expected = [200, 400, 600, 600, 600].into_iter();
        let mut cooldown = 100;
        for _ in 0..5 {
            now += secs(cooldown);
            assert!(b.try_acquire(now));
            b.on_failure(now);
            cooldown = expected.next().unwrap();
            assert_eq!(b.state(), CircuitState::Open);
            assert_eq!(b.opened_at(), Some(now));
            assert_eq!(b.retry_at(), Some(now + secs(cooldown)));
            assert_eq!(b.wait_time(now), Some(Duration::from_secs(cooldown as u64)));
        }
    }

    #[test]
    fn configured_cooldown_is_capped() {
        let mut b = CircuitBreaker::new(cfg(1, 3600));
        b.on_failure(t0());
        assert_eq!(b.wait_time(t0()), Some(MAX_COOLDOWN));
    }

    #[test]
    fn failure_while_open_does_not_extend_cooldown() {
        let mut b = opened();
        let retry_at = b.retry_at();
        let opened_at = b.opened_at();
        b.on_failure(t0() + secs(20));
        b.on_failure(t0() + secs(25));
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.retry_at(), retry_at);
        assert_eq!(b.opened_at(), opened_at);
        // The probe still goes out on the original schedule, and a failure there
        // doubles from 30 s, not from some reset value.
        assert!(b.try_acquire(t0() + secs(30)));
        b.on_failure(t0() + secs(30));
        assert_eq!(b.retry_at(), Some(t0() + secs(90)));
    }

    #[test]
    fn release_probe_returns_to_open_with_same_retry_at() {
        let mut b = opened();
        let retry_at = b.retry_at();
        assert!(b.try_acquire(t0() + secs(40)));
        b.release_probe();
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.retry_at(), retry_at);
        assert_eq!(b.wait_time(t0() + secs(40)), Some(Duration::ZERO));
        // Another probe may go immediately since retry_at already passed.
        assert!(b.try_acquire(t0() + secs(41)));
        assert_eq!(b.state(), CircuitState::HalfOpen);
    }

    #[test]
    fn release_probe_is_noop_when_not_half_open() {
        let mut b = CircuitBreaker::new(cfg(1, 30));
        b.release_probe();
        assert_eq!(b.state(), CircuitState::Closed);
        b.on_failure(t0());
        b.release_probe();
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.retry_at(), Some(t0() + secs(30)));
    }

    #[test]
    fn success_while_open_closes() {
        let mut b = opened();
        b.on_success(t0() + secs(1));
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(b.try_acquire(t0() + secs(1)));
    }

    #[test]
    fn set_config_keeps_state() {
        let mut b = opened();
        let retry_at = b.retry_at();
        b.set_config(cfg(5, 5));
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.retry_at(), retry_at);
        assert_eq!(b.consecutive_failures(), 2);
        assert_eq!(b.config(), cfg(5, 5));
        // After closing, the new config applies.
        b.on_success(t0() + secs(1));
        for _ in 0..4 {
            b.on_failure(t0() + secs(2));
        }
        assert_eq!(b.state(), CircuitState::Closed);
        b.on_failure(t0() + secs(2));
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.retry_at(), Some(t0() + secs(7)));
    }

    #[test]
    fn set_config_while_closed_uses_new_cooldown() {
        let mut b = CircuitBreaker::new(cfg(1, 30));
        b.on_failure(t0()); // opens
        b.on_success(t0());
        b.set_config(cfg(1, 10));
        b.on_failure(t0());
        assert_eq!(b.retry_at(), Some(t0() + secs(10)));
    }

    #[test]
    fn zero_cooldown_probe_immediately() {
        let mut b = CircuitBreaker::new(cfg(1, 0));
        b.on_failure(t0());
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.wait_time(t0()), Some(Duration::ZERO));
        assert!(b.try_acquire(t0()));
        assert!(!b.try_acquire(t0()));
        b.on_failure(t0());
        assert_eq!(b.retry_at(), Some(t0()));
    }

    #[test]
    fn a_snapshot_restores_the_open_period_and_the_failure_count() {
        let cfg = BreakerSettings {
            failure_threshold: 2,
            cooldown_ms: 5_000,
        };
        let now = Utc::now();
        let mut b = CircuitBreaker::new(cfg);
        b.on_failure(now);
        b.on_failure(now);
        assert_eq!(b.state(), CircuitState::Open);
        let moved = CircuitBreaker::restore(cfg, &b.snapshot());
        assert_eq!(moved.state(), CircuitState::Open);
        assert_eq!(moved.consecutive_failures(), 2);
        assert_eq!(moved.retry_at(), b.retry_at());
        assert_eq!(moved.opened_at(), b.opened_at());
        let closed = CircuitBreaker::restore(cfg, &CircuitBreaker::new(cfg).snapshot());
        assert_eq!(closed.state(), CircuitState::Closed);
    }
}
