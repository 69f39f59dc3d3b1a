//! Lost updates and hangs: concurrent writers to one webhook keep each other's changes, and a
//! database that hangs (rather than refusing) answers 503 instead of hanging the API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use beema_webhooks::config::DatabaseUrl;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::utils::{test_config, Env, TestDb, TestReceiver, TestServer};

const WAIT: Duration = Duration::from_secs(10);

type SqliteConn =
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>;

/// A connection of the test's own to the server's database, beside the server's pools.
// One per test, on the stack for its length: boxing the larger arm buys nothing.
#[allow(clippy::large_enum_variant)]
enum Direct {
    Sqlite(SqliteConn),
    Pg(AsyncPgConnection),
}

impl Direct {
    async fn open(url: &DatabaseUrl) -> Self {
        match url {
            DatabaseUrl::Sqlite(path) => {
                let mut c = SqliteConn::establish(path).await.expect("open SQLite");
                c.batch_execute("PRAGMA busy_timeout = 10000")
                    .await
                    .expect("pragma");
                Direct::Sqlite(c)
            }
            DatabaseUrl::Postgres(url) => {
                Direct::Pg(AsyncPgConnection::establish(url).await.expect("connect"))
            }
        }
    }

    async fn run(&mut self, sql: &str) {
        match self {
            Direct::Sqlite(c) => c.batch_execute(sql).await,
            Direct::Pg(c) => c.batch_execute(sql).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Opens a write transaction that holds the lock a writer of `sys_webhooks` needs.
    async fn begin_write(&mut self) {
        match self {
            Direct::Sqlite(_) => self.run("BEGIN IMMEDIATE").await,
            Direct::Pg(_) => self.run("BEGIN").await,
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Waits until `request` is stuck on the lock the test holds. PostgreSQL shows the waiting
/// backend; SQLite does not, so there the request must simply still be unanswered after a while
/// (it answers in milliseconds otherwise).
async fn wait_blocked(db: &TestDb, request: &tokio::task::JoinHandle<(u16, Value)>) {
    let DatabaseUrl::Postgres(url) = &db.url else {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!request.is_finished(), "the request waits for the lock");
        return;
    };
    let mut watcher = AsyncPgConnection::establish(url).await.expect("connect");
    let deadline = Instant::now() + WAIT;
    loop {
        let waiting: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .get_result(&mut watcher)
        .await
        .expect("pg_stat_activity");
        if waiting.n > 0 {
            return;
        }
        assert!(!request.is_finished(), "the request waits for the lock");
        assert!(
            Instant::now() < deadline,
            "the request never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_racing_a_410_disable_does_not_re_enable_the_webhook() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook(
            "tenant-1",
            "claim/opened",
            "http://127.0.0.1:9/hook",
            json!({}),
        )
        .await;
    let id = w["webhook_id"].as_i64().unwrap();
    // The dispatcher's 410 disable, written while the PATCH below has already read the webhook
    // as enabled: the test holds the disable's transaction open until the PATCH waits for it.
    let mut direct = Direct::open(&env.db.url).await;
    direct.begin_write().await;
    direct
        .run(&format!(
            "UPDATE sys_webhooks SET enabled = false, \
             disabled_reason = 'receiver answered 410 Gone' WHERE webhook_id = {id}"
        ))
        .await;
    let server = Arc::new(env.server);
    let patch = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .json(
                    Method::PATCH,
                    &format!("/api/webhooks/{id}"),
                    &json!({"webhook_name": "renamed", "url": "http://127.0.0.1:9/moved"}),
                )
                .await
        }
    });
    wait_blocked(&env.db, &patch).await;
    direct.run("COMMIT").await;
    let (status, v) = patch.await.expect("patch task");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["webhook_name"], "renamed");
    assert_eq!(v["enabled"], false, "the PATCH kept the disable: {v}");
    let (_, now) = server.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(now["enabled"], false, "{now}");
    assert_eq!(now["disabled_reason"], "receiver answered 410 Gone");
    assert_eq!(now["webhook_name"], "renamed");
    assert_eq!(now["url"], "http://127.0.0.1:9/moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_keep_every_secret_they_handed_out() {
    const ROTATIONS: usize = 8;
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", &rx.url, json!({}))
        .await;
    let id = w["webhook_id"].as_i64().unwrap();
    let mut handed_out = vec![w["secret"].as_str().unwrap().to_string()];
    let path = format!("/api/webhooks/{id}/rotate-secret");
    let body = json!({"grace_seconds": 3600});
    let rotations = (0..ROTATIONS).map(|_| env.server.post(&path, &body));
    for (status, v) in futures::future::join_all(rotations).await {
        assert_eq!(status, 200, "{v}");
        handed_out.push(v["secret"].as_str().unwrap().to_string());
    }
    env.server
        .publish("tenant-1", "claim/opened", json!({}))
        .await;
    let got = rx.expect(WAIT).await;
    let signatures = got.header("webhook-signature").unwrap_or_default();
    assert_eq!(
        signatures.split(' ').count(),
        ROTATIONS + 1,
        "one signature per secret still live: {signatures}"
    );
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, got.header(name).unwrap().parse().unwrap());
    }
    for secret in &handed_out {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&got.body, &headers)
            .unwrap_or_else(|e| panic!("{secret} still signs: {e}"));
    }
}

/// A TCP forwarder whose traffic can be stopped without closing anything: to the server behind
/// it, the database has gone silent.
struct Stall {
    addr: std::net::SocketAddr,
    paused: watch::Sender<bool>,
}

impl Stall {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let (paused, _) = watch::channel(false);
        let gate = paused.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (ur, uw) = upstream.into_split();
                tokio::spawn(pipe(cr, uw, gate.subscribe()));
                tokio::spawn(pipe(ur, cw, gate.subscribe()));
            }
        });
        Self { addr, paused }
    }

    fn pause(&self, on: bool) {
        self.paused.send_replace(on);
    }
}

/// Copies bytes while not paused; paused, it holds them and keeps both sockets open.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if paused.wait_for(|p| !*p).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_answers_503_when_postgresql_hangs() {
    let db = TestDb::new();
    let DatabaseUrl::Postgres(url) = &db.url else {
        println!(
            "publishing_answers_503_when_postgresql_hangs: PostgreSQL only, skipped on SQLite"
        );
        return;
    };
    let (scheme_user, rest) = url.split_once('@').expect("postgres URL with a host");
    let (host, name) = rest.split_once('/').expect("postgres URL with a database");
    let stall = Stall::start(host.to_string()).await;
    let mut config = test_config(&db);
    config.database = DatabaseUrl::Postgres(format!("{scheme_user}@{}/{name}", stall.addr));
    let server = TestServer::start(config);
    let (status, v) = server.get("/readyz").await;
    assert_eq!(status, 200, "{v}");
    stall.pause(true);
    let started = Instant::now();
    let (status, v) = tokio::time::timeout(
        Duration::from_secs(20),
        server.post(
            "/api/events",
            &json!({"event": "claim/opened", "data": {"tenantId": "tenant-1"}}),
        ),
    )
    .await
    .expect("publishing answers instead of hanging");
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "unavailable", "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "answered within the pool's bound: {:?}",
        started.elapsed()
    );
    stall.pause(false);
    server.stop();
}

/// PostgreSQL: a registry reload (the cluster listener's, at start and after every reconnect) keeps
/// what the API changed while its snapshot was read and applied. Held between the two, the reload
/// used to put back the snapshot as it was: a webhook created meanwhile missed the events published
/// until its notification came, and one deleted meanwhile got them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_reload_keeps_what_the_api_changed_while_it_ran() {
    use beema_webhooks::testing::{hold_reload, reload_reached, ReloadPoint};

    let db = TestDb::new();
    if !db.is_pg() {
        return; // SQLite reloads nothing: one process serves the file
    }
    let config = test_config(&db);
    let node = config.node_id.clone();
    let first = TestServer::start(config.clone());
    let deleted = first
        .create_webhook(
            "tenant-1",
            "claim/settled",
            "http://127.0.0.1:9/a",
            json!({}),
        )
        .await;
    let deleted = deleted["webhook_id"].as_i64().unwrap();
    first.stop();

    // The next start's reload reads a snapshot holding `deleted` only, and stops there.
    hold_reload(&node, ReloadPoint::SnapshotRead, true);
    hold_reload(&node, ReloadPoint::Applied, true);
    let server = TestServer::start(config);
    let reached = |point| {
        let node = node.clone();
        move || {
            let node = node.clone();
            async move { reload_reached(&node, point).then_some(()) }
        }
    };
    crate::utils::eventually(
        WAIT,
        "the reload read its snapshot",
        reached(ReloadPoint::SnapshotRead),
    )
    .await;
    server
        .create_webhook(
            "tenant-1",
            "claim/opened",
            "http://127.0.0.1:9/b",
            json!({}),
        )
        .await;
    let (status, v) = server.delete(&format!("/api/webhooks/{deleted}")).await;
    assert!(status == 200 || status == 204, "{status} {v}");
    hold_reload(&node, ReloadPoint::SnapshotRead, false);
    // Applied, and the notifications of both changes not handled yet: only the registry the
    // reload left decides where these events go.
    crate::utils::eventually(
        WAIT,
        "the reload applied its snapshot",
        reached(ReloadPoint::Applied),
    )
    .await;
    let created_gets = server.publish("tenant-1", "claim/opened", json!({})).await;
    let deleted_gets = server.publish("tenant-1", "claim/settled", json!({})).await;
    hold_reload(&node, ReloadPoint::Applied, false);
    assert_eq!(created_gets["deliveries"], 1, "the new webhook was dropped");
    assert_eq!(
        deleted_gets["deliveries"], 0,
        "the deleted webhook came back"
    );
    server.stop();
}
