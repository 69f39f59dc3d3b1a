//! Row types: what diesel reads from and writes to each table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::Value;

use super::schema::*;

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
    pub headers: Value,
    pub retry_config: Value,
    pub rate_limit: Option<Value>,
    pub circuit_breaker: Value,
    pub timeout_ms: i64,
    pub ordered: bool,
    pub disabled_reason: Option<String>,
    pub previous_secrets: Value,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub deleted_at: Option<NaiveDateTime>,
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
    pub headers: Value,
    pub retry_config: Value,
    pub rate_limit: Option<Value>,
    pub circuit_breaker: Value,
    pub timeout_ms: i64,
    pub ordered: bool,
    pub disabled_reason: Option<String>,
    pub previous_secrets: Value,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
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
    pub headers: Option<Value>,
    pub retry_config: Option<Value>,
    pub rate_limit: Option<Option<Value>>,
    pub circuit_breaker: Option<Value>,
    pub timeout_ms: Option<i64>,
    pub ordered: Option<bool>,
    pub disabled_reason: Option<Option<String>>,
    pub previous_secrets: Option<Value>,
    pub updated_at: Option<NaiveDateTime>,
    pub updated_by: Option<Option<String>>,
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
    pub status: String,
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
}

/// The outcome of an attempt as it lands on its delivery row.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = sys_webhook_deliveries, treat_none_as_null = true)]
pub struct DeliveryOutcome {
    pub status: String,
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
