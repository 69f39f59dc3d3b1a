//! Router actor: keeps the webhook registry in step with the API, owns one supervised
//! [`WebhookActor`] per registration, and hands each new delivery to its webhook's actor.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::messages::*;
use super::registry::SharedRegistry;
use super::webhook::WebhookActor;
use super::WebhookDeps;
use crate::db::models::DeliveryOutcome;
use crate::db::models::WebhookChanges;
use crate::db::store::webhooks::update_webhook;
use crate::db::DbPool;
use crate::domain::Webhook;

/// The router actor.
pub struct Router {
    registry: SharedRegistry,
    deps: Arc<WebhookDeps>,
    actors: HashMap<i64, Addr<WebhookActor>>,
    /// Arbiters the webhook actors are spread over (one per core).
    arbiters: Vec<ArbiterHandle>,
    /// Webhooks to start at boot, and which of them have deliveries waiting in the database.
    boot: Option<(Vec<Arc<Webhook>>, HashSet<i64>)>,
}

impl Router {
    /// A router that starts actors for `webhooks` when it starts.
    pub fn new(
        registry: SharedRegistry,
        deps: Arc<WebhookDeps>,
        arbiters: Vec<ArbiterHandle>,
        webhooks: Vec<Arc<Webhook>>,
        with_backlog: HashSet<i64>,
    ) -> Self {
        Self {
            registry,
            deps,
            actors: HashMap::new(),
            arbiters,
            boot: Some((webhooks, with_backlog)),
        }
    }

    fn spawn_actor(
        &mut self,
        webhook: Arc<Webhook>,
        backlog: bool,
        me: Recipient<DisabledByReceiver>,
    ) {
        let id = webhook.id;
        let status = self
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .upsert(webhook.clone());
        let deps = self.deps.clone();
        let arbiter = &self.arbiters[(id.unsigned_abs() as usize) % self.arbiters.len()];
        let addr = Supervisor::start_in_arbiter(arbiter, move |_| {
            WebhookActor::new(webhook, deps, me, status, backlog)
        });
        self.actors.insert(id, addr);
    }

    fn cancel_orphans(&self, jobs: Vec<Job>) {
        let now = chrono::Utc::now().naive_utc();
        for job in jobs {
            self.deps.recorder.record(Outcome {
                attempt: None,
                delivery_id: job.delivery_id,
                update: DeliveryOutcome {
                    status: "cancelled".into(),
                    status_code: None,
                    response_body: None,
                    error_message: Some("webhook deleted".into()),
                    attempt_number: i64::from(job.attempts_made),
                    next_attempt_at: None,
                    updated_at: now,
                    delivered_at: None,
                },
            });
        }
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some((webhooks, backlog)) = self.boot.take() {
            let me = ctx.address().recipient();
            for w in webhooks {
                let has_backlog = backlog.contains(&w.id);
                self.spawn_actor(w, has_backlog, me.clone());
            }
        }
    }
}

impl Handler<Upsert> for Router {
    type Result = ();

    fn handle(&mut self, msg: Upsert, ctx: &mut Self::Context) {
        let webhook = msg.0;
        match self.actors.get(&webhook.id) {
            Some(addr) => {
                self.registry
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .upsert(webhook.clone());
                addr.do_send(Configure(webhook));
            }
            None => self.spawn_actor(webhook, false, ctx.address().recipient()),
        }
    }
}

impl Handler<Remove> for Router {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Remove, _: &mut Self::Context) -> Self::Result {
        self.registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(msg.0);
        let addr = self.actors.remove(&msg.0);
        // The address is dropped after Retire is handled, so the Supervisor lets the actor go.
        Box::pin(async move {
            if let Some(addr) = addr {
                let _ = addr.send(Retire).await;
            }
        })
    }
}

impl Handler<Dispatch> for Router {
    type Result = ();

    fn handle(&mut self, msg: Dispatch, _: &mut Self::Context) {
        let mut per_webhook: HashMap<i64, Vec<Job>> = HashMap::new();
        for (id, job) in msg.jobs {
            per_webhook.entry(id).or_default().push(job);
        }
        for (id, jobs) in per_webhook {
            match self.actors.get(&id) {
                Some(addr) => addr.do_send(Enqueue {
                    jobs,
                    force: msg.force,
                }),
                None => self.cancel_orphans(jobs),
            }
        }
    }
}

impl Handler<DisabledByReceiver> for Router {
    type Result = ();

    /// The registry stops matching the webhook at once (its actor has already stopped sending),
    /// and the disable is written through the same store call as the API's updates, retried until
    /// the database has it, so that the two cannot disagree for longer than an outage lasts.
    fn handle(&mut self, msg: DisabledByReceiver, _: &mut Self::Context) {
        let current = self
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(msg.webhook_id);
        let Some(current) = current else { return };
        let mut w = (*current).clone();
        w.enabled = false;
        w.disabled_reason = Some(msg.reason.clone());
        self.registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .upsert(Arc::new(w));
        let changes = WebhookChanges {
            enabled: Some(false),
            disabled_reason: Some(Some(msg.reason)),
            updated_at: Some(crate::db::store::now()),
            ..Default::default()
        };
        // Its own task, so that the router keeps routing during an outage, and a write is never
        // dropped half-way (STACK.md, SQLite on actix).
        let (db, id) = (self.deps.db.clone(), msg.webhook_id);
        tokio::spawn(async move {
            if !store_disable(db, id, changes).await {
                tracing::debug!(
                    webhook_id = id,
                    "410 disable: the webhook was deleted meanwhile"
                );
            }
        });
    }
}

/// Writes a receiver's disable, retrying with backoff like the recorder's writes until the
/// database takes it; false when the webhook no longer exists.
async fn store_disable(db: DbPool, webhook_id: i64, changes: WebhookChanges) -> bool {
    let mut backoff = Duration::from_millis(50);
    let mut failures = 0u32;
    loop {
        let result = match db.write().await {
            Ok(mut conn) => update_webhook(&mut conn, webhook_id, &changes)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(row) => {
                if failures > 0 {
                    tracing::info!(webhook_id, failures, "410 disable stored after retries");
                }
                return row.is_some();
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(
                    webhook_id, error = %e, failures,
                    "could not store the 410 disable; retrying"
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

impl Handler<Drain> for Router {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        let addrs: Vec<_> = self.actors.values().cloned().collect();
        Box::pin(async move {
            let mut total = 0;
            for a in addrs {
                total += a.send(Drain).await.unwrap_or(0);
            }
            total
        })
    }
}
