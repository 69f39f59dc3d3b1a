//! Replay (README, Recovering after an outage) and operational events (README, Operational events):
//! old events to a new webhook, the window's rules, `beema/...` events to tenant and `_ops`
//! webhooks with their data and signatures, no loops, and the reserved names.

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::utils::{
    assert_error, deliveries_of, standard_verifies, Env, Received, Reply, TestReceiver,
};

const WAIT: Duration = Duration::from_secs(15);

fn id(v: &Value) -> i64 {
    v["webhook_id"].as_i64().expect("webhook id")
}

fn secret(v: &Value) -> String {
    v["secret"].as_str().expect("secret").to_string()
}

fn ago(minutes: i64) -> String {
    (Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn once() -> Value {
    json!({ "retry_config": { "maxAttempts": 1, "backoffMs": 10 } })
}

async fn replay(env: &Env, webhook: i64, body: Value) -> (u16, Value) {
    env.server
        .post(&format!("/api/webhooks/{webhook}/replay"), &body)
        .await
}

/// The next request of `rx`, checked to be an operational event of `ty` signed with `secret`.
async fn ops_event(rx: &mut TestReceiver, ty: &str, secret: &str) -> (Received, Value) {
    let got = rx.expect(WAIT).await;
    let body = got.json();
    assert_eq!(body["event"], ty, "{body}");
    assert!(standard_verifies(secret, &got), "signed: {body}");
    assert!(body["user"].is_null(), "{body}");
    assert!(body["id"].is_string() && body["timestamp"].is_string());
    (got, body)
}

#[tokio::test]
async fn replay_delivers_old_events_to_a_new_webhook_once() {
    let env = Env::start();
    let s = &env.server;
    let since = ago(1);
    let mut old_rx = TestReceiver::start(200);
    let old = s
        .create_webhook("t1", "claim/opened", &old_rx.url, json!({}))
        .await;
    let mut ids = Vec::new();
    for (ty, n) in [
        ("claim/opened", 1),
        ("claim/closed", 2),
        ("claim/opened", 3),
    ] {
        let p = s.publish("t1", ty, json!({ "n": n })).await;
        ids.push(p["ids"][0].as_str().unwrap().to_string());
    }
    s.publish("t2", "claim/opened", json!({ "n": 9 })).await;
    let (status, _) = s
        .post(&format!("/api/webhooks/{}/test", id(&old)), &json!({}))
        .await;
    assert_eq!(status, 202);
    for _ in 0..3 {
        old_rx.expect(WAIT).await; // two events and the test send
    }

    // Created after the events: replay brings them, in order, the test send and t2's left out.
    let mut rx = TestReceiver::start(200);
    let hook = s.create_webhook("t1", "*", &rx.url, json!({})).await;
    let (status, v) = replay(&env, id(&hook), json!({ "since": since })).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v, json!({ "deliveries": 3 }));
    let log = deliveries_of(s, None, id(&hook)).await;
    assert_eq!(log.len(), 3, "committed once answered: {log:?}");
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            rx.expect(WAIT).await.json()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "each old event once, with its stored id");
    s.wait_deliveries(&format!("webhook_id={}", id(&hook)), WAIT, |d| {
        d.len() == 3 && d.iter().all(|d| d["status"] == "success")
    })
    .await;

    // The optional exact type narrows it; a replay again makes new deliveries again.
    let (status, v) = replay(
        &env,
        id(&hook),
        json!({ "since": since, "event_type": "claim/closed" }),
    )
    .await;
    assert_eq!((status, v), (202, json!({ "deliveries": 1 })));
    assert_eq!(rx.expect(WAIT).await.json()["id"], ids[1].as_str());
    // The old exact webhook matches its two, not the test send.
    let (status, v) = replay(&env, id(&old), json!({ "since": since, "until": ago(-1) })).await;
    assert_eq!((status, v), (202, json!({ "deliveries": 2 })));
    // A window before the events holds none.
    let (status, v) = replay(&env, id(&hook), json!({ "since": ago(30), "until": since })).await;
    assert_eq!((status, v), (202, json!({ "deliveries": 0 })));
}

#[tokio::test]
async fn an_ordered_webhook_gets_replayed_events_after_everything_waiting_in_their_order() {
    let env = Env::start();
    let s = &env.server;
    let since = ago(1);
    let publish = |n: i64| async move {
        s.publish("t1", "claim/opened", json!({ "n": n })).await["ids"][0].clone()
    };
    let (x, y) = (publish(0).await, publish(1).await);
    // The head fails once and waits 4 s for its retry: everything after it waits too.
    let mut rx = TestReceiver::scripted(vec![Reply::status(500)], Reply::status(200));
    let mut settings = json!({ "ordered": true });
    settings["retry_config"] = json!({ "maxAttempts": 3, "backoffMs": 4000 });
    let hook = s
        .create_webhook("t1", "claim/opened", &rx.url, settings)
        .await;
    let a = publish(2).await;
    assert_eq!(rx.expect(WAIT).await.json()["id"], a);
    s.wait_deliveries(&format!("webhook_id={}", id(&hook)), WAIT, |d| {
        d.len() == 1 && d[0]["status"] == "retrying"
    })
    .await;
    let b = publish(3).await;
    let (status, v) = replay(&env, id(&hook), json!({ "since": since, "until": ago(-1) })).await;
    assert_eq!((status, v), (202, json!({ "deliveries": 4 })));
    let (_, head) = s
        .get(&format!(
            "/api/webhooks/deliveries?webhook_id={}&event_id={}",
            id(&hook),
            a.as_str().unwrap()
        ))
        .await;
    let statuses: Vec<&Value> = head["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["status"])
        .collect();
    assert!(
        statuses.contains(&&json!("retrying")),
        "the replay came while the head waited: {head}"
    );
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(rx.expect(WAIT).await.json()["id"].clone());
    }
    assert_eq!(
        got,
        vec![a.clone(), b.clone(), x, y, a, b],
        "the waiting head and its follower first, then the replay in event order"
    );
}

#[tokio::test]
async fn a_replay_failing_part_way_answers_503_and_keeps_what_it_committed() {
    let env = Env::start();
    let s = &env.server;
    let tenant = "t-replay-fault"; // fault injection is process-wide: keyed by a tenant of our own
    let since = ago(1);
    let batch: Vec<Value> = (0..1500)
        .map(|i| json!({ "event": "bulk/x", "data": { "tenantId": tenant, "i": i } }))
        .collect();
    for chunk in batch.chunks(1000) {
        let (status, v) = s.post("/api/events", &Value::Array(chunk.to_vec())).await;
        assert_eq!(status, 202, "{v}");
    }
    let rx = TestReceiver::start(200);
    let hook = s
        .create_webhook(tenant, "bulk/x", &rx.url, json!({ "enabled": false }))
        .await;
    beema_webhooks::testing::inject_replay_failure(tenant, 1);
    let r = replay(&env, id(&hook), json!({ "since": since })).await;
    let e = assert_error((r.0, &r.1), 503, None, None, "failed part-way");
    assert!(e["message"].as_str().unwrap().contains("1000"), "{e}");
    assert_eq!(
        count_deliveries(&env, id(&hook)).await,
        1000,
        "the first page stays"
    );
    let (status, v) = replay(&env, id(&hook), json!({ "since": since })).await;
    assert_eq!(
        (status, v),
        (202, json!({ "deliveries": 1500 })),
        "not idempotent"
    );
    assert_eq!(count_deliveries(&env, id(&hook)).await, 2500);
}

/// Every delivery of a webhook, counted page by page.
async fn count_deliveries(env: &Env, webhook: i64) -> usize {
    let mut n = 0;
    let mut before = String::new();
    loop {
        let (status, v) = env
            .server
            .get(&format!(
                "/api/webhooks/deliveries?webhook_id={webhook}&limit=1000{before}"
            ))
            .await;
        assert_eq!(status, 200, "{v}");
        n += v["deliveries"].as_array().unwrap().len();
        match v["next_before"].as_str() {
            Some(b) => before = format!("&before={b}"),
            None => return n,
        }
    }
}

#[tokio::test]
async fn replay_checks_its_window_and_the_caller() {
    let env = Env::start();
    let s = &env.server;
    let rx = TestReceiver::start(200);
    let hook = s.create_webhook("t1", "*", &rx.url, json!({})).await;
    let h = id(&hook);
    let now = Utc::now();
    let at = |d: chrono::Duration| (now + d).to_rfc3339_opts(SecondsFormat::Secs, true);
    let cases = [
        (json!({}), "since"),
        (json!({ "since": "yesterday" }), "since"),
        (
            json!({ "since": at(chrono::Duration::hours(-1)), "until": "soon" }),
            "until",
        ),
        (
            json!({ "since": at(chrono::Duration::zero()), "until": at(chrono::Duration::hours(-1)) }),
            "until",
        ),
        (json!({ "since": at(chrono::Duration::days(-8)) }), "since"),
        (
            json!({ "since": at(chrono::Duration::hours(-1)), "event_type": "*" }),
            "event_type",
        ),
        (
            json!({ "since": at(chrono::Duration::hours(-1)), "event_type": "claim/*" }),
            "event_type",
        ),
    ];
    for (body, field) in cases {
        let r = replay(&env, h, body.clone()).await;
        assert_error((r.0, &r.1), 422, None, Some(field), &body);
    }
    let since = json!({ "since": at(chrono::Duration::hours(-1)) });
    let r = replay(&env, 999_999, since.clone()).await;
    assert_error((r.0, &r.1), 404, None, None, "unknown webhook");

    let (status, key) = s
        .post(
            "/api/keys",
            &json!({ "tenant_id": "t2", "role": "admin", "name": "other" }),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let other = key["key"].as_str().unwrap();
    let path = format!("/api/webhooks/{h}/replay");
    let r = s
        .call_as(reqwest::Method::POST, &path, Some(other), &[], Some(&since))
        .await;
    assert_error((r.0, &r.1), 403, None, None, "another tenant's key");
    let r = s
        .call_as(reqwest::Method::POST, &path, None, &[], Some(&since))
        .await;
    assert_eq!(r.0, 202, "the open admin API may replay: {}", r.1);
}

#[tokio::test]
async fn a_100k_replay_commits_in_pages_and_the_limit_counts_events_before_matching() {
    let env = Env::start();
    let s = &env.server;
    let since = ago(1);
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({ "event": "bulk/x", "data": { "tenantId": "t1", "i": i } }))
        .collect();
    let batch = Value::Array(batch);
    for _ in 0..100 {
        let (status, v) = s.post("/api/events", &batch).await;
        assert_eq!(status, 202, "{v}");
    }
    // Disabled: the deliveries stay pending, so the count is what replay committed.
    let rx = TestReceiver::start(200);
    let hook = s
        .create_webhook("t1", "bulk/x", &rx.url, json!({ "enabled": false }))
        .await;
    // Peak RSS of the replay alone (the server runs in this process): reset, then read.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = proc_status_kib("VmRSS");
    let started = Instant::now();
    let (status, v) = replay(&env, id(&hook), json!({ "since": since })).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["deliveries"], 100_000);
    eprintln!(
        "replay of 100,000 events: {:?}, RSS before {} KiB, peak during {} KiB",
        started.elapsed(),
        rss_before,
        proc_status_kib("VmHWM")
    );
    let (status, v) = s
        .get(&format!(
            "/api/webhooks/deliveries?webhook_id={}&status=pending&limit=1",
            id(&hook)
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["deliveries"].as_array().unwrap().len(), 1);

    // One more event of the tenant, of a type the webhook does not take: over the limit.
    s.publish("t1", "other/y", json!({})).await;
    let r = replay(
        &env,
        id(&hook),
        json!({ "since": since, "event_type": "bulk/x" }),
    )
    .await;
    let e = assert_error((r.0, &r.1), 422, None, Some("since"), "over 100,000");
    assert!(e["message"].as_str().unwrap().contains("narrow"), "{e}");
}

/// A `/proc/self/status` figure in KiB (0 where there is none), for the replay's memory note.
fn proc_status_kib(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn ops_webhooks_receive_delivery_failed_and_webhook_disabled_with_their_data() {
    let env = Env::start();
    let s = &env.server;
    let failing = TestReceiver::start(500);
    let gone = TestReceiver::start(410);
    let f = s
        .create_webhook("t1", "claim/opened", &failing.url, once())
        .await;
    let g = s
        .create_webhook("t1", "claim/closed", &gone.url, once())
        .await;
    let mut all_rx = TestReceiver::start(200);
    let all = s.create_webhook("t1", "*", &all_rx.url, json!({})).await;
    let mut tenant_rx = TestReceiver::start(200);
    let tenant_ops = s
        .create_webhook("t1", "beema/delivery.failed", &tenant_rx.url, json!({}))
        .await;
    let mut ops_rx = TestReceiver::start(200);
    let ops = s
        .create_webhook("_ops", "beema/delivery.failed", &ops_rx.url, json!({}))
        .await;
    let mut disabled_rx = TestReceiver::start(200);
    let disabled = s
        .create_webhook(
            "_ops",
            "beema/webhook.disabled",
            &disabled_rx.url,
            json!({}),
        )
        .await;
    let mut other_rx = TestReceiver::start(200);
    s.create_webhook("t2", "beema/delivery.failed", &other_rx.url, json!({}))
        .await;

    let p = s.publish("t1", "claim/opened", json!({ "n": 1 })).await;
    let event_id = p["ids"][0].as_str().unwrap();
    let failed = s
        .wait_deliveries(&format!("webhook_id={}", id(&f)), WAIT, |d| {
            d.len() == 1 && d[0]["status"] == "failed"
        })
        .await;
    for (rx, hook) in [(&mut tenant_rx, &tenant_ops), (&mut ops_rx, &ops)] {
        let (_, body) = ops_event(rx, "beema/delivery.failed", &secret(hook)).await;
        let d = &body["data"];
        assert_eq!(d["webhook_id"], id(&f));
        assert_eq!(d["webhook_name"], f["webhook_name"]);
        assert_eq!(d["tenant_id"], "t1");
        assert_eq!(d["url"], f["url"]);
        assert_eq!(d["reason"], "HTTP 500");
        assert_eq!(d["delivery_id"], failed[0]["delivery_id"]);
        assert_eq!(d["event_id"], event_id);
        assert_eq!(d["event_type"], "claim/opened");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["status_code"], 500);
    }
    // In the delivery log like any event; the `_ops` webhook's delivery is `_ops`'s.
    let log = s
        .wait_deliveries(&format!("webhook_id={}", id(&ops)), WAIT, |d| {
            d.len() == 1 && d[0]["status"] == "success"
        })
        .await;
    assert_eq!(log[0]["tenant_id"], "_ops");
    assert_eq!(log[0]["event_type"], "beema/delivery.failed");

    s.publish("t1", "claim/closed", json!({})).await;
    let gone_log = s
        .wait_deliveries(&format!("webhook_id={}", id(&g)), WAIT, |d| {
            d.len() == 1 && d[0]["status"] == "failed"
        })
        .await;
    let (_, body) = ops_event(
        &mut disabled_rx,
        "beema/webhook.disabled",
        &secret(&disabled),
    )
    .await;
    let (_, stored) = s.get(&format!("/api/webhooks/{}", id(&g))).await;
    assert_eq!(stored["enabled"], false);
    let d = &body["data"];
    assert_eq!(d["webhook_id"], id(&g));
    assert_eq!(d["delivery_id"], gone_log[0]["delivery_id"]);
    assert_eq!(d["reason"], stored["disabled_reason"]);
    assert_eq!(d["tenant_id"], "t1");
    // The 410 failure is a delivery.failed too.
    let (_, body) = ops_event(&mut ops_rx, "beema/delivery.failed", &secret(&ops)).await;
    assert_eq!(body["data"]["webhook_id"], id(&g));
    assert_eq!(body["data"]["status_code"], 410);

    // `*` gets no operational events, another tenant's webhooks neither.
    let mut types: Vec<String> = all_rx
        .drain()
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap().to_string())
        .collect();
    let log = deliveries_of(s, None, id(&all)).await;
    types.extend(
        log.iter()
            .map(|d| d["event_type"].as_str().unwrap().to_string()),
    );
    assert!(types.iter().all(|t| !t.starts_with("beema/")), "{types:?}");
    assert!(other_rx.drain().is_empty());
}

#[tokio::test]
async fn circuit_opened_and_closed_are_published() {
    let env = Env::start();
    let s = &env.server;
    let flaky = TestReceiver::scripted(vec![Reply::status(500)], Reply::status(200));
    let mut settings = once();
    settings["circuit_breaker"] = json!({ "failureThreshold": 1, "cooldownMs": 50 });
    let c = s
        .create_webhook("t1", "claim/opened", &flaky.url, settings)
        .await;
    let mut opened_rx = TestReceiver::start(200);
    let opened = s
        .create_webhook("_ops", "beema/circuit.opened", &opened_rx.url, json!({}))
        .await;
    let mut closed_rx = TestReceiver::start(200);
    let closed = s
        .create_webhook("t1", "beema/circuit.closed", &closed_rx.url, json!({}))
        .await;

    s.publish("t1", "claim/opened", json!({ "n": 1 })).await;
    let (_, body) = ops_event(&mut opened_rx, "beema/circuit.opened", &secret(&opened)).await;
    let d = &body["data"];
    assert_eq!(d["webhook_id"], id(&c));
    assert_eq!(d["consecutive_failures"], 1);
    assert_eq!(d["reason"], "HTTP 500");
    assert!(d["retry_at"].is_string(), "{d}");

    s.publish("t1", "claim/opened", json!({ "n": 2 })).await;
    let (_, body) = ops_event(&mut closed_rx, "beema/circuit.closed", &secret(&closed)).await;
    let d = &body["data"];
    assert_eq!(d["webhook_id"], id(&c));
    assert!(d["reason"].is_null());
    assert!(d["opened_at"].is_string(), "{d}");
}

#[tokio::test]
async fn a_failing_ops_webhook_emits_no_delivery_failed_about_its_own_deliveries() {
    let env = Env::start();
    let s = &env.server;
    let failing = TestReceiver::start(500);
    let f = s
        .create_webhook("t1", "claim/opened", &failing.url, once())
        .await;
    let broken_rx = TestReceiver::start(500);
    let mut settings = once();
    settings["circuit_breaker"] = json!({ "failureThreshold": 1, "cooldownMs": 50 });
    let broken = s
        .create_webhook("t1", "beema/delivery.failed", &broken_rx.url, settings)
        .await;
    let mut circuit_rx = TestReceiver::start(200);
    let circuit = s
        .create_webhook("_ops", "beema/circuit.opened", &circuit_rx.url, json!({}))
        .await;
    let mut ops_rx = TestReceiver::start(200);
    let ops = s
        .create_webhook("_ops", "beema/delivery.failed", &ops_rx.url, json!({}))
        .await;

    s.publish("t1", "claim/opened", json!({ "n": 1 })).await;
    // The broken ops webhook's own delivery of that event fails...
    s.wait_deliveries(&format!("webhook_id={}", id(&broken)), WAIT, |d| {
        d.len() == 1 && d[0]["status"] == "failed"
    })
    .await;
    // ...and a later failure is told after anything that failure could have emitted.
    s.publish("t1", "claim/opened", json!({ "n": 2 })).await;
    for _ in 0..2 {
        let (_, body) = ops_event(&mut ops_rx, "beema/delivery.failed", &secret(&ops)).await;
        assert_eq!(body["data"]["webhook_id"], id(&f), "only about f: {body}");
    }
    s.wait_deliveries(&format!("webhook_id={}", id(&broken)), WAIT, |d| {
        d.len() == 2 && d.iter().all(|d| d["status"] == "failed")
    })
    .await;
    assert_eq!(deliveries_of(s, None, id(&ops)).await.len(), 2);
    // Its failures still count for its breaker, whose opening is told as for any webhook.
    let (_, body) = ops_event(&mut circuit_rx, "beema/circuit.opened", &secret(&circuit)).await;
    assert_eq!(body["data"]["webhook_id"], id(&broken));
}

#[tokio::test]
async fn replay_routes_operational_events_as_publishing_does() {
    let env = Env::start();
    let s = &env.server;
    let since = ago(1);
    let failing = TestReceiver::start(500);
    let f = s
        .create_webhook("t1", "claim/opened", &failing.url, once())
        .await;
    let z_rx = TestReceiver::start(500);
    let z = s
        .create_webhook("t1", "beema/delivery.failed", &z_rx.url, once())
        .await;
    let mut o_rx = TestReceiver::start(200);
    let o = s
        .create_webhook("_ops", "beema/delivery.failed", &o_rx.url, json!({}))
        .await;
    s.publish("t1", "claim/opened", json!({})).await;
    // A failed test send of z: an operational event about z.
    let (status, _) = s
        .post(&format!("/api/webhooks/{}/test", id(&z)), &json!({}))
        .await;
    assert_eq!(status, 202);
    let mut about = Vec::new();
    for _ in 0..2 {
        let (_, body) = ops_event(&mut o_rx, "beema/delivery.failed", &secret(&o)).await;
        about.push(body["data"]["webhook_id"].as_i64().unwrap());
    }
    about.sort_unstable();
    assert_eq!(about, vec![id(&f), id(&z)]);

    // A new `_ops` webhook gets both; z gets the one about f only; `*` gets none of them.
    let n_rx = TestReceiver::start(200);
    let n = s
        .create_webhook("_ops", "beema/delivery.failed", &n_rx.url, json!({}))
        .await;
    let n = id(&n);
    let (status, v) = replay(&env, n, json!({ "since": since })).await;
    assert_eq!((status, v), (202, json!({ "deliveries": 2 })));
    let (status, v) = replay(&env, id(&z), json!({ "since": since })).await;
    assert_eq!((status, v), (202, json!({ "deliveries": 1 })));
    let all_rx = TestReceiver::start(200);
    let all = s.create_webhook("t1", "*", &all_rx.url, json!({})).await;
    let (status, v) = replay(&env, id(&all), json!({ "since": since })).await;
    assert_eq!(
        (status, v),
        (202, json!({ "deliveries": 1 })),
        "claim/opened only"
    );
}

#[tokio::test]
async fn reserved_names_are_refused_on_every_publish_route() {
    let env = Env::start();
    let s = &env.server;
    let one = json!({ "event": "beema/delivery.failed", "data": { "tenantId": "t1" } });
    for path in ["/api/events", "/api/inngest", "/e/any-key"] {
        let r = s.post(path, &one).await;
        assert_error((r.0, &r.1), 422, None, Some("event"), path);
    }
    let batch = json!([
        { "event": "a/b", "data": { "tenantId": "t1" } },
        { "event": "beema/x", "data": { "tenantId": "t1" } }
    ]);
    let r = s.post("/api/events", &batch).await;
    assert_error((r.0, &r.1), 422, None, Some("[1].event"), "batch");
    let batch = json!([{ "event": "a/b", "data": { "tenantId": "_ops" } }]);
    let r = s.post("/api/events", &batch).await;
    assert_error((r.0, &r.1), 422, None, Some("[0].data.tenantId"), "batch");
    let r = s
        .post(
            "/api/events",
            &json!({ "event": "a/b", "data": { "tenantId": "_ops" } }),
        )
        .await;
    assert_error((r.0, &r.1), 422, None, Some("data.tenantId"), "data");
    let r = s
        .call_as(
            reqwest::Method::POST,
            "/api/events",
            None,
            &[("X-Tenant-ID", "_ops")],
            Some(&json!({ "event": "a/b" })),
        )
        .await;
    assert_error((r.0, &r.1), 422, None, Some("X-Tenant-ID"), "header");

    let r = s
        .post(
            "/api/keys",
            &json!({ "tenant_id": "_ops", "role": "admin", "name": "ops" }),
        )
        .await;
    assert_error((r.0, &r.1), 422, None, Some("tenant_id"), "keys");
    let (_, key) = s
        .post(
            "/api/keys",
            &json!({ "tenant_id": "t1", "role": "admin", "name": "t1" }),
        )
        .await;
    let body = json!({ "webhook_name": "ops", "tenant_id": "_ops",
        "event_type": "beema/delivery.failed", "url": "http://127.0.0.1:9/h" });
    let r = s
        .call_as(
            reqwest::Method::POST,
            "/api/webhooks",
            key["key"].as_str(),
            &[],
            Some(&body),
        )
        .await;
    assert_error(
        (r.0, &r.1),
        403,
        None,
        None,
        "a tenant key creating an _ops webhook",
    );
    let (status, v) = s.post("/api/webhooks", &body).await;
    assert_eq!(status, 201, "the admin creates _ops webhooks: {v}");
}

#[tokio::test]
async fn a_beema_pattern_subscription_gets_every_operational_event() {
    let env = Env::start();
    let s = &env.server;
    let failing = TestReceiver::start(500);
    let gone = TestReceiver::start(410);
    let f = s
        .create_webhook("t1", "claim/opened", &failing.url, once())
        .await;
    let g = s
        .create_webhook("t1", "claim/closed", &gone.url, once())
        .await;
    let mut pager_rx = TestReceiver::start(200);
    let pager = s
        .create_webhook("_ops", "beema/*", &pager_rx.url, json!({}))
        .await;
    s.publish("t1", "claim/opened", json!({})).await;
    s.publish("t1", "claim/closed", json!({})).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let r = pager_rx.expect(WAIT).await;
        assert!(standard_verifies(&secret(&pager), &r));
        let body = r.json();
        got.push((
            body["event"].as_str().unwrap().to_string(),
            body["data"]["webhook_id"].as_i64().unwrap(),
        ));
    }
    got.sort();
    let (f_id, g_id) = (id(&f), id(&g));
    assert_eq!(
        got,
        vec![
            ("beema/delivery.failed".to_string(), f_id),
            ("beema/delivery.failed".to_string(), g_id),
            ("beema/webhook.disabled".to_string(), g_id),
        ],
        "one pattern, every kind of operational event"
    );
}
