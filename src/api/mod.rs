//! The REST API (actix-web): one module per resource, each listing its `operations()`: handlers
//! whose arguments are extractors ([`extract`]) and whose `#[utoipa::path]` gives both the route
//! and its OpenAPI description ([`openapi`]).

pub mod audit;
pub mod auth;
pub mod body;
pub mod console_api;
pub mod deliveries;
pub mod error;
pub mod event_types;
pub mod events;
pub mod extract;
pub mod health;
pub mod keys;
pub mod openapi;
pub mod replay;
pub mod validate;
pub mod views;
pub mod webhook_input;
pub mod webhooks;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix_web::{web, HttpResponse};

use crate::actors::Dispatcher;
use crate::catalog::SchemaCache;
use crate::config::Config;
use crate::db::DbPool;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::secrets::SecretCipher;
use error::ApiError;

/// What every handler shares.
pub struct AppState {
    /// Validated settings.
    pub config: Arc<Config>,
    /// The database.
    pub db: DbPool,
    /// The actor runtime: matching, dispatch, webhook changes, health.
    pub dispatcher: Dispatcher,
    /// The group-commit intake.
    pub intake: Intake,
    /// Metrics.
    pub metrics: Metrics,
    /// Opens and seals webhook secrets.
    pub cipher: SecretCipher,
    /// Set at shutdown: publishing answers 503 so publishers go elsewhere.
    pub draining: Arc<AtomicBool>,
    /// Compiled schemas of the event-type catalog, shared by the nodes of this process.
    pub schemas: Arc<SchemaCache>,
    /// PostgreSQL: the tasks that keep this node in step with the others (None on SQLite).
    pub cluster: Option<crate::cluster::runtime::ClusterRuntime>,
}

/// Every operation, in registration order: deliveries come before `/api/webhooks/{id}` so that
/// `deliveries` is not taken for an id.
pub fn operations() -> Vec<openapi::Op> {
    [
        deliveries::operations(),
        console_api::operations(),
        webhooks::operations(),
        replay::operations(),
        events::operations(),
        event_types::operations(),
        keys::operations(),
        audit::operations(),
        health::operations(),
        openapi::operations(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    openapi::register(cfg, operations());
}

/// Every (method, path) [`configure`] registers.
pub fn route_table() -> Vec<(actix_web::http::Method, String)> {
    openapi::route_table(&operations())
}

/// Unknown routes answer in the error shape too.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such route"))
}

/// A known route called with another method: the router's bare 405 gets the error shape too
/// (its `Allow` header is kept).
pub fn method_not_allowed<B>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    let (req, old) = res.into_parts();
    let err = ApiError {
        status: actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: format!("{} is not allowed on {}", req.method(), req.path()),
        field: None,
    };
    let mut resp = actix_web::ResponseError::error_response(&err);
    if let Some(allow) = old.headers().get(actix_web::http::header::ALLOW) {
        resp.headers_mut()
            .insert(actix_web::http::header::ALLOW, allow.clone());
    }
    let res = actix_web::dev::ServiceResponse::new(req, resp).map_into_right_body();
    Ok(actix_web::middleware::ErrorHandlerResponse::Response(res))
}
