//! `/api/webhooks/deliveries`: the delivery log, recording from outside, and manual retries (README, API).

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Admin;
use super::body::whole;
use super::error::{ApiError, ApiResult};
use super::extract::{limit, Json, Query};
use super::openapi::{op, Op, RecordRequest};
use super::views::{AttemptView, DeliveryView};
use super::AppState;
use crate::actors::messages::{batch_entry, Job, Outcome};
use crate::db::models::DeliveryRow;
use crate::db::store::deliveries::{self as store, DeliveryFilter};
use crate::db::store::{events, sent, webhooks};
use crate::domain::{truncate_body, DeliveryStatus};

/// Operations of this resource (registered before `/api/webhooks/{id}`).
pub fn operations() -> Vec<Op> {
    vec![
        op(__path_list, list),
        op(__path_record, record),
        op(__path_get, get),
        op(__path_retry, retry),
    ]
}

/// Query of `GET /api/webhooks/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this webhook's deliveries.
    pub webhook_id: Option<i64>,
    /// Only this event's deliveries.
    pub event_id: Option<String>,
    /// Only deliveries in this state.
    #[param(pattern = r"^(pending|retrying|success|failed|cancelled)$")]
    pub status: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The previous page's `next_before`.
    pub before: Option<String>,
    /// Only this tenant (the global admin; a tenant key sees its own).
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub tenant_id: Option<String>,
    /// Only deliveries created at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only deliveries created before this time (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
}

/// The `{delivery_id}` of a delivery path.
#[derive(IntoParams)]
#[into_params(names("delivery_id"), parameter_in = Path)]
#[allow(dead_code)] // describes the path for the document
struct DeliveryId(String);

/// Body of `POST /api/webhooks/deliveries` (the seed's columns).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RecordInput {
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole")]
    pub webhook_id: Option<i64>,
    #[schema(min_length = 1, max_length = 256)]
    pub event_id: Option<String>,
    #[schema(pattern = r"^[A-Za-z0-9_.:/-]{1,256}$")]
    pub event_type: Option<String>,
    /// Read as text so that an unknown status is a 422 naming the field.
    #[schema(value_type = Option<DeliveryStatus>)]
    pub status: Option<String>,
    #[schema(minimum = 100, maximum = 599)]
    #[serde(default, deserialize_with = "whole")]
    pub status_code: Option<i64>,
    pub response_body: Option<String>,
    pub error_message: Option<String>,
    #[schema(minimum = 0, maximum = 1000)]
    #[serde(default, deserialize_with = "whole")]
    pub attempt_number: Option<i64>,
}

fn required<T>(v: Option<T>, field: &str) -> ApiResult<T> {
    v.ok_or_else(|| ApiError::validation(field, "is required"))
}

/// List deliveries, newest first.
#[utoipa::path(get, path = "/api/webhooks/deliveries", params(ListQuery),
    responses((status = 200, description = "`{\"deliveries\": [...], \"next_before\": cursor | null}`")))]
async fn list(
    admin: Admin,
    Query(q): Query<ListQuery>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let status = q
        .status
        .as_deref()
        .map(str::parse::<DeliveryStatus>)
        .transpose()
        .map_err(|_| {
            ApiError::bad_param(
                "status",
                format!("must be one of {}", DeliveryStatus::choices()),
            )
        })?;
    let tenant = match q.tenant_id {
        Some(t) => {
            super::validate::tenant_id(&t).map_err(|m| ApiError::bad_param("tenant_id", m))?;
            admin.check_tenant(&t)?;
            Some(t)
        }
        None => admin.tenant.clone(),
    };
    let limit = limit(q.limit)?;
    let filter = DeliveryFilter {
        tenant_id: tenant,
        webhook_id: q.webhook_id,
        event_id: q.event_id,
        status,
        event_type: q.event_type,
        since: super::console_api::time_param(q.since.as_deref(), "since")?,
        until: super::console_api::time_param(q.until.as_deref(), "until")?,
        before: q.before,
        limit,
    };
    let mut conn = st.db.read().await?;
    let rows = store::list_deliveries(&mut conn, &filter).await?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.delivery_id.clone()))
        .flatten();
    let views: Vec<DeliveryView> = rows.into_iter().map(DeliveryView::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "deliveries": views, "next_before": next_before })))
}

async fn load(st: &AppState, admin: &Admin, id: &str) -> ApiResult<DeliveryRow> {
    let mut conn = st.db.read().await?;
    let row = store::find_delivery(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("delivery {id} not found")))?;
    admin.check_tenant(&row.tenant_id)?;
    Ok(row)
}

/// One delivery with its attempts.
#[utoipa::path(get, path = "/api/webhooks/deliveries/{delivery_id}", params(DeliveryId),
    responses((status = 200, description = "The delivery", body = DeliveryView)))]
async fn get(
    admin: Admin,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let row = load(&st, &admin, &id).await?;
    let mut conn = st.db.read().await?;
    let attempts = store::list_attempts(&mut conn, &row.delivery_id).await?;
    let payload = events::find_payload(&mut conn, &row.event_id).await?;
    // The body the receiver got: a transform's output (the whole body of a transformed batch),
    // else a batch member's own entry of the batch (its payload, `delivery_id` first), else the
    // event's payload.
    let batch_id = attempts.iter().rev().find_map(|a| a.batch_id.clone());
    let sent_id = batch_id.as_deref().unwrap_or(&row.delivery_id);
    let transformed = sent::transformed(&mut conn, sent_id).await?;
    let payload = match (transformed, payload) {
        (Some(body), _) => Some(body),
        (None, Some(p)) if batch_id.is_some() => Some(batch_entry(&row.delivery_id, &p)),
        (None, p) => p,
    };
    let mut view = DeliveryView::from(row);
    view.payload = payload.and_then(|p| serde_json::value::RawValue::from_string(p).ok());
    view.attempts = Some(attempts.into_iter().map(AttemptView::from).collect());
    Ok(HttpResponse::Ok().json(view))
}

/// Record a delivery result from outside (seed compatibility).
#[utoipa::path(post, path = "/api/webhooks/deliveries", request_body = RecordRequest,
    responses((status = 201, description = "The record", body = DeliveryView)))]
async fn record(
    admin: Admin,
    Json(input): Json<RecordInput>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let webhook_id = required(input.webhook_id, "webhook_id")?;
    let event_id = required(input.event_id, "event_id")?;
    let event_type = required(input.event_type, "event_type")?;
    let status = required(input.status, "status")?;
    if event_id.is_empty() || event_id.len() > 256 {
        return Err(ApiError::validation("event_id", "must be 1–256 characters"));
    }
    super::validate::event_name(&event_type).map_err(|m| ApiError::validation("event_type", m))?;
    let status: DeliveryStatus = status.parse().map_err(|_| {
        ApiError::validation(
            "status",
            format!("must be one of {}", DeliveryStatus::choices()),
        )
    })?;
    if let Some(code) = input.status_code {
        super::validate::range(code, 100, 599)
            .map_err(|m| ApiError::validation("status_code", m))?;
    }
    let attempt_number = input.attempt_number.unwrap_or(1);
    super::validate::range(attempt_number, 0, 1000)
        .map_err(|m| ApiError::validation("attempt_number", m))?;
    let mut conn = st.db.write().await?;
    let webhook = webhooks::find_webhook(&mut conn, webhook_id)
        .await?
        .ok_or_else(|| {
            ApiError::validation("webhook_id", format!("webhook {webhook_id} does not exist"))
        })?;
    admin.check_tenant(&webhook.tenant_id)?;
    let now = Utc::now().naive_utc();
    let row = DeliveryRow {
        delivery_id: Uuid::now_v7().to_string(),
        webhook_id,
        event_id,
        event_type,
        tenant_id: webhook.tenant_id,
        delivered_at: (status == DeliveryStatus::Success).then_some(now),
        status,
        status_code: input.status_code,
        response_body: input.response_body.as_deref().map(truncate_body),
        error_message: input.error_message,
        attempt_number,
        next_attempt_at: None,
        created_at: now,
        updated_at: now,
    };
    let stored = store::insert_delivery(&mut conn, &row).await?;
    drop(conn);
    if stored.status.is_open() {
        hand_to_router(&st, &stored).await?;
    }
    Ok(HttpResponse::Created().json(DeliveryView::from(stored)))
}

/// Send a finished delivery again (same delivery_id).
#[utoipa::path(post, path = "/api/webhooks/deliveries/{delivery_id}/retry", params(DeliveryId),
    responses((status = 202, description = "`{\"delivery_id\": \"...\", \"status\": \"pending\"}`"),
        (status = 409, description = "not finished yet, or its webhook was deleted")))]
async fn retry(
    admin: Admin,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let row = load(&st, &admin, &id).await?;
    if st.dispatcher.webhook(row.webhook_id).is_none() {
        return Err(ApiError::conflict(
            "the webhook of this delivery was deleted",
        ));
    }
    let mut conn = st.db.write().await?;
    let reopened = store::reopen_delivery(&mut conn, &row.delivery_id, Utc::now().naive_utc())
        .await?
        .ok_or_else(|| ApiError::conflict("the delivery is not finished yet"))?;
    drop(conn);
    hand_to_router(&st, &reopened).await?;
    Ok(HttpResponse::Accepted()
        .json(json!({ "delivery_id": reopened.delivery_id, "status": reopened.status })))
}

/// Gives an open delivery to its webhook's actor (it may sit below the actor's paging cursor).
pub(crate) async fn hand_to_router(st: &AppState, row: &DeliveryRow) -> ApiResult<()> {
    let mut conn = st.db.read().await?;
    let Some(payload) = events::find_payload(&mut conn, &row.event_id).await? else {
        // Recorded from outside for an event this dispatcher never stored: nothing to send.
        let mut closed = Outcome::closed(
            row.delivery_id.clone(),
            DeliveryStatus::Failed,
            "event payload not found",
            row.attempt_number,
        );
        // Recorded with a status code and body of its own: they stay on the row.
        closed.update.status_code = row.status_code;
        closed.update.response_body = row.response_body.clone();
        st.dispatcher.record(closed);
        return Ok(());
    };
    let job = Job::from_row(row, Arc::from(payload));
    st.dispatcher.redispatch(row.webhook_id, job);
    Ok(())
}
