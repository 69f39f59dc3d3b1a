//! Liveness, readiness, Prometheus metrics and per-webhook actor health (README, API).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::auth::Admin;
use super::body::path_id;
use super::error::{ApiError, ApiResult};
use super::openapi::{op, Op};
use super::AppState;
use crate::actors::status::HealthView;
use crate::db::store::deliveries;
use crate::domain::Webhook;

/// Operations of this resource. HEAD is answered like GET for load balancers that probe with it.
pub fn operations() -> Vec<Op> {
    vec![
        op(__path_healthz, healthz),
        op(__path_readyz, readyz),
        op(__path_metrics, metrics),
        op(__path_all_webhooks, all_webhooks),
        op(__path_one_webhook, one_webhook),
    ]
}

/// Liveness: 200 while the process runs.
#[utoipa::path(method(get, head), path = "/healthz", responses((status = 200, description = "`{\"status\": \"ok\"}`")))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: the database answers and the actors are up.
#[utoipa::path(method(get, head), path = "/readyz", responses(
    (status = 200, description = "Ready"),
    (status = 503, description = "database or actors not ready, or draining")))]
async fn readyz(st: web::Data<AppState>) -> HttpResponse {
    let draining = st.draining.load(std::sync::atomic::Ordering::Relaxed);
    let database = st.db.ping().await;
    let actors = st.actors.router.connected() && st.actors.recorder.connected();
    let ok = database && actors && !draining;
    let body = json!({ "status": if ok { "ready" } else { "unavailable" }, "database": database, "actors": actors, "draining": draining });
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
async fn metrics(_: Admin, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    // Queue depth comes from the database, so it counts the backlog no actor holds in memory.
    if let Ok(mut conn) = st.db.read().await {
        if let Ok(n) = deliveries::count_open(&mut conn).await {
            st.metrics.queue_depth.set(n);
        }
    }
    let open = st
        .actors
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .open_circuits();
    st.metrics.circuit_open.set(open as i64);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(st.metrics.render()))
}

async fn views(
    st: &AppState,
    webhooks: Vec<std::sync::Arc<Webhook>>,
) -> ApiResult<Vec<HealthView>> {
    let ids: Vec<i64> = webhooks.iter().map(|w| w.id).collect();
    let mut conn = st.db.read().await?;
    let counts = deliveries::open_counts(&mut conn, &ids).await?;
    let reg = st.actors.registry.read().unwrap_or_else(|p| p.into_inner());
    Ok(webhooks
        .iter()
        .filter_map(|w| {
            let status = reg.status(w.id)?;
            let open = counts.get(&w.id).copied().unwrap_or(0).max(0) as u64;
            let mut v = status.view(w.id, w.rate_limit, 0);
            v.queue.pending = open.saturating_sub(v.queue.in_flight);
            Some(v)
        })
        .collect())
}

/// The webhook's actor health.
#[utoipa::path(get, path = "/api/webhooks/{id}/health", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, description = "Its health", body = HealthView)))]
async fn one_webhook(
    admin: Admin,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id, "id")?;
    let w = st
        .actors
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(id);
    let w = w.ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")))?;
    admin.check_tenant(&w.tenant_id)?;
    let mut v = views(&st, vec![w]).await?;
    let one = v
        .pop()
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")))?;
    Ok(HttpResponse::Ok().json(one))
}

/// Health of the caller's webhooks.
#[utoipa::path(get, path = "/api/health/webhooks", responses((status = 200, description = "`{\"webhooks\": [...]}`")))]
async fn all_webhooks(admin: Admin, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let list = st
        .actors
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .all(admin.tenant.as_deref());
    Ok(HttpResponse::Ok().json(json!({ "webhooks": views(&st, list).await? })))
}
