//! Liveness, readiness, Prometheus metrics and per-webhook actor health (README, API).

use actix_web::{web, HttpResponse};
use serde_json::json;

use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Admin;
use super::body::path_id;
use super::error::{ApiError, ApiResult};
use super::extract::{GlobalAdmin, Query};
use super::openapi::{op, Op};
use super::AppState;
use crate::actors::status::HealthView;
use crate::db::store::deliveries;
use crate::delivery::breaker::CircuitState;

/// Operations of this resource. HEAD is answered like GET for load balancers that probe with it.
pub fn operations() -> Vec<Op> {
    vec![
        op(__path_healthz, healthz),
        op(__path_readyz, readyz),
        op(__path_metrics, metrics),
        op(__path_all_webhooks, all_webhooks),
        op(__path_one_webhook, one_webhook),
        op(__path_cluster, cluster),
    ]
}

/// The live nodes and how many webhooks each owns (README, Running several nodes).
#[utoipa::path(get, path = "/api/cluster", responses(
    (status = 200, description = "This node and the live nodes", body = crate::cluster::ClusterView)))]
async fn cluster(_: GlobalAdmin, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let view = match &st.cluster {
        Some(runtime) => runtime
            .view()
            .await
            .map_err(|e| ApiError::unavailable(format!("database: {e}")))?,
        None => {
            // SQLite: this process is the cluster and owns every webhook.
            let c = st.dispatcher.cluster();
            crate::cluster::ClusterView {
                node: c.node_id().to_string(),
                lease_ttl_ms: c.ttl().as_millis() as u64,
                nodes: vec![crate::cluster::NodeView {
                    id: c.node_id().to_string(),
                    webhooks: st.dispatcher.owned_count() as u64,
                    started_at: c.started_at(),
                    heartbeat_at: chrono::Utc::now(),
                }],
            }
        }
    };
    Ok(HttpResponse::Ok().json(view))
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

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
async fn metrics(_: GlobalAdmin, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    // Queue depth comes from the database, so it counts the backlog no actor holds in memory.
    if let Ok(mut conn) = st.db.read().await {
        if let Ok(n) = deliveries::count_open(&mut conn).await {
            st.metrics.queue_depth.set(n);
        }
        if let Ok(oldest) = deliveries::oldest_open(&mut conn).await {
            let age = oldest.map_or(0, |t| (crate::db::store::now() - t).num_seconds().max(0));
            st.metrics.queue_oldest_age.set(age);
        }
    }
    st.metrics
        .recorder_pending
        .set(st.dispatcher.recorder_pending() as i64);
    st.metrics
        .circuit_open
        .set(st.dispatcher.open_circuits() as i64);
    let cluster = st.dispatcher.cluster();
    st.metrics.cluster_nodes.set(cluster.live_nodes() as i64);
    st.metrics
        .owned_webhooks
        .set(st.dispatcher.owned_count() as i64);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(st.metrics.render()))
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

/// Health pages hold up to 1,000 webhooks, like `GET /api/webhooks`.
const HEALTH_PAGE_MAX: i64 = 1000;

/// Query of `GET /api/health/webhooks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HealthQuery {
    /// Page size (default and most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Only ids greater than this (the previous page's `next_after`).
    pub after: Option<i64>,
    /// Only webhooks whose breaker is in this state.
    #[param(pattern = r"^(closed|open|half_open)$")]
    pub state: Option<String>,
}

/// Health of the caller's webhooks, paged by webhook id.
#[utoipa::path(get, path = "/api/health/webhooks", params(HealthQuery),
    responses((status = 200, description = "`{\"webhooks\": [...], \"next_after\": id | null}`")))]
async fn all_webhooks(
    admin: Admin,
    Query(q): Query<HealthQuery>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let limit = match q.limit {
        None => HEALTH_PAGE_MAX,
        Some(n) if (1..=HEALTH_PAGE_MAX).contains(&n) => n,
        Some(_) => return Err(ApiError::bad_param("limit", "must be between 1 and 1000")),
    };
    let state = q.state.as_deref().map(circuit_state).transpose()?;
    let page = st
        .dispatcher
        .health_page(admin.tenant.as_deref(), q.after, limit as usize, state)
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
