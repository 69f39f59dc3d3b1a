//! The REST API (actix-web): one module per resource, each with a `configure`.

pub mod auth;
pub mod body;
pub mod deliveries;
pub mod error;
pub mod events;
pub mod health;
pub mod keys;
pub mod openapi;
pub mod validate;
pub mod webhooks;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix_web::{web, HttpResponse};

use crate::actors::Actors;
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
    /// Router, recorder and registry.
    pub actors: Actors,
    /// The group-commit intake.
    pub intake: Intake,
    /// Metrics.
    pub metrics: Metrics,
    /// Opens and seals webhook secrets.
    pub cipher: SecretCipher,
    /// Set at shutdown: publishing answers 503 so publishers go elsewhere.
    pub draining: Arc<AtomicBool>,
}

/// Every route; deliveries come before `/api/webhooks/{id}` so that `deliveries` is not taken for an id.
pub fn configure(cfg: &mut web::ServiceConfig) {
    deliveries::configure(cfg);
    webhooks::configure(cfg);
    events::configure(cfg);
    keys::configure(cfg);
    health::configure(cfg);
    openapi::configure(cfg);
}

/// Unknown routes answer in the error shape too.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such route"))
}
