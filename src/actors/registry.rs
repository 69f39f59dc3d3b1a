//! The in-memory registry of webhooks, indexed by (tenant, event type); the router keeps it in step
//! with the database and the intake reads it to find where an event goes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use super::status::WebhookStatus;
use crate::delivery::breaker::CircuitState;
use crate::domain::Webhook;
use crate::routing::pattern;

/// Shared handle: the router writes, the [`super::Dispatcher`] reads.
pub type SharedRegistry = Arc<RwLock<Registry>>;

/// Webhooks by id and by (tenant, event type).
#[derive(Default)]
pub struct Registry {
    /// Ordered by id, so that a health page is a range, not a sort of every webhook.
    webhooks: BTreeMap<i64, Arc<Webhook>>,
    /// Ids by (tenant, event type); a set, so that adding one of 10,000 webhooks on a route is cheap.
    by_route: HashMap<(String, String), BTreeSet<i64>>,
    statuses: HashMap<i64, Arc<WebhookStatus>>,
    /// Changes so far (upserts and removals), and the count at each webhook's latest change since
    /// the last reload: a reload from a snapshot of the database leaves alone what changed after
    /// the snapshot began.
    changes: u64,
    changed_at: HashMap<i64, u64>,
}

/// What a reload from a snapshot of the database does: the webhooks to forget, and those to apply.
#[derive(Debug, Default, PartialEq)]
pub struct ReloadPlan {
    pub gone: Vec<i64>,
    pub apply: Vec<Arc<Webhook>>,
}

impl Registry {
    /// Upserts and removals so far: read it before reading the snapshot a reload applies.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Brings the registry to `snapshot` (every webhook in the database), read after [`Self::changes`]
    /// answered `since`. A webhook upserted or removed after that is newer than the snapshot (the
    /// API changes the registry only after its commit), so it is left as it is: a webhook created
    /// while the snapshot was read must not vanish until its notification comes, nor a deleted one
    /// come back. The counts per webhook are forgotten: the next reload reads a later `since`, which
    /// every count so far is below, so the map holds only the changes between two reloads.
    pub fn reload_plan(&mut self, snapshot: Vec<Arc<Webhook>>, since: u64) -> ReloadPlan {
        let changed_at = std::mem::take(&mut self.changed_at);
        let newer = |id: &i64| changed_at.get(id).is_some_and(|&at| at > since);
        let keep: std::collections::HashSet<i64> = snapshot.iter().map(|w| w.id).collect();
        ReloadPlan {
            gone: self
                .webhooks
                .keys()
                .filter(|id| !keep.contains(id) && !newer(id))
                .copied()
                .collect(),
            apply: snapshot.into_iter().filter(|w| !newer(&w.id)).collect(),
        }
    }

    fn touch(&mut self, id: i64) {
        self.changes += 1;
        self.changed_at.insert(id, self.changes);
    }

    /// Adds or replaces a webhook; returns its status cell (kept across updates and actor restarts).
    pub fn upsert(&mut self, webhook: Arc<Webhook>) -> Arc<WebhookStatus> {
        self.touch(webhook.id);
        self.unindex(webhook.id);
        let route = (webhook.tenant_id.clone(), webhook.event_type.clone());
        self.by_route.entry(route).or_default().insert(webhook.id);
        let id = webhook.id;
        self.webhooks.insert(id, webhook);
        self.statuses
            .entry(id)
            .or_insert_with(|| Arc::new(WebhookStatus::default()))
            .clone()
    }

    /// The status cell of a webhook (made when missing).
    pub fn status(&mut self, id: i64) -> Arc<WebhookStatus> {
        self.statuses.entry(id).or_default().clone()
    }

    /// A new, empty status cell for a webhook (its counts start again).
    pub fn fresh_status(&mut self, id: i64) -> Arc<WebhookStatus> {
        let cell = Arc::new(WebhookStatus::default());
        self.statuses.insert(id, cell.clone());
        cell
    }

    /// Every webhook id.
    pub fn ids(&self) -> Vec<i64> {
        self.webhooks.keys().copied().collect()
    }

    /// Forgets a webhook.
    pub fn remove(&mut self, id: i64) {
        self.touch(id);
        self.unindex(id);
        self.webhooks.remove(&id);
        self.statuses.remove(&id);
    }

    fn unindex(&mut self, id: i64) {
        if let Some(old) = self.webhooks.get(&id) {
            let route = (old.tenant_id.clone(), old.event_type.clone());
            if let Some(ids) = self.by_route.get_mut(&route) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_route.remove(&route);
                }
            }
        }
    }

    /// The enabled webhooks an event goes to (exact type, `<prefix>/*` or `*`), in id order: one
    /// index lookup per route key of the type ([`pattern::route_keys`]), never a scan.
    pub fn matching(&self, tenant_id: &str, event_type: &str) -> Vec<Arc<Webhook>> {
        let mut out = Vec::new();
        let mut key = (tenant_id.to_string(), String::new());
        for ty in pattern::route_keys(event_type) {
            key.1 = ty;
            if let Some(ids) = self.by_route.get(&key) {
                out.extend(
                    ids.iter()
                        .filter_map(|id| self.webhooks.get(id))
                        .filter(|w| w.enabled)
                        .cloned(),
                );
            }
        }
        out.sort_by_key(|w| w.id);
        out
    }

    /// The enabled webhooks whose stored `event_type` is exactly `event_type` (no `*`), for the
    /// operational events' own routing.
    pub fn exact(&self, tenant_id: &str, event_type: &str) -> Vec<Arc<Webhook>> {
        let key = (tenant_id.to_string(), event_type.to_string());
        self.by_route.get(&key).map_or_else(Vec::new, |ids| {
            ids.iter()
                .filter_map(|id| self.webhooks.get(id))
                .filter(|w| w.enabled)
                .cloned()
                .collect()
        })
    }

    /// One webhook.
    pub fn get(&self, id: i64) -> Option<Arc<Webhook>> {
        self.webhooks.get(&id).cloned()
    }

    /// A webhook and its status cell.
    pub fn entry(&self, id: i64) -> Option<(Arc<Webhook>, Arc<WebhookStatus>)> {
        Some((
            self.webhooks.get(&id)?.clone(),
            self.statuses.get(&id)?.clone(),
        ))
    }

    /// Up to `limit` webhooks (a tenant's when given) with ids above `after`, in id order, with
    /// their status cells; only those whose breaker is in `state` when given.
    pub fn page(
        &self,
        tenant_id: Option<&str>,
        after: Option<i64>,
        limit: usize,
        state: Option<CircuitState>,
    ) -> Vec<(Arc<Webhook>, Arc<WebhookStatus>)> {
        let from = after.map_or(i64::MIN, |a| a.saturating_add(1));
        self.webhooks
            .range(from..)
            .filter(|(_, w)| tenant_id.is_none_or(|t| w.tenant_id == t))
            .filter_map(|(id, w)| Some((w.clone(), self.statuses.get(id)?.clone())))
            .filter(|(_, s)| state.is_none_or(|st| s.circuit_is(st)))
            .take(limit)
            .collect()
    }

    /// Enabled webhooks that `keep` accepts, counted by breaker state: (closed, open, half-open).
    pub fn circuit_counts(&self, keep: impl Fn(&Webhook) -> bool) -> (u64, u64, u64) {
        let mut counts = (0, 0, 0);
        for (id, w) in &self.webhooks {
            let Some(status) = self.statuses.get(id) else {
                continue;
            };
            if !w.enabled || !keep(w) {
                continue;
            }
            if status.circuit_is(CircuitState::Open) {
                counts.1 += 1;
            } else if status.circuit_is(CircuitState::HalfOpen) {
                counts.2 += 1;
            } else {
                counts.0 += 1;
            }
        }
        counts
    }

    /// Number of webhooks whose breaker is open.
    pub fn open_circuits(&self) -> usize {
        self.statuses
            .values()
            .filter(|s| s.circuit_is_open())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: i64, tenant: &str, ty: &str, enabled: bool) -> Arc<Webhook> {
        Arc::new(Webhook {
            enabled,
            timeout_ms: 1000,
            ..Webhook::new(id, "n", tenant, ty, "http://x/", "s")
        })
    }

    #[test]
    fn a_reload_leaves_alone_what_changed_after_its_snapshot_began() {
        let mut r = Registry::default();
        r.upsert(hook(1, "a", "claim/opened", true));
        r.upsert(hook(2, "a", "claim/opened", true));
        r.upsert(hook(4, "a", "claim/opened", true));
        let since = r.changes();
        // While the snapshot is read: webhook 3 is created and webhook 4 deleted through the API.
        r.upsert(hook(3, "a", "claim/opened", true));
        r.remove(4);
        // The snapshot saw neither; webhook 2 was deleted on another node before it.
        let snapshot = vec![
            hook(1, "a", "claim/opened", false),
            hook(4, "a", "claim/opened", true),
        ];
        let plan = r.reload_plan(snapshot, since);
        assert_eq!(plan.gone, vec![2]);
        let applied: Vec<(i64, bool)> = plan.apply.iter().map(|w| (w.id, w.enabled)).collect();
        assert_eq!(applied, vec![(1, false)]);
        // With nothing changed meanwhile, the snapshot is applied whole (the plan above was not);
        // the first plan forgot the counts it used.
        let plan = r.reload_plan(vec![hook(9, "a", "x", true)], r.changes());
        assert_eq!(plan.gone, vec![1, 2, 3]);
        assert_eq!(plan.apply.len(), 1);
    }

    #[test]
    fn matches_exact_and_wildcard_within_the_tenant() {
        let mut r = Registry::default();
        r.upsert(hook(1, "a", "claim/opened", true));
        r.upsert(hook(2, "a", "*", true));
        r.upsert(hook(3, "b", "claim/opened", true));
        r.upsert(hook(4, "a", "claim/opened", false));
        let ids: Vec<i64> = r
            .matching("a", "claim/opened")
            .iter()
            .map(|w| w.id)
            .collect();
        assert_eq!(ids, vec![1, 2]);
        let ids: Vec<i64> = r
            .matching("a", "policy/bound")
            .iter()
            .map(|w| w.id)
            .collect();
        assert_eq!(ids, vec![2]);
    }

    #[test]
    fn routes_by_exact_type_prefix_patterns_and_star() {
        let mut r = Registry::default();
        r.upsert(hook(1, "a", "claim/opened", true));
        r.upsert(hook(2, "a", "claim/*", true));
        r.upsert(hook(3, "a", "claim/reserve/*", true));
        r.upsert(hook(4, "a", "*", true));
        r.upsert(hook(5, "a", "beema/*", true));
        r.upsert(hook(6, "b", "claim/*", true));
        r.upsert(hook(7, "a", "claims/*", true));
        let table: &[(&str, &str, &[i64])] = &[
            ("a", "claim/opened", &[1, 2, 4]),
            ("a", "claim/reserve/changed", &[2, 3, 4]),
            ("a", "claims/opened", &[4, 7]),
            ("a", "claim", &[4]),
            ("a", "policy/bound", &[4]),
            ("a", "beema/circuit.opened", &[5]),
            ("b", "claim/settled", &[6]),
            ("c", "claim/settled", &[]),
        ];
        for (tenant, ty, want) in table {
            let ids: Vec<i64> = r.matching(tenant, ty).iter().map(|w| w.id).collect();
            assert_eq!(ids, *want, "{tenant} {ty}");
        }
    }

    #[test]
    fn update_moves_the_route_and_remove_forgets() {
        let mut r = Registry::default();
        let s1 = r.upsert(hook(1, "a", "x", true));
        let s2 = r.upsert(hook(1, "a", "y", true));
        assert!(Arc::ptr_eq(&s1, &s2), "status survives updates");
        assert!(r.matching("a", "x").is_empty());
        assert_eq!(r.matching("a", "y").len(), 1);
        r.remove(1);
        assert!(r.matching("a", "y").is_empty());
    }
}
