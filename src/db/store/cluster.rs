//! `sys_cluster_nodes` and `sys_webhook_leases` (PostgreSQL only): node membership by heartbeat,
//! webhook ownership by lease, judged by the database's clock; and the notifications that carry
//! changes between nodes.

use chrono::{DateTime, Utc};
use diesel::pg::sql_types::Array;
use diesel::result::QueryResult;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::db::SqliteConn;

/// Registry changes: the payload is the webhook id.
pub const REGISTRY_CHANNEL: &str = "beema_registry";
/// New deliveries for webhooks owned elsewhere: comma-separated webhook ids.
pub const DELIVERIES_CHANNEL: &str = "beema_deliveries";
/// Membership and ownership changes (`join:<node>`, `leave:<node>`, `release:<node>`, `ping:<node>`).
pub const CLUSTER_CHANNEL: &str = "beema_cluster";

/// `pg_notify` inside the caller's transaction (delivered at commit); nothing on SQLite, where one
/// process serves the file.
pub trait Notify {
    /// Queues `payload` on `channel`.
    fn notify<'a>(
        &'a mut self,
        channel: &'a str,
        payload: String,
    ) -> BoxFuture<'a, QueryResult<()>>;
}

impl Notify for SqliteConn {
    fn notify<'a>(&'a mut self, _: &'a str, _: String) -> BoxFuture<'a, QueryResult<()>> {
        async { Ok(()) }.boxed()
    }
}

impl Notify for AsyncPgConnection {
    fn notify<'a>(
        &'a mut self,
        channel: &'a str,
        payload: String,
    ) -> BoxFuture<'a, QueryResult<()>> {
        async move {
            diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<Text, _>(channel)
                .bind::<Text, _>(payload)
                .execute(self)
                .await
                .map(|_| ())
        }
        .boxed()
    }
}

/// Most bytes of one notification payload (PostgreSQL's limit is 8,000).
const MAX_PAYLOAD: usize = 7_900;

/// Comma-separated ids, split into payloads that fit one notification each.
pub fn id_payloads(ids: &[i64]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for id in ids {
        let s = id.to_string();
        if !cur.is_empty() && cur.len() + s.len() + 1 > MAX_PAYLOAD {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(',');
        }
        cur.push_str(&s);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Parses [`id_payloads`]' format; unparsable parts are skipped.
pub fn parse_ids(payload: &str) -> Vec<i64> {
    payload
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// One live node.
#[derive(Debug, Clone, QueryableByName)]
pub struct NodeRow {
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[diesel(sql_type = Text)]
    pub incarnation: String,
    #[diesel(sql_type = Timestamptz)]
    pub started_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub heartbeat_at: DateTime<Utc>,
}

/// One lease, with whether its holder is live now.
#[derive(Debug, Clone, QueryableByName)]
pub struct LeaseRow {
    #[diesel(sql_type = BigInt)]
    pub webhook_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub node_id: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub epoch: i64,
    /// The holder is a live node of the same incarnation.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub held: bool,
}

/// The part of a lease other nodes read for health.
#[derive(Debug, Clone, QueryableByName)]
pub struct LeaseHealthRow {
    #[diesel(sql_type = BigInt)]
    pub webhook_id: i64,
    /// The live owner, if any.
    #[diesel(sql_type = Nullable<Text>)]
    pub owner: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub health: Option<String>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A lease is held while its node row is live with the lease's incarnation.
const HELD: &str = "EXISTS (SELECT 1 FROM sys_cluster_nodes n WHERE n.node_id = l.node_id \
                    AND n.incarnation = l.incarnation AND n.expires_at > now())";

/// A shutdown never waits for ever on a lease row: after this long its transaction fails, and the
/// leases expire with the node instead.
async fn bounded_lock_wait(c: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::sql_query("SET LOCAL lock_timeout = '5s'")
        .execute(c)
        .await
        .map(|_| ())
}

/// Registers this node, taking the id over from a process that may still hold it; true when that
/// process was live (its leases must be left alone until they expire, as it may still be sending).
pub async fn join(
    c: &mut AsyncPgConnection,
    node_id: &str,
    incarnation: &str,
    ttl_ms: i64,
) -> QueryResult<bool> {
    use diesel_async::AsyncConnection;
    let (node, inc) = (node_id.to_string(), incarnation.to_string());
    c.transaction::<_, diesel::result::Error, _>(async move |c| {
        let live: Vec<Count> = diesel::sql_query(
            "SELECT count(*) AS n FROM (SELECT 1 FROM sys_cluster_nodes \
             WHERE node_id = $1 AND expires_at > now() FOR UPDATE) AS live",
        )
        .bind::<Text, _>(&node)
        .load(c)
        .await?;
        diesel::sql_query(
            "INSERT INTO sys_cluster_nodes (node_id, incarnation, started_at, heartbeat_at, expires_at) \
             VALUES ($1, $2, now(), now(), now() + $3 * interval '1 millisecond') \
             ON CONFLICT (node_id) DO UPDATE SET incarnation = EXCLUDED.incarnation, \
             started_at = now(), heartbeat_at = now(), expires_at = EXCLUDED.expires_at",
        )
        .bind::<Text, _>(&node)
        .bind::<Text, _>(&inc)
        .bind::<BigInt, _>(ttl_ms)
        .execute(c)
        .await?;
        Ok(live.into_iter().next().is_some_and(|r| r.n > 0))
    })
    .await
}

/// Renews this node's heartbeat; false when another process has taken the id over.
pub async fn heartbeat(
    c: &mut AsyncPgConnection,
    node_id: &str,
    incarnation: &str,
    ttl_ms: i64,
) -> QueryResult<bool> {
    let n = diesel::sql_query(
        "UPDATE sys_cluster_nodes SET heartbeat_at = now(), \
         expires_at = now() + $3 * interval '1 millisecond' \
         WHERE node_id = $1 AND incarnation = $2",
    )
    .bind::<Text, _>(node_id)
    .bind::<Text, _>(incarnation)
    .bind::<BigInt, _>(ttl_ms)
    .execute(c)
    .await?;
    Ok(n == 1)
}

/// Leaves the cluster: this node's leases are released and its row removed, in one transaction.
pub async fn leave(c: &mut AsyncPgConnection, node_id: &str, incarnation: &str) -> QueryResult<()> {
    use diesel_async::AsyncConnection;
    let (node, inc) = (node_id.to_string(), incarnation.to_string());
    c.transaction::<_, diesel::result::Error, _>(async move |c| {
        bounded_lock_wait(c).await?;
        diesel::sql_query(
            "UPDATE sys_webhook_leases SET node_id = NULL, incarnation = NULL, epoch = epoch + 1 \
             WHERE node_id = $1 AND incarnation = $2",
        )
        .bind::<Text, _>(&node)
        .bind::<Text, _>(&inc)
        .execute(c)
        .await?;
        diesel::sql_query("DELETE FROM sys_cluster_nodes WHERE node_id = $1 AND incarnation = $2")
            .bind::<Text, _>(&node)
            .bind::<Text, _>(&inc)
            .execute(c)
            .await?;
        c.notify(CLUSTER_CHANNEL, format!("leave:{node}")).await
    })
    .await
}

/// The live nodes, by id.
pub async fn live_nodes(c: &mut AsyncPgConnection) -> QueryResult<Vec<NodeRow>> {
    diesel::sql_query(
        "SELECT node_id, incarnation, started_at, heartbeat_at FROM sys_cluster_nodes \
         WHERE expires_at > now() ORDER BY node_id",
    )
    .load(c)
    .await
}

/// Every lease.
pub async fn leases(c: &mut AsyncPgConnection) -> QueryResult<Vec<LeaseRow>> {
    diesel::sql_query(format!(
        "SELECT l.webhook_id, l.node_id, l.epoch, {HELD} AS held FROM sys_webhook_leases l"
    ))
    .load(c)
    .await
}

/// Takes the webhooks of `ids` that nobody holds (or that this very process holds in the database
/// but no longer runs, after it stopped sending while cut off); answers (webhook id, epoch, health
/// snapshot) of those taken. A lease is never taken from another live holder.
pub async fn claim(
    c: &mut AsyncPgConnection,
    node_id: &str,
    incarnation: &str,
    ids: &[i64],
) -> QueryResult<Vec<(i64, i64, Option<String>)>> {
    #[derive(QueryableByName)]
    struct Claimed {
        #[diesel(sql_type = BigInt)]
        webhook_id: i64,
        #[diesel(sql_type = BigInt)]
        epoch: i64,
        #[diesel(sql_type = Nullable<Text>)]
        health: Option<String>,
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Claimed> = diesel::sql_query(format!(
        "INSERT INTO sys_webhook_leases AS l (webhook_id, node_id, incarnation, epoch) \
         SELECT id, $2, $3, 1 FROM unnest($1::bigint[]) AS id \
         ON CONFLICT (webhook_id) DO UPDATE SET node_id = EXCLUDED.node_id, \
         incarnation = EXCLUDED.incarnation, epoch = l.epoch + 1 \
         WHERE l.node_id IS NULL OR NOT {HELD} OR (l.node_id = $2 AND l.incarnation = $3) \
         RETURNING l.webhook_id, l.epoch, l.health"
    ))
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Text, _>(node_id)
    .bind::<Text, _>(incarnation)
    .load(c)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.webhook_id, r.epoch, r.health))
        .collect())
}

/// Gives up this node's leases of `ids` (with the last health snapshot) and tells the others.
pub async fn release(
    c: &mut AsyncPgConnection,
    node_id: &str,
    incarnation: &str,
    ids: &[i64],
    snapshots: &[Option<String>],
) -> QueryResult<()> {
    use diesel_async::AsyncConnection;
    if ids.is_empty() {
        return Ok(());
    }
    let (node, inc) = (node_id.to_string(), incarnation.to_string());
    let (ids, snapshots) = (ids.to_vec(), snapshots.to_vec());
    c.transaction::<_, diesel::result::Error, _>(async move |c| {
        bounded_lock_wait(c).await?;
        diesel::sql_query(
            "UPDATE sys_webhook_leases l SET node_id = NULL, incarnation = NULL, \
             epoch = l.epoch + 1, health = COALESCE(s.health, l.health), health_at = now() \
             FROM unnest($1::bigint[], $4::text[]) AS s(id, health) \
             WHERE l.webhook_id = s.id AND l.node_id = $2 AND l.incarnation = $3",
        )
        .bind::<Array<BigInt>, _>(&ids)
        .bind::<Text, _>(&node)
        .bind::<Text, _>(&inc)
        .bind::<Array<Nullable<Text>>, _>(&snapshots)
        .execute(c)
        .await?;
        c.notify(CLUSTER_CHANNEL, format!("release:{node}")).await
    })
    .await
}

/// Drops the lease of a deleted webhook held by this node, or by nobody live (the deleter's
/// clean-up): the confirmation a `DELETE` answered elsewhere waits for.
pub async fn drop_lease(
    c: &mut AsyncPgConnection,
    webhook_id: i64,
    node_id: Option<&str>,
) -> QueryResult<()> {
    let sql = match node_id {
        Some(_) => "DELETE FROM sys_webhook_leases WHERE webhook_id = $1 AND node_id = $2",
        None => "DELETE FROM sys_webhook_leases WHERE webhook_id = $1 AND $2 = ''",
    };
    diesel::sql_query(sql)
        .bind::<BigInt, _>(webhook_id)
        .bind::<Text, _>(node_id.unwrap_or(""))
        .execute(c)
        .await
        .map(|_| ())
}

/// The live holder of a webhook's lease, if any.
pub async fn holder(c: &mut AsyncPgConnection, webhook_id: i64) -> QueryResult<Option<String>> {
    #[derive(QueryableByName)]
    struct Holder {
        #[diesel(sql_type = Nullable<Text>)]
        node_id: Option<String>,
    }
    let rows: Vec<Holder> = diesel::sql_query(format!(
        "SELECT l.node_id FROM sys_webhook_leases l WHERE l.webhook_id = $1 AND {HELD}"
    ))
    .bind::<BigInt, _>(webhook_id)
    .load(c)
    .await?;
    Ok(rows.into_iter().next().and_then(|r| r.node_id))
}

/// Publishes this node's health snapshots of webhooks it holds, as (webhook id, JSON).
pub async fn publish_health(
    c: &mut AsyncPgConnection,
    node_id: &str,
    incarnation: &str,
    snapshots: Vec<(i64, String)>,
) -> QueryResult<()> {
    if snapshots.is_empty() {
        return Ok(());
    }
    let (ids, bodies): (Vec<i64>, Vec<String>) = snapshots.into_iter().unzip();
    diesel::sql_query(
        // Rows the recorder holds (it checks its fence) are skipped rather than waited for: the
        // next round publishes them, and the two never wait on each other.
        "UPDATE sys_webhook_leases l SET health = s.health, health_at = now() \
         FROM unnest($1::bigint[], $2::text[]) AS s(id, health) \
         WHERE l.webhook_id = s.id AND l.webhook_id IN (SELECT webhook_id FROM sys_webhook_leases \
         WHERE webhook_id = ANY($1) AND node_id = $3 AND incarnation = $4 FOR UPDATE SKIP LOCKED)",
    )
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Text>, _>(bodies)
    .bind::<Text, _>(node_id)
    .bind::<Text, _>(incarnation)
    .execute(c)
    .await
    .map(|_| ())
}

/// Owners and health snapshots of `ids`.
pub async fn health_of(c: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<LeaseHealthRow>> {
    diesel::sql_query(format!(
        "SELECT l.webhook_id, CASE WHEN {HELD} THEN l.node_id END AS owner, l.health \
         FROM sys_webhook_leases l WHERE l.webhook_id = ANY($1::bigint[])"
    ))
    .bind::<Array<BigInt>, _>(ids)
    .load(c)
    .await
}

/// Held leases per live node, as (node id, count).
pub async fn owned_counts(c: &mut AsyncPgConnection) -> QueryResult<Vec<(String, i64)>> {
    #[derive(QueryableByName)]
    struct PerNode {
        #[diesel(sql_type = Text)]
        node_id: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<PerNode> = diesel::sql_query(format!(
        "SELECT l.node_id, count(*) AS n FROM sys_webhook_leases l \
         JOIN sys_webhooks w ON w.webhook_id = l.webhook_id AND w.deleted_at IS NULL \
         WHERE {HELD} GROUP BY l.node_id"
    ))
    .load(c)
    .await?;
    Ok(rows.into_iter().map(|r| (r.node_id, r.n)).collect())
}

/// The webhooks of `fence` (webhook id, epoch) whose lease still has that epoch, locked against a
/// change of owner until the caller's transaction ends: the recorder writes only their outcomes.
pub async fn fenced(c: &mut AsyncPgConnection, fence: &[(i64, i64)]) -> QueryResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        webhook_id: i64,
    }
    let (ids, epochs): (Vec<i64>, Vec<i64>) = fence.iter().copied().unzip();
    let rows: Vec<Id> = diesel::sql_query(
        "SELECT l.webhook_id FROM sys_webhook_leases l \
         JOIN unnest($1::bigint[], $2::bigint[]) AS f(id, epoch) \
         ON l.webhook_id = f.id AND l.epoch = f.epoch ORDER BY l.webhook_id FOR SHARE OF l",
    )
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<BigInt>, _>(epochs)
    .load(c)
    .await?;
    Ok(rows.into_iter().map(|r| r.webhook_id).collect())
}

/// The oldest transaction still running: every delivery inserted below it is committed (or never
/// will be), so paging up to it never skips a row that commits later.
pub async fn xmin(c: &mut AsyncPgConnection) -> QueryResult<i64> {
    let rows: Vec<Count> =
        diesel::sql_query("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS n")
            .load(c)
            .await?;
    Ok(rows.into_iter().next().map_or(0, |r| r.n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_payloads_fit_one_notification_each_and_parse_back() {
        let ids: Vec<i64> = (1_000_000_000..1_000_002_000).collect();
        let payloads = id_payloads(&ids);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let back: Vec<i64> = payloads.iter().flat_map(|p| parse_ids(p)).collect();
        assert_eq!(back, ids);
        assert!(id_payloads(&[]).is_empty());
        assert_eq!(parse_ids("1,x,3"), vec![1, 3]);
    }
}
