//! The tasks that make several nodes act as one (PostgreSQL only):
//! - the heartbeat keeps this node's row live, and stops every attempt here once it cannot renew
//!   for most of a lease's life, before another node may take the webhooks over;
//! - the balancer claims free webhooks by rendezvous hashing and hands over the ones another live
//!   node should have, each only after its attempts in flight have finished and been recorded;
//! - the listener applies what other nodes change (registry, new deliveries, membership), and
//!   reloads everything after it reconnects.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures::StreamExt;
use tokio::sync::{watch, Notify};

use super::{assign, Cluster, ClusterView, NodeView};
use crate::actors::status::OwnerSnapshot;
use crate::actors::Dispatcher;
use crate::db::store::cluster::{
    self as store, CLUSTER_CHANNEL, DELIVERIES_CHANNEL, REGISTRY_CHANNEL,
};
use crate::db::store::webhooks;
use crate::db::{DbConn, DbPool};
use crate::secrets::SecretCipher;

/// Longest a hand-over waits for the attempts in flight.
const HANDOVER_DRAIN: Duration = Duration::from_secs(10);
/// Rounds a webhook may stay without owner before any node, not only its rendezvous node, takes it.
const RESCUE_ROUNDS: u32 = 3;

/// Handle to the running cluster tasks.
#[derive(Clone)]
pub struct ClusterRuntime {
    shared: Arc<Shared>,
}

struct Shared {
    cluster: Cluster,
    db: DbPool,
    url: String,
    dispatcher: Dispatcher,
    cipher: SecretCipher,
    /// Wakes the balancer early (membership changed, a webhook was created or released).
    kick: Notify,
    /// Set when another process took this node id over: the server must stop.
    replaced: watch::Sender<bool>,
    /// This node stopped sending because it could not renew its heartbeat in time.
    fenced: AtomicBool,
    /// When the last successful heartbeat was sent.
    last_renewed: Mutex<Instant>,
    /// When the listener last heard this node's own ping (a dead listener hears nothing).
    last_ping: Mutex<Instant>,
    stopping: AtomicBool,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// How often the heartbeat renews and the balancer looks: a fifth of the lease, at most 500 ms
/// (health snapshots on other nodes are then at most about a second old).
fn tick_of(ttl: Duration) -> Duration {
    (ttl / 5).min(Duration::from_millis(500))
}

impl ClusterRuntime {
    /// Joins the cluster (this node's row, taking the id over from a process still holding it)
    /// and starts the heartbeat, the balancer and the listener.
    pub async fn start(
        cluster: Cluster,
        db: DbPool,
        url: String,
        dispatcher: Dispatcher,
        cipher: SecretCipher,
    ) -> anyhow::Result<Self> {
        let ttl_ms = ttl_ms(&cluster);
        let took_over_live = {
            let mut conn = pg(&db).await?;
            let live =
                store::join(&mut conn, cluster.node_id(), cluster.incarnation(), ttl_ms).await?;
            use crate::db::store::cluster::Notify as _;
            conn.notify(CLUSTER_CHANNEL, format!("join:{}", cluster.node_id()))
                .await?;
            live
        };
        if took_over_live {
            tracing::warn!(
                node = cluster.node_id(),
                "took this node id over from a process that is still live; it stops within the lease TTL"
            );
        }
        let (replaced, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            cluster,
            db,
            url,
            dispatcher,
            cipher,
            kick: Notify::new(),
            replaced,
            fenced: AtomicBool::new(false),
            last_renewed: Mutex::new(Instant::now()),
            last_ping: Mutex::new(Instant::now()),
            stopping: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        });
        // The process this one replaced keeps sending until its next heartbeat tells it: its leases
        // are only taken once they have surely expired.
        let hold_off = if took_over_live {
            shared.cluster.ttl()
        } else {
            Duration::ZERO
        };
        let tasks = vec![
            tokio::spawn(heartbeat(shared.clone())),
            tokio::spawn(balancer(shared.clone(), hold_off)),
            tokio::spawn(listener(shared.clone())),
        ];
        *lock(&shared.tasks) = tasks;
        Ok(Self { shared })
    }

    /// Resolves when another process has taken this node id over.
    pub async fn replaced(&self) {
        let mut rx = self.shared.replaced.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Looks at ownership now (after a webhook was created here).
    pub fn kick(&self) {
        self.shared.kick.notify_one();
    }

    /// Shutdown has begun: claim nothing more (the heartbeat goes on while the attempts in flight
    /// finish, so that the leases stay this node's until [`Self::leave`] releases them).
    pub fn stop_claiming(&self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
    }

    /// Stops the tasks, gives up every lease and leaves the live list, after the dispatcher has
    /// drained and recorded everything (SIGTERM).
    pub async fn leave(&self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.shared.kick.notify_one();
        let tasks: Vec<_> = lock(&self.shared.tasks).drain(..).collect();
        let [heartbeat, balancer, listener]: [tokio::task::JoinHandle<()>; 3] =
            match tasks.try_into() {
                Ok(t) => t,
                Err(_) => return,
            };
        // The balancer ends its round first: aborted inside a transaction, its pooled connection
        // would go back to the pool with the transaction open and its lease rows locked.
        let balancer_abort = balancer.abort_handle();
        if tokio::time::timeout(HANDOVER_DRAIN + Duration::from_secs(5), balancer)
            .await
            .is_err()
        {
            balancer_abort.abort();
        }
        // These two hold connections of their own, which close with them.
        heartbeat.abort();
        listener.abort();
        let c = &self.shared.cluster;
        let ids = c.forget_all_owned();
        let result = async {
            let mut conn = pg(&self.shared.db).await?;
            if !ids.is_empty() {
                let snaps = self.shared.dispatcher.snapshots(&ids);
                store::release(&mut conn, c.node_id(), c.incarnation(), &ids, &snaps).await?;
            }
            store::leave(&mut conn, c.node_id(), c.incarnation()).await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not leave the cluster; other nodes take over when the lease expires");
        }
    }

    /// After a `DELETE` of `webhook_id` committed and its actor here (if any) stopped: drops this
    /// node's lease, or returns once the owner (another node) has confirmed it stopped, or its
    /// lease has expired.
    pub async fn deleted(&self, webhook_id: i64) {
        let c = &self.shared.cluster;
        if c.forget_owned(webhook_id) {
            if let Ok(mut conn) = pg(&self.shared.db).await {
                if let Err(e) = store::drop_lease(&mut conn, webhook_id, Some(c.node_id())).await {
                    tracing::warn!(webhook_id, error = %e, "dropping the lease of a deleted webhook failed");
                }
            }
            return;
        }
        let deadline = Instant::now() + c.ttl() + Duration::from_secs(2);
        loop {
            let holder = match pg(&self.shared.db).await {
                Ok(mut conn) => store::holder(&mut conn, webhook_id).await.ok(),
                Err(_) => None,
            };
            match holder {
                Some(Some(node)) if node != c.node_id() && Instant::now() < deadline => {}
                Some(None) => {
                    if let Ok(mut conn) = pg(&self.shared.db).await {
                        let _ = store::drop_lease(&mut conn, webhook_id, None).await;
                    }
                    return;
                }
                _ => return,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET /api/cluster`.
    pub async fn view(&self) -> anyhow::Result<ClusterView> {
        let c = &self.shared.cluster;
        let mut conn = pg(&self.shared.db).await?;
        let nodes = store::live_nodes(&mut conn).await?;
        let counts: HashMap<String, i64> =
            store::owned_counts(&mut conn).await?.into_iter().collect();
        Ok(ClusterView {
            node: c.node_id().to_string(),
            lease_ttl_ms: ttl_ms(c) as u64,
            nodes: nodes
                .into_iter()
                .map(|n| NodeView {
                    webhooks: counts.get(&n.node_id).copied().unwrap_or(0).max(0) as u64,
                    id: n.node_id,
                    started_at: n.started_at,
                    heartbeat_at: n.heartbeat_at,
                })
                .collect(),
        })
    }
}

fn ttl_ms(c: &Cluster) -> i64 {
    i64::try_from(c.ttl().as_millis()).unwrap_or(i64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn pg(
    db: &DbPool,
) -> anyhow::Result<diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>> {
    match db.write().await? {
        DbConn::Pg(c) => Ok(c),
        DbConn::Sqlite(_) => anyhow::bail!("the cluster runs on PostgreSQL only"),
    }
}

/// Renews this node's row every tick; stops sending here when renewal has failed for three
/// quarters of the lease (the lease, judged by the database's clock from the last renewal, cannot
/// have expired yet), and signals when another process took the node id over.
async fn heartbeat(s: Arc<Shared>) {
    let c = s.cluster.clone();
    let tick = tick_of(c.ttl());
    let fence_after = c.ttl() * 3 / 4;
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A connection of its own: a pool drained by a busy intake must not starve the heartbeat.
    let mut conn: Option<AsyncPgConnection> = None;
    loop {
        every.tick().await;
        let sent = Instant::now();
        let renewed = tokio::time::timeout(tick, async {
            if conn.is_none() {
                conn = Some(AsyncPgConnection::establish(&s.url).await?);
            }
            let Some(db) = conn.as_mut() else {
                anyhow::bail!("no connection");
            };
            let live = store::heartbeat(db, c.node_id(), c.incarnation(), ttl_ms(&c)).await?;
            use crate::db::store::cluster::Notify as _;
            // Heard back by our own listener: proof that it still hears the others.
            db.notify(
                CLUSTER_CHANNEL,
                format!("ping:{}:{}", c.node_id(), c.incarnation()),
            )
            .await?;
            anyhow::Ok(live)
        })
        .await;
        match renewed {
            Ok(Ok(true)) => {
                *lock(&s.last_renewed) = sent;
                if s.fenced.swap(false, Ordering::Relaxed) {
                    tracing::info!("heartbeat renewed again: taking webhooks back");
                    s.kick.notify_one();
                }
            }
            Ok(Ok(false)) => {
                tracing::error!(
                    node = c.node_id(),
                    "another process took this node id over; stopping"
                );
                stop_everything(&s).await;
                let _ = s.replaced.send(true);
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "heartbeat failed");
                conn = None;
            }
            Err(_) => {
                tracing::warn!("heartbeat timed out");
                conn = None;
            }
        }
        let silent = lock(&s.last_renewed).elapsed();
        if silent >= fence_after && !s.fenced.swap(true, Ordering::Relaxed) {
            tracing::error!(
                silent_ms = silent.as_millis() as u64,
                "cannot renew this node's lease: stopping every attempt before it expires"
            );
            stop_everything(&s).await;
        }
    }
}

/// Stops every webhook actor here at once (nothing more starts), without touching the database.
async fn stop_everything(s: &Shared) {
    let ids = s.cluster.forget_all_owned();
    s.dispatcher.disown(&ids, Duration::ZERO).await;
}

/// Claims, hands over and publishes health, every tick or when kicked.
async fn balancer(s: Arc<Shared>, hold_off: Duration) {
    tokio::time::sleep(hold_off).await;
    let tick = tick_of(s.cluster.ttl());
    let mut unowned_rounds: HashMap<i64, u32> = HashMap::new();
    let mut published: HashMap<i64, u64> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = s.kick.notified() => {}
        }
        if s.stopping.load(Ordering::Relaxed) {
            return;
        }
        if s.fenced.load(Ordering::Relaxed) {
            continue;
        }
        if let Err(e) = balance(&s, &mut unowned_rounds).await {
            tracing::warn!(error = %e, "balancing webhooks failed; retrying");
        }
        if let Err(e) = publish_health(&s, &mut published).await {
            tracing::debug!(error = %e, "publishing health failed");
        }
    }
}

async fn balance(s: &Shared, unowned_rounds: &mut HashMap<i64, u32>) -> anyhow::Result<()> {
    let c = &s.cluster;
    let me = c.node_id().to_string();
    let mut conn = pg(&s.db).await?;
    let nodes: Vec<String> = store::live_nodes(&mut conn)
        .await?
        .into_iter()
        .map(|n| n.node_id)
        .collect();
    c.set_live_nodes(nodes.len());
    if !nodes.contains(&me) {
        return Ok(()); // not live (yet, or any more): the heartbeat sorts it out
    }
    let leases: HashMap<i64, store::LeaseRow> = store::leases(&mut conn)
        .await?
        .into_iter()
        .map(|l| (l.webhook_id, l))
        .collect();
    let all = s.dispatcher.webhook_ids();
    let placed = assign(&nodes, &all);
    let belongs_here = |id: i64| placed.get(&id).is_some_and(|&i| nodes[i] == me);
    let ids: HashSet<i64> = all.into_iter().collect();

    // Leases this node lost (it was cut off long enough for another node to take them).
    let lost: Vec<i64> = c
        .owned_ids()
        .into_iter()
        .filter(|id| {
            let ours = |l: &store::LeaseRow| {
                l.held && l.node_id.as_deref() == Some(me.as_str()) && Some(l.epoch) == c.epoch(*id)
            };
            !leases.get(id).is_some_and(ours)
        })
        .collect();
    if !lost.is_empty() {
        tracing::warn!(webhooks = lost.len(), "webhooks taken over by another node");
        for id in &lost {
            c.forget_owned(*id);
        }
        s.dispatcher.disown(&lost, Duration::ZERO).await;
    }

    // Claim the free webhooks this node should have (and, after a while, any free one).
    let mut to_claim = Vec::new();
    for &id in &ids {
        if c.owns(id) {
            unowned_rounds.remove(&id);
            continue;
        }
        let free = leases
            .get(&id)
            .is_none_or(|l| !l.held || l.node_id.as_deref() == Some(me.as_str()));
        if !free {
            unowned_rounds.remove(&id);
            continue;
        }
        let rounds = unowned_rounds.entry(id).or_insert(0);
        *rounds += 1;
        if belongs_here(id) || *rounds >= RESCUE_ROUNDS {
            to_claim.push(id);
        }
    }
    unowned_rounds.retain(|id, _| ids.contains(id));
    if !to_claim.is_empty() {
        let claimed = store::claim(&mut conn, &me, c.incarnation(), &to_claim).await?;
        for (id, epoch, health) in claimed {
            unowned_rounds.remove(&id);
            let snapshot = OwnerSnapshot::parse(health.as_deref());
            s.dispatcher
                .own(id, epoch, snapshot.map(|s| s.breaker))
                .await;
            // Owned once its actor (and the health it answers from) exists.
            c.set_owned(id, epoch);
        }
    }

    // Deleted webhooks whose lease this node still holds: confirm they stopped.
    for l in leases.values() {
        if !ids.contains(&l.webhook_id) && l.node_id.as_deref() == Some(me.as_str()) {
            if c.forget_owned(l.webhook_id) {
                s.dispatcher.disown(&[l.webhook_id], Duration::ZERO).await;
            }
            store::drop_lease(&mut conn, l.webhook_id, Some(&me)).await?;
        }
    }

    // Hand over what another live node should have; it claims on the release notification.
    let surplus: Vec<i64> = c
        .owned_ids()
        .into_iter()
        .filter(|id| ids.contains(id) && placed.contains_key(id) && !belongs_here(*id))
        .collect();
    drop(conn);
    if !surplus.is_empty() {
        hand_over(s, &surplus).await?;
    }
    Ok(())
}

/// Stops sending `ids` here (new deliveries go to the next owner from now on), waits for their
/// attempts in flight and their outcomes, then gives the leases up.
async fn hand_over(s: &Shared, ids: &[i64]) -> anyhow::Result<()> {
    let c = &s.cluster;
    for id in ids {
        c.forget_owned(*id);
    }
    let snapshots = s.dispatcher.disown(ids, HANDOVER_DRAIN).await;
    let mut conn = pg(&s.db).await?;
    store::release(&mut conn, c.node_id(), c.incarnation(), ids, &snapshots).await?;
    tracing::info!(webhooks = ids.len(), "handed webhooks over");
    Ok(())
}

/// Publishes the health of owned webhooks that changed since the last round (an idle webhook
/// costs neither a serialisation nor a row write).
async fn publish_health(s: &Shared, published: &mut HashMap<i64, u64>) -> anyhow::Result<()> {
    let c = &s.cluster;
    published.retain(|id, _| c.owns(*id));
    let changed = s.dispatcher.changed_snapshots(&c.owned_ids(), published);
    if changed.is_empty() {
        return Ok(());
    }
    let mut conn = pg(&s.db).await?;
    let rows = changed
        .iter()
        .map(|(id, _, snap)| (*id, snap.clone()))
        .collect();
    store::publish_health(&mut conn, c.node_id(), c.incarnation(), rows).await?;
    published.extend(changed.into_iter().map(|(id, version, _)| (id, version)));
    Ok(())
}

/// Listens for other nodes' changes on a connection of its own; after every (re)connect it
/// reloads the registry and pages in every owned webhook, since notifications may have been lost.
async fn listener(s: Arc<Shared>) {
    let tick = tick_of(s.cluster.ttl());
    // Our own ping comes back every tick; silence for this long means the connection is dead.
    let deaf_after = (tick * 6).max(Duration::from_secs(2));
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut conn = match AsyncPgConnection::establish(&s.url).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cluster listener cannot connect; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let listen = format!(
            "LISTEN {REGISTRY_CHANNEL}; LISTEN {DELIVERIES_CHANNEL}; LISTEN {CLUSTER_CHANNEL};"
        );
        if let Err(e) = conn.batch_execute(&listen).await {
            tracing::warn!(error = %e, "cluster listener cannot LISTEN; retrying");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        *lock(&s.last_ping) = Instant::now();
        if let Err(e) = reload(&s).await {
            tracing::warn!(error = %e, "reloading the registry failed; reconnecting");
            continue;
        }
        let mut stream = Box::pin(conn.notifications_stream());
        loop {
            match tokio::time::timeout(tick, stream.next()).await {
                Ok(Some(Ok(n))) => handle(&s, &n.channel, &n.payload).await,
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "cluster listener failed; reconnecting");
                    break;
                }
                Ok(None) => {
                    tracing::warn!("cluster listener connection closed; reconnecting");
                    break;
                }
                Err(_) => {}
            }
            if lock(&s.last_ping).elapsed() > deaf_after {
                tracing::warn!("cluster listener hears nothing; reconnecting");
                break;
            }
        }
    }
}

/// Brings the registry in line with the database and pages in every owned webhook.
async fn reload(s: &Shared) -> anyhow::Result<()> {
    // Counted before the snapshot: what the API changes while it is read is newer and stays.
    let since = s.dispatcher.registry_changes();
    let mut conn = s.db.read().await?;
    let rows = webhooks::all_webhooks(&mut conn).await?;
    drop(conn);
    let node = s.cluster.node_id();
    crate::testing::reload_point(node, crate::testing::ReloadPoint::SnapshotRead).await;
    let hooks = crate::app::usable_webhooks(rows, &s.cipher)?;
    s.dispatcher.reload(hooks, since).await?;
    s.dispatcher.page(&s.cluster.owned_ids());
    s.kick.notify_one();
    crate::testing::reload_point(node, crate::testing::ReloadPoint::Applied).await;
    Ok(())
}

async fn handle(s: &Shared, channel: &str, payload: &str) {
    let c = &s.cluster;
    match channel {
        REGISTRY_CHANNEL => {
            let Ok(id) = payload.parse::<i64>() else {
                return;
            };
            if let Err(e) = apply_registry_change(s, id).await {
                tracing::warn!(webhook_id = id, error = %e, "applying a registry change failed");
            }
        }
        DELIVERIES_CHANNEL => {
            let ids: Vec<i64> = store::parse_ids(payload)
                .into_iter()
                .filter(|id| c.owns(*id))
                .collect();
            s.dispatcher.page(&ids);
        }
        CLUSTER_CHANNEL => {
            if payload == format!("ping:{}:{}", c.node_id(), c.incarnation()) {
                *lock(&s.last_ping) = Instant::now();
            } else if !payload.starts_with("ping:") {
                s.kick.notify_one();
            }
        }
        _ => {}
    }
}

/// Applies one webhook's current row: changed, created, or deleted (then its actor here stops and
/// its lease is dropped, which is what a `DELETE` answered on another node waits for).
async fn apply_registry_change(s: &Shared, id: i64) -> anyhow::Result<()> {
    let c = &s.cluster;
    let mut conn = s.db.read().await?;
    let row = webhooks::find_webhook(&mut conn, id).await?;
    drop(conn);
    match row {
        Some(row) => {
            let known = s.dispatcher.webhook(id).is_some();
            let hooks = crate::app::usable_webhooks(vec![row], &s.cipher)?;
            for w in hooks {
                s.dispatcher.upsert(w).await?;
            }
            if !known {
                s.kick.notify_one();
            }
        }
        None => {
            s.dispatcher.remove(id).await?;
            if c.forget_owned(id) {
                let mut conn = pg(&s.db).await?;
                store::drop_lease(&mut conn, id, Some(c.node_id())).await?;
            }
        }
    }
    Ok(())
}
