//! The audit log (README, Audit log), `BEEMA_REQUIRE_HTTPS` (README, Settings) and the
//! issue-12 decisions on credentials: `/metrics` refuses tenant keys, and credentials are checked
//! before `X-Tenant-ID` on every route.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::utils::{test_config, Env, Reply, TestDb, TestReceiver, TestServer};

const ADMIN: &str = "admin-token-for-audit-tests";
const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "whsec_QXVkaXRUZXN0U2VjcmV0S2V5MDEyMzQ1Njc4OQ==";
const HEADER_VALUE: &str = "header-value-that-must-not-leak";

/// An admin token, and private targets allowed (the local receivers).
fn token_env() -> Env {
    Env::with(|c| c.admin_token = Some(ADMIN.into()))
}

async fn call(
    s: &TestServer,
    m: Method,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (u16, Value) {
    s.call_as(m, path, Some(bearer), &[], body.as_ref()).await
}

async fn new_key(s: &TestServer, tenant: &str, role: &str) -> (String, String) {
    let body = json!({"tenant_id": tenant, "role": role, "name": format!("{tenant}-{role}")});
    let (st, v) = call(s, Method::POST, "/api/keys", ADMIN, Some(body)).await;
    assert_eq!(st, 201, "{v}");
    (
        v["key_id"].as_str().unwrap().into(),
        v["key"].as_str().unwrap().into(),
    )
}

async fn audit(s: &TestServer, bearer: &str, query: &str) -> Vec<Value> {
    let (st, v) = call(s, Method::GET, &format!("/api/audit?{query}"), bearer, None).await;
    assert_eq!(st, 200, "{query}: {v}");
    v["entries"].as_array().unwrap().clone()
}

fn actions(entries: &[Value]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["actor"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_webhook_and_key_change_is_recorded_once_with_its_actor_and_no_secret() {
    let Env { server: s, db: _db } = token_env();
    let (key_id, key) = new_key(&s, "tenant-1", "admin").await;
    let body = json!({"webhook_name": "h", "event_type": "a/b", "url": "https://a.example/h",
        "secret": SECRET, "headers": {"X-Api-Key": HEADER_VALUE}});
    let (st, w) = call(&s, Method::POST, "/api/webhooks", &key, Some(body)).await;
    assert_eq!(st, 201, "{w}");
    let id = w["webhook_id"].as_i64().unwrap();
    let path = format!("/api/webhooks/{id}");
    let put = |b: Value| call(&s, Method::PUT, &path, &key, Some(b));
    assert_eq!(put(json!({"url": "https://b.example/h"})).await.0, 200);
    // Nothing changes: no entry.
    assert_eq!(
        put(json!({"url": "https://b.example/h", "webhook_name": "h"}))
            .await
            .0,
        200
    );
    assert_eq!(put(json!({"enabled": false})).await.0, 200);
    assert_eq!(
        put(json!({"enabled": true, "timeout_ms": 5000})).await.0,
        200
    );
    assert_eq!(
        put(json!({"headers": {"X-Api-Key": "another-header-value"}}))
            .await
            .0,
        200
    );
    let rotate = format!("/api/webhooks/{id}/rotate-secret");
    let (st, rotated) = call(&s, Method::POST, &rotate, ADMIN, None).await;
    assert_eq!(st, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_eq!(call(&s, Method::DELETE, &path, ADMIN, None).await.0, 204);
    let key_path = format!("/api/keys/{key_id}");
    assert_eq!(
        call(&s, Method::DELETE, &key_path, ADMIN, None).await.0,
        204
    );

    let all = audit(&s, ADMIN, "").await;
    let mut expected = vec![
        ("key.created", "admin"),
        ("webhook.created", key_id.as_str()),
        ("webhook.updated", key_id.as_str()),
        ("webhook.disabled", key_id.as_str()),
        ("webhook.enabled", key_id.as_str()),
        ("webhook.updated", key_id.as_str()),
        ("webhook.secret_rotated", "admin"),
        ("webhook.deleted", "admin"),
        ("key.revoked", "admin"),
    ];
    expected.reverse();
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect();
    assert_eq!(actions(&all), expected, "newest first, once each");
    let text = serde_json::to_string(&all).unwrap();
    for leak in [
        SECRET,
        new_secret.as_str(),
        HEADER_VALUE,
        "another-header-value",
        key.as_str(),
    ] {
        assert!(
            !text.contains(leak),
            "{leak} leaked into the audit log: {text}"
        );
    }
    let by = |action: &str| all.iter().find(|e| e["action"] == action).unwrap().clone();
    let created = by("webhook.created");
    assert_eq!(created["before"], Value::Null);
    assert_eq!(created["after"]["url"], "https://a.example/h");
    assert_eq!(created["after"]["secret"], "[redacted]");
    assert_eq!(
        created["after"]["headers"],
        json!({"X-Api-Key": "[redacted]"})
    );
    assert_eq!(
        (
            created["tenant_id"].as_str(),
            created["webhook_id"].as_i64()
        ),
        (Some("tenant-1"), Some(id))
    );
    let updated = all
        .iter()
        .rev()
        .find(|e| e["action"] == "webhook.updated")
        .unwrap();
    assert_eq!(updated["before"], json!({"url": "https://a.example/h"}));
    assert_eq!(updated["after"], json!({"url": "https://b.example/h"}));
    let enabled = by("webhook.enabled");
    assert_eq!(
        enabled["before"],
        json!({"enabled": false, "timeout_ms": 30000})
    );
    assert_eq!(
        enabled["after"],
        json!({"enabled": true, "timeout_ms": 5000})
    );
    let headers = &all[3];
    assert_eq!(headers["action"], "webhook.updated");
    assert_eq!(
        headers["after"],
        json!({"headers": {"X-Api-Key": "[redacted]"}})
    );
    let rotated = by("webhook.secret_rotated");
    assert_eq!(rotated["before"], json!({"secret": "[redacted]"}));
    assert_eq!(rotated["after"], json!({"secret": "[redacted]"}));
    let deleted = by("webhook.deleted");
    assert_eq!(
        (deleted["after"].clone(), deleted["before"]["url"].clone()),
        (Value::Null, json!("https://b.example/h"))
    );
    let key_created = by("key.created");
    assert_eq!(
        key_created["after"],
        json!({"key_id": key_id, "tenant_id": "tenant-1", "role": "admin", "name": "tenant-1-admin"})
    );
    assert_eq!(by("key.revoked")["before"], key_created["after"]);
    for e in &all {
        assert!(e["audit_id"].as_str().is_some_and(|a| !a.is_empty()), "{e}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).is_ok(),
            "{e}"
        );
    }
    // Entries outlive their webhook, and filter by it and by action.
    let of_hook = audit(&s, ADMIN, &format!("webhook_id={id}")).await;
    assert_eq!(of_hook.len(), 7);
    let disabled = audit(&s, ADMIN, "action=webhook.disabled").await;
    assert_eq!(
        actions(&disabled),
        vec![("webhook.disabled".into(), key_id.clone())]
    );
}

#[tokio::test]
async fn pages_run_newest_first_without_skip_or_repeat() {
    let Env { server: s, db: _db } = token_env();
    for i in 0..7 {
        let body = json!({"webhook_name": format!("h{i}"), "tenant_id": "t", "event_type": "a/b",
            "url": format!("https://h{i}.example/h")});
        assert_eq!(
            call(&s, Method::POST, "/api/webhooks", ADMIN, Some(body))
                .await
                .0,
            201
        );
    }
    let all = audit(&s, ADMIN, "").await;
    assert_eq!(all.len(), 7);
    let names: Vec<&str> = all
        .iter()
        .map(|e| e["after"]["webhook_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["h6", "h5", "h4", "h3", "h2", "h1", "h0"]);
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(a) => format!("/api/audit?limit=3&after={a}"),
            None => "/api/audit?limit=3".into(),
        };
        let (st, v) = call(&s, Method::GET, &q, ADMIN, None).await;
        assert_eq!(st, 200, "{v}");
        paged.extend(v["entries"].as_array().unwrap().iter().cloned());
        match v["next_after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, all, "the pages together are the whole log, once");
    // An exactly full last page says there is no next one.
    let (_, v) = call(&s, Method::GET, "/api/audit?limit=7", ADMIN, None).await;
    assert_eq!(v["next_after"], Value::Null);
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "after=nope",
        "after=",
        "webhook_id=x",
        "action=Not%20An%20Action",
    ] {
        let (st, v) = call(&s, Method::GET, &format!("/api/audit?{bad}"), ADMIN, None).await;
        assert_eq!(st, 400, "{bad}: {v}");
    }
}

#[tokio::test]
async fn a_tenant_sees_its_own_entries_and_a_publisher_none() {
    let Env { server: s, db: _db } = token_env();
    for t in ["t1", "t2"] {
        let body = json!({"webhook_name": t, "tenant_id": t, "event_type": "a/b", "url": "https://a.example/h"});
        assert_eq!(
            call(&s, Method::POST, "/api/webhooks", ADMIN, Some(body))
                .await
                .0,
            201
        );
    }
    let (_, t1_admin) = new_key(&s, "t1", "admin").await;
    let (_, t1_publisher) = new_key(&s, "t1", "publisher").await;
    let own = audit(&s, &t1_admin, "").await;
    assert!(!own.is_empty());
    assert!(own.iter().all(|e| e["tenant_id"] == "t1"), "{own:?}");
    assert_eq!(own.len(), 3, "its webhook and its two keys: {own:?}");
    assert_eq!(audit(&s, &t1_admin, "tenant_id=t1").await, own);
    let (st, v) = call(&s, Method::GET, "/api/audit?tenant_id=t2", &t1_admin, None).await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = s
        .call_as(
            Method::GET,
            "/api/audit",
            Some(&t1_admin),
            &[("x-tenant-id", "t2")],
            None,
        )
        .await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = call(&s, Method::GET, "/api/audit", &t1_publisher, None).await;
    assert_eq!(st, 403, "{v}");
    // The admin: every tenant, or one by `tenant_id` or `X-Tenant-ID`.
    assert_eq!(audit(&s, ADMIN, "").await.len(), 4);
    assert_eq!(audit(&s, ADMIN, "tenant_id=t2").await.len(), 1);
    let (st, v) = s
        .call_as(
            Method::GET,
            "/api/audit",
            Some(ADMIN),
            &[("x-tenant-id", "t2")],
            None,
        )
        .await;
    assert_eq!(
        (st, v["entries"].as_array().unwrap().len()),
        (200, 1),
        "{v}"
    );
}

#[tokio::test]
async fn several_410s_in_flight_disable_once_with_one_entry() {
    let Env { server: s, db: _db } = Env::start();
    let slow_gone = Reply::status(410).delayed(Duration::from_millis(300));
    let mut rx = TestReceiver::scripted(vec![], slow_gone);
    let hook = s.create_webhook("t", "a/b", &rx.url, json!({})).await;
    let id = hook["webhook_id"].as_i64().unwrap();
    for _ in 0..4 {
        s.publish("t", "a/b", json!({})).await;
    }
    for _ in 0..2 {
        rx.expect(WAIT).await;
    }
    let failed = |d: &[Value]| d.iter().filter(|d| d["status"] == "failed").count();
    let q = format!("webhook_id={id}");
    let d = s.wait_deliveries(&q, WAIT, |d| failed(d) >= 2).await;
    let w = s
        .wait_get(&format!("/api/webhooks/{id}"), WAIT, |w| {
            w["enabled"] == false
        })
        .await;
    let (_, v) = s
        .get(&format!(
            "/api/audit?webhook_id={id}&action=webhook.disabled"
        ))
        .await;
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{} 410s, one entry: {v}", failed(&d));
    assert_eq!(entries[0]["after"]["disabled_reason"], w["disabled_reason"]);
}

#[tokio::test]
async fn a_410_disable_is_recorded_once_by_system() {
    let Env { server: s, db: _db } = Env::start();
    let mut rx = TestReceiver::scripted(vec![Reply::status(410)], Reply::status(410));
    let hook = s
        .create_webhook("t", "a/b", &rx.url, json!({"ordered": true}))
        .await;
    let id = hook["webhook_id"].as_i64().unwrap();
    for _ in 0..3 {
        s.publish("t", "a/b", json!({})).await;
    }
    rx.expect(WAIT).await;
    s.wait_get(&format!("/api/webhooks/{id}"), WAIT, |w| {
        w["enabled"] == false
    })
    .await;
    let (_, entries) = s
        .get(&format!(
            "/api/audit?webhook_id={id}&action=webhook.disabled"
        ))
        .await;
    let entries = entries["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["actor"], "system");
    assert_eq!(entries[0]["before"]["enabled"], true);
    assert_eq!(entries[0]["after"]["enabled"], false);
    assert!(entries[0]["after"]["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("410"));
}

fn https_env() -> Env {
    Env::with(|c| c.require_https = true)
}

#[tokio::test]
async fn require_https_refuses_http_on_create_and_on_updates_that_leave_it_enabled() {
    let Env { server: s, db: _db } = https_env();
    for url in [
        "http://127.0.0.1:9/h",
        "http://a.example/h",
        "HTTP://a.example/h",
    ] {
        let body = json!({"webhook_name": "h", "tenant_id": "t", "event_type": "a/b", "url": url});
        let (st, v) = s.post("/api/webhooks", &body).await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (422, Some("url")),
            "{url}: {v}"
        );
    }
    let hook = s
        .create_webhook("t", "a/b", "https://a.example/h", json!({}))
        .await;
    let path = format!("/api/webhooks/{}", hook["webhook_id"]);
    let (st, v) = s
        .json(Method::PUT, &path, &json!({"url": "http://a.example/h"}))
        .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (422, Some("url")),
        "{v}"
    );
    // Disabled, it may point at http; re-enabling it there is refused.
    let (st, v) = s
        .json(
            Method::PUT,
            &path,
            &json!({"url": "http://a.example/h", "enabled": false}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.json(Method::PUT, &path, &json!({"enabled": true})).await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (422, Some("url")),
        "{v}"
    );
    let (st, v) = s
        .json(
            Method::PUT,
            &path,
            &json!({"enabled": true, "url": "https://b.example/h"}),
        )
        .await;
    assert_eq!((st, v["enabled"].as_bool()), (200, Some(true)), "{v}");
}

#[tokio::test]
async fn require_https_at_start_disables_http_webhooks_audited_with_deliveries_kept() {
    let db = TestDb::new();
    let s = TestServer::start(test_config(&db));
    let mut rx = TestReceiver::start(500);
    let slow_retry = json!({"retry_config": {"maxAttempts": 5, "backoffMs": 600_000}});
    let plain = s.create_webhook("t", "a/b", &rx.url, slow_retry).await;
    let secure = s
        .create_webhook("t", "a/b", "https://a.example/h", json!({"enabled": false}))
        .await;
    // The operator's pager hears of the start-time disable (an https target: it is left enabled).
    let ops = s
        .create_webhook(
            "_ops",
            "beema/webhook.disabled",
            "https://127.0.0.1:1/ops",
            json!({}),
        )
        .await;
    let ops_id = ops["webhook_id"].as_i64().unwrap();
    let id = plain["webhook_id"].as_i64().unwrap();
    s.publish("t", "a/b", json!({})).await;
    rx.expect(WAIT).await;
    s.wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
        d.len() == 1 && d[0]["attempt_number"] == 1
    })
    .await;
    s.stop();

    let mut cfg = test_config(&db);
    cfg.require_https = true;
    let s = TestServer::start(cfg);
    let (st, w) = s.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(st, 200, "{w}");
    assert_eq!(w["enabled"], false, "{w}");
    assert!(
        w["disabled_reason"].as_str().unwrap().contains("https"),
        "{w}"
    );
    let d = s
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| d.len() == 1)
        .await;
    assert_eq!(d[0]["attempt_number"], 1, "not sent over http: {d:?}");
    assert_eq!(
        d[0]["status"], "retrying",
        "its waiting delivery is kept: {d:?}"
    );
    let (_, v) = s.get("/api/audit?action=webhook.disabled").await;
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{v}");
    assert_eq!(
        (
            entries[0]["actor"].as_str(),
            entries[0]["webhook_id"].as_i64()
        ),
        (Some("system"), Some(id))
    );
    assert_eq!(entries[0]["after"]["enabled"], false);
    let (_, other) = s
        .get(&format!("/api/webhooks/{}", secure["webhook_id"]))
        .await;
    assert_eq!(
        other["disabled_reason"],
        Value::Null,
        "an https webhook is left alone: {other}"
    );
    let told = s
        .wait_deliveries(&format!("webhook_id={ops_id}"), WAIT, |d| d.len() == 1)
        .await;
    assert_eq!(told[0]["event_type"], "beema/webhook.disabled", "{told:?}");
    let (_, one) = s
        .get(&format!(
            "/api/webhooks/deliveries/{}",
            told[0]["delivery_id"].as_str().unwrap()
        ))
        .await;
    let data = &one["payload"]["data"];
    assert_eq!(data["webhook_id"].as_i64(), Some(id), "{one}");
    assert_eq!(data["delivery_id"], Value::Null, "{one}");
    assert!(data["reason"].as_str().unwrap().contains("https"), "{one}");
    s.stop();
}

#[tokio::test]
async fn metrics_refuse_a_tenant_key_and_serve_the_admin() {
    let Env { server: s, db: _db } = token_env();
    let (_, key) = new_key(&s, "t", "admin").await;
    let (st, _) = call(&s, Method::GET, "/metrics", &key, None).await;
    assert_eq!(st, 403);
    let resp = s
        .request_as(Method::GET, "/metrics", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    for name in [
        "beema_queue_oldest_age_seconds",
        "beema_recorder_pending",
        "beema_circuit_open",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    assert_eq!(
        s.call_as(Method::GET, "/metrics", None, &[], None).await.0,
        401
    );
}

#[tokio::test]
async fn credentials_are_checked_before_the_tenant_header() {
    let Env { server: s, db: _db } = Env::with(|c| {
        c.admin_token = Some(ADMIN.into());
        c.event_key = Some("event-key-for-audit-tests".into());
    });
    let event = json!({"event": "a/b", "data": {}});
    for bearer in [None, Some("wrong-token"), Some("bk_unknown")] {
        let bad = [("x-tenant-id", "not a tenant!")];
        let (st, v) = s
            .call_as(Method::POST, "/api/events", bearer, &bad, Some(&event))
            .await;
        assert_eq!(st, 401, "publish {bearer:?}: {v}");
    }
    let (_, key) = new_key(&s, "t", "admin").await;
    let bad_tenant = [("x-tenant-id", "not a tenant!")];
    for path in [
        "/api/audit",
        "/api/webhooks",
        "/api/keys",
        "/metrics",
        "/api/webhooks/deliveries",
    ] {
        for bearer in [None, Some("wrong-token"), Some("bk_unknown")] {
            let (st, v) = s
                .call_as(Method::GET, path, bearer, &bad_tenant, None)
                .await;
            assert_eq!(st, 401, "{path} {bearer:?}: {v}");
        }
        let (st, v) = s
            .call_as(Method::GET, path, Some(ADMIN), &bad_tenant, None)
            .await;
        assert_eq!(st, 400, "{path} as admin: {v}");
    }
    let (st, v) = s
        .call_as(Method::GET, "/api/audit", Some(&key), &bad_tenant, None)
        .await;
    assert_eq!(st, 400, "a tenant key with a malformed header: {v}");
}

#[tokio::test]
async fn event_type_declarations_are_recorded_once_per_change() {
    let Env { server: s, db: _db } = token_env();
    let path = "/api/event-types/policy/renewed";
    let created = json!({"description": "A policy renewed", "schema": {"type": "object"}});
    let (st, _) = call(&s, Method::POST, path, ADMIN, Some(created)).await;
    assert_eq!(st, 201);
    // The same declaration again changes nothing, so it records nothing.
    let same = json!({"description": "A policy renewed"});
    let (st, _) = call(&s, Method::PUT, path, ADMIN, Some(same)).await;
    assert_eq!(st, 200);
    let changed = json!({"description": "A policy renewed for a year"});
    let (st, _) = call(&s, Method::PUT, path, ADMIN, Some(changed)).await;
    assert_eq!(st, 200);

    let (st, v) = call(
        &s,
        Method::GET,
        "/api/audit?action=event_type.updated",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "a create and one real change: {v}");
    let (update, create) = (&entries[0], &entries[1]);
    for e in entries {
        assert_eq!(e["actor"], "admin", "{e}");
        assert_eq!(e["tenant_id"], Value::Null, "{e}");
    }
    assert_eq!(create["before"], Value::Null, "{create}");
    assert_eq!(create["after"]["name"], "policy/renewed", "{create}");
    assert_eq!(
        create["after"]["schema"],
        json!({"type": "object"}),
        "{create}"
    );
    assert_eq!(
        update["before"],
        json!({"name": "policy/renewed", "description": "A policy renewed"}),
        "only the changed field beside the name: {update}"
    );
    assert_eq!(
        update["after"],
        json!({"name": "policy/renewed", "description": "A policy renewed for a year"}),
        "{update}"
    );
}
