//! The dispatcher's domain types: a webhook with typed settings, deliveries, and their JSON views.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::models::{AttemptRow, DeliveryRow, WebhookRow};
use crate::secrets::{SecretCipher, SecretError};

/// Delivery statuses that are not final: the dispatcher still owes an attempt.
pub const OPEN_STATUSES: [&str; 2] = ["pending", "retrying"];
/// Every delivery status.
pub const ALL_STATUSES: [&str; 5] = ["pending", "retrying", "success", "failed", "cancelled"];
/// Old secrets kept signing during rotation graces.
pub const MAX_PREVIOUS_SECRETS: usize = 10;
/// Stored response bodies are cut to this many characters.
pub const RESPONSE_BODY_CHARS: usize = 1000;

/// Retry settings (`retry_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryConfig {
    /// Attempts before the delivery is `failed` (1–50).
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

/// Circuit breaker settings (`circuit_breaker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakerSettings {
    /// Consecutive failed attempts that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before a probe, in ms.
    pub cooldown_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown_ms: 30_000,
        }
    }
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
    pub id: i64,
    pub name: String,
    pub tenant_id: String,
    pub event_type: String,
    pub url: String,
    pub secret: String,
    pub enabled: bool,
    pub headers: BTreeMap<String, String>,
    pub retry: RetryConfig,
    pub rate_limit: Option<RateLimit>,
    pub breaker: BreakerSettings,
    pub timeout_ms: u64,
    pub ordered: bool,
    pub disabled_reason: Option<String>,
    pub previous_secrets: Vec<PreviousSecret>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
}

/// UTC time from a stored timestamp.
pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

impl Webhook {
    /// Reads a row; JSON columns that do not parse fall back to defaults (they are validated on write).
    pub fn from_row(row: WebhookRow, cipher: &SecretCipher) -> Result<Self, SecretError> {
        let previous: Vec<PreviousSecret> =
            serde_json::from_value(row.previous_secrets).unwrap_or_default();
        let previous = previous
            .into_iter()
            .map(|p| {
                Ok(PreviousSecret {
                    secret: cipher.open(&p.secret)?,
                    expires_at: p.expires_at,
                })
            })
            .collect::<Result<Vec<_>, SecretError>>()?;
        Ok(Self {
            id: row.webhook_id,
            name: row.webhook_name,
            tenant_id: row.tenant_id,
            event_type: row.event_type,
            url: row.url,
            secret: cipher.open(&row.secret)?,
            enabled: row.enabled,
            headers: serde_json::from_value(row.headers).unwrap_or_default(),
            retry: serde_json::from_value(row.retry_config).unwrap_or_default(),
            rate_limit: row.rate_limit.and_then(|v| serde_json::from_value(v).ok()),
            breaker: serde_json::from_value(row.circuit_breaker).unwrap_or_default(),
            timeout_ms: u64::try_from(row.timeout_ms).unwrap_or(30_000),
            ordered: row.ordered,
            disabled_reason: row.disabled_reason,
            previous_secrets: previous,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
            created_by: row.created_by,
            updated_by: row.updated_by,
        })
    }

    /// The secrets that sign a delivery now: the current one first, then old ones still in grace.
    pub fn live_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut out = vec![self.secret.as_str()];
        out.extend(
            self.previous_secrets
                .iter()
                .filter(|p| p.expires_at > now)
                .map(|p| p.secret.as_str()),
        );
        out
    }

    /// True when an event of this tenant and type goes to this webhook.
    pub fn matches(&self, tenant_id: &str, event_type: &str) -> bool {
        self.enabled
            && self.tenant_id == tenant_id
            && (self.event_type == "*" || self.event_type == event_type)
    }
}

/// Masks a secret for listings: its first 10 characters and `…`.
pub fn mask_secret(secret: &str) -> String {
    let head: String = secret.chars().take(10).collect();
    format!("{head}…")
}

/// A webhook as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookView {
    pub webhook_id: i64,
    pub webhook_name: String,
    pub tenant_id: String,
    pub event_type: String,
    pub url: String,
    /// In full only from create, `/secret` and rotate; elsewhere the first 10 characters and `…`.
    pub secret: String,
    pub enabled: bool,
    pub headers: BTreeMap<String, String>,
    pub retry_config: RetryConfig,
    /// `null`: unlimited.
    pub rate_limit: Option<RateLimit>,
    pub circuit_breaker: BreakerSettings,
    pub timeout_ms: u64,
    pub ordered: bool,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
}

impl WebhookView {
    /// The view of a webhook, its secret masked unless `reveal`.
    pub fn new(w: &Webhook, reveal: bool) -> Self {
        Self {
            webhook_id: w.id,
            webhook_name: w.name.clone(),
            tenant_id: w.tenant_id.clone(),
            event_type: w.event_type.clone(),
            url: w.url.clone(),
            secret: if reveal {
                w.secret.clone()
            } else {
                mask_secret(&w.secret)
            },
            enabled: w.enabled,
            headers: w.headers.clone(),
            retry_config: w.retry,
            rate_limit: w.rate_limit,
            circuit_breaker: w.breaker,
            timeout_ms: w.timeout_ms,
            ordered: w.ordered,
            disabled_reason: w.disabled_reason.clone(),
            created_at: w.created_at,
            updated_at: w.updated_at,
            created_by: w.created_by.clone(),
            updated_by: w.updated_by.clone(),
        }
    }
}

/// A delivery as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    pub delivery_id: String,
    pub webhook_id: i64,
    pub event_id: String,
    pub event_type: String,
    pub tenant_id: String,
    /// pending | retrying | success | failed | cancelled
    pub status: String,
    pub status_code: Option<i64>,
    pub response_body: Option<String>,
    pub error_message: Option<String>,
    pub attempt_number: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Only on `GET /api/webhooks/deliveries/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
    /// Only on `GET /api/webhooks/deliveries/{id}`: the JSON body sent to the receiver, as sent
    /// (raw, so its key order and numbers are the receiver's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<serde_json::value::RawValue>>,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(r: DeliveryRow) -> Self {
        Self {
            delivery_id: r.delivery_id,
            webhook_id: r.webhook_id,
            event_id: r.event_id,
            event_type: r.event_type,
            tenant_id: r.tenant_id,
            status: r.status,
            status_code: r.status_code,
            response_body: r.response_body,
            error_message: r.error_message,
            attempt_number: r.attempt_number,
            next_attempt_at: r.next_attempt_at.map(utc),
            created_at: utc(r.created_at),
            delivered_at: r.delivered_at.map(utc),
            attempts: None,
            payload: None,
        }
    }
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt_number: i64,
    pub status_code: Option<i64>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
    pub duration_ms: i64,
    pub attempted_at: DateTime<Utc>,
}

impl From<AttemptRow> for AttemptView {
    fn from(r: AttemptRow) -> Self {
        Self {
            attempt_number: r.attempt_number,
            status_code: r.status_code,
            error_message: r.error_message,
            response_body: r.response_body,
            duration_ms: r.duration_ms,
            attempted_at: utc(r.attempted_at),
        }
    }
}

/// Cuts a response body to [`RESPONSE_BODY_CHARS`] characters, without NUL characters (a receiver
/// may send any bytes; PostgreSQL text cannot hold NUL).
pub fn truncate_body(body: &str) -> String {
    body.chars()
        .filter(|c| *c != '\0')
        .take(RESPONSE_BODY_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_to_ten_chars_and_ellipsis() {
        assert_eq!(mask_secret("whsec_abcdefghij"), "whsec_abcd…");
        assert_eq!(mask_secret("short"), "short…");
    }

    #[test]
    fn truncates_by_characters() {
        let s = "é".repeat(1500);
        assert_eq!(truncate_body(&s).chars().count(), 1000);
        assert_eq!(truncate_body("a\0b"), "ab");
    }
}
