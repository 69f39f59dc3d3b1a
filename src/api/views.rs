//! What the API returns: webhooks, deliveries and attempts as JSON, with their OpenAPI schemas.
//! Built from domain types and stored rows here, at the HTTP edge.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::models::{AttemptRow, DeliveryRow};
use crate::domain::{
    utc, BatchSettings, BreakerSettings, DeliveryStatus, RateLimit, RetryConfig, Webhook,
};

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
    /// The filter on the payload as given; `null`: every event passes.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// jq program applied to the body when first sent; `null`: none.
    pub transform: Option<String>,
    /// `null`: one delivery per request.
    pub batch: Option<BatchSettings>,
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
            filter: w.filter.as_ref().map(|f| f.source().clone()),
            transform: w.transform.clone(),
            batch: w.batch,
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
    pub status: DeliveryStatus,
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
    /// The batch that carried this attempt; `null` outside batches.
    pub batch_id: Option<String>,
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
            batch_id: r.batch_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_to_ten_chars_and_ellipsis() {
        assert_eq!(mask_secret("whsec_abcdefghij"), "whsec_abcd…");
        assert_eq!(mask_secret("short"), "short…");
    }
}
