//! The durable intake: group commit of published events.
//!
//! Publishers hand prepared events to one intake task through a channel. The task takes every
//! request waiting at that moment, matches each event against the registry, gives each delivery a
//! time-ordered id, and commits all of them in one transaction; each request is answered only when
//! that transaction has committed. Under load many requests share one commit (one fsync), and
//! nothing is acknowledged that is not durable. After the commit the deliveries go to the router.

use std::sync::Arc;

use actix::Addr;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::actors::messages::{Dispatch, Job};
use crate::actors::registry::SharedRegistry;
use crate::actors::router::Router;
use crate::db::models::{DeliveryRow, EventRow};
use crate::db::store::events::{commit_events, CommittedEvent, PendingEvent};
use crate::db::DbPool;
use crate::domain::DeliveryStatus;
use crate::metrics::Metrics;

/// Idempotency keys are remembered this long.
pub const IDEMPOTENCY_WINDOW_HOURS: i64 = 24;
/// Most requests merged into one transaction.
const MAX_REQUESTS_PER_COMMIT: usize = 256;
/// Most events merged into one transaction.
const MAX_EVENTS_PER_COMMIT: usize = 10_000;

/// An event validated by the API, ready to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Its id (UUIDv7), generated at acceptance.
    pub event_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Event type.
    pub event_type: String,
    /// The publisher's idempotency key.
    pub idempotency_key: Option<String>,
    /// The exact body receivers get.
    pub payload: String,
    /// When it was accepted.
    pub accepted_at: DateTime<Utc>,
    /// Deliver only to this webhook (the API's test send); None: every match.
    pub only_webhook: Option<i64>,
}

/// What a publish request committed.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Event ids in request order (the first id for an idempotent repeat).
    pub ids: Vec<String>,
    /// Delivery ids created, in request order.
    pub delivery_ids: Vec<String>,
}

/// Why a publish could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The database did not take the transaction.
    #[error("database unavailable: {0}")]
    Database(String),
    /// The intake task has stopped (shutdown).
    #[error("intake is shutting down")]
    Closed,
}

struct Request {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Accepted, IntakeError>>,
}

/// Handle to the intake task.
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Request>,
}

impl Intake {
    /// Starts the intake task on the current runtime.
    pub fn start(
        db: DbPool,
        registry: SharedRegistry,
        router: Addr<Router>,
        metrics: Metrics,
    ) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(
            rx,
            IntakeCtx {
                db,
                registry,
                router,
                metrics,
            },
        ));
        Self { tx }
    }

    /// Commits events and their deliveries; returns once they are durable.
    pub async fn publish(&self, events: Vec<NewEvent>) -> Result<Accepted, IntakeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { events, reply })
            .await
            .map_err(|_| IntakeError::Closed)?;
        rx.await.map_err(|_| IntakeError::Closed)?
    }
}

struct IntakeCtx {
    db: DbPool,
    registry: SharedRegistry,
    router: Addr<Router>,
    metrics: Metrics,
}

async fn run(mut rx: mpsc::Receiver<Request>, ctx: IntakeCtx) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        let mut events = group[0].events.len();
        while group.len() < MAX_REQUESTS_PER_COMMIT && events < MAX_EVENTS_PER_COMMIT {
            match rx.try_recv() {
                Ok(r) => {
                    events += r.events.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        commit_group(&ctx, group).await;
    }
}

/// Commits a group in one transaction; if that fails, each request alone, so that one bad
/// request cannot fail the others.
async fn commit_group(ctx: &IntakeCtx, group: Vec<Request>) {
    let sizes: Vec<usize> = group.iter().map(|r| r.events.len()).collect();
    let all: Vec<NewEvent> = group
        .iter()
        .flat_map(|r| r.events.iter().cloned())
        .collect();
    match commit(ctx, all).await {
        Ok(committed) => answer(group, &sizes, committed),
        Err(e) if group.len() == 1 => {
            for r in group {
                let _ = r.reply.send(Err(IntakeError::Database(e.clone())));
            }
        }
        Err(_) => {
            for r in group {
                let result = commit(ctx, r.events.clone())
                    .await
                    .map(|c| accepted(&c))
                    .map_err(IntakeError::Database);
                let _ = r.reply.send(result);
            }
        }
    }
}

fn answer(group: Vec<Request>, sizes: &[usize], committed: Vec<CommittedEvent>) {
    let mut rest = committed.as_slice();
    for (r, n) in group.into_iter().zip(sizes) {
        let (mine, tail) = rest.split_at(*n);
        rest = tail;
        let _ = r.reply.send(Ok(accepted(mine)));
    }
}

fn accepted(c: &[CommittedEvent]) -> Accepted {
    Accepted {
        ids: c.iter().map(|e| e.event_id.clone()).collect(),
        delivery_ids: c
            .iter()
            .flat_map(|e| e.deliveries.iter().map(|d| d.delivery_id.clone()))
            .collect(),
    }
}

async fn commit(ctx: &IntakeCtx, events: Vec<NewEvent>) -> Result<Vec<CommittedEvent>, String> {
    let pending = prepare(&ctx.registry, events);
    let payloads: Vec<Arc<str>> = pending
        .iter()
        .map(|p| Arc::from(p.event.payload.as_str()))
        .collect();
    let window_start = (Utc::now() - chrono::Duration::hours(IDEMPOTENCY_WINDOW_HOURS)).naive_utc();
    let db = ctx.db.clone();
    // Spawned as its own task so that a commit in progress is never dropped half-way.
    let committed = tokio::spawn(async move {
        let mut conn = db.write().await.map_err(|e| e.to_string())?;
        commit_events(&mut conn, pending, window_start)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    ctx.metrics.events_accepted.inc_by(
        committed
            .iter()
            .filter(|c| !c.deliveries.is_empty())
            .count() as u64,
    );
    dispatch(ctx, &committed, &payloads);
    Ok(committed)
}

/// Finds each event's webhooks and builds its delivery rows; delivery ids are UUIDv7 made here,
/// in commit order, so that id order is acceptance order for every webhook.
fn prepare(registry: &SharedRegistry, events: Vec<NewEvent>) -> Vec<PendingEvent> {
    let reg = registry.read().unwrap_or_else(|p| p.into_inner());
    events
        .into_iter()
        .map(|e| {
            let now = e.accepted_at.naive_utc();
            let targets: Vec<i64> = match e.only_webhook {
                Some(id) => vec![id],
                None => reg
                    .matching(&e.tenant_id, &e.event_type)
                    .iter()
                    .map(|w| w.id)
                    .collect(),
            };
            let deliveries = targets
                .into_iter()
                .map(|webhook_id| DeliveryRow {
                    delivery_id: Uuid::now_v7().to_string(),
                    webhook_id,
                    event_id: e.event_id.clone(),
                    event_type: e.event_type.clone(),
                    tenant_id: e.tenant_id.clone(),
                    status: DeliveryStatus::Pending,
                    status_code: None,
                    response_body: None,
                    error_message: None,
                    attempt_number: 0,
                    next_attempt_at: None,
                    created_at: now,
                    updated_at: now,
                    delivered_at: None,
                })
                .collect();
            PendingEvent {
                event: EventRow {
                    event_id: e.event_id,
                    tenant_id: e.tenant_id,
                    event_type: e.event_type,
                    idempotency_key: e.idempotency_key,
                    payload: e.payload,
                    created_at: now,
                },
                deliveries,
            }
        })
        .collect()
}

fn dispatch(ctx: &IntakeCtx, committed: &[CommittedEvent], payloads: &[Arc<str>]) {
    let mut jobs = Vec::new();
    for (c, payload) in committed.iter().zip(payloads) {
        for d in &c.deliveries {
            jobs.push((d.webhook_id, Job::from_row(d, payload.clone())));
        }
    }
    if !jobs.is_empty() {
        ctx.router.do_send(Dispatch { jobs, force: false });
    }
}
