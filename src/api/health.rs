//! Liveness, readiness, Prometheus metrics and per-webhook actor health (§2.4).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::auth;
use super::body::{path_id, Query};
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::db::store::deliveries;
use crate::delivery::breaker::CircuitState;

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
    let actors = st.dispatcher.is_running();
    // Without the intake every publish answers 503: not ready, whatever the rest says.
    let intake = st.intake.is_up();
    let ok = database && actors && intake && !draining;
    let body = json!({ "status": if ok { "ready" } else { "unavailable" }, "database": database, "actors": actors, "intake": intake, "draining": draining });
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
    st.metrics
        .circuit_open
        .set(st.dispatcher.open_circuits() as i64);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(st.metrics.render()))
}

async fn one_webhook(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let id = path_id(&id, "id")?;
    let w = st
        .dispatcher
        .webhook(id)
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")))?;
    admin.check_tenant(&w.tenant_id)?;
    let one = st
        .dispatcher
        .health(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")))?;
    Ok(HttpResponse::Ok().json(one))
}

/// Health pages hold up to 1,000 webhooks, like `GET /api/webhooks` (§2.4).
const HEALTH_PAGE_MAX: i64 = 1000;

async fn all_webhooks(req: HttpRequest, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let q = Query::parse(&req, &["limit", "after", "state"])?;
    let limit = match q.int("limit")? {
        None => HEALTH_PAGE_MAX,
        Some(n) if (1..=HEALTH_PAGE_MAX).contains(&n) => n,
        Some(_) => return Err(ApiError::bad_param("limit", "must be between 1 and 1000")),
    };
    let state = q.str("state").map(circuit_state).transpose()?;
    let page = st
        .dispatcher
        .health_page(
            admin.tenant.as_deref(),
            q.int("after")?,
            limit as usize,
            state,
        )
        .await?;
    Ok(
        HttpResponse::Ok()
            .json(json!({ "webhooks": page.webhooks, "next_after": page.next_after })),
    )
}

fn circuit_state(raw: &str) -> ApiResult<CircuitState> {
    match raw {
        "closed" => Ok(CircuitState::Closed),
        "open" => Ok(CircuitState::Open),
        "half_open" => Ok(CircuitState::HalfOpen),
        other => Err(ApiError::bad_param(
            "state",
            format!("`{other}` is not one of closed, open, half_open"),
        )),
    }
}
