//! The JSON calls of the console (README, Console): whoami, stats, recover, payload and the
//! time and tenant filters of the delivery log.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::utils::{Env, Reply, TestReceiver, TestServer};

const WAIT: Duration = Duration::from_secs(15);

/// GET `path` with `token` as bearer (None: no credentials); the server's own token is not sent.
async fn get_as(s: &TestServer, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("{}{path}", s.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    s.send(req).await
}

/// POST JSON to `path` with `token` as bearer.
async fn post_as(s: &TestServer, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let req = reqwest::Client::new()
        .post(format!("{}{path}", s.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string());
    s.send(req).await
}

/// Creates a tenant key and returns (key, key_id).
async fn key(s: &TestServer, tenant: &str, role: &str) -> (String, String) {
    let (st, v) = s
        .post(
            "/api/keys",
            &json!({"tenant_id": tenant, "role": role, "name": format!("{tenant}-{role}")}),
        )
        .await;
    assert_eq!(st, 201, "create key: {v}");
    (
        v["key"].as_str().unwrap().to_string(),
        v["key_id"].as_str().unwrap().to_string(),
    )
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Nearest rank: the ⌈p/100·n⌉-th smallest.
fn nearest_rank(sorted: &[i64], p: usize) -> i64 {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

#[tokio::test]
async fn whoami_names_the_admin_a_tenant_key_and_refuses_the_rest() {
    let env = Env::with(|c| {
        c.admin_token = Some("admin-secret".into());
        c.event_key = Some("event-secret".into());
    });
    let s = env.server.with_token("admin-secret");
    let (st, v) = get_as(&s, Some("admin-secret"), "/api/whoami").await;
    assert_eq!((st, v), (200, json!({"role": "admin", "tenant_id": null})));
    let (admin_key, key_id) = key(&s, "tenant-1", "admin").await;
    let (publisher_key, _) = key(&s, "tenant-1", "publisher").await;
    let (st, v) = get_as(&s, Some(&admin_key), "/api/whoami").await;
    assert_eq!(st, 200);
    assert_eq!(
        v,
        json!({"role": "admin", "tenant_id": "tenant-1", "key_id": key_id})
    );
    for (token, want) in [
        (None, 401),
        (Some("wrong"), 401),
        (Some("event-secret"), 401),
        (Some(publisher_key.as_str()), 403),
    ] {
        let (status, v) = get_as(&s, token, "/api/whoami").await;
        assert_eq!(status, want, "token {token:?}: {v}");
    }
    s.stop();
}

#[tokio::test]
async fn whoami_with_an_open_admin_api_is_the_admin() {
    let env = Env::start();
    let (st, v) = env.server.get("/api/whoami").await;
    assert_eq!((st, v), (200, json!({"role": "admin", "tenant_id": null})));
}

#[tokio::test]
async fn stats_percentiles_and_buckets_match_the_attempts() {
    let env = Env::start();
    let s = &env.server;
    // Varied latencies, and some failures (maxAttempts 1: a 500 fails the delivery at once).
    let script: Vec<Reply> = (0..12)
        .map(|i| {
            let status = if i % 4 == 3 { 500 } else { 200 };
            Reply::status(status).delayed(Duration::from_millis(i * 7))
        })
        .collect();
    let rx = TestReceiver::scripted(script, Reply::status(200));
    let hook = s
        .create_webhook(
            "tenant-1",
            "claim/opened",
            &rx.url,
            json!({"retry_config": {"maxAttempts": 1, "backoffMs": 10}, "ordered": true}),
        )
        .await;
    for i in 0..12 {
        s.publish("tenant-1", "claim/opened", json!({"n": i})).await;
    }
    let list = s
        .wait_deliveries("tenant_id=tenant-1", WAIT, |d| {
            d.len() == 12
                && d.iter()
                    .all(|x| x["status"] == "success" || x["status"] == "failed")
        })
        .await;
    let mut durations = Vec::new();
    let mut ok = 0;
    for d in &list {
        let (_, one) = s
            .get(&format!(
                "/api/webhooks/deliveries/{}",
                d["delivery_id"].as_str().unwrap()
            ))
            .await;
        for a in one["attempts"].as_array().unwrap() {
            durations.push(a["duration_ms"].as_i64().unwrap());
            if a["status_code"]
                .as_i64()
                .is_some_and(|c| (200..300).contains(&c))
            {
                ok += 1;
            }
        }
    }
    durations.sort_unstable();
    let (st, v) = s.get("/api/stats?window=1h").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["window"], "1h");
    assert_eq!(v["bucket_seconds"], 60);
    assert_eq!(v["deliveries"]["total"], 12);
    assert_eq!(v["deliveries"]["success"], 9);
    assert_eq!(v["deliveries"]["failed"], 3);
    assert_eq!(v["success_rate"], json!(0.75));
    assert_eq!(v["attempts"]["total"], durations.len());
    assert_eq!(v["attempts"]["ok"], ok);
    assert_eq!(v["attempts"]["failed"], durations.len() - ok);
    for p in [50, 90, 99] {
        assert_eq!(
            v["latency_ms"][format!("p{p}")],
            nearest_rank(&durations, p),
            "p{p} of {durations:?}"
        );
    }
    assert_eq!(
        v["circuits"],
        json!({"closed": 1, "open": 0, "half_open": 0})
    );
    let buckets = v["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 60);
    let sum: u64 = buckets
        .iter()
        .map(|b| b["attempts"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, durations.len() as u64);
    let from = chrono::DateTime::parse_from_rfc3339(v["from"].as_str().unwrap()).unwrap();
    let second =
        chrono::DateTime::parse_from_rfc3339(buckets[1]["start"].as_str().unwrap()).unwrap();
    assert_eq!((second - from).num_seconds(), 60);
    let empty = buckets.iter().find(|b| b["attempts"] == 0).unwrap();
    assert_eq!(empty["latency_ms"], json!({"p50": null, "p99": null}));
    // The webhook filter and another tenant's scope.
    let (_, one) = s
        .get(&format!(
            "/api/stats?window=5m&webhook_id={}",
            hook["webhook_id"]
        ))
        .await;
    assert_eq!(one["attempts"]["total"], durations.len());
    assert_eq!(one["bucket_seconds"], 5);
    let (_, other) = s.get("/api/stats?tenant_id=tenant-2").await;
    assert_eq!(other["deliveries"]["total"], 0);
    assert_eq!(other["success_rate"], Value::Null);
    assert_eq!(other["latency_ms"]["p50"], Value::Null);
    assert_eq!(other["circuits"]["closed"], 0);
}

#[tokio::test]
async fn stats_refuses_bad_windows_and_other_tenants() {
    let env = Env::start();
    let s = &env.server;
    for q in [
        "window=2h",
        "window=",
        "window=1H",
        "bogus=1",
        "webhook_id=x",
    ] {
        let (st, v) = s.get(&format!("/api/stats?{q}")).await;
        assert_eq!(st, 400, "{q}: {v}");
    }
    for (w, width) in [
        ("5m", 5),
        ("15m", 15),
        ("6h", 360),
        ("24h", 1440),
        ("7d", 10080),
    ] {
        let (st, v) = s.get(&format!("/api/stats?window={w}")).await;
        assert_eq!(st, 200);
        assert_eq!(v["bucket_seconds"], width);
        assert_eq!(v["buckets"].as_array().unwrap().len(), 60);
    }
    let (k, _) = key(s, "tenant-1", "admin").await;
    let (st, _) = get_as(s, Some(&k), "/api/stats?tenant_id=tenant-2").await;
    assert_eq!(st, 403);
    let (st, _) = get_as(s, Some(&k), "/api/stats?tenant_id=tenant-1").await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn a_tenant_key_sees_only_its_tenant_in_stats_and_deliveries() {
    let env = Env::start();
    let s = &env.server;
    let rx = TestReceiver::start(200);
    s.create_webhook("tenant-1", "a", &rx.url, json!({})).await;
    s.create_webhook("tenant-2", "a", &rx.url, json!({})).await;
    s.create_webhook("tenant-2", "a", &rx.url, json!({"enabled": false}))
        .await;
    s.publish("tenant-1", "a", json!({})).await;
    s.publish("tenant-2", "a", json!({})).await;
    s.publish("tenant-2", "a", json!({})).await;
    s.wait_deliveries("status=success", WAIT, |d| d.len() == 3)
        .await;
    let (k, _) = key(s, "tenant-1", "admin").await;
    let (_, mine) = get_as(s, Some(&k), "/api/stats").await;
    assert_eq!(mine["deliveries"]["total"], 1);
    assert_eq!(mine["attempts"]["total"], 1);
    assert_eq!(mine["circuits"]["closed"], 1);
    let (_, all) = s.get("/api/stats").await;
    assert_eq!(all["deliveries"]["total"], 3);
    assert_eq!(
        all["circuits"]["closed"], 2,
        "the disabled webhook is not counted"
    );
    let (_, two) = s.get("/api/stats?tenant_id=tenant-2").await;
    assert_eq!(two["attempts"]["total"], 2);
    let (_, list) = get_as(s, Some(&k), "/api/webhooks/deliveries").await;
    assert_eq!(list["deliveries"].as_array().unwrap().len(), 1);
    let (st, _) = get_as(s, Some(&k), "/api/webhooks/deliveries?tenant_id=tenant-2").await;
    assert_eq!(st, 403);
    let (_, two) = s.get("/api/webhooks/deliveries?tenant_id=tenant-2").await;
    assert_eq!(two["deliveries"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn deliveries_filter_by_time_and_carry_their_payload() {
    let env = Env::start();
    let s = &env.server;
    let rx = TestReceiver::start(200);
    s.create_webhook("tenant-1", "a", &rx.url, json!({})).await;
    let before = Utc::now() - chrono::Duration::seconds(1);
    let published = s
        .publish("tenant-1", "a", json!({"claim": "CLM-9", "n": [1, 2]}))
        .await;
    let after = Utc::now() + chrono::Duration::seconds(1);
    let list = s
        .wait_deliveries("status=success", WAIT, |d| d.len() == 1)
        .await;
    let q = |since: chrono::DateTime<Utc>, until: chrono::DateTime<Utc>| {
        format!(
            "/api/webhooks/deliveries?since={}&until={}",
            urlencode(&rfc3339(since)),
            urlencode(&rfc3339(until))
        )
    };
    let (_, inside) = s.get(&q(before, after)).await;
    assert_eq!(inside["deliveries"].as_array().unwrap().len(), 1);
    let (_, later) = s.get(&q(after, after + chrono::Duration::hours(1))).await;
    assert_eq!(later["deliveries"].as_array().unwrap().len(), 0);
    let (_, earlier) = s.get(&q(before - chrono::Duration::hours(1), before)).await;
    assert_eq!(earlier["deliveries"].as_array().unwrap().len(), 0);
    for bad in ["since=yesterday", "until=2026-13-01T00:00:00Z"] {
        let (st, v) = s.get(&format!("/api/webhooks/deliveries?{bad}")).await;
        assert_eq!(st, 400, "{bad}: {v}");
    }
    let (_, one) = s
        .get(&format!(
            "/api/webhooks/deliveries/{}",
            list[0]["delivery_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        one["payload"]["data"],
        json!({"claim": "CLM-9", "n": [1, 2], "tenantId": "tenant-1"})
    );
    assert_eq!(one["payload"]["id"], published["ids"][0]);
    // The list does not carry payloads.
    assert!(list[0].get("payload").is_none());
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn recover_sends_failed_deliveries_again_once() {
    let env = Env::start();
    let s = &env.server;
    let mut rx = TestReceiver::start(500);
    let hook = s
        .create_webhook(
            "tenant-1",
            "a",
            &rx.url,
            json!({"retry_config": {"maxAttempts": 1, "backoffMs": 10}}),
        )
        .await;
    let id = hook["webhook_id"].as_i64().unwrap();
    for _ in 0..3 {
        s.publish("tenant-1", "a", json!({})).await;
    }
    let failed = s
        .wait_deliveries("status=failed", WAIT, |d| d.len() == 3)
        .await;
    rx.drain();
    rx.set_reply(Reply::status(200));
    let since = rfc3339(Utc::now() - chrono::Duration::hours(1));
    let path = format!("/api/webhooks/{id}/recover");
    let (st, v) = s.post(&path, &json!({ "since": since })).await;
    assert_eq!((st, v), (202, json!({"deliveries": 3, "recovered": 3})));
    let done = s
        .wait_deliveries("status=success", WAIT, |d| d.len() == 3)
        .await;
    let mut before: Vec<&str> = failed
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap())
        .collect();
    let mut after: Vec<&str> = done
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap())
        .collect();
    before.sort_unstable();
    after.sort_unstable();
    assert_eq!(before, after, "same delivery ids");
    assert!(done.iter().all(|d| d["attempt_number"] == 2));
    // Nothing is failed any more: a second recover sends nothing.
    let (st, v) = s.post(&path, &json!({ "since": since })).await;
    assert_eq!((st, v), (202, json!({"deliveries": 0, "recovered": 0})));
    // A window that ends before them finds nothing either.
    let (_, v) = s
        .post(&path, &json!({ "since": since, "until": rfc3339(Utc::now() - chrono::Duration::minutes(59)) }))
        .await;
    assert_eq!(v["deliveries"], 0);
}

#[tokio::test]
async fn recover_validates_its_window_and_its_caller() {
    let env = Env::start();
    let s = &env.server;
    let rx = TestReceiver::start(200);
    let hook = s.create_webhook("tenant-1", "a", &rx.url, json!({})).await;
    let path = format!("/api/webhooks/{}/recover", hook["webhook_id"]);
    let now = Utc::now();
    let cases = [
        (json!({}), "since"),
        (json!({"since": "an hour ago"}), "since"),
        (json!({"since": rfc3339(now), "until": "later"}), "until"),
        (
            json!({"since": rfc3339(now), "until": rfc3339(now)}),
            "until",
        ),
        (
            json!({"since": rfc3339(now), "until": rfc3339(now - chrono::Duration::hours(1))}),
            "until",
        ),
    ];
    for (body, field) in cases {
        let (st, v) = s.post(&path, &body).await;
        assert_eq!(st, 422, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    let ok = json!({"since": rfc3339(now - chrono::Duration::hours(1))});
    let (st, _) = s.post("/api/webhooks/999999/recover", &ok).await;
    assert_eq!(st, 404);
    let (other, _) = key(s, "tenant-2", "admin").await;
    let (st, _) = post_as(s, &other, &path, &ok).await;
    assert_eq!(st, 403);
    let (mine, _) = key(s, "tenant-1", "admin").await;
    let (st, v) = post_as(s, &mine, &path, &ok).await;
    assert_eq!((st, v), (202, json!({"deliveries": 0, "recovered": 0})));
}
