//! A webhook registration and its typed settings (the JSON columns of `sys_webhooks`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::routing::filter::Filter;
use crate::routing::pattern;

/// Retry settings (`retry_config`): how many attempts a delivery gets and the base delay of its
/// exponential backoff. The same type drives `delivery::retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryConfig {
    /// Attempts before the delivery is `failed` (1–50), the first one included.
    pub max_attempts: u32,
    /// Base backoff in ms (10–3,600,000); attempt n+1 waits backoffMs × 2^(n-1) ± 20%.
    pub backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            backoff_ms: 1000,
        }
    }
}

/// Rate limit (`rate_limit`); absent means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained requests a second.
    pub per_second: u32,
    /// Requests allowed at once.
    pub burst: u32,
}

/// Circuit breaker settings (`circuit_breaker`). The same type drives `delivery::breaker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakerSettings {
    /// Consecutive failed attempts that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before a probe, in ms.
    pub cooldown_ms: u64,
}

impl BreakerSettings {
    /// The cooldown as a duration.
    pub fn cooldown(&self) -> Duration {
        Duration::from_millis(self.cooldown_ms)
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown_ms: 30_000,
        }
    }
}

/// Batching (`batch`, README, Routing and payloads): up to `maxEvents` ready deliveries in one
/// request, sent at the latest `maxWaitMs` after the first became ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchSettings {
    /// Most deliveries in one request (2–1000).
    pub max_events: u32,
    /// Longest wait for a batch to fill, in ms (0–60000).
    pub max_wait_ms: u64,
}

/// A secret that keeps signing until `expires_at` after a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    /// The old secret (sealed like the current one when stored).
    pub secret: String,
    /// End of its grace.
    pub expires_at: DateTime<Utc>,
}

/// A webhook registration with its secrets opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// Its id.
    pub id: i64,
    /// A name for people.
    pub name: String,
    /// The tenant whose events it receives.
    pub tenant_id: String,
    /// An exact event type, `*` or `<prefix>/*`.
    pub event_type: String,
    /// Where deliveries go.
    pub url: String,
    /// The signing secret, opened.
    pub secret: String,
    /// False: matches nothing (by an operator, or after a 410).
    pub enabled: bool,
    /// Extra headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// Retry settings.
    pub retry: RetryConfig,
    /// None: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Circuit breaker settings.
    pub breaker: BreakerSettings,
    /// Per-attempt timeout.
    pub timeout_ms: u64,
    /// One delivery at a time, in acceptance order.
    pub ordered: bool,
    /// Why the dispatcher disabled it.
    pub disabled_reason: Option<String>,
    /// Old secrets still in grace, opened.
    pub previous_secrets: Vec<PreviousSecret>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: Option<String>,
    /// Who changed it last.
    pub updated_by: Option<String>,
    /// The compiled `filter` on the payload (None: every event passes).
    pub filter: Option<Arc<Filter>>,
    /// A jq program applied to the body when a delivery is first sent (README, Routing and
    /// payloads).
    pub transform: Option<String>,
    /// None: one delivery per request.
    pub batch: Option<BatchSettings>,
}

/// A webhook's `timeout_ms` when none is given.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

impl Webhook {
    /// An enabled webhook created now with every setting at its default (what a create giving
    /// only these fields stores).
    pub fn new(
        id: i64,
        name: impl Into<String>,
        tenant_id: impl Into<String>,
        event_type: impl Into<String>,
        url: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        let now = Utc::now();
        Self {
            id,
            name: name.into(),
            tenant_id: tenant_id.into(),
            event_type: event_type.into(),
            url: url.into(),
            secret: secret.into(),
            enabled: true,
            headers: BTreeMap::new(),
            retry: RetryConfig::default(),
            rate_limit: None,
            breaker: BreakerSettings::default(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            ordered: false,
            disabled_reason: None,
            previous_secrets: Vec::new(),
            created_at: now,
            updated_at: now,
            created_by: None,
            updated_by: None,
            filter: None,
            transform: None,
            batch: None,
        }
    }

    /// True when an event of this tenant and type goes to this webhook.
    pub fn matches(&self, tenant_id: &str, event_type: &str) -> bool {
        self.enabled
            && self.tenant_id == tenant_id
            && pattern::matches(&self.event_type, event_type)
    }

    /// True when the payload (parsed) passes this webhook's filter.
    pub fn passes(&self, payload: &serde_json::Value) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(payload))
    }
}
