//! Several nodes on one PostgreSQL database behave as one dispatcher: the cluster listing, registry
//! changes in force everywhere within 2 s, one sender per webhook (once per delivery, FIFO, one rate
//! limit, one retry budget, one breaker), hand-over on `SIGTERM`, take-over after `kill -9` or a
//! database cut-off, health and metrics on any node, ownership spread, node id take-over.
//!
//! PostgreSQL only, except the single-process answers of the cluster listing and metrics, which are
//! checked on SQLite too. The tests take one shared lock so they run one at a time: timing on a small
//! machine is part of what they check.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

use crate::utils::nodes::{
    db_url, start_node, start_nodes, start_nodes_together, wait_ready, Api, Node, NodeProcess,
    PgProxy,
};
use crate::utils::{
    beema_signature, delivery_of, event_of, eventually, standard_verifies, Received, Reply, TestDb,
    TestReceiver,
};

/// One cluster test at a time.
static CLUSTER: Mutex<()> = Mutex::const_new(());

/// The lease TTL the tests run with: short, so that take-overs stay short.
const TTL: Duration = Duration::from_millis(2000);
const TTL_MS: u64 = 2000;
/// How long a registry change may take to be in force on every node.
const CHANGE: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(15);
const TENANT: &str = "tenant-c";
const EVENT: &str = "claim/opened";
const ADMIN: &str = "admin-token-for-cluster-tests";

// ---------------------------------------------------------------------------------------------
// helpers

async fn lock() -> MutexGuard<'static, ()> {
    CLUSTER.lock().await
}

fn admin(cfg: &mut beema_webhooks::config::Config) {
    cfg.admin_token = Some(ADMIN.into());
}

fn open(_: &mut beema_webhooks::config::Config) {}

fn event(n: usize) -> Value {
    json!({ "event": EVENT, "data": { "tenantId": TENANT, "n": n } })
}

fn events(from: usize, count: usize) -> Value {
    Value::Array((from..from + count).map(event).collect())
}

fn ids_of(published: &Value) -> Vec<String> {
    published["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect()
}

/// Delivery ids received more than once, with their counts.
fn duplicates(got: &[Received]) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in got {
        *counts.entry(delivery_of(r)).or_default() += 1;
    }
    let mut d: Vec<(String, usize)> = counts.into_iter().filter(|(_, n)| *n > 1).collect();
    d.sort();
    d
}

fn distinct(got: &[Received]) -> HashSet<String> {
    got.iter().map(delivery_of).collect()
}

/// Receives until `n` distinct deliveries arrived, or panics after `timeout`.
async fn receive_distinct(rx: &mut TestReceiver, n: usize, timeout: Duration) -> Vec<Received> {
    let mut got = Vec::new();
    receive_more(rx, &mut got, n, timeout).await;
    got
}

/// Adds what arrives to `got` until it holds `n` distinct deliveries, or panics after `timeout`.
async fn receive_more(rx: &mut TestReceiver, got: &mut Vec<Received>, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while distinct(got).len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.next(left).await {
            Some(r) => got.push(r),
            None => panic!(
                "only {} of {n} deliveries arrived within {timeout:?} ({} requests)",
                distinct(got).len(),
                got.len()
            ),
        }
    }
}

/// Receives until a request for each of the `n` webhooks made by `spread_six` arrived.
async fn receive_every_hook(rx: &mut TestReceiver, n: usize) -> Vec<Received> {
    let mut got: Vec<Received> = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let hooks = got
            .iter()
            .filter_map(|r| r.header("x-hook"))
            .collect::<HashSet<&str>>()
            .len();
        if hooks >= n {
            return got;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.next(left).await {
            Some(r) => got.push(r),
            None => panic!("requests for only {hooks} of {n} webhooks arrived"),
        }
    }
}

/// Everything that arrives within `window`.
async fn receive_for(rx: &mut TestReceiver, window: Duration) -> Vec<Received> {
    let mut got = Vec::new();
    let deadline = Instant::now() + window;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return got;
        }
        match rx.next(left).await {
            Some(r) => got.push(r),
            None => return got,
        }
    }
}

/// `GET /api/cluster` (asserting 200).
async fn cluster_view(node: &impl Api) -> Value {
    let (status, v) = node.get_json("/api/cluster").await;
    assert_eq!(status, 200, "GET /api/cluster: {v}");
    v
}

/// The listed nodes as (id, webhooks owned), sorted by id.
fn listed(view: &Value) -> Vec<(String, i64)> {
    let mut l: Vec<(String, i64)> = view["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes list: {view}"))
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap_or_default().to_string(),
                n["webhooks"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    l.sort();
    l
}

/// Polls `GET /api/cluster` on `node` until `check` holds for its listing.
async fn wait_listing(
    node: &impl Api,
    timeout: Duration,
    what: &str,
    check: impl Fn(&[(String, i64)]) -> bool,
) -> Value {
    eventually(timeout, what, || async {
        let v = cluster_view(node).await;
        if check(&listed(&v)) {
            Ok(v)
        } else {
            Err(v)
        }
    })
    .await
}

/// Polls until each of `nodes` owns at least one webhook (as `observer` sees it).
async fn wait_everyone_owns_some(observer: &impl Api, nodes: usize, webhooks: i64) {
    wait_listing(
        observer,
        2 * TTL + Duration::from_secs(2),
        "every node to own a webhook",
        |l| {
            l.len() == nodes
                && l.iter().all(|(_, n)| *n >= 1)
                && l.iter().map(|(_, n)| n).sum::<i64>() == webhooks
        },
    )
    .await;
}

/// Polls `POST /api/webhooks/match` on `node` until `check` holds for the matched ids.
async fn wait_match(
    node: &impl Api,
    timeout: Duration,
    what: &str,
    check: impl Fn(&[i64]) -> bool,
) {
    let body = json!({ "event_type": EVENT, "tenant_id": TENANT });
    eventually(timeout, what, || async {
        let (status, v) = node
            .call(Method::POST, "/api/webhooks/match", Some(&body))
            .await;
        assert_eq!(status, 200, "match: {v}");
        let ids: Vec<i64> = v["webhooks"]
            .as_array()
            .map(|a| a.iter().filter_map(|w| w["webhook_id"].as_i64()).collect())
            .unwrap_or_default();
        if check(&ids) {
            Ok(())
        } else {
            Err(v)
        }
    })
    .await
}

/// The deliveries of a webhook as `node` lists them.
async fn deliveries(node: &impl Api, webhook_id: i64) -> Vec<Value> {
    let (status, v) = node
        .get_json(&format!(
            "/api/webhooks/deliveries?webhook_id={webhook_id}&limit=1000"
        ))
        .await;
    assert_eq!(status, 200, "deliveries: {v}");
    v["deliveries"].as_array().cloned().unwrap_or_default()
}

/// Waits until the `n` deliveries of each of `webhooks` are `success`; returns their ids.
async fn wait_all_success(
    node: &impl Api,
    webhooks: &[i64],
    n: usize,
    timeout: Duration,
) -> HashSet<String> {
    eventually(timeout, "every delivery to succeed", || async {
        let mut ids = HashSet::new();
        for id in webhooks {
            let list = deliveries(node, *id).await;
            let open: Vec<&Value> = list.iter().filter(|d| d["status"] != "success").collect();
            if list.len() != n || !open.is_empty() {
                return Err(format!(
                    "webhook {id}: {} deliveries, {} not successful, e.g. {}",
                    list.len(),
                    open.len(),
                    open.first().map(|d| d.to_string()).unwrap_or_default()
                ));
            }
            ids.extend(
                list.iter()
                    .filter_map(|d| d["delivery_id"].as_str().map(str::to_string)),
            );
        }
        Ok(ids)
    })
    .await
}

/// The health of a webhook as `node` answers it.
async fn health(node: &impl Api, id: i64) -> Value {
    let (status, v) = node.get_json(&format!("/api/webhooks/{id}/health")).await;
    assert_eq!(status, 200, "health of {id}: {v}");
    v
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

fn parse_time(v: &Value, what: &str) -> chrono::DateTime<chrono::Utc> {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{what} is not RFC 3339 ({e}): {s}"))
        .with_timezone(&chrono::Utc)
}

/// Checks one entry of the cluster listing: id, webhooks, started_at <= heartbeat_at, recent heartbeat.
fn check_entry(entry: &Value) {
    assert!(entry["id"].is_string(), "{entry}");
    assert!(entry["webhooks"].is_i64(), "{entry}");
    let started = parse_time(&entry["started_at"], "started_at");
    let beat = parse_time(&entry["heartbeat_at"], "heartbeat_at");
    assert!(started <= beat, "heartbeat before start: {entry}");
    let age = chrono::Utc::now() - beat;
    assert!(
        age.num_milliseconds() <= (TTL_MS + 2000) as i64,
        "a live node's heartbeat is {age} old: {entry}"
    );
}

/// Starts `ids` as in-process nodes on a PostgreSQL database; `None` on SQLite.
async fn pg_nodes(
    ids: &[&str],
    tweak: fn(&mut beema_webhooks::config::Config),
) -> Option<(TestDb, Vec<Node>)> {
    let db = TestDb::new();
    if !db.is_pg() {
        return None;
    }
    let nodes = start_nodes(&db, ids, TTL, tweak).await;
    Some((db, nodes))
}

/// Two server processes, `node-a` and `node-b`, on a fresh PostgreSQL database (None on SQLite).
async fn pg_process_pair() -> Option<(TestDb, NodeProcess, NodeProcess)> {
    let db = TestDb::new();
    if !db.is_pg() {
        return None;
    }
    let url = db_url(&db);
    let a = NodeProcess::start(&url, "node-a", TTL_MS).await;
    let b = NodeProcess::start(&url, "node-b", TTL_MS).await;
    Some((db, a, b))
}

/// The health of a webhook, or `None` while `node` does not know the webhook yet (a create is in
/// force on every node within 2 s, not at once).
async fn health_if_known(node: &impl Api, id: i64) -> Option<Value> {
    let (status, v) = node.get_json(&format!("/api/webhooks/{id}/health")).await;
    match status {
        200 => Some(v),
        404 => None,
        _ => panic!("health of {id}: {status} {v}"),
    }
}

/// The id of the node that owns `webhook` per its health (`None` if the field is missing or null,
/// or `node` does not know the webhook yet).
async fn owner_of(node: &impl Api, webhook: i64) -> Option<String> {
    health_if_known(node, webhook).await?["node"]
        .as_str()
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// the cluster listing

#[tokio::test]
async fn cluster_listing_is_for_the_global_admin_only() {
    let _lock = lock().await;
    let db = TestDb::new();
    let node = start_node(&db, "node-a", TTL, admin).await;
    let body = json!({"tenant_id": TENANT, "role": "admin", "name": "tenant admin"});
    let (status, key) = node
        .call_as(Method::POST, "/api/keys", Some(ADMIN), &[], Some(&body))
        .await;
    assert_eq!(status, 201, "{key}");
    let tenant_key = key["key"].as_str().expect("key").to_string();

    let no_credentials = reqwest::get(format!("{}/api/cluster", node.base))
        .await
        .expect("request reaches the node")
        .status();
    assert_eq!(no_credentials.as_u16(), 401, "no credentials");
    // A client of its own: the node's default one sends the admin token with every request.
    let as_bearer = |token: &str| {
        reqwest::Client::new()
            .get(format!("{}/api/cluster", node.base))
            .bearer_auth(token)
            .send()
    };
    let tenant = as_bearer(&tenant_key)
        .await
        .expect("request reaches the node");
    assert_eq!(tenant.status().as_u16(), 403, "tenant key");
    let wrong = as_bearer("wrong-token")
        .await
        .expect("request reaches the node");
    assert_eq!(wrong.status().as_u16(), 401, "wrong token");
    let (status, v) = node
        .call_as(Method::GET, "/api/cluster", Some(ADMIN), &[], None)
        .await;
    assert_eq!(status, 200, "global admin: {v}");
    assert_eq!(v["node"], "node-a", "{v}");
}

#[tokio::test]
async fn cluster_listing_shows_each_live_node_and_what_it_owns() {
    let _lock = lock().await;
    let db = TestDb::new();
    let rx = TestReceiver::start(200);
    if !db.is_pg() {
        // One process on SQLite: the list is this process, owning every webhook.
        let node = start_node(&db, "solo", TTL, admin).await;
        for enabled in [true, true, false] {
            node.add_webhook(TENANT, EVENT, &rx.url, json!({ "enabled": enabled }))
                .await;
        }
        let v = wait_listing(&node, CHANGE, "the one node to own 3 webhooks", |l| {
            l == [("solo".to_string(), 3)]
        })
        .await;
        assert_eq!(v["node"], "solo", "{v}");
        assert_eq!(v["lease_ttl_ms"], TTL_MS, "{v}");
        check_entry(&v["nodes"][0]);
        return;
    }
    let nodes = start_nodes(&db, &["node-a", "node-b"], TTL, admin).await;
    for k in 0..6 {
        nodes[k % 2]
            .add_webhook(TENANT, EVENT, &rx.url, json!({ "enabled": k != 5 }))
            .await;
    }
    for (node, id) in nodes.iter().zip(["node-a", "node-b"]) {
        let v = wait_listing(
            node,
            2 * TTL + Duration::from_secs(1),
            "both nodes listed, owning the 6 webhooks between them",
            |l| {
                l.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>() == ["node-a", "node-b"]
                    && l.iter().map(|(_, n)| n).sum::<i64>() == 6
            },
        )
        .await;
        assert_eq!(v["node"], id, "the answering node: {v}");
        assert_eq!(v["lease_ttl_ms"], TTL_MS, "{v}");
        for entry in v["nodes"].as_array().expect("nodes") {
            check_entry(entry);
        }
    }
}

#[tokio::test]
async fn a_node_stopped_gracefully_leaves_the_listing_and_its_webhooks_move_at_once() {
    let _lock = lock().await;
    let Some((_db, mut nodes)) = pg_nodes(&["node-a", "node-b"], admin).await else {
        return;
    };
    let rx = TestReceiver::start(200);
    for _ in 0..6 {
        nodes[0]
            .add_webhook(TENANT, EVENT, &rx.url, json!({}))
            .await;
    }
    wait_everyone_owns_some(&nodes[0], 2, 6).await;
    let b = nodes.pop().expect("node-b");
    b.stop();
    let stopped = Instant::now();
    wait_listing(
        &nodes[0],
        CHANGE,
        "node-b to leave the listing and node-a to own all 6 webhooks",
        |l| l == [("node-a".to_string(), 6)],
    )
    .await;
    eprintln!("listing settled {:?} after the stop", stopped.elapsed());
}

// ---------------------------------------------------------------------------------------------
// the registry on every node

#[tokio::test]
async fn a_node_that_is_ready_already_serves_every_existing_webhook() {
    let _lock = lock().await;
    let Some((db, nodes)) = pg_nodes(&["node-a"], open).await else {
        return;
    };
    let mut rx = TestReceiver::start(200);
    let id = nodes[0]
        .add_webhook(TENANT, EVENT, &rx.url, json!({}))
        .await;
    let b = start_node(&db, "node-b", TTL, open).await;
    // No waiting: ready means the registry is loaded.
    let (status, v) = b
        .call(
            Method::POST,
            "/api/webhooks/match",
            Some(&json!({"event_type": EVENT, "tenant_id": TENANT})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["webhooks"][0]["webhook_id"], id, "{v}");
    let published = b.publish_json(&event(1)).await;
    assert_eq!(published["deliveries"], 1, "{published}");
    let got = rx
        .next(CHANGE)
        .await
        .expect("the event published on the new node is delivered");
    assert_eq!(event_of(&got), ids_of(&published)[0]);
}

#[tokio::test]
async fn a_webhook_created_on_one_node_is_matched_and_served_via_another_within_2s() {
    let _lock = lock().await;
    let Some((_db, nodes)) = pg_nodes(&["node-a", "node-b"], open).await else {
        return;
    };
    let mut rx = TestReceiver::start(200);
    let id = nodes[0]
        .add_webhook(TENANT, EVENT, &rx.url, json!({}))
        .await;
    let created = Instant::now();
    wait_match(
        &nodes[1],
        CHANGE,
        "node-b to match the new webhook",
        |ids| ids == [id],
    )
    .await;
    eprintln!("matched on node-b {:?} after the create", created.elapsed());
    let published = nodes[1].publish_json(&event(1)).await;
    assert_eq!(published["deliveries"], 1, "{published}");
    let got = rx
        .next(CHANGE)
        .await
        .expect("the event published on node-b is delivered");
    assert_eq!(event_of(&got), ids_of(&published)[0]);
    // An event accepted by the node that does not own the webhook reaches the owner within 1 s.
    let owner = eventually(2 * TTL, "an owner", || owner_of(&nodes[0], id)).await;
    let via = if owner == "node-a" {
        &nodes[1]
    } else {
        &nodes[0]
    };
    let published = via.publish_json(&event(2)).await;
    let accepted = Instant::now();
    let got = rx
        .next(Duration::from_millis(1500))
        .await
        .expect("an event accepted by a non-owner is sent within 1 s (and the send)");
    assert_eq!(event_of(&got), ids_of(&published)[0]);
    eprintln!("sent {:?} after a non-owner accepted it", got.at - accepted);
}

#[tokio::test]
async fn a_url_change_on_one_node_reroutes_sends_via_another_within_2s() {
    let _lock = lock().await;
    let Some((_db, nodes)) = pg_nodes(&["node-a", "node-b"], open).await else {
        return;
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut old = TestReceiver::start(200);
    let mut new = TestReceiver::start(200);
    let id = a.add_webhook(TENANT, EVENT, &old.url, json!({})).await;
    wait_match(b, CHANGE, "node-b to match the webhook", |ids| ids == [id]).await;
    b.publish_json(&event(0)).await;
    old.next(CHANGE)
        .await
        .expect("the old URL gets events before the change");

    let (status, v) = a
        .call(
            Method::PATCH,
            &format!("/api/webhooks/{id}"),
            Some(&json!({"url": new.url})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let changed = Instant::now();
    // Publish on node-b until the new URL gets a request; that must happen within 2 s (plus the send).
    let mut n = 1;
    loop {
        b.publish_json(&event(n)).await;
        n += 1;
        if new.next(Duration::from_millis(100)).await.is_some() {
            break;
        }
        assert!(
            changed.elapsed() < CHANGE + Duration::from_millis(500),
            "the new URL got nothing {:?} after the change",
            changed.elapsed()
        );
    }
    eprintln!("new URL in use {:?} after the change", changed.elapsed());
    // From then on every event published on node-b goes to the new URL only.
    let published = b.publish_json(&event(1000)).await;
    let event_id = ids_of(&published)[0].clone();
    let mut seen = Vec::new();
    while let Some(r) = new.next(CHANGE).await {
        let e = event_of(&r);
        seen.push(e.clone());
        if e == event_id {
            break;
        }
    }
    assert!(
        seen.contains(&event_id),
        "the event never reached the new URL"
    );
    let late_old: Vec<String> = receive_for(&mut old, Duration::from_millis(300))
        .await
        .iter()
        .map(event_of)
        .collect();
    assert!(
        !late_old.contains(&event_id),
        "an event published after the change went to the old URL"
    );
}

#[tokio::test]
async fn a_delete_answered_by_a_non_owner_stops_every_send_before_it_returns() {
    let _lock = lock().await;
    let Some((_db, nodes)) = pg_nodes(&["node-a", "node-b"], open).await else {
        return;
    };
    let mut rx = TestReceiver::scripted(
        vec![],
        Reply::status(200).delayed(Duration::from_millis(100)),
    );
    let id = nodes[0]
        .add_webhook(TENANT, EVENT, &rx.url, json!({}))
        .await;
    let backlog: HashSet<String> = ids_of(&nodes[0].publish_json(&events(0, 40)).await)
        .into_iter()
        .collect();
    let mut before = receive_distinct(&mut rx, 3, WAIT).await;
    // Delete through the node that does not own the webhook.
    let owner = owner_of(&nodes[0], id).await;
    let via = match owner.as_deref() {
        Some("node-b") => &nodes[0],
        _ => &nodes[1],
    };
    let (status, v) = via
        .call(Method::DELETE, &format!("/api/webhooks/{id}"), None)
        .await;
    assert_eq!(status, 204, "{v}");
    let returned = Instant::now();
    before.extend(rx.drain());
    // Publish on the other node right after: nothing may reach the receiver any more.
    nodes[0].publish_json(&event(99)).await;
    let after = receive_for(&mut rx, Duration::from_millis(1500)).await;
    let late: Vec<String> = before
        .iter()
        .chain(after.iter())
        .filter(|r| r.at > returned)
        .map(|r| {
            format!(
                "{} ({:?} after the DELETE)",
                delivery_of(r),
                r.at - returned
            )
        })
        .collect();
    assert!(
        late.is_empty(),
        "sent after the DELETE returned (owner {owner:?}, deleted via the other node): {late:?}"
    );
    let received = distinct(&before);
    let list = deliveries(&nodes[1], id).await;
    for d in list
        .iter()
        .filter(|d| backlog.contains(d["event_id"].as_str().unwrap_or_default()))
    {
        let status = d["status"].as_str().unwrap_or_default();
        let did = d["delivery_id"].as_str().unwrap_or_default();
        match status {
            "cancelled" => {}
            "success" => assert!(received.contains(did), "success never received: {d}"),
            _ => panic!("an undelivered delivery of a deleted webhook is not cancelled: {d}"),
        }
    }
}

#[tokio::test]
async fn disabling_on_one_node_stops_sends_everywhere_within_2s() {
    let _lock = lock().await;
    let Some((_db, nodes)) = pg_nodes(&["node-a", "node-b"], open).await else {
        return;
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut rx = TestReceiver::scripted(
        vec![],
        Reply::status(200).delayed(Duration::from_millis(100)),
    );
    let id = a.add_webhook(TENANT, EVENT, &rx.url, json!({})).await;
    wait_match(b, CHANGE, "node-b to match the webhook", |ids| ids == [id]).await;
    b.publish_json(&events(0, 60)).await;
    let mut got = receive_distinct(&mut rx, 2, WAIT).await;
    let (status, v) = a
        .call(
            Method::PATCH,
            &format!("/api/webhooks/{id}"),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let disabled = Instant::now();
    got.extend(receive_for(&mut rx, CHANGE + Duration::from_millis(1500)).await);
    let limit = CHANGE + Duration::from_millis(50);
    let late: Vec<String> = got
        .iter()
        .filter(|r| r.at > disabled + limit)
        .map(|r| format!("{:?}", r.at - disabled))
        .collect();
    assert!(
        late.is_empty(),
        "{} requests sent more than 2 s after the disable, at {late:?}",
        late.len()
    );
    // In force everywhere: node-b matches nothing, and the waiting deliveries stay pending.
    wait_match(b, Duration::ZERO, "node-b to match nothing", |ids| {
        ids.is_empty()
    })
    .await;
    let published = b.publish_json(&event(100)).await;
    assert_eq!(published["deliveries"], 0, "{published}");
    let list = deliveries(b, id).await;
    let waiting = list.iter().filter(|d| d["status"] != "success").count();
    assert_eq!(
        waiting,
        60 - distinct(&got).len(),
        "undelivered = published - received"
    );
    for d in list.iter().filter(|d| d["status"] != "success") {
        assert_eq!(
            d["status"], "pending",
            "a waiting delivery stays pending: {d}"
        );
    }
}

#[tokio::test]
async fn a_secret_rotation_on_one_node_signs_every_send_within_2s() {
    let _lock = lock().await;
    let Some((_db, nodes)) = pg_nodes(&["node-a", "node-b"], open).await else {
        return;
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut rx = TestReceiver::start(200);
    let (old, new) = ("cluster-old-secret", "cluster-new-secret");
    let id = a
        .add_webhook(TENANT, EVENT, &rx.url, json!({ "secret": old }))
        .await;
    wait_match(b, CHANGE, "node-b to match the webhook", |ids| ids == [id]).await;
    b.publish_json(&event(0)).await;
    let got = rx
        .next(CHANGE)
        .await
        .expect("a delivery before the rotation");
    assert!(standard_verifies(old, &got), "signed with the first secret");

    let (status, v) = a
        .call(
            Method::POST,
            &format!("/api/webhooks/{id}/rotate-secret"),
            Some(&json!({"grace_seconds": 0, "secret": new})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let rotated = Instant::now();
    let mut n = 1;
    loop {
        b.publish_json(&event(n)).await;
        n += 1;
        let got = rx.next(CHANGE).await.expect("each event is delivered");
        if standard_verifies(new, &got) {
            break;
        }
        assert!(
            rotated.elapsed() < CHANGE + Duration::from_millis(500),
            "still signed with the old secret {:?} after the rotation",
            rotated.elapsed()
        );
    }
    eprintln!(
        "new secret in use {:?} after the rotation",
        rotated.elapsed()
    );
    // From then on, only the new secret signs.
    for node in [a, b] {
        let published = node.publish_json(&event(1000)).await;
        let event_id = ids_of(&published)[0].clone();
        let got = loop {
            let got = rx.next(CHANGE).await.expect("the last event is delivered");
            if event_of(&got) == event_id {
                break got;
            }
        };
        assert!(standard_verifies(new, &got), "signed with the new secret");
        assert!(
            !standard_verifies(old, &got),
            "no longer signed with the old one"
        );
        assert_eq!(
            got.header("x-beema-signature"),
            Some(beema_signature(new, &got.body).as_str())
        );
    }
}

// ---------------------------------------------------------------------------------------------
// one sender per webhook

#[tokio::test]
async fn each_delivery_is_sent_once_whatever_node_accepted_it() {
    let _lock = lock().await;
    let Some((_db, nodes)) = pg_nodes(&["node-a", "node-b", "node-c"], open).await else {
        return;
    };
    let mut rx = TestReceiver::start(200);
    let id = nodes[0]
        .add_webhook(TENANT, EVENT, &rx.url, json!({}))
        .await;
    for node in &nodes[1..] {
        wait_match(node, CHANGE, "every node to match the webhook", |ids| {
            ids == [id]
        })
        .await;
    }
    // 200 events, round-robin over the three nodes, the nodes publishing concurrently.
    futures::future::join_all(nodes.iter().enumerate().map(|(k, node)| async move {
        for i in (k..200).step_by(3) {
            let v = node.publish_json(&event(i)).await;
            assert_eq!(v["deliveries"], 1, "{v}");
        }
    }))
    .await;
    let mut got = receive_distinct(&mut rx, 200, WAIT).await;
    got.extend(receive_for(&mut rx, Duration::from_secs(1)).await);
    let dups = duplicates(&got);
    assert!(
        dups.is_empty(),
        "{} deliveries sent more than once: {:?}",
        dups.len(),
        &dups[..dups.len().min(10)]
    );
    let ids = wait_all_success(&nodes[2], &[id], 200, WAIT).await;
    assert_eq!(
        ids,
        distinct(&got),
        "the receiver got exactly the deliveries"
    );
}

#[tokio::test]
async fn an_ordered_webhook_is_fifo_across_nodes_with_one_request_in_flight() {
    let _lock = lock().await;
    let Some((_db, nodes)) = pg_nodes(&["node-a", "node-b", "node-c"], open).await else {
        return;
    };
    let delay = Duration::from_millis(50);
    let mut rx = TestReceiver::scripted(vec![], Reply::status(200).delayed(delay));
    let id = nodes[0]
        .add_webhook(TENANT, EVENT, &rx.url, json!({ "ordered": true }))
        .await;
    for node in &nodes[1..] {
        wait_match(node, CHANGE, "every node to match the webhook", |ids| {
            ids == [id]
        })
        .await;
    }
    let mut order = Vec::new();
    for i in 0..30 {
        let v = nodes[i % 3].publish_json(&event(i)).await;
        assert_eq!(v["deliveries"], 1, "{v}");
        order.extend(ids_of(&v));
    }
    let got = receive_distinct(&mut rx, 30, WAIT).await;
    let received: Vec<String> = got.iter().map(event_of).collect();
    assert_eq!(received, order, "received in publish order, each once");
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= delay - Duration::from_millis(1),
            "a request arrived {gap:?} after the previous one, which took {delay:?} to answer"
        );
    }
}

#[tokio::test]
async fn a_rate_limit_holds_for_the_cluster_as_a_whole() {
    let _lock = lock().await;
    let Some((_db, nodes)) = pg_nodes(&["node-a", "node-b", "node-c"], open).await else {
        return;
    };
    let (per_second, burst) = (20usize, 5usize);
    let mut rx = TestReceiver::start(200);
    let id = nodes[0]
        .add_webhook(
            TENANT,
            EVENT,
            &rx.url,
            json!({ "rate_limit": { "perSecond": per_second, "burst": burst } }),
        )
        .await;
    for node in &nodes[1..] {
        wait_match(node, CHANGE, "every node to match the webhook", |ids| {
            ids == [id]
        })
        .await;
    }
    futures::future::join_all(
        nodes
            .iter()
            .enumerate()
            .map(|(k, node)| async move { node.publish_json(&events(k * 30, 30)).await }),
    )
    .await;
    let got = receive_distinct(&mut rx, 90, WAIT).await;
    let times: Vec<Instant> = got.iter().map(|r| r.at).collect();
    let busiest = times
        .iter()
        .map(|t| {
            times
                .iter()
                .filter(|u| **u >= *t && **u - *t < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    // A token bucket: burst + perSecond in any second; an owner change may add one burst.
    assert!(
        busiest <= per_second + 2 * burst,
        "{busiest} requests within one second, limit {per_second}/s burst {burst}"
    );
    let dups = duplicates(&got);
    assert!(dups.is_empty(), "sent more than once: {dups:?}");
}

#[tokio::test]
async fn a_node_joining_mid_backlog_sends_nothing_twice() {
    let _lock = lock().await;
    let Some((db, nodes)) = pg_nodes(&["node-a"], open).await else {
        return;
    };
    let mut rx = TestReceiver::start(200);
    // Four webhooks paced at 10/s each: 200 deliveries take about 5 s, longer than a rebalance.
    let mut hooks = Vec::new();
    for k in 0..4 {
        hooks.push(
            nodes[0]
                .add_webhook(
                    TENANT,
                    EVENT,
                    &format!("{}?w={k}", rx.url),
                    json!({ "rate_limit": { "perSecond": 10, "burst": 1 } }),
                )
                .await,
        );
    }
    nodes[0].publish_json(&events(0, 50)).await;
    let mut got = receive_distinct(&mut rx, 20, WAIT).await;
    let b = start_node(&db, "node-b", TTL, open).await;
    eprintln!(
        "node-b joined with {} deliveries left",
        200 - distinct(&got).len()
    );
    receive_more(&mut rx, &mut got, 200, Duration::from_secs(20)).await;
    got.extend(receive_for(&mut rx, Duration::from_secs(1)).await);
    let dups = duplicates(&got);
    assert!(
        dups.is_empty(),
        "{} deliveries sent more than once after a node joined: {:?}",
        dups.len(),
        &dups[..dups.len().min(10)]
    );
    let ids = wait_all_success(&b, &hooks, 50, WAIT).await;
    assert_eq!(ids, distinct(&got));
    let mut owners = Vec::new();
    for h in &hooks {
        owners.push(owner_of(&b, *h).await);
    }
    assert!(
        owners.iter().any(|o| o.as_deref() == Some("node-b")),
        "node-b took nothing over, so nothing moved during the backlog: {owners:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// the real binary: SIGTERM and kill -9

/// Creates six webhooks to `rx` (an `X-Hook: k` header tells them apart) and waits until both
/// nodes own some.
async fn spread_six(a: &NodeProcess, b: &NodeProcess, rx: &TestReceiver) -> Vec<i64> {
    let mut hooks = Vec::new();
    for k in 0..6 {
        hooks.push(
            a.add_webhook(
                TENANT,
                EVENT,
                &rx.url,
                json!({ "headers": { "X-Hook": k.to_string() } }),
            )
            .await,
        );
    }
    wait_everyone_owns_some(b, 2, 6).await;
    hooks
}

#[tokio::test]
async fn sigterm_hands_the_webhooks_over_at_once_without_duplicates() {
    let _lock = lock().await;
    let Some((_db, mut a, b)) = pg_process_pair().await else {
        return;
    };
    // The first 12 requests are slow, so that node-a has attempts in flight when it is stopped.
    let slow = Reply::status(200).delayed(Duration::from_millis(300));
    let mut rx = TestReceiver::scripted(vec![slow; 12], Reply::status(200));
    let hooks = spread_six(&a, &b, &rx).await;
    let mut owned_by_a = Vec::new();
    for h in &hooks {
        if owner_of(&b, *h).await.as_deref() == Some("node-a") {
            owned_by_a.push(*h);
        }
    }
    b.publish_json(&events(0, 2)).await;
    // Every webhook has an attempt in flight (the answers are slow).
    let mut got = receive_every_hook(&mut rx, 6).await;

    a.sigterm();
    let status = a.wait_exit(Duration::from_secs(12)).await;
    let exited = Instant::now();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM exits 0; log:\n{}",
        a.log_tail(30)
    );
    // After the exit, an event for every webhook reaches the survivor's receivers promptly.
    let published = b.publish_json(&event(100)).await;
    assert_eq!(published["deliveries"], 6, "{published}");
    let last = ids_of(&published)[0].clone();
    // Taken over within 2 s; a slow answer still owed to the backlog may come first.
    let deadline = exited + CHANGE + Duration::from_secs(1);
    loop {
        let got_last: HashSet<String> = got
            .iter()
            .filter(|r| event_of(r) == last)
            .map(delivery_of)
            .collect();
        if got_last.len() == 6 {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.next(left).await {
            Some(r) => got.push(r),
            None => panic!(
                "{} of 6 deliveries of the event published after the exit arrived within 2 s \
                 (node-a owned {owned_by_a:?}); node-b log:\n{}",
                got_last.len(),
                b.log_tail(30)
            ),
        }
    }
    let ids = wait_all_success(&b, &hooks, 3, WAIT).await;
    got.extend(receive_for(&mut rx, Duration::from_millis(500)).await);
    assert_eq!(distinct(&got), ids, "every delivery received");
    let dups = duplicates(&got);
    assert!(
        dups.is_empty(),
        "sent twice across a SIGTERM hand-over: {dups:?}; node-a log:\n{}",
        a.log_tail(30)
    );
    wait_listing(
        &b,
        CHANGE,
        "the listing to show node-b alone, owning everything",
        |l| l == [("node-b".to_string(), 6)],
    )
    .await;
}

#[tokio::test]
async fn a_killed_node_s_work_is_taken_over_within_the_lease() {
    let _lock = lock().await;
    let Some((_db, mut a, b)) = pg_process_pair().await else {
        return;
    };
    // Slow answers until the kill: node-a dies with attempts in flight.
    let mut rx = TestReceiver::scripted(
        vec![],
        Reply::status(200).delayed(Duration::from_millis(1000)),
    );
    let hooks = spread_six(&a, &b, &rx).await;
    b.publish_json(&events(0, 2)).await;
    // Every webhook has an attempt in flight (the answers are slow).
    let mut got = receive_every_hook(&mut rx, 6).await;

    a.sigkill();
    let killed = Instant::now();
    rx.set_reply(Reply::status(200));
    a.wait_exit(Duration::from_secs(5)).await;
    b.publish_json(&event(100)).await;

    wait_listing(
        &b,
        TTL + Duration::from_secs(2),
        "the dead node to leave the listing",
        |l| l == [("node-b".to_string(), 6)],
    )
    .await;
    eprintln!(
        "dead node left the listing {:?} after the kill",
        killed.elapsed()
    );
    // Everything is delivered within the lease and a few seconds, though the receiver's slow
    // answers were cut off: the in-flight attempts are resent at once, not after timeout_ms.
    let bound = TTL + Duration::from_secs(3);
    let deadline = killed + bound;
    while distinct(&got).len() < 18 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.next(left).await {
            Some(r) => got.push(r),
            None => panic!(
                "{} of 18 deliveries received {bound:?} after the kill; node-b log:\n{}",
                distinct(&got).len(),
                b.log_tail(30)
            ),
        }
    }
    let ids = wait_all_success(&b, &hooks, 3, Duration::from_secs(5)).await;
    got.extend(rx.drain());
    assert_eq!(distinct(&got), ids, "every delivery received");
    // Only an attempt in flight at the death may be sent again.
    let dups = duplicates(&got);
    eprintln!("{} deliveries sent again after the kill", dups.len());
    assert!(
        !dups.is_empty(),
        "node-a died with attempts in flight whose outcome it never recorded, yet nothing was \
         sent again"
    );
    for (id, _) in dups {
        let times: Vec<String> = got
            .iter()
            .filter(|r| delivery_of(r) == id)
            .map(|r| offset(killed, r.at))
            .collect();
        let first = got
            .iter()
            .filter(|r| delivery_of(r) == id)
            .map(|r| r.at)
            .min()
            .expect("received");
        // A request written just before the kill reaches the receiver's handler a little later.
        assert!(
            first < killed + Duration::from_millis(100),
            "{id} was sent twice but was not in flight at the kill; received at {times:?} \
             (relative to the kill)"
        );
    }
}

/// `at` relative to `origin`, signed, for failure messages.
fn offset(origin: Instant, at: Instant) -> String {
    if at >= origin {
        format!("+{:?}", at - origin)
    } else {
        format!("-{:?}", origin - at)
    }
}

#[tokio::test]
async fn a_delete_whose_owner_died_returns_once_its_lease_expired_and_nothing_is_sent() {
    let _lock = lock().await;
    let Some((_db, mut a, b)) = pg_process_pair().await else {
        return;
    };
    let mut rx = TestReceiver::scripted(
        vec![],
        Reply::status(200).delayed(Duration::from_millis(1000)),
    );
    let hooks = spread_six(&a, &b, &rx).await;
    let (k, victim) = eventually(CHANGE, "node-b to name a webhook node-a owns", || async {
        for (k, h) in hooks.iter().enumerate() {
            if owner_of(&b, *h).await.as_deref() == Some("node-a") {
                return Some((k, *h));
            }
        }
        None
    })
    .await;
    b.publish_json(&events(0, 3)).await;
    let mut got = receive_distinct(&mut rx, 3, WAIT).await;

    a.sigkill();
    let killed = Instant::now();
    rx.set_reply(Reply::status(200));
    let (status, v) = b
        .call(Method::DELETE, &format!("/api/webhooks/{victim}"), None)
        .await;
    let returned = Instant::now();
    assert_eq!(status, 204, "{v}");
    assert!(
        killed.elapsed() <= TTL + CHANGE + Duration::from_millis(500),
        "a DELETE of a dead node's webhook took {:?}",
        killed.elapsed()
    );
    eprintln!("DELETE returned {:?} after the kill", killed.elapsed());
    b.publish_json(&event(100)).await;
    got.extend(receive_for(&mut rx, TTL + CHANGE).await);
    let hook = k.to_string();
    let late: Vec<String> = got
        .iter()
        .filter(|r| r.header("x-hook") == Some(hook.as_str()) && r.at > returned)
        .map(|r| format!("{} ({:?} after)", delivery_of(r), r.at - returned))
        .collect();
    assert!(
        late.is_empty(),
        "sent for the deleted webhook after the DELETE returned: {late:?}"
    );
    let others: Vec<i64> = hooks.iter().copied().filter(|h| *h != victim).collect();
    wait_all_success(&b, &others, 4, WAIT).await;
}

#[tokio::test]
async fn a_410_disable_on_the_owner_is_in_force_on_every_node_within_2s() {
    let _lock = lock().await;
    let Some((_db, nodes)) = pg_nodes(&["node-a", "node-b"], open).await else {
        return;
    };
    let mut rx = TestReceiver::start(410);
    let id = nodes[0]
        .add_webhook(TENANT, EVENT, &rx.url, json!({}))
        .await;
    wait_match(&nodes[1], CHANGE, "node-b to match the webhook", |ids| {
        ids == [id]
    })
    .await;
    nodes[1].publish_json(&event(0)).await;
    rx.next(CHANGE).await.expect("the 410 request");
    let v = nodes[0]
        .wait_get(&format!("/api/webhooks/{id}"), WAIT, |w| {
            w["enabled"] == false
        })
        .await;
    let disabled = Instant::now();
    assert!(v["disabled_reason"].is_string(), "{v}");
    for node in &nodes {
        wait_match(
            node,
            CHANGE.saturating_sub(disabled.elapsed()),
            "every node to stop matching the disabled webhook",
            |ids| ids.is_empty(),
        )
        .await;
    }
    for node in &nodes {
        let published = node.publish_json(&event(1)).await;
        assert_eq!(published["deliveries"], 0, "{published}");
    }
    assert!(
        rx.next(Duration::from_millis(500)).await.is_none(),
        "nothing is sent to a disabled webhook"
    );
}

#[tokio::test]
async fn a_node_cut_off_from_the_database_stops_sending_and_its_webhooks_move() {
    let _lock = lock().await;
    let db = TestDb::new();
    let beema_webhooks::config::DatabaseUrl::Postgres(url) = db.url.clone() else {
        return;
    };
    // node-a reaches the database through a proxy that the test cuts; node-b directly.
    let proxy = PgProxy::start(&url);
    let proxied = proxy.url.clone();
    let a = start_node(&db, "node-a", TTL, |cfg| {
        cfg.database = beema_webhooks::config::DatabaseUrl::Postgres(proxied.clone());
    })
    .await;
    let b = start_node(&db, "node-b", TTL, open).await;
    let mut rx = TestReceiver::start(200);
    // Six webhooks paced at 10/s: a backlog of 20 events each lasts about 2 s.
    let mut hooks = Vec::new();
    for k in 0..6 {
        hooks.push(
            b.add_webhook(
                TENANT,
                EVENT,
                &rx.url,
                json!({
                    "headers": { "X-Hook": k.to_string() },
                    "rate_limit": { "perSecond": 10, "burst": 1 },
                }),
            )
            .await,
        );
    }
    wait_everyone_owns_some(&b, 2, 6).await;
    b.publish_json(&events(0, 20)).await;
    let mut got = receive_every_hook(&mut rx, 6).await;

    proxy.cut();
    let cut = Instant::now();
    wait_listing(
        &b,
        TTL + CHANGE + Duration::from_millis(500),
        "the cut-off node to leave the listing and node-b to own everything",
        |l| l == [("node-b".to_string(), 6)],
    )
    .await;
    eprintln!("node-b owned everything {:?} after the cut", cut.elapsed());
    receive_more(&mut rx, &mut got, 120, WAIT).await;
    let ids = wait_all_success(&b, &hooks, 20, WAIT).await;
    got.extend(rx.drain());
    assert_eq!(distinct(&got), ids, "every delivery received");
    // The cut-off node stops sending before its ownership expires: a delivery sent twice was
    // first sent before that.
    let check = |got: &[Received]| {
        for (id, n) in duplicates(got) {
            let first = got
                .iter()
                .filter(|r| delivery_of(r) == id)
                .map(|r| r.at)
                .min()
                .expect("received");
            assert!(
                first < cut + TTL,
                "{id} sent {n} times, first {:?} after the cut: two senders after the lease expired",
                first - cut
            );
        }
    };
    check(&got);

    // Back on the database, node-a sends nothing of what it lost: new events go out once each.
    proxy.restore();
    wait_ready(&*a, "node-a").await;
    let published = a.publish_json(&event(100)).await;
    assert_eq!(published["deliveries"], 6, "{published}");
    receive_more(&mut rx, &mut got, 126, WAIT).await;
    got.extend(receive_for(&mut rx, Duration::from_secs(1)).await);
    check(&got);
}

#[tokio::test]
async fn a_start_time_https_disable_is_audited_and_announced_once_however_many_nodes_start() {
    let _lock = lock().await;
    let Some((db, nodes)) = pg_nodes(&["node-a"], open).await else {
        return;
    };
    let rx = TestReceiver::start(200);
    let mut plain = Vec::new();
    for _ in 0..3 {
        plain.push(
            nodes[0]
                .add_webhook(TENANT, EVENT, &rx.url, json!({}))
                .await,
        );
    }
    // The operators' webhook hears of every disable (an https target: it stays enabled).
    let ops = nodes[0]
        .add_webhook(
            "_ops",
            "beema/webhook.disabled",
            "https://127.0.0.1:1/ops",
            json!({ "retry_config": { "maxAttempts": 1, "backoffMs": 10 } }),
        )
        .await;
    drop(nodes);

    let nodes = start_nodes_together(&db, &["node-a", "node-b", "node-c"], TTL, |cfg| {
        cfg.require_https = true;
    })
    .await;
    for id in &plain {
        let (status, w) = nodes[2].get_json(&format!("/api/webhooks/{id}")).await;
        assert_eq!(status, 200, "{w}");
        assert_eq!(
            w["enabled"], false,
            "http webhooks are disabled at start: {w}"
        );
    }
    let told = eventually(WAIT, "the three disables to be announced", || async {
        let list = deliveries(&nodes[1], ops).await;
        (list.len() >= 3).then_some(list)
    })
    .await;
    let announced = settled_deliveries(&nodes[0], ops, Duration::from_secs(1), told).await;
    assert_eq!(
        announced.len(),
        3,
        "one beema/webhook.disabled per webhook, not per node: {announced:?}"
    );
    let (status, v) = nodes[0]
        .get_json("/api/audit?action=webhook.disabled")
        .await;
    assert_eq!(status, 200, "{v}");
    let mut audited: Vec<i64> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["webhook_id"].as_i64())
        .collect();
    audited.sort_unstable();
    assert_eq!(
        audited, plain,
        "one audit entry per webhook, not per node: {v}"
    );
}

/// The deliveries of `webhook` once no new one appeared for `window` (a quiet window, polled;
/// `seen` is the last listing).
async fn settled_deliveries(
    node: &impl Api,
    webhook: i64,
    window: Duration,
    mut seen: Vec<Value>,
) -> Vec<Value> {
    let mut since = Instant::now();
    while since.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = deliveries(node, webhook).await;
        if now.len() != seen.len() {
            seen = now;
            since = Instant::now();
        }
    }
    seen
}

// ---------------------------------------------------------------------------------------------
// health, spread, metrics, node ids

/// Creates a webhook to `rx` (which fails everything) whose breaker opens after 3 failures and
/// stays open, waits until both nodes name its owner, and opens the breaker with events published
/// on both nodes. Returns the webhook id, the owner's index in `nodes` and the owner's health.
async fn open_breaker(nodes: &[Node], rx: &TestReceiver) -> (i64, usize, Value) {
    let id = nodes[0]
        .add_webhook(
            TENANT,
            EVENT,
            &rx.url,
            json!({
                "retry_config": { "maxAttempts": 1, "backoffMs": 10 },
                "circuit_breaker": { "failureThreshold": 3, "cooldownMs": 600000 },
            }),
        )
        .await;
    let owner = eventually(2 * TTL, "both nodes to name one owner", || async {
        let (ha, hb) = (owner_of(&nodes[0], id).await, owner_of(&nodes[1], id).await);
        match (ha.as_deref(), hb.as_deref()) {
            (Some(x), Some(y)) if x == y && (x == "node-a" || x == "node-b") => Ok(x.to_string()),
            _ => Err(format!("node-a says {ha:?}, node-b says {hb:?}")),
        }
    })
    .await;
    let owning = usize::from(owner == "node-b");
    wait_match(&nodes[1], CHANGE, "both nodes to match", |ids| ids == [id]).await;
    for i in 0..3 {
        nodes[i % 2].publish_json(&event(i)).await;
    }
    let on_owner = eventually(WAIT, "the owner to open the circuit", || async {
        let h = health(&nodes[owning], id).await;
        (h["circuit"]["state"] == "open").then_some(h)
    })
    .await;
    (id, owning, on_owner)
}

#[tokio::test]
async fn health_answers_the_same_owner_and_circuit_on_every_node() {
    let _lock = lock().await;
    let Some((_db, nodes)) = pg_nodes(&["node-a", "node-b"], open).await else {
        return;
    };
    let mut rx = TestReceiver::start(500);
    let (id, owning, on_owner) = open_breaker(&nodes, &rx).await;
    let opened = Instant::now();
    let (owner, other) = (&on_owner["node"], &nodes[1 - owning]);
    let on_other = eventually(
        CHANGE,
        "the other node to report the open circuit",
        || async {
            let h = health(other, id).await;
            if h["circuit"]["state"] == "open" {
                Ok(h)
            } else {
                Err(h)
            }
        },
    )
    .await;
    eprintln!("the other node saw it {:?} later", opened.elapsed());
    assert_eq!(on_other["node"], *owner, "{on_other}");
    assert_eq!(
        on_other["circuit"]["opened_at"], on_owner["circuit"]["opened_at"],
        "owner {on_owner}\nother {on_other}"
    );
    let (status, all) = other
        .call_as(
            Method::GET,
            "/api/health/webhooks",
            None,
            &[("x-tenant-id", TENANT)],
            None,
        )
        .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["webhooks"][0]["webhook_id"], id, "{all}");
    assert_eq!(all["webhooks"][0]["node"], *owner, "{all}");

    // One breaker for the cluster: while it is open nothing goes out, whichever node accepted the
    // event; the waiting deliveries count on every node (queue.pending and the queue depth are
    // database-wide).
    rx.drain();
    for (i, node) in nodes.iter().enumerate() {
        node.publish_json(&events(10 + 2 * i, 2)).await;
    }
    for node in &nodes {
        eventually(
            CHANGE,
            "queue.pending and beema_queue_depth to count the 4 waiting deliveries",
            || async {
                let h = health(node, id).await;
                let depth = metric(&node.metrics_text().await, "beema_queue_depth");
                if h["queue"]["pending"] == 4 && depth == Some(4.0) {
                    Ok(())
                } else {
                    Err(format!("queue {}, beema_queue_depth {depth:?}", h["queue"]))
                }
            },
        )
        .await;
    }
    assert!(
        rx.next(Duration::from_millis(300)).await.is_none(),
        "a request went out while the breaker was open"
    );
}

#[tokio::test]
async fn the_breaker_moves_with_the_webhook_when_its_owner_stops() {
    let _lock = lock().await;
    let Some((_db, mut nodes)) = pg_nodes(&["node-a", "node-b"], open).await else {
        return;
    };
    let mut rx = TestReceiver::start(500);
    let (id, owning, on_owner) = open_breaker(&nodes, &rx).await;
    nodes.remove(owning).stop();
    let survivor = &nodes[0];
    let name = if owning == 0 { "node-b" } else { "node-a" };
    let h = eventually(CHANGE, "the survivor to own the webhook", || async {
        let h = health(survivor, id).await;
        if h["node"] == name {
            Ok(h)
        } else {
            Err(h)
        }
    })
    .await;
    assert_eq!(h["circuit"]["state"], "open", "the breaker stays open: {h}");
    assert_eq!(
        h["circuit"]["opened_at"], on_owner["circuit"]["opened_at"],
        "the new owner resumes the breaker\nbefore {on_owner}\nafter {h}"
    );
    rx.drain();
    survivor.publish_json(&event(10)).await;
    assert!(
        rx.next(Duration::from_millis(500)).await.is_none(),
        "the new owner sent through an open breaker"
    );
}

#[tokio::test]
async fn retries_are_counted_for_the_cluster_as_a_whole() {
    let _lock = lock().await;
    let Some((_db, nodes)) = pg_nodes(&["node-a", "node-b", "node-c"], open).await else {
        return;
    };
    let mut rx = TestReceiver::start(500);
    let id = nodes[0]
        .add_webhook(
            TENANT,
            EVENT,
            &rx.url,
            json!({
                "retry_config": { "maxAttempts": 3, "backoffMs": 10 },
                "circuit_breaker": { "failureThreshold": 1000, "cooldownMs": 10 },
            }),
        )
        .await;
    for node in &nodes[1..] {
        wait_match(node, CHANGE, "every node to match the webhook", |ids| {
            ids == [id]
        })
        .await;
    }
    for (i, node) in nodes.iter().enumerate() {
        node.publish_json(&event(i)).await;
    }
    eventually(WAIT, "the 3 deliveries to fail", || async {
        let list = deliveries(&nodes[2], id).await;
        (list.len() == 3 && list.iter().all(|d| d["status"] == "failed")).then_some(())
    })
    .await;
    let mut got = rx.drain();
    got.extend(receive_for(&mut rx, Duration::from_millis(500)).await);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *counts.entry(delivery_of(r)).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.values().all(|n| *n == 3),
        "maxAttempts 3 per delivery for the whole cluster: {counts:?}"
    );
}

#[tokio::test]
async fn ownership_is_spread_when_a_node_joins() {
    let _lock = lock().await;
    let Some((db, nodes)) = pg_nodes(&["node-a"], open).await else {
        return;
    };
    let rx = TestReceiver::start(200);
    for k in 0..20 {
        nodes[0]
            .add_webhook(TENANT, EVENT, &rx.url, json!({ "enabled": k % 5 != 0 }))
            .await;
    }
    wait_listing(&nodes[0], 2 * TTL, "node-a to own all 20", |l| {
        l == [("node-a".to_string(), 20)]
    })
    .await;
    let b = start_node(&db, "node-b", TTL, open).await;
    let joined = Instant::now();
    let deadline = joined + 2 * TTL + Duration::from_millis(500);
    for node in [&nodes[0], &b] {
        wait_listing(
            node,
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(500)),
            "each node to own at least 5 of the 20 webhooks",
            |l| {
                l.len() == 2
                    && l.iter().all(|(_, n)| *n >= 5)
                    && l.iter().map(|(_, n)| n).sum::<i64>() == 20
            },
        )
        .await;
    }
    eprintln!("spread {:?} after the join", joined.elapsed());
}

#[tokio::test]
async fn ownership_is_spread_with_few_webhooks_too() {
    let _lock = lock().await;
    let Some((_db, nodes)) = pg_nodes(&["node-a", "node-b"], open).await else {
        return;
    };
    let rx = TestReceiver::start(200);
    for _ in 0..4 {
        nodes[0]
            .add_webhook(TENANT, EVENT, &rx.url, json!({}))
            .await;
    }
    // Four webhooks on two nodes: a fair share is 2, so each node owns at least 1.
    wait_listing(
        &nodes[1],
        2 * TTL + Duration::from_millis(500),
        "each node to own at least 1 of the 4 webhooks",
        |l| {
            l.len() == 2
                && l.iter().all(|(_, n)| *n >= 1)
                && l.iter().map(|(_, n)| n).sum::<i64>() == 4
        },
    )
    .await;
}

#[tokio::test]
async fn metrics_count_cluster_nodes_and_owned_webhooks() {
    let _lock = lock().await;
    let db = TestDb::new();
    let rx = TestReceiver::start(200);
    let ids: &[&str] = if db.is_pg() {
        &["node-a", "node-b"]
    } else {
        &["solo"]
    };
    let nodes = start_nodes(&db, ids, TTL, open).await;
    for node in &nodes {
        let text = node.metrics_text().await;
        assert!(
            metric(&text, "beema_cluster_nodes").is_some_and(|v| v >= 1.0),
            "beema_cluster_nodes from the start:\n{text}"
        );
        assert_eq!(
            metric(&text, "beema_owned_webhooks"),
            Some(0.0),
            "beema_owned_webhooks from the start:\n{text}"
        );
    }
    for k in 0..6 {
        nodes[0]
            .add_webhook(TENANT, EVENT, &rx.url, json!({ "enabled": k != 0 }))
            .await;
    }
    let count = nodes.len() as f64;
    eventually(
        2 * TTL + Duration::from_secs(1),
        "the metrics to count the nodes and the 6 webhooks",
        || async {
            let mut owned = 0.0;
            let mut seen = Vec::new();
            for node in &nodes {
                let text = node.metrics_text().await;
                let n = metric(&text, "beema_cluster_nodes");
                let o = metric(&text, "beema_owned_webhooks");
                seen.push((n, o));
                if n != Some(count) {
                    return Err(format!("{seen:?}"));
                }
                owned += o.unwrap_or(-100.0);
            }
            if owned == 6.0 {
                Ok(())
            } else {
                Err(format!("(nodes, owned) per node: {seen:?}"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_node_started_with_a_running_node_s_id_takes_it_over() {
    let _lock = lock().await;
    let db = TestDb::new();
    if !db.is_pg() {
        return;
    }
    let url = db_url(&db);
    let mut first = NodeProcess::start(&url, "twin", TTL_MS).await;
    let mut rx = TestReceiver::start(200);
    // Paced at 10/s: the backlog outlasts the take-over.
    let id = first
        .add_webhook(
            TENANT,
            EVENT,
            &rx.url,
            json!({ "rate_limit": { "perSecond": 10, "burst": 1 } }),
        )
        .await;
    first.publish_json(&events(0, 40)).await;
    let mut got = receive_distinct(&mut rx, 5, WAIT).await;

    let second = NodeProcess::start(&url, "twin", TTL_MS).await;
    let started = Instant::now();
    let status = first.wait_exit(TTL + Duration::from_secs(3)).await;
    let exited = Instant::now();
    assert!(
        !status.success(),
        "the older process exits non-zero: {status:?}; log:\n{}",
        first.log_tail(20)
    );
    eprintln!(
        "the older process exited {:?} after the newer was ready",
        started.elapsed()
    );
    let (status, v) = second.get_json("/readyz").await;
    assert_eq!(status, 200, "the newer keeps serving: {v}");
    wait_listing(
        &second,
        2 * TTL,
        "the newer process alone in the listing, owning the webhook",
        |l| l == [("twin".to_string(), 1)],
    )
    .await;

    // The newer sends the rest; only an attempt the older had under way may go out twice.
    let ids = wait_all_success(&second, &[id], 40, WAIT).await;
    receive_more(&mut rx, &mut got, 40, WAIT).await;
    got.extend(receive_for(&mut rx, Duration::from_millis(500)).await);
    assert_eq!(distinct(&got), ids, "every delivery received");
    for (delivery, n) in duplicates(&got) {
        let first_sent = got
            .iter()
            .filter(|r| delivery_of(r) == delivery)
            .map(|r| r.at)
            .min()
            .expect("received");
        assert!(
            first_sent < exited + Duration::from_millis(100),
            "{delivery} sent {n} times, first {} after the older process exited",
            offset(exited, first_sent)
        );
    }
}
