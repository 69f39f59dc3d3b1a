//! Router actor: keeps the webhook registry in step with the API, owns one supervised
//! [`WebhookActor`] per registration, and hands each new delivery to its webhook's actor.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;

use super::messages::*;
use super::registry::SharedRegistry;
use super::webhook::WebhookActor;
use super::WebhookDeps;
use crate::db::models::WebhookChanges;
use crate::domain::{DeliveryStatus, Webhook};

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
        for job in jobs {
            self.deps.recorder.do_send(Record(Outcome::closed(
                job.delivery_id,
                DeliveryStatus::Cancelled,
                "webhook deleted",
                i64::from(job.attempts_made),
            )));
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
        let db = self.deps.db.clone();
        let now = crate::db::store::now();
        let changes = WebhookChanges {
            enabled: Some(false),
            disabled_reason: Some(Some(msg.reason)),
            updated_at: Some(now),
            ..Default::default()
        };
        tokio::spawn(async move {
            let result = match db.write().await {
                Ok(mut conn) => {
                    crate::db::store::webhooks::update_webhook(&mut conn, msg.webhook_id, &changes)
                        .await
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = result {
                tracing::error!(webhook_id = msg.webhook_id, error = %e, "could not store the 410 disable");
            }
        });
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
