//! Live per-webhook state that outlives actor restarts: what health and metrics report.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::delivery::breaker::{BreakerSnapshot, CircuitBreaker, CircuitState};
use crate::domain::RateLimit;

/// Latencies kept for the percentiles.
const LATENCY_WINDOW: usize = 1000;

/// A webhook's live state, written by its actor, read by the health API.
#[derive(Default)]
pub struct WebhookStatus {
    inner: Mutex<StatusInner>,
}

#[derive(Default, Clone)]
struct StatusInner {
    actor: ActorState,
    restarts: u32,
    circuit: CircuitView,
    /// What moves with the webhook to its next owner.
    breaker: BreakerSnapshot,
    /// Grows with every change, so that unchanged health is not published again.
    version: u64,
    in_flight: usize,
    last_success_at: Option<DateTime<Utc>>,
    last_failure_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    delivered: u64,
    failed: u64,
    attempts: u64,
    latencies: VecDeque<u64>,
}

/// Lifecycle of a webhook actor.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum ActorState {
    /// Handling deliveries.
    #[default]
    Running,
    /// Restarting after a panic.
    Restarting,
    /// Stopped (webhook deleted or server shutting down).
    Stopped,
}

impl ActorState {
    fn as_str(self) -> &'static str {
        match self {
            ActorState::Running => "running",
            ActorState::Restarting => "restarting",
            ActorState::Stopped => "stopped",
        }
    }
}

/// The breaker as health shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CircuitView {
    /// closed | open | half_open
    pub state: String,
    pub consecutive_failures: u32,
    pub opened_at: Option<DateTime<Utc>>,
    pub retry_at: Option<DateTime<Utc>>,
}

impl Default for CircuitView {
    fn default() -> Self {
        Self {
            state: "closed".into(),
            consecutive_failures: 0,
            opened_at: None,
            retry_at: None,
        }
    }
}

/// `queue` of the health view.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    pub pending: u64,
    pub in_flight: u64,
}

/// `latency_ms` of the health view.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LatencyView {
    pub p50: u64,
    pub p99: u64,
}

/// `stats` of the health view.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatsView {
    /// Deliveries that succeeded.
    pub delivered: u64,
    /// Deliveries that finally failed.
    pub failed: u64,
    /// HTTP attempts.
    pub attempts: u64,
    pub latency_ms: LatencyView,
}

/// `GET /api/webhooks/{id}/health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    pub webhook_id: i64,
    /// running | restarting | stopped
    pub actor: String,
    pub restarts: u32,
    pub circuit: CircuitView,
    pub rate_limit: Option<RateLimit>,
    pub queue: QueueView,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub stats: StatsView,
    /// The node that owns the webhook (None while none does, during a take-over).
    pub node: Option<String>,
}

impl WebhookStatus {
    fn with<R>(&self, f: impl FnOnce(&mut StatusInner) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Sets the actor's lifecycle state.
    pub fn set_actor(&self, state: ActorState) {
        self.with(|s| {
            s.version += u64::from(s.actor != state);
            s.actor = state;
        });
    }

    /// Counts a restart.
    pub fn restarted(&self) {
        self.with(|s| {
            s.restarts += 1;
            s.actor = ActorState::Restarting;
            s.version += 1;
        });
    }

    /// Copies the breaker's state.
    pub fn set_circuit(&self, b: &CircuitBreaker) {
        self.with(|s| {
            let snapshot = b.snapshot();
            if s.breaker == snapshot {
                return; // called on every pump: most calls change nothing
            }
            s.version += 1;
            s.circuit = CircuitView {
                state: b.state().as_str().to_string(),
                consecutive_failures: b.consecutive_failures(),
                opened_at: b.opened_at(),
                retry_at: b.retry_at(),
            };
            s.breaker = snapshot;
        });
    }

    /// Sets the number of attempts in flight.
    pub fn set_in_flight(&self, n: usize) {
        self.with(|s| {
            s.version += u64::from(s.in_flight != n);
            s.in_flight = n;
        });
    }

    /// Records one attempt; `error` is None for a success.
    pub fn attempt(&self, at: DateTime<Utc>, latency_ms: u64, error: Option<&str>) {
        self.with(|s| {
            s.version += 1;
            s.attempts += 1;
            if s.latencies.len() == LATENCY_WINDOW {
                s.latencies.pop_front();
            }
            s.latencies.push_back(latency_ms);
            match error {
                None => s.last_success_at = Some(at),
                Some(e) => {
                    s.last_failure_at = Some(at);
                    s.last_error = Some(e.to_string());
                }
            }
        });
    }

    /// Records a delivery reaching `success` (true) or `failed` (false).
    pub fn finished(&self, success: bool) {
        self.with(|s| {
            s.version += 1;
            if success {
                s.delivered += 1
            } else {
                s.failed += 1
            }
        });
    }

    /// Changes so far: equal versions mean equal health.
    pub fn version(&self) -> u64 {
        self.with(|s| s.version)
    }

    /// True while the breaker is in `state`.
    pub fn circuit_is(&self, state: CircuitState) -> bool {
        self.with(|s| s.circuit.state == state.as_str())
    }

    /// True while the breaker is open.
    pub fn circuit_is_open(&self) -> bool {
        self.with(|s| s.circuit.state == "open")
    }

    /// The health view; `pending` comes from the database.
    pub fn view(&self, webhook_id: i64, rate_limit: Option<RateLimit>, pending: u64) -> HealthView {
        let s = self.with(|s| s.clone());
        let mut sorted: Vec<u64> = s.latencies.iter().copied().collect();
        sorted.sort_unstable();
        HealthView {
            webhook_id,
            actor: s.actor.as_str().to_string(),
            restarts: s.restarts,
            circuit: s.circuit,
            rate_limit,
            queue: QueueView {
                pending,
                in_flight: s.in_flight as u64,
            },
            last_success_at: s.last_success_at,
            last_failure_at: s.last_failure_at,
            last_error: s.last_error,
            stats: StatsView {
                delivered: s.delivered,
                failed: s.failed,
                attempts: s.attempts,
                latency_ms: LatencyView {
                    p50: percentile(&sorted, 50),
                    p99: percentile(&sorted, 99),
                },
            },
            node: None,
        }
    }

    /// What other nodes answer health from, and the next owner resumes the breaker from (JSON).
    pub fn snapshot(&self, webhook_id: i64) -> String {
        let breaker = self.with(|s| s.breaker.clone());
        serde_json::to_string(&OwnerSnapshot {
            view: self.view(webhook_id, None, 0),
            breaker,
        })
        .unwrap_or_default()
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 99), 99);
        assert_eq!(percentile(&[], 99), 0);
        assert_eq!(percentile(&[7], 50), 7);
    }

    #[test]
    fn a_published_snapshot_reads_back_with_its_breaker() {
        use crate::domain::BreakerSettings;
        let s = WebhookStatus::default();
        let cfg = BreakerSettings {
            failure_threshold: 1,
            cooldown_ms: 60_000,
        };
        let mut b = CircuitBreaker::new(cfg);
        s.attempt(Utc::now(), 3, Some("HTTP 500"));
        b.on_failure(Utc::now());
        s.set_circuit(&b);
        let back = OwnerSnapshot::parse(Some(&s.snapshot(7))).expect("a snapshot parses");
        assert_eq!(back.view.circuit.state, "open");
        assert_eq!(back.view.webhook_id, 7);
        assert_eq!(back.breaker, b.snapshot());
        assert!(OwnerSnapshot::parse(Some("{")).is_none());
    }

    #[test]
    fn the_version_moves_only_when_health_changes() {
        let s = WebhookStatus::default();
        let b = CircuitBreaker::new(crate::domain::BreakerSettings {
            failure_threshold: 1,
            cooldown_ms: 1000,
        });
        s.set_circuit(&b);
        s.set_in_flight(0);
        let v = s.version();
        s.set_circuit(&b);
        s.set_in_flight(0);
        s.set_actor(ActorState::Running);
        assert_eq!(s.version(), v, "the pump's idle calls change nothing");
        s.attempt(Utc::now(), 1, None);
        assert!(s.version() > v);
    }

    #[test]
    fn counts_attempts_and_outcomes() {
        let s = WebhookStatus::default();
        s.attempt(Utc::now(), 3, Some("HTTP 500"));
        s.attempt(Utc::now(), 5, None);
        s.finished(true);
        let v = s.view(1, None, 0);
        assert_eq!(v.stats.attempts, 2);
        assert_eq!(v.stats.delivered, 1);
        assert_eq!(v.last_error.as_deref(), Some("HTTP 500"));
    }
}

/// A webhook's health and breaker as its owner publishes them to its lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnerSnapshot {
    /// Health as the owner sees it (`queue.pending` is counted by the reader).
    pub view: HealthView,
    /// The breaker, for the next owner.
    pub breaker: BreakerSnapshot,
}

impl OwnerSnapshot {
    /// Parses a published snapshot; None when absent or unreadable.
    pub fn parse(json: Option<&str>) -> Option<Self> {
        serde_json::from_str(json?).ok()
    }
}
