//! Liveness, readiness, Prometheus metrics and per-webhook actor health (README, API).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::auth;
use super::body::path_id;
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::actors::status::HealthView;
use crate::db::store::deliveries;
use crate::domain::Webhook;

/// Routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources (not bare routes) so that another method answers 405 in the error shape; HEAD is
    // answered like GET for load balancers that probe with it.
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .route(web::head().to(healthz)),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(readyz))
            .route(web::head().to(readyz)),
    )
    .service(web::resource("/metrics").route(web::get().to(metrics)))
    .service(web::resource("/api/health/webhooks").route(web::get().to(all_webhooks)))
    .service(web::resource("/api/webhooks/{id}/health").route(web::get().to(one_webhook)));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

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

async fn metrics(req: HttpRequest, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    auth::admin(&req, &st).await?;
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

async fn one_webhook(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
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

async fn all_webhooks(req: HttpRequest, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let list = st
        .actors
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .all(admin.tenant.as_deref());
    Ok(HttpResponse::Ok().json(json!({ "webhooks": views(&st, list).await? })))
}
