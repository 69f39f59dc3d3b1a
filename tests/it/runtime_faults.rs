//! Faults of the actor runtime (issue 9): a panic during the half-open probe, a 410 disable the
//! database refuses, a crashed intake task, and the paged health list. Each test failed before its
//! fix; nothing sleeps for a fixed time: tests poll the API or wait on the receiver.

use std::time::Duration;

use beema_webhooks::config::DatabaseUrl;
use serde_json::{json, Value};

use crate::utils::{Env, TestDb, TestReceiver, TestServer};

const WAIT: Duration = Duration::from_secs(15);
const EVENT: &str = "claim/opened";

fn id_of(hook: &Value) -> i64 {
    hook["webhook_id"].as_i64().expect("webhook_id")
}

/// Publishes one event for `tenant` and returns the id of its only delivery.
async fn publish_one(s: &TestServer, tenant: &str) -> String {
    let v = s.publish(tenant, EVENT, json!({ "n": 1 })).await;
    assert_eq!(v["deliveries"], 1, "{v}");
    let event_id = v["ids"][0].as_str().expect("event id");
    let list = s
        .wait_deliveries(&format!("event_id={event_id}"), WAIT, |d| d.len() == 1)
        .await;
    list[0]["delivery_id"]
        .as_str()
        .expect("delivery id")
        .to_string()
}

async fn wait_health(s: &TestServer, id: i64, check: impl Fn(&Value) -> bool) -> Value {
    s.wait_get(&format!("/api/webhooks/{id}/health"), WAIT, check)
        .await
}

/// Runs SQL on the test's database from outside the server (SQLite text, PostgreSQL text).
async fn exec(db: &TestDb, sqlite: &str, pg: &str) {
    match &db.url {
        DatabaseUrl::Sqlite(path) => {
            use diesel::connection::SimpleConnection;
            use diesel::Connection;
            let mut c = diesel::sqlite::SqliteConnection::establish(path).expect("open SQLite");
            c.batch_execute("PRAGMA busy_timeout = 10000;")
                .expect("busy timeout");
            c.batch_execute(sqlite).expect("SQLite statement");
        }
        DatabaseUrl::Postgres(url) => {
            use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
            let mut c = AsyncPgConnection::establish(url)
                .await
                .expect("connect to PostgreSQL");
            c.batch_execute(pg).await.expect("PostgreSQL statement");
        }
    }
}

/// Polls `path` until it answers `status`; returns the body.
async fn wait_status(s: &TestServer, path: &str, status: u16) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (got, v) = s.get(path).await;
        if got == status {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path} never answered {status}: {got} {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// F1: a restart rebuilds the breaker

#[tokio::test]
async fn a_panic_during_the_half_open_probe_does_not_wedge_the_breaker() {
    let env = Env::start();
    let s = &env.server;
    let rx = TestReceiver::start(500);
    let extra = json!({
        "retry_config": { "maxAttempts": 50, "backoffMs": 10 },
        "circuit_breaker": { "failureThreshold": 1, "cooldownMs": 200 },
    });
    let id = id_of(&s.create_webhook("tenant-f1", EVENT, &rx.url, extra).await);
    let delivery = publish_one(s, "tenant-f1").await;
    wait_health(s, id, |h| h["circuit"]["state"] == "open").await;

    // The next attempt is the half-open probe: it takes the breaker's only permit, then panics.
    beema_webhooks::testing::inject_panic_at(&rx.url);
    wait_health(s, id, |h| {
        h["restarts"].as_u64().unwrap_or(0) >= 1 && h["actor"] == "running"
    })
    .await;

    rx.set_reply(crate::utils::Reply::status(200));
    s.wait_get(&format!("/api/webhooks/deliveries/{delivery}"), WAIT, |d| {
        d["status"] == "success"
    })
    .await;
    wait_health(s, id, |h| h["circuit"]["state"] == "closed").await;
}

// ---------------------------------------------------------------------------------------------
// F3: the 410 disable reaches the database even when the first write fails

const REFUSE_SQLITE: &str = "CREATE TRIGGER refuse_disable BEFORE UPDATE ON sys_webhooks \
     WHEN NEW.enabled = 0 AND OLD.enabled = 1 \
     BEGIN SELECT RAISE(ABORT, 'injected: disable refused'); END;";
const REFUSE_PG: &str = "CREATE FUNCTION refuse_disable() RETURNS trigger LANGUAGE plpgsql AS \
     $$ BEGIN RAISE EXCEPTION 'injected: disable refused'; END $$; \
     CREATE TRIGGER refuse_disable BEFORE UPDATE ON sys_webhooks FOR EACH ROW \
     WHEN (NEW.enabled = false AND OLD.enabled = true) EXECUTE FUNCTION refuse_disable();";

#[tokio::test]
async fn a_refused_410_disable_is_retried_until_the_database_has_it() {
    let env = Env::start();
    let s = &env.server;
    let mut rx = TestReceiver::start(410);
    let tenant = "tenant-f3";
    let id = id_of(&s.create_webhook(tenant, EVENT, &rx.url, json!({})).await);
    exec(&env.db, REFUSE_SQLITE, REFUSE_PG).await;

    let delivery = publish_one(s, tenant).await;
    rx.expect(WAIT).await;
    // The disable is handed over before the attempt's outcome, which the recorder writes a few ms
    // later: once the delivery reads `failed`, the first disable write has met the trigger.
    s.wait_get(&format!("/api/webhooks/deliveries/{delivery}"), WAIT, |d| {
        d["status"] == "failed"
    })
    .await;
    let (status, w) = s.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["enabled"], true, "the trigger refused the disable: {w}");
    // Matching stopped at once all the same: a disabled webhook gets no new deliveries.
    let (status, m) = s
        .post(
            "/api/webhooks/match",
            &json!({ "event_type": EVENT, "tenant_id": tenant }),
        )
        .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["webhooks"], json!([]), "{m}");

    exec(
        &env.db,
        "DROP TRIGGER refuse_disable;",
        "DROP TRIGGER refuse_disable ON sys_webhooks;",
    )
    .await;
    let w = s
        .wait_get(&format!("/api/webhooks/{id}"), WAIT, |w| {
            w["enabled"] == false
        })
        .await;
    assert!(
        w["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "{w}"
    );
}

// ---------------------------------------------------------------------------------------------
// F5: the intake task is supervised and /readyz covers it

#[tokio::test]
async fn a_crashed_intake_is_restarted_and_readyz_is_503_while_it_is_down() {
    let env = Env::start();
    let s = &env.server;
    let mut rx = TestReceiver::start(200);
    let tenant = "tenant-f5-intake-fault";
    s.create_webhook(tenant, EVENT, &rx.url, json!({})).await;
    wait_status(s, "/readyz", 200).await;

    // Keyed by tenant: other tests' intakes in this process never take the fault.
    beema_webhooks::testing::hold_intake_restart(true);
    beema_webhooks::testing::inject_intake_panic(tenant);
    let body = json!({ "event": EVENT, "data": { "tenantId": tenant } });
    let (status, v) = s.post("/api/events", &body).await;
    assert_eq!(status, 503, "the request the intake died on: {v}");
    // The reply is dropped while the task unwinds, a moment before its supervisor sees it gone;
    // the held restart keeps it down until released.
    let ready = wait_status(s, "/readyz", 503).await;
    beema_webhooks::testing::hold_intake_restart(false);
    assert_eq!(ready["intake"], false, "{ready}");

    let ready = wait_status(s, "/readyz", 200).await;
    assert_eq!(ready["intake"], true, "{ready}");
    let v = s
        .publish(tenant, EVENT, json!({ "after": "restart" }))
        .await;
    assert_eq!(v["deliveries"], 1, "{v}");
    let got = rx.expect(WAIT).await;
    assert_eq!(got.json()["data"]["after"], "restart", "{}", got.json());
}

// ---------------------------------------------------------------------------------------------
// F7: the health list is paged and filtered

fn ids(v: &Value) -> Vec<i64> {
    v["webhooks"]
        .as_array()
        .expect("webhooks")
        .iter()
        .map(|h| h["webhook_id"].as_i64().expect("webhook_id"))
        .collect()
}

#[tokio::test]
async fn the_health_list_is_paged_and_filtered_by_circuit_state() {
    let env = Env::start();
    let s = &env.server;
    let ok = TestReceiver::start(200);
    let failing = TestReceiver::start(500);
    let tenant = "tenant-f7";
    let mut all = Vec::new();
    for _ in 0..4 {
        all.push(id_of(
            &s.create_webhook(tenant, "other/event", &ok.url, json!({}))
                .await,
        ));
    }
    let breaker = json!({
        "retry_config": { "maxAttempts": 5, "backoffMs": 10 },
        "circuit_breaker": { "failureThreshold": 1, "cooldownMs": 600000 },
    });
    let open = id_of(&s.create_webhook(tenant, EVENT, &failing.url, breaker).await);
    all.push(open);
    publish_one(s, tenant).await;
    wait_health(s, open, |h| h["circuit"]["state"] == "open").await;

    let (status, v) = s.get("/api/health/webhooks").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(ids(&v), all, "{v}");
    assert_eq!(v["next_after"], Value::Null, "{v}");

    let mut seen = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let path = match after {
            Some(a) => format!("/api/health/webhooks?limit=2&after={a}"),
            None => "/api/health/webhooks?limit=2".to_string(),
        };
        let (status, v) = s.get(&path).await;
        assert_eq!(status, 200, "{v}");
        let page = ids(&v);
        assert!(page.len() <= 2, "{v}");
        seen.extend(page);
        match v["next_after"].as_i64() {
            Some(n) => {
                assert_eq!(
                    Some(&n),
                    seen.last(),
                    "next_after is the page's last id: {v}"
                );
                after = Some(n);
            }
            None => break,
        }
    }
    assert_eq!(seen, all, "paging neither skips nor repeats");

    let (_, v) = s.get("/api/health/webhooks?state=open").await;
    assert_eq!(ids(&v), vec![open], "{v}");
    let (_, v) = s.get("/api/health/webhooks?state=closed").await;
    assert_eq!(ids(&v), all[..4].to_vec(), "{v}");
    let (_, v) = s.get("/api/health/webhooks?state=half_open").await;
    assert_eq!(ids(&v), Vec::<i64>::new(), "{v}");

    for bad in [
        "state=ajar",
        "limit=0",
        "limit=1001",
        "limit=many",
        "after=x",
    ] {
        let (status, v) = s.get(&format!("/api/health/webhooks?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
}
