//! Row types: what diesel reads from and writes to each table, and their conversions to and
//! from the domain types (the only place where rows and domain meet).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::json::Json;
use super::schema::*;
use crate::domain::{
    utc, Attempt, BatchSettings, BreakerSettings, DeliveryStatus, DeliveryUpdate, PreviousSecret,
    RateLimit, RetryConfig, Webhook,
};
use crate::routing::filter::Filter;
use crate::secrets::{SecretCipher, SecretError};

/// A row of `sys_webhooks`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sys_webhooks)]
pub struct WebhookRow {
    pub webhook_id: i64,
    pub webhook_name: String,
    pub tenant_id: String,
    pub event_type: String,
    pub url: String,
    pub secret: String,
    pub enabled: bool,
    pub headers: Json<BTreeMap<String, String>>,
    pub retry_config: Json<RetryConfig>,
    pub rate_limit: Option<Json<RateLimit>>,
    pub circuit_breaker: Json<BreakerSettings>,
    pub timeout_ms: i64,
    pub ordered: bool,
    pub disabled_reason: Option<String>,
    pub previous_secrets: Json<Vec<PreviousSecret>>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub deleted_at: Option<NaiveDateTime>,
    pub filter: Option<Json<serde_json::Value>>,
    pub transform: Option<String>,
    pub batch: Option<Json<BatchSettings>>,
}

/// A new `sys_webhooks` row.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sys_webhooks)]
pub struct NewWebhookRow {
    pub webhook_name: String,
    pub tenant_id: String,
    pub event_type: String,
    pub url: String,
    pub secret: String,
    pub enabled: bool,
    pub headers: Json<BTreeMap<String, String>>,
    pub retry_config: Json<RetryConfig>,
    pub rate_limit: Option<Json<RateLimit>>,
    pub circuit_breaker: Json<BreakerSettings>,
    pub timeout_ms: i64,
    pub ordered: bool,
    pub disabled_reason: Option<String>,
    pub previous_secrets: Json<Vec<PreviousSecret>>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub filter: Option<Json<serde_json::Value>>,
    pub transform: Option<String>,
    pub batch: Option<Json<BatchSettings>>,
}

/// A partial update of `sys_webhooks`; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = sys_webhooks)]
pub struct WebhookChanges {
    pub webhook_name: Option<String>,
    pub event_type: Option<String>,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub enabled: Option<bool>,
    pub headers: Option<Json<BTreeMap<String, String>>>,
    pub retry_config: Option<Json<RetryConfig>>,
    pub rate_limit: Option<Option<Json<RateLimit>>>,
    pub circuit_breaker: Option<Json<BreakerSettings>>,
    pub timeout_ms: Option<i64>,
    pub ordered: Option<bool>,
    pub disabled_reason: Option<Option<String>>,
    pub previous_secrets: Option<Json<Vec<PreviousSecret>>>,
    pub updated_at: Option<NaiveDateTime>,
    pub updated_by: Option<Option<String>>,
    pub filter: Option<Option<Json<serde_json::Value>>>,
    pub transform: Option<Option<String>>,
    pub batch: Option<Option<Json<BatchSettings>>>,
}

/// A row of `sys_webhook_events`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sys_webhook_events)]
pub struct EventRow {
    pub event_id: String,
    pub tenant_id: String,
    pub event_type: String,
    pub idempotency_key: Option<String>,
    pub payload: String,
    pub created_at: NaiveDateTime,
}

/// A row of `sys_webhook_deliveries`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sys_webhook_deliveries)]
pub struct DeliveryRow {
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
    pub next_attempt_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

/// A row of `sys_webhook_attempts`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sys_webhook_attempts)]
pub struct AttemptRow {
    pub attempt_id: i64,
    pub delivery_id: String,
    pub webhook_id: i64,
    pub attempt_number: i64,
    pub status_code: Option<i64>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
    pub duration_ms: i64,
    pub attempted_at: NaiveDateTime,
    pub batch_id: Option<String>,
}

/// A new `sys_webhook_attempts` row.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sys_webhook_attempts)]
pub struct NewAttemptRow {
    pub delivery_id: String,
    pub webhook_id: i64,
    pub attempt_number: i64,
    pub status_code: Option<i64>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
    pub duration_ms: i64,
    pub attempted_at: NaiveDateTime,
    pub batch_id: Option<String>,
}

/// The outcome of an attempt as it lands on its delivery row.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = sys_webhook_deliveries, treat_none_as_null = true)]
pub struct DeliveryOutcome {
    pub status: DeliveryStatus,
    pub status_code: Option<i64>,
    pub response_body: Option<String>,
    pub error_message: Option<String>,
    pub attempt_number: i64,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

/// A row of `sys_api_keys`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sys_api_keys)]
pub struct ApiKeyRow {
    pub key_id: String,
    pub tenant_id: String,
    pub role: String,
    pub name: String,
    pub key_hash: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

/// A row of `sys_event_types`: a declared event type.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sys_event_types)]
pub struct EventTypeRow {
    pub name: String,
    pub description: Option<String>,
    pub schema: Option<Json<serde_json::Value>>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Closes open deliveries without an attempt in SQL (webhook deleted, orphan cancelled): the
/// statement-side twin of [`DeliveryUpdate::closed`]. Status code and body of an earlier attempt stay.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = sys_webhook_deliveries, treat_none_as_null = true)]
pub struct CloseDelivery<'a> {
    pub status: DeliveryStatus,
    pub error_message: Option<&'a str>,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

impl<'a> CloseDelivery<'a> {
    /// `cancelled` with `reason`.
    pub fn cancelled(reason: &'a str, now: NaiveDateTime) -> Self {
        Self {
            status: DeliveryStatus::Cancelled,
            error_message: Some(reason),
            next_attempt_at: None,
            updated_at: now,
        }
    }
}

/// Why a stored webhook cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum StoredWebhookError {
    /// A column does not hold what it should (written past the API, or damaged).
    #[error("webhook {webhook_id}: column {column} is unreadable: {reason}")]
    Column {
        /// The webhook.
        webhook_id: i64,
        /// The column.
        column: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A secret does not open (wrong or missing `BEEMA_SECRET_KEY`).
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl WebhookRow {
    /// The webhook this row stores, its secrets opened with `cipher`. A column that does not
    /// parse is an error, never a default: a default would silently mean "unlimited, no grace".
    pub fn into_webhook(self, cipher: &SecretCipher) -> Result<Webhook, StoredWebhookError> {
        let id = self.webhook_id;
        let column = |column: &'static str| {
            move |reason: String| StoredWebhookError::Column {
                webhook_id: id,
                column,
                reason,
            }
        };
        let previous = self
            .previous_secrets
            .parse()
            .map_err(column("previous_secrets"))?
            .into_iter()
            .map(|p| {
                Ok(PreviousSecret {
                    secret: cipher.open(&p.secret)?,
                    expires_at: p.expires_at,
                })
            })
            .collect::<Result<Vec<_>, SecretError>>()?;
        Ok(Webhook {
            id,
            name: self.webhook_name,
            tenant_id: self.tenant_id,
            event_type: self.event_type,
            url: self.url,
            secret: cipher.open(&self.secret)?,
            enabled: self.enabled,
            headers: self.headers.parse().map_err(column("headers"))?,
            retry: self.retry_config.parse().map_err(column("retry_config"))?,
            rate_limit: self
                .rate_limit
                .map(|r| r.parse())
                .transpose()
                .map_err(column("rate_limit"))?,
            breaker: self
                .circuit_breaker
                .parse()
                .map_err(column("circuit_breaker"))?,
            timeout_ms: u64::try_from(self.timeout_ms)
                .map_err(|e| column("timeout_ms")(e.to_string()))?,
            ordered: self.ordered,
            disabled_reason: self.disabled_reason,
            previous_secrets: previous,
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
            created_by: self.created_by,
            updated_by: self.updated_by,
            // Compiled here, once per stored version, never per event.
            filter: self
                .filter
                .map(|f| f.parse().and_then(Filter::compile).map(Arc::new))
                .transpose()
                .map_err(column("filter"))?,
            transform: self.transform,
            batch: self
                .batch
                .map(|b| b.parse())
                .transpose()
                .map_err(column("batch"))?,
        })
    }
}

impl From<Attempt> for NewAttemptRow {
    fn from(a: Attempt) -> Self {
        Self {
            delivery_id: a.delivery_id,
            webhook_id: a.webhook_id,
            attempt_number: a.attempt_number,
            status_code: a.status_code,
            error_message: a.error_message,
            response_body: a.response_body,
            duration_ms: a.duration_ms,
            attempted_at: a.attempted_at.naive_utc(),
            batch_id: a.batch_id,
        }
    }
}

impl From<DeliveryUpdate> for DeliveryOutcome {
    fn from(u: DeliveryUpdate) -> Self {
        Self {
            status: u.status,
            status_code: u.status_code,
            response_body: u.response_body,
            error_message: u.error_message,
            attempt_number: u.attempt_number,
            next_attempt_at: u.next_attempt_at.map(|t| t.naive_utc()),
            updated_at: u.updated_at.naive_utc(),
            delivered_at: u.delivered_at.map(|t| t.naive_utc()),
        }
    }
}
