//! Wiring: migrations, pools, actors, intake and the HTTP server; graceful shutdown.

use std::collections::HashSet;
use std::future::Future;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;

use crate::actors::{Dispatcher, StartParams};
use crate::api::{self, AppState};
use crate::config::Config;
use crate::db::models::{StoredWebhookError, WebhookRow};
use crate::db::store::{deliveries, webhooks};
use crate::db::{self, DbPool};
use crate::delivery::sender;
use crate::domain::Webhook;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::secrets::{SecretCipher, SecretError};

/// Runs the dispatcher on `listener` until `shutdown` resolves, then drains and returns.
/// Must run inside an actix `System` (`#[actix_web::main]` or `System::new().block_on`).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // reqwest is built without a default crypto provider (ring keeps the build small); any
    // client built without our preconfigured TLS (none today) would otherwise panic.
    let _ = rustls::crypto::ring::default_provider().install_default();
    db::migrate(&config.database).await.context("database")?;
    let pool = DbPool::new(&config.database).context("database")?;
    let cipher = SecretCipher::new(config.secret_key.as_deref());
    let metrics = Metrics::new();
    let boot = Instant::now();
    let (hooks, with_backlog) = load_boot(&pool, &cipher).await?;
    tracing::info!(
        webhooks = hooks.len(),
        with_backlog = with_backlog.len(),
        ms = boot.elapsed().as_millis() as u64,
        "webhooks loaded"
    );
    let tls = Arc::new(sender::tls_config().context("TLS settings")?);
    let dispatcher = Dispatcher::start(StartParams {
        db: pool.clone(),
        metrics: metrics.clone(),
        tuning: crate::config::Tuning {
            max_batch_bytes: config.max_body_bytes,
            ..config.tuning.clone()
        },
        policy: Arc::new(config.targets.clone()),
        tls,
        webhooks: hooks,
        with_backlog,
    });
    let intake = Intake::start(pool.clone(), dispatcher.clone(), metrics.clone());
    let draining = Arc::new(AtomicBool::new(false));
    let config = Arc::new(config);
    let state = web::Data::new(AppState {
        config: config.clone(),
        db: pool,
        dispatcher: dispatcher.clone(),
        intake,
        metrics,
        cipher,
        draining: draining.clone(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .wrap(
                ErrorHandlers::new()
                    .handler(StatusCode::METHOD_NOT_ALLOWED, api::method_not_allowed),
            )
            .app_data(state.clone())
            .configure(api::configure)
            .default_service(web::to(api::not_found))
    })
    .listen(listener)
    .context("listen")?
    .disable_signals()
    .shutdown_timeout(5)
    .run();
    let handle = server.handle();
    let server_task = actix_web::rt::spawn(server);
    tracing::info!(listen = %config.listen, "beema-webhooks is serving");
    shutdown.await;

    tracing::info!("shutting down: intake closed, draining in-flight attempts");
    draining.store(true, Ordering::Relaxed);
    handle.stop(true).await;
    let _ = server_task.await;
    dispatcher.shutdown(config.tuning.drain_timeout).await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Every live webhook, and which of them have deliveries waiting in the database.
/// A webhook whose stored settings do not parse stays out (see [`usable_webhooks`]).
async fn load_boot(
    pool: &DbPool,
    cipher: &SecretCipher,
) -> anyhow::Result<(Vec<Arc<Webhook>>, HashSet<i64>)> {
    let mut conn = pool.read().await.context("database")?;
    let rows = webhooks::all_webhooks(&mut conn)
        .await
        .context("loading webhooks")?;
    let hooks = usable_webhooks(rows, cipher).context("opening webhook secrets")?;
    let backlog = deliveries::webhooks_with_open(&mut conn)
        .await
        .context("finding waiting deliveries")?;
    Ok((hooks, backlog.into_iter().collect()))
}

/// The webhooks of `rows`, ready for dispatch. One whose settings columns do not parse is logged
/// at error level and left out of the registry: sending with default settings (unlimited, no
/// grace secrets) would be a silent guess. It comes back once its column is fixed in the database
/// and the server restarted (the API answers 500 naming the column, and can delete it). A secret
/// that does not open fails the start: that is a wrong `BEEMA_SECRET_KEY`, which concerns every
/// webhook.
fn usable_webhooks(
    rows: Vec<WebhookRow>,
    cipher: &SecretCipher,
) -> Result<Vec<Arc<Webhook>>, SecretError> {
    let mut hooks = Vec::with_capacity(rows.len());
    for row in rows {
        match row.into_webhook(cipher) {
            Ok(w) => hooks.push(Arc::new(w)),
            Err(StoredWebhookError::Column {
                webhook_id,
                column,
                reason,
            }) => tracing::error!(
                webhook_id,
                column,
                reason,
                "stored webhook settings do not parse; the webhook is left out of dispatch until the column is fixed"
            ),
            Err(StoredWebhookError::Secret(e)) => return Err(e),
        }
    }
    Ok(hooks)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
