//! Several nodes on one PostgreSQL database (README, Running several nodes): which webhooks this
//! node owns, who else is live, and the view `/api/cluster` answers. On SQLite the cluster is this
//! one process, owning every webhook.
//!
//! The moving parts live in [`runtime`]: a heartbeat that keeps this node's row live, a balancer
//! that claims and hands over webhook leases by rendezvous hashing, and a listener that applies
//! other nodes' changes (LISTEN/NOTIFY).

pub mod runtime;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// This node's place in the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    /// Tells this process from an earlier one that had the same node id.
    incarnation: String,
    ttl: Duration,
    /// PostgreSQL: ownership is by lease. SQLite: this process owns everything.
    clustered: bool,
    started_at: DateTime<Utc>,
    /// Webhooks this node owns, with their lease epoch (clustered only).
    owned: RwLock<HashMap<i64, i64>>,
    live_nodes: AtomicUsize,
}

/// `GET /api/cluster`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClusterView {
    /// The node that answered.
    pub node: String,
    /// `BEEMA_LEASE_TTL_MS`.
    pub lease_ttl_ms: u64,
    /// The live nodes, by id.
    pub nodes: Vec<NodeView>,
}

/// One live node of [`ClusterView`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeView {
    /// Its `BEEMA_NODE_ID`.
    pub id: String,
    /// Webhooks it owns now.
    pub webhooks: u64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
}

impl Cluster {
    /// A node of a PostgreSQL cluster (`clustered`) or the single SQLite process.
    pub fn new(node_id: String, ttl: Duration, clustered: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                node_id,
                incarnation: uuid::Uuid::new_v4().simple().to_string(),
                ttl,
                clustered,
                started_at: Utc::now(),
                owned: RwLock::new(HashMap::new()),
                live_nodes: AtomicUsize::new(1),
            }),
        }
    }

    /// `BEEMA_NODE_ID`.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// This process's incarnation of the node id.
    pub fn incarnation(&self) -> &str {
        &self.inner.incarnation
    }

    /// `BEEMA_LEASE_TTL_MS`.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// True on PostgreSQL, where webhooks are owned by lease.
    pub fn is_clustered(&self) -> bool {
        self.inner.clustered
    }

    /// When this process started.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.inner.started_at
    }

    /// True when this node runs the webhook's actor (always on SQLite).
    pub fn owns(&self, webhook_id: i64) -> bool {
        !self.inner.clustered || self.owned_read().contains_key(&webhook_id)
    }

    /// The epoch of this node's lease of the webhook (None on SQLite, or when not owned).
    pub fn epoch(&self, webhook_id: i64) -> Option<i64> {
        self.owned_read().get(&webhook_id).copied()
    }

    /// The webhooks this node owns (clustered only).
    pub fn owned_ids(&self) -> Vec<i64> {
        self.owned_read().keys().copied().collect()
    }

    /// How many webhooks this node owns (clustered only).
    pub fn owned_count(&self) -> usize {
        self.owned_read().len()
    }

    /// Live nodes as last seen (1 on SQLite).
    pub fn live_nodes(&self) -> usize {
        self.inner.live_nodes.load(Ordering::Relaxed)
    }

    pub(crate) fn set_live_nodes(&self, n: usize) {
        self.inner.live_nodes.store(n.max(1), Ordering::Relaxed);
    }

    pub(crate) fn set_owned(&self, webhook_id: i64, epoch: i64) {
        self.owned_write().insert(webhook_id, epoch);
    }

    pub(crate) fn forget_owned(&self, webhook_id: i64) -> bool {
        self.owned_write().remove(&webhook_id).is_some()
    }

    pub(crate) fn forget_all_owned(&self) -> Vec<i64> {
        self.owned_write().drain().map(|(id, _)| id).collect()
    }

    fn owned_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<i64, i64>> {
        self.inner.owned.read().unwrap_or_else(|p| p.into_inner())
    }

    fn owned_write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<i64, i64>> {
        self.inner.owned.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Which live node each webhook belongs to: rendezvous (highest random weight) hashing, evened
/// out. Each webhook goes to its highest-weight node, so every node computes the same answer from
/// the same membership and a joining or leaving node moves only its own share. With few webhooks
/// hashing alone can leave a node with nothing, so a node below half its fair share then takes,
/// from the busiest node, the webhooks that weigh most for it, until it has that half.
/// Answers, per webhook, an index into `nodes`.
pub fn assign(nodes: &[String], ids: &[i64]) -> HashMap<i64, usize> {
    let mut out = HashMap::with_capacity(ids.len());
    if nodes.is_empty() {
        return out;
    }
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut held: Vec<Vec<i64>> = vec![Vec::new(); nodes.len()];
    for &id in &sorted {
        let best = (0..nodes.len())
            .max_by_key(|&i| (weight(&nodes[i], id), &nodes[i]))
            .unwrap_or(0);
        held[best].push(id);
    }
    // Half of webhooks ÷ nodes, rounded up, where every node can have that many.
    let floor = half_share(sorted.len(), nodes.len());
    for short in 0..nodes.len() {
        while held[short].len() < floor {
            let busiest = (0..nodes.len())
                .max_by_key(|&i| (held[i].len(), std::cmp::Reverse(i)))
                .unwrap_or(0);
            if held[busiest].len() <= floor {
                break;
            }
            let Some(pos) =
                (0..held[busiest].len()).max_by_key(|&p| weight(&nodes[short], held[busiest][p]))
            else {
                break;
            };
            let id = held[busiest].swap_remove(pos);
            held[short].push(id);
        }
    }
    for (i, ids) in held.into_iter().enumerate() {
        for id in ids {
            out.insert(id, i);
        }
    }
    out
}

/// The least a node should own: half its fair share rounded up, as long as every node can.
fn half_share(webhooks: usize, nodes: usize) -> usize {
    webhooks.div_ceil(2 * nodes).min(webhooks / nodes)
}

/// A well-mixed 64-bit weight of (node, webhook): FNV-1a over both, then a splitmix finaliser.
fn weight(node: &str, webhook_id: i64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain(webhook_id.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn owners(nodes: &[String], ids: &[i64]) -> HashMap<i64, String> {
        assign(nodes, ids)
            .into_iter()
            .map(|(id, i)| (id, nodes[i].clone()))
            .collect()
    }

    #[test]
    fn every_node_gets_half_its_share_however_few_webhooks_there_are() {
        for names in [
            &["node-a", "node-b"][..],
            &["node-a", "node-b", "node-c"][..],
        ] {
            let all = nodes(names);
            for n in 1..=60i64 {
                let ids: Vec<i64> = (1..=n).collect();
                let got = owners(&all, &ids);
                assert_eq!(got.len(), n as usize);
                let half = half_share(n as usize, all.len());
                assert!(n < 2 * all.len() as i64 || half >= 1);
                for node in &all {
                    let has = got.values().filter(|o| *o == node).count();
                    assert!(
                        has >= half,
                        "{n} webhooks: {node} has {has}, half a share is {half}"
                    );
                }
            }
        }
        let three = nodes(&["node-a", "node-b", "node-c"]);
        let ids: Vec<i64> = (1..=3000).collect();
        let got = owners(&three, &ids);
        for n in &three {
            let has = got.values().filter(|o| *o == n).count();
            assert!((850..=1150).contains(&has), "{n} has {has} of 3000");
        }
    }

    #[test]
    fn a_new_webhook_moves_almost_nothing_placed_before_it() {
        let three = nodes(&["node-a", "node-b", "node-c"]);
        for n in [10i64, 99, 1000] {
            let before: Vec<i64> = (1..=n).collect();
            let after: Vec<i64> = (1..=n + 1).collect();
            let (b, a) = (owners(&three, &before), owners(&three, &after));
            let moved = before.iter().filter(|id| b[id] != a[id]).count();
            assert!(moved <= 1, "{moved} of {n} moved");
        }
    }

    #[test]
    fn a_joining_node_takes_only_webhooks_it_gains() {
        let two = nodes(&["node-a", "node-b"]);
        let three = nodes(&["node-a", "node-b", "node-c"]);
        let ids: Vec<i64> = (1..=3000).collect();
        let (b, a) = (owners(&two, &ids), owners(&three, &ids));
        let moved_between_old = ids
            .iter()
            .filter(|id| a[id] != b[id] && a[id] != "node-c")
            .count();
        assert_eq!(moved_between_old, 0, "webhooks moved between old nodes");
        assert!(assign(&[], &ids).is_empty());
    }

    #[test]
    fn sqlite_owns_everything() {
        let c = Cluster::new("solo".into(), Duration::from_secs(10), false);
        assert!(c.owns(42));
        assert_eq!(c.epoch(42), None);
        let pg = Cluster::new("a".into(), Duration::from_secs(10), true);
        assert!(!pg.owns(42));
        pg.set_owned(42, 3);
        assert!(pg.owns(42));
        assert_eq!(pg.epoch(42), Some(3));
    }
}
