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

use crate::actors::{Dispatcher, OpsEmitter, StartParams};
use crate::api::{self, AppState};
use crate::catalog::SchemaCache;
use crate::cluster::runtime::ClusterRuntime;
use crate::cluster::Cluster;
use crate::config::{Config, DatabaseUrl};
use crate::db::models::{StoredWebhookError, WebhookChanges, WebhookRow};
use crate::db::store::{deliveries, event_types, webhooks};
use crate::db::{self, DbPool};
use crate::delivery::sender;
use crate::domain::{audit, is_plain_http, Webhook};
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
    // One process per SQLite file (README, Settings), claimed before migrating; held until `run`
    // returns, so a server stopped in-process frees its file for the next one.
    let _claim = db::file_lock::claim(&config.database)?;
    db::migrate(&config.database).await.context("database")?;
    let pool = DbPool::new(&config.database).context("database")?;
    let cipher = SecretCipher::new(config.secret_key.as_deref());
    let metrics = Metrics::new();
    let boot = Instant::now();
    // Before the registry is loaded, so that no delivery goes out over http first.
    let https_disabled = if config.require_https {
        disable_plain_http(&pool, &cipher).await?
    } else {
        Vec::new()
    };
    let (hooks, with_backlog) = load_boot(&pool, &cipher).await?;
    tracing::info!(
        webhooks = hooks.len(),
        disabled_for_https = https_disabled.len(),
        with_backlog = with_backlog.len(),
        ms = boot.elapsed().as_millis() as u64,
        "webhooks loaded"
    );
    let schemas = load_schemas(&pool, &config.database).await?;
    let tls = Arc::new(sender::tls_config().context("TLS settings")?);
    let (ops, ops_rx) = OpsEmitter::channel();
    // `beema/webhook.disabled` once per webhook: only the start whose write disabled it lists it.
    let announced: Vec<Webhook> = https_disabled
        .into_iter()
        .filter_map(|row| row.into_webhook(&cipher).ok())
        .collect();
    ops.disabled_at_start(&announced);
    let clustered = matches!(config.database, DatabaseUrl::Postgres(_));
    let cluster = Cluster::new(config.node_id.clone(), config.lease_ttl, clustered);
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
        ops,
        cluster: cluster.clone(),
    });
    let intake = Intake::start(pool.clone(), dispatcher.clone(), metrics.clone());
    let ops_task = crate::ops::start(ops_rx, dispatcher.clone(), intake.clone());
    let runtime = match &config.database {
        DatabaseUrl::Postgres(url) => Some(
            ClusterRuntime::start(
                cluster,
                pool.clone(),
                url.clone(),
                dispatcher.clone(),
                cipher.clone(),
            )
            .await
            .context("joining the cluster")?,
        ),
        DatabaseUrl::Sqlite(_) => None,
    };
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
        schemas,
        cluster: runtime.clone(),
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
    let replaced = async {
        match &runtime {
            Some(r) => r.replaced().await,
            None => std::future::pending().await,
        }
    };
    let taken_over = tokio::select! {
        _ = shutdown => false,
        _ = replaced => true,
    };

    tracing::info!("shutting down: intake closed, draining in-flight attempts");
    draining.store(true, Ordering::Relaxed);
    if let Some(r) = &runtime {
        r.stop_claiming();
    }
    handle.stop(true).await;
    let _ = server_task.await;
    dispatcher.shutdown(config.tuning.drain_timeout).await;
    ops_task.abort();
    if taken_over {
        anyhow::bail!(
            "node id {} was taken over by another process",
            config.node_id
        );
    }
    if let Some(r) = &runtime {
        r.leave().await;
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// The `disabled_reason` of a webhook disabled at start by `BEEMA_REQUIRE_HTTPS`.
pub const HTTPS_REQUIRED_REASON: &str =
    "https is required (BEEMA_REQUIRE_HTTPS) and the url is http";

/// `BEEMA_REQUIRE_HTTPS` at start: disables every enabled `http` webhook, each with its
/// `webhook.disabled` entry by `system` in the same transaction; their waiting deliveries stay
/// pending (for when the url is fixed and the webhook re-enabled). Answers the webhooks it disabled.
pub async fn disable_plain_http(
    pool: &DbPool,
    cipher: &SecretCipher,
) -> anyhow::Result<Vec<WebhookRow>> {
    let mut conn = pool.write().await.context("database")?;
    let rows = webhooks::all_webhooks(&mut conn)
        .await
        .context("loading webhooks")?;
    let mut disabled = Vec::new();
    for row in rows
        .into_iter()
        .filter(|r| r.enabled && is_plain_http(&r.url))
    {
        let at = db::store::now();
        // Checked again under the lock: another node may have changed it since the listing.
        let change = move |r: WebhookRow| {
            let still = r.enabled && is_plain_http(&r.url);
            Ok::<_, diesel::result::Error>(still.then(|| WebhookChanges {
                enabled: Some(false),
                disabled_reason: Some(Some(HTTPS_REQUIRED_REASON.to_string())),
                updated_at: Some(at),
                ..Default::default()
            }))
        };
        let c = cipher.clone();
        // The entry is made only by the write, so it tells whether this call disabled it.
        let written = Arc::new(AtomicBool::new(false));
        let wrote = written.clone();
        let audit = move |before: &WebhookRow, after: &WebhookRow| {
            wrote.store(true, Ordering::Relaxed);
            let act = Some(audit::action::WEBHOOK_DISABLED);
            api::audit::webhook_changed(audit::SYSTEM.into(), act, before, after, &c)
        };
        let stored = webhooks::update_webhook_audited(&mut conn, row.webhook_id, change, audit)
            .await
            .context("disabling an http webhook")?;
        if let Some(w) = stored.filter(|_| written.load(Ordering::Relaxed)) {
            tracing::warn!(webhook_id = w.webhook_id, url = %w.url, "disabled: https is required");
            disabled.push(w);
        }
    }
    Ok(disabled)
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

/// The catalog's schemas, compiled into the cache this process shares for `database`.
async fn load_schemas(pool: &DbPool, database: &DatabaseUrl) -> anyhow::Result<Arc<SchemaCache>> {
    let key = match database {
        DatabaseUrl::Sqlite(p) => format!("sqlite:{p}"),
        DatabaseUrl::Postgres(u) => u.clone(),
    };
    let cache = SchemaCache::shared(&key);
    let mut conn = pool.read().await.context("database")?;
    let rows = event_types::list_declared(&mut conn)
        .await
        .context("loading event-type schemas")?;
    cache.load(
        rows.into_iter()
            .filter_map(|r| Some((r.name, r.schema?.parse().ok()?)))
            .collect(),
    );
    Ok(cache)
}

/// The webhooks of `rows`, ready for dispatch. One whose settings columns do not parse is logged
/// at error level and left out of the registry: sending with default settings (unlimited, no
/// grace secrets) would be a silent guess. It comes back once its column is fixed in the database
/// and the server restarted (the API answers 500 naming the column, and can delete it). A secret
/// that does not open fails the start: that is a wrong `BEEMA_SECRET_KEY`, which concerns every
/// webhook.
pub fn usable_webhooks(
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
