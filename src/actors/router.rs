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
use serde_json::json;

use crate::cluster::Cluster;
use crate::db::models::{WebhookChanges, WebhookRow};
use crate::db::store::audit::NewAuditEntry;
use crate::db::store::webhooks::update_webhook_audited;
use crate::db::DbPool;
use crate::delivery::breaker::{BreakerSnapshot, CircuitBreaker};
use crate::domain::audit;
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
    /// Which webhooks run here: all of them on SQLite, the owned ones on PostgreSQL.
    cluster: Cluster,
}

impl Router {
    /// A router that starts actors for `webhooks` when it starts.
    pub fn new(
        registry: SharedRegistry,
        deps: Arc<WebhookDeps>,
        arbiters: Vec<ArbiterHandle>,
        webhooks: Vec<Arc<Webhook>>,
        with_backlog: HashSet<i64>,
        cluster: Cluster,
    ) -> Self {
        Self {
            registry,
            deps,
            actors: HashMap::new(),
            arbiters,
            boot: Some((webhooks, with_backlog)),
            cluster,
        }
    }

    fn spawn_actor(
        &mut self,
        webhook: Arc<Webhook>,
        backlog: bool,
        me: Recipient<DisabledByReceiver>,
        lease: Option<(i64, Option<BreakerSnapshot>)>,
    ) {
        let id = webhook.id;
        let status = {
            let mut registry = self.registry.write().unwrap_or_else(|p| p.into_inner());
            registry.upsert(webhook.clone());
            if lease.is_some() {
                // Health counts from when this node took the webhook over.
                registry.fresh_status(id)
            } else {
                registry.status(id)
            }
        };
        if let Some((_, Some(snap))) = &lease {
            // Health answers with the resumed breaker from the moment the lease is ours, not
            // only once the actor has started on its thread.
            status.set_circuit(&CircuitBreaker::restore(webhook.breaker, snap));
        }
        let deps = self.deps.clone();
        let arbiter = &self.arbiters[(id.unsigned_abs() as usize) % self.arbiters.len()];
        let addr = Supervisor::start_in_arbiter(arbiter, move |_| {
            WebhookActor::new(webhook, deps, me, status, backlog, lease)
        });
        self.actors.insert(id, addr);
    }

    /// Deliveries committed for webhooks whose actor is not here: the owner hears of them.
    fn forward(&self, ids: Vec<i64>) {
        let db = self.deps.db.clone();
        tokio::spawn(async move {
            let Ok(mut conn) = db.write().await else {
                return; // the owner pages them in on its next reload
            };
            if let crate::db::DbConn::Pg(c) = &mut conn {
                use crate::db::store::cluster::{id_payloads, Notify, DELIVERIES_CHANNEL};
                for payload in id_payloads(&ids) {
                    let _ = c.notify(DELIVERIES_CHANNEL, payload).await;
                }
            }
        });
    }

    fn cancel_orphans(&self, jobs: Vec<Job>) {
        for job in jobs {
            self.deps.recorder.record(Outcome::closed(
                job.delivery_id,
                DeliveryStatus::Cancelled,
                "webhook deleted",
                i64::from(job.attempts_made),
            ));
        }
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some((webhooks, backlog)) = self.boot.take() {
            let me = ctx.address().recipient();
            for w in webhooks {
                if self.cluster.is_clustered() {
                    // Actors start as leases are claimed.
                    self.registry
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .upsert(w);
                    continue;
                }
                let has_backlog = backlog.contains(&w.id);
                self.spawn_actor(w, has_backlog, me.clone(), None);
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
            None if self.cluster.is_clustered() => {
                self.registry
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .upsert(webhook);
            }
            None => self.spawn_actor(webhook, false, ctx.address().recipient(), None),
        }
    }
}

impl Handler<Own> for Router {
    type Result = ();

    fn handle(&mut self, msg: Own, ctx: &mut Self::Context) {
        let webhook = self
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(msg.webhook_id);
        let Some(webhook) = webhook else { return };
        if let Some(old) = self.actors.remove(&msg.webhook_id) {
            old.do_send(Retire);
        }
        let lease = Some((msg.epoch, msg.breaker));
        self.spawn_actor(webhook, true, ctx.address().recipient(), lease);
    }
}

impl Handler<Disown> for Router {
    type Result = ResponseFuture<Vec<Option<String>>>;

    fn handle(&mut self, msg: Disown, _: &mut Self::Context) -> Self::Result {
        let addrs: Vec<(i64, Option<Addr<WebhookActor>>)> = msg
            .ids
            .iter()
            .map(|id| (*id, self.actors.remove(id)))
            .collect();
        let registry = self.registry.clone();
        let deadline = tokio::time::Instant::now() + msg.drain;
        Box::pin(async move {
            // Every actor stops starting attempts first; then their attempts in flight finish.
            for (_, addr) in &addrs {
                if let Some(a) = addr {
                    let _ = a.send(Drain).await;
                }
            }
            for (_, addr) in &addrs {
                let Some(a) = addr else { continue };
                while a.send(Drain).await.unwrap_or(0) > 0 && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                let _ = a.send(Retire).await;
            }
            let registry = registry.read().unwrap_or_else(|p| p.into_inner());
            addrs
                .iter()
                .map(|(id, _)| registry.entry(*id).map(|(_, status)| status.snapshot(*id)))
                .collect()
        })
    }
}

impl Handler<Page> for Router {
    type Result = ();

    fn handle(&mut self, msg: Page, _: &mut Self::Context) {
        for id in msg.0 {
            if let Some(a) = self.actors.get(&id) {
                a.do_send(PageIn);
            }
        }
    }
}

impl Handler<Reload> for Router {
    type Result = ();

    fn handle(&mut self, msg: Reload, ctx: &mut Self::Context) {
        let plan = self
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .reload_plan(msg.snapshot, msg.since);
        for id in plan.gone {
            self.registry
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
            if let Some(a) = self.actors.remove(&id) {
                a.do_send(Retire);
            }
        }
        for w in plan.apply {
            <Self as Handler<Upsert>>::handle(self, Upsert(w), ctx);
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
        let mut elsewhere = Vec::new();
        for (id, jobs) in per_webhook {
            match self.actors.get(&id) {
                Some(addr) => addr.do_send(Enqueue {
                    jobs,
                    force: msg.force,
                }),
                // "No actor here" means "owned elsewhere" in a cluster, unless it is gone.
                None if self.cluster.is_clustered() && self.is_known(id) => elsewhere.push(id),
                None => self.cancel_orphans(jobs),
            }
        }
        if !elsewhere.is_empty() {
            self.forward(elsewhere);
        }
    }
}

impl Handler<DisabledByReceiver> for Router {
    type Result = ();

    /// The registry stops matching the webhook at once (its actor has already stopped sending),
    /// and the disable is written through the same store call as the API's updates, retried until
    /// the database has it. Once written, the registry is brought in line with the database again
    /// (an admin's change that landed during the retries was overwritten there).
    fn handle(&mut self, msg: DisabledByReceiver, ctx: &mut Self::Context) {
        // Several attempts in flight may each get a 410: the first disables; the others find it
        // disabled and change nothing, so the webhook keeps the first reason and one audit entry.
        if self.is_disabled(msg.webhook_id) {
            return;
        }
        if !self.disable_in_registry(msg.webhook_id, &msg.reason, None) {
            return;
        }
        // Its own task, so that the router keeps routing during an outage, and a write is never
        // dropped half-way (on an actix thread, dropping an in-flight SQLite query panics).
        let (db, id, reason) = (self.deps.db.clone(), msg.webhook_id, msg.reason);
        let write = tokio::spawn(store_disable(db, id, reason.clone()));
        ctx.spawn(
            write
                .into_actor(self)
                .map(move |stored, act, _| match stored {
                    Ok(Some(at)) => {
                        act.disable_in_registry(id, &reason, Some(at));
                    }
                    _ => tracing::debug!(webhook_id = id, "410 disable: the webhook is gone"),
                }),
        );
    }
}

impl Router {
    /// True when the registry holds the webhook.
    fn is_known(&self, id: i64) -> bool {
        let registry = self.registry.read().unwrap_or_else(|p| p.into_inner());
        registry.get(id).is_some()
    }

    /// True when the registry holds the webhook as disabled.
    fn is_disabled(&self, id: i64) -> bool {
        let registry = self.registry.read().unwrap_or_else(|p| p.into_inner());
        registry.get(id).is_some_and(|w| !w.enabled)
    }

    /// Marks a webhook disabled in the registry and tells its actor; with `written_at`, only when
    /// nothing newer than that write reached the registry meanwhile. False when it is unknown.
    fn disable_in_registry(
        &mut self,
        id: i64,
        reason: &str,
        written_at: Option<chrono::NaiveDateTime>,
    ) -> bool {
        let current = self
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id);
        let Some(current) = current else { return false };
        let newer = written_at.is_some_and(|at| current.updated_at.naive_utc() > at);
        if newer || (!current.enabled && current.disabled_reason.as_deref() == Some(reason)) {
            return true;
        }
        let mut w = (*current).clone();
        w.enabled = false;
        w.disabled_reason = Some(reason.to_string());
        if let Some(at) = written_at {
            w.updated_at = crate::domain::utc(at);
        }
        let w = Arc::new(w);
        self.registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .upsert(w.clone());
        if let Some(addr) = self.actors.get(&id) {
            addr.do_send(Configure(w));
        }
        true
    }
}

/// Writes a receiver's disable, retrying with backoff like the recorder's writes until the
/// database takes it; answers the `updated_at` written, None when the webhook no longer exists.
async fn store_disable(
    db: DbPool,
    webhook_id: i64,
    reason: String,
) -> Option<chrono::NaiveDateTime> {
    let mut backoff = Duration::from_millis(50);
    let mut failures = 0u32;
    loop {
        // Stamped per try: the write that lands is the one whose time orders it against others.
        let at = crate::db::store::now();
        let changes = WebhookChanges {
            enabled: Some(false),
            disabled_reason: Some(Some(reason.clone())),
            updated_at: Some(at),
            ..Default::default()
        };
        let result = match db.write().await {
            Ok(mut conn) => disable_audited(&mut conn, webhook_id, changes, reason.clone())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(row) => {
                if failures > 0 {
                    tracing::info!(webhook_id, failures, "410 disable stored after retries");
                }
                // A webhook found disabled already (another node's 410, an admin, or this write
                // committed by a try that reported an error) was left as it was.
                let ours = |r: &WebhookRow| r.disabled_reason.as_deref() == Some(reason.as_str());
                return row.filter(ours).map(|_| at);
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

/// Disables a webhook that is still enabled, with its `webhook.disabled` entry by `system` in the
/// same transaction; one already disabled is left alone, so the disable is recorded once however
/// many nodes see the 410.
async fn disable_audited(
    conn: &mut crate::db::DbConn,
    webhook_id: i64,
    changes: WebhookChanges,
    reason: String,
) -> diesel::QueryResult<Option<WebhookRow>> {
    let change = move |row: WebhookRow| Ok(row.enabled.then_some(changes));
    let audit = move |before: &WebhookRow, after: &WebhookRow| {
        let mut e = NewAuditEntry::new(audit::SYSTEM, audit::action::WEBHOOK_DISABLED);
        e.tenant_id = Some(after.tenant_id.clone());
        e.webhook_id = Some(after.webhook_id);
        let was = json!({ "enabled": before.enabled, "disabled_reason": before.disabled_reason });
        let now = json!({ "enabled": false, "disabled_reason": reason });
        Some(e.states(Some(was), Some(now)))
    };
    update_webhook_audited(conn, webhook_id, change, audit).await
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
