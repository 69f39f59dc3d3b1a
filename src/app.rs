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

use crate::actors::messages::{Drain, Flush};
use crate::actors::{self, StartParams};
use crate::api::{self, AppState};
use crate::config::Config;
use crate::db::store::{deliveries, webhooks};
use crate::db::{self, DbPool};
use crate::delivery::sender;
use crate::domain::Webhook;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::secrets::SecretCipher;

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
        "registry loaded"
    );
    let tls = Arc::new(sender::tls_config().context("TLS settings")?);
    let actors = actors::start(StartParams {
        db: pool.clone(),
        metrics: metrics.clone(),
        tuning: config.tuning.clone(),
        policy: Arc::new(config.targets.clone()),
        tls,
        webhooks: hooks,
        with_backlog,
    });
    let intake = Intake::start(
        pool.clone(),
        actors.registry.clone(),
        actors.router.clone(),
        metrics.clone(),
    );
    let draining = Arc::new(AtomicBool::new(false));
    let config = Arc::new(config);
    let state = web::Data::new(AppState {
        config: config.clone(),
        db: pool,
        actors: actors.clone(),
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
            .configure(crate::console::configure)
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
    drain(&actors, &config).await;
    let _ = actors.recorder.send(Flush).await;
    stop_arbiters(actors).await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Stops the actors' threads and waits for them, so that their database connections are closed
/// when `run` returns (a restart on the same SQLite file then finds it unlocked).
async fn stop_arbiters(actors: actors::Actors) {
    for arbiter in actors.arbiters.iter() {
        arbiter.stop();
    }
    let actors::Actors { arbiters, .. } = actors;
    // The last handle is ours once the HTTP workers (which held clones of the state) are gone.
    match Arc::try_unwrap(arbiters) {
        Ok(arbiters) => {
            let _ = tokio::task::spawn_blocking(move || {
                for arbiter in arbiters {
                    let _ = arbiter.join();
                }
            })
            .await;
        }
        Err(_) => tracing::debug!("actor threads still shared; stopped without waiting"),
    }
}

/// Stops new attempts and waits (bounded) for those in flight to finish.
async fn drain(actors: &actors::Actors, config: &Config) {
    let deadline = Instant::now() + config.tuning.drain_timeout;
    loop {
        let in_flight = actors.router.send(Drain).await.unwrap_or(0);
        if in_flight == 0 || Instant::now() >= deadline {
            if in_flight > 0 {
                tracing::warn!(
                    in_flight,
                    "drain timeout: unfinished attempts go out after the next start"
                );
            }
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every live webhook, and which of them have deliveries waiting in the database.
async fn load_boot(
    pool: &DbPool,
    cipher: &SecretCipher,
) -> anyhow::Result<(Vec<Arc<Webhook>>, HashSet<i64>)> {
    let mut conn = pool.read().await.context("database")?;
    let rows = webhooks::all_webhooks(&mut conn)
        .await
        .context("loading webhooks")?;
    let hooks = rows
        .into_iter()
        .map(|r| Webhook::from_row(r, cipher).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .context("opening webhook secrets")?;
    let backlog = deliveries::webhooks_with_open(&mut conn)
        .await
        .context("finding waiting deliveries")?;
    Ok((hooks, backlog.into_iter().collect()))
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
