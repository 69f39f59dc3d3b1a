//! `/api/webhooks/deliveries`: the delivery log, recording from outside, and manual retries (§2.3).

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{self, Admin};
use super::body::{from_value, read_json, whole, Query};
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::actors::messages::{Dispatch, Job, Outcome, Record};
use crate::db::models::{DeliveryOutcome, DeliveryRow};
use crate::db::store::deliveries::{self as store, DeliveryFilter};
use crate::db::store::{events, webhooks};
use crate::domain::{truncate_body, AttemptView, DeliveryView, ALL_STATUSES, OPEN_STATUSES};

/// Routes of this resource (registered before `/api/webhooks/{id}`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/webhooks/deliveries")
            .route(web::get().to(list))
            .route(web::post().to(record)),
    )
    .service(web::resource("/api/webhooks/deliveries/{delivery_id}").route(web::get().to(get)))
    .service(
        web::resource("/api/webhooks/deliveries/{delivery_id}/retry").route(web::post().to(retry)),
    );
}

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
    /// pending | retrying | success | failed | cancelled
    #[schema(pattern = r"^(pending|retrying|success|failed|cancelled)$")]
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

async fn list(req: HttpRequest, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let q = Query::parse(
        &req,
        &[
            "webhook_id",
            "event_id",
            "status",
            "event_type",
            "limit",
            "before",
            "tenant_id",
            "since",
            "until",
        ],
    )?;
    if let Some(s) = q.str("status") {
        if !ALL_STATUSES.contains(&s) {
            return Err(ApiError::bad_param(
                "status",
                format!("must be one of {}", ALL_STATUSES.join(", ")),
            ));
        }
    }
    let tenant = match q.str("tenant_id") {
        Some(t) => {
            super::validate::tenant_id(t).map_err(|m| ApiError::bad_param("tenant_id", m))?;
            admin.check_tenant(t)?;
            Some(t.to_string())
        }
        None => admin.tenant.clone(),
    };
    let limit = q.limit()?;
    let filter = DeliveryFilter {
        tenant_id: tenant,
        webhook_id: q.int("webhook_id")?,
        event_id: q.str("event_id").map(str::to_string),
        status: q.str("status").map(str::to_string),
        event_type: q.str("event_type").map(str::to_string),
        since: super::console_api::time_param(q.str("since"), "since")?,
        until: super::console_api::time_param(q.str("until"), "until")?,
        before: q.str("before").map(str::to_string),
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

async fn get(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let row = load(&st, &admin, &id).await?;
    let mut conn = st.db.read().await?;
    let attempts = store::list_attempts(&mut conn, &row.delivery_id).await?;
    let payload = events::find_payload(&mut conn, &row.event_id).await?;
    let mut view = DeliveryView::from(row);
    // The stored payload is the exact body every receiver gets.
    view.payload = payload.and_then(|p| serde_json::value::RawValue::from_string(p).ok());
    view.attempts = Some(attempts.into_iter().map(AttemptView::from).collect());
    Ok(HttpResponse::Ok().json(view))
}

async fn record(
    req: HttpRequest,
    st: web::Data<AppState>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let input: RecordInput = from_value(
        read_json(&req, payload, st.config.max_body_bytes).await?,
        "",
    )?;
    let webhook_id = required(input.webhook_id, "webhook_id")?;
    let event_id = required(input.event_id, "event_id")?;
    let event_type = required(input.event_type, "event_type")?;
    let status = required(input.status, "status")?;
    if event_id.is_empty() || event_id.len() > 256 {
        return Err(ApiError::validation("event_id", "must be 1–256 characters"));
    }
    super::validate::event_name(&event_type).map_err(|m| ApiError::validation("event_type", m))?;
    if !ALL_STATUSES.contains(&status.as_str()) {
        return Err(ApiError::validation(
            "status",
            format!("must be one of {}", ALL_STATUSES.join(", ")),
        ));
    }
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
        delivered_at: (status == "success").then_some(now),
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
    if OPEN_STATUSES.contains(&stored.status.as_str()) {
        hand_to_router(&st, &stored).await?;
    }
    Ok(HttpResponse::Created().json(DeliveryView::from(stored)))
}

async fn retry(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let row = load(&st, &admin, &id).await?;
    if st
        .actors
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(row.webhook_id)
        .is_none()
    {
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
        .json(json!({ "delivery_id": reopened.delivery_id, "status": "pending" })))
}

/// Gives an open delivery to its webhook's actor (it may sit below the actor's paging cursor).
pub(crate) async fn hand_to_router(st: &AppState, row: &DeliveryRow) -> ApiResult<()> {
    let mut conn = st.db.read().await?;
    let Some(payload) = events::find_payload(&mut conn, &row.event_id).await? else {
        // Recorded from outside for an event this dispatcher never stored: nothing to send.
        st.actors.recorder.do_send(Record(Outcome {
            attempt: None,
            delivery_id: row.delivery_id.clone(),
            update: DeliveryOutcome {
                status: "failed".into(),
                status_code: row.status_code,
                response_body: row.response_body.clone(),
                error_message: Some("event payload not found".into()),
                attempt_number: row.attempt_number,
                next_attempt_at: None,
                updated_at: Utc::now().naive_utc(),
                delivered_at: None,
            },
        }));
        return Ok(());
    };
    let job = Job {
        delivery_id: row.delivery_id.clone(),
        event_id: row.event_id.clone(),
        event_type: row.event_type.clone(),
        payload: Arc::from(payload),
        attempts_made: u32::try_from(row.attempt_number).unwrap_or(0),
        due: None,
    };
    st.actors.router.do_send(Dispatch {
        jobs: vec![(row.webhook_id, job)],
        force: true,
    });
    Ok(())
}
