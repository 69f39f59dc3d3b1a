//! Delivery under failure: retries, timeouts, the circuit breaker, rate limits, 410 Gone, deletes,
//! FIFO webhooks, supervision, restarts, the bounded memory window, and crash safety of the real
//! binary (SIGKILL and SIGTERM). Backoffs and cooldowns are milliseconds; nothing sleeps for a fixed
//! time: tests wait on the receiver or poll the API until a condition holds.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::utils::nodes::{db_url, free_port, Api, NodeProcess};
use crate::utils::{
    deliveries_of, delivery_of, event_of, eventually, test_config, Env, Received, Reply, TestDb,
    TestReceiver, TestServer,
};

const WAIT: Duration = Duration::from_secs(15);
const TENANT: &str = "tenant-1";
const EVENT: &str = "claim/opened";

// ---------------------------------------------------------------------------------------------
// helpers

/// Webhook settings with millisecond backoffs: `maxAttempts` attempts, 10 ms base backoff.
fn fast(max_attempts: u32) -> Value {
    json!({ "retry_config": { "maxAttempts": max_attempts, "backoffMs": 10 } })
}

/// `a` with the fields of `b` added.
fn with(mut a: Value, b: Value) -> Value {
    if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
    a
}

fn id_of(hook: &Value) -> i64 {
    hook["webhook_id"].as_i64().expect("webhook_id")
}

/// Publishes one event and returns (event id, delivery id) of its only delivery.
async fn publish_one(s: &TestServer, n: usize) -> (String, String) {
    let v = s.publish(TENANT, EVENT, json!({ "n": n })).await;
    assert_eq!(v["deliveries"], 1, "{v}");
    let event_id = v["ids"][0].as_str().expect("event id").to_string();
    let (status, list) = s
        .get(&format!("/api/webhooks/deliveries?event_id={event_id}"))
        .await;
    assert_eq!(status, 200, "{list}");
    let delivery_id = list["deliveries"][0]["delivery_id"]
        .as_str()
        .expect("delivery id")
        .to_string();
    (event_id, delivery_id)
}

fn batch(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({ "event": EVENT, "data": { "tenantId": TENANT, "n": i } }))
            .collect(),
    )
}

/// Publishes `n` events in one request; returns their event ids in order.
async fn publish_batch(s: &TestServer, n: usize, expect_deliveries: usize) -> Vec<String> {
    let (status, v) = s.post("/api/events", &batch(n)).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["deliveries"], expect_deliveries, "{v}");
    v["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_str().expect("id").to_string())
        .collect()
}

/// Polls `GET /api/webhooks/deliveries/{id}` until `check` holds.
async fn wait_delivery(s: &TestServer, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    s.wait_get(&format!("/api/webhooks/deliveries/{id}"), WAIT, check)
        .await
}

/// Polls `GET /api/webhooks/{id}/health` until `check` holds.
async fn wait_health(s: &TestServer, id: i64, check: impl Fn(&Value) -> bool) -> Value {
    s.wait_get(&format!("/api/webhooks/{id}/health"), WAIT, check)
        .await
}

/// Polls `GET /api/webhooks/{id}` until `check` holds.
async fn wait_webhook(s: &TestServer, id: i64, check: impl Fn(&Value) -> bool) -> Value {
    s.wait_get(&format!("/api/webhooks/{id}"), WAIT, check)
        .await
}

async fn metrics(s: &TestServer) -> String {
    let resp = s
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .expect("metrics");
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.expect("metrics text")
}

/// The value of one series (`name` or `name{label="v"}`) in Prometheus text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Polls `/metrics` until `series` satisfies `check`.
async fn wait_metric(s: &TestServer, series: &str, check: impl Fn(f64) -> bool) -> f64 {
    eventually(WAIT, &format!("{series} to satisfy the check"), || async {
        let text = metrics(s).await;
        metric(&text, series).filter(|v| check(*v)).ok_or(text)
    })
    .await
}

/// Takes receipts until `done` holds for what was received, or panics after `timeout`.
async fn receive_until(
    rx: &mut TestReceiver,
    timeout: Duration,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut got = Vec::new();
    while !done(&got) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match rx.next(left).await {
            Some(r) => got.push(r),
            None => panic!(
                "receiver: condition not met in {timeout:?} after {} requests",
                got.len()
            ),
        }
    }
    got
}

fn distinct_deliveries(got: &[Received]) -> HashSet<String> {
    got.iter().map(delivery_of).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. retries

#[tokio::test]
async fn a_failing_receiver_is_retried_with_the_same_delivery_id_and_body() {
    let env = Env::start();
    let mut rx = TestReceiver::scripted(
        vec![Reply::status(500), Reply::status(500)],
        Reply::status(200),
    );
    env.server
        .create_webhook(TENANT, EVENT, &rx.url, fast(5))
        .await;
    let (_, delivery_id) = publish_one(&env.server, 1).await;

    let got: Vec<Received> = vec![
        rx.expect(WAIT).await,
        rx.expect(WAIT).await,
        rx.expect(WAIT).await,
    ];
    for r in &got {
        assert_eq!(r.header("x-beema-delivery"), Some(delivery_id.as_str()));
        assert_eq!(r.header("webhook-id"), Some(delivery_id.as_str()));
        assert_eq!(
            r.body, got[0].body,
            "every attempt carries the byte-identical body"
        );
    }

    let d = wait_delivery(&env.server, &delivery_id, |d| d["status"] == "success").await;
    assert_eq!(d["attempt_number"], 3, "{d}");
    assert_eq!(d["status_code"], 200, "{d}");
    assert!(d["delivered_at"].is_string(), "{d}");
    let attempts = d["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3, "{d}");
    let codes: Vec<&Value> = attempts.iter().map(|a| &a["status_code"]).collect();
    assert_eq!(codes, [&json!(500), &json!(500), &json!(200)]);
    let numbers: Vec<&Value> = attempts.iter().map(|a| &a["attempt_number"]).collect();
    assert_eq!(numbers, [&json!(1), &json!(2), &json!(3)]);
    assert_eq!(attempts[0]["error_message"], "HTTP 500");
    assert!(
        rx.next(Duration::from_millis(200)).await.is_none(),
        "nothing after the success"
    );
}

#[tokio::test]
async fn an_always_failing_receiver_gets_exactly_max_attempts() {
    let env = Env::start();
    let mut rx = TestReceiver::start(500);
    env.server
        .create_webhook(TENANT, EVENT, &rx.url, fast(3))
        .await;
    let (_, delivery_id) = publish_one(&env.server, 1).await;

    let d = wait_delivery(&env.server, &delivery_id, |d| d["status"] == "failed").await;
    assert_eq!(d["attempt_number"], 3, "{d}");
    assert_eq!(d["status_code"], 500, "{d}");
    assert_eq!(d["error_message"], "HTTP 500", "{d}");
    assert!(d["next_attempt_at"].is_null(), "{d}");
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(3), "{d}");
    let got = rx.drain();
    assert_eq!(got.len(), 3, "exactly maxAttempts requests");
    assert!(
        rx.next(Duration::from_millis(300)).await.is_none(),
        "no attempt after the final failure"
    );
}

#[tokio::test]
async fn retry_after_with_429_is_honoured() {
    let env = Env::start();
    let mut rx = TestReceiver::scripted(
        vec![Reply::status(429).header("Retry-After", "1")],
        Reply::status(200),
    );
    env.server
        .create_webhook(TENANT, EVENT, &rx.url, fast(3))
        .await;
    let (_, delivery_id) = publish_one(&env.server, 1).await;

    let first = rx.expect(WAIT).await;
    let waiting = wait_delivery(&env.server, &delivery_id, |d| d["status"] == "retrying").await;
    assert!(
        waiting["next_attempt_at"].is_string(),
        "a retry is scheduled: {waiting}"
    );
    let second = rx.expect(WAIT).await;
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 honoured over backoffMs 10, gap {gap:?}"
    );

    let d = wait_delivery(&env.server, &delivery_id, |d| d["status"] == "success").await;
    assert_eq!(d["attempt_number"], 2, "{d}");
    assert_eq!(d["attempts"][0]["status_code"], 429, "{d}");
}

// ---------------------------------------------------------------------------------------------
// 2. timeouts and connection errors

#[tokio::test]
async fn a_slow_receiver_times_out_without_a_status_code() {
    let env = Env::start();
    let rx = TestReceiver::scripted(vec![], Reply::status(200).delayed(Duration::from_secs(2)));
    env.server
        .create_webhook(
            TENANT,
            EVENT,
            &rx.url,
            with(fast(1), json!({ "timeout_ms": 200 })),
        )
        .await;
    let started = Instant::now();
    let (_, delivery_id) = publish_one(&env.server, 1).await;

    let d = wait_delivery(&env.server, &delivery_id, |d| d["status"] == "failed").await;
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "gave up at the timeout, not at the reply"
    );
    assert!(d["status_code"].is_null(), "{d}");
    let a = &d["attempts"][0];
    assert!(a["status_code"].is_null(), "{d}");
    let msg = a["error_message"].as_str().unwrap_or_default();
    assert!(msg.contains("timed out"), "error says it timed out: {msg}");
    assert!(
        d["error_message"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out"),
        "{d}"
    );
    let ms = a["duration_ms"].as_i64().expect("duration_ms");
    assert!(
        (150..1500).contains(&ms),
        "attempt lasted about timeout_ms: {ms}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_recorded_with_what_happened() {
    let env = Env::start();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    env.server
        .create_webhook(TENANT, EVENT, &url, fast(1))
        .await;
    let (_, delivery_id) = publish_one(&env.server, 1).await;

    let d = wait_delivery(&env.server, &delivery_id, |d| d["status"] == "failed").await;
    assert!(d["status_code"].is_null(), "{d}");
    let a = &d["attempts"][0];
    assert!(a["status_code"].is_null(), "{d}");
    let msg = a["error_message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        msg.contains("connect") && msg.contains("refused"),
        "error says the connection was refused: {msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. circuit breaker

#[tokio::test]
async fn an_open_breaker_holds_deliveries_until_a_probe_succeeds() {
    let env = Env::start();
    let s = &env.server;
    let mut rx = TestReceiver::start(500);
    let extra = with(
        fast(50),
        json!({ "circuit_breaker": { "failureThreshold": 2, "cooldownMs": 100 } }),
    );
    let hook = s.create_webhook(TENANT, EVENT, &rx.url, extra).await;
    let id = id_of(&hook);
    let (_, d1) = publish_one(s, 1).await;

    let r1 = rx.expect(WAIT).await;
    let r2 = rx.expect(WAIT).await;
    assert_eq!(delivery_of(&r1), d1);
    assert_eq!(delivery_of(&r2), d1);
    let h = wait_health(s, id, |h| h["circuit"]["state"] == "open").await;
    assert!(
        h["circuit"]["consecutive_failures"].as_u64().unwrap_or(0) >= 2,
        "{h}"
    );
    assert!(
        h["circuit"]["opened_at"].is_string() && h["circuit"]["retry_at"].is_string(),
        "{h}"
    );
    wait_metric(s, "beema_circuit_open", |v| v == 1.0).await;

    // Deliveries arriving while it is open spend no attempts: only probes (of the head) go out.
    let (_, d2) = publish_one(s, 2).await;
    let (_, d3) = publish_one(s, 3).await;
    for d in [&d2, &d3] {
        let (_, v) = s.get(&format!("/api/webhooks/deliveries/{d}")).await;
        assert_eq!(v["attempt_number"], 0, "{v}");
        assert_eq!(v["status"], "pending", "{v}");
    }

    rx.set_reply(Reply::status(200));
    let mut got = vec![r1, r2];
    got.extend(
        receive_until(&mut rx, WAIT, |g| {
            let ids = distinct_deliveries(g);
            ids.contains(&d2) && ids.contains(&d3)
        })
        .await,
    );
    // The cooldown, not the 10 ms backoff, set the pace of the third attempt.
    let gap = got[2].at - got[1].at;
    assert!(
        gap >= Duration::from_millis(90),
        "attempt 3 waited for the cooldown, gap {gap:?}"
    );
    let first_other = got
        .iter()
        .position(|r| delivery_of(r) != d1)
        .expect("d2/d3 received");
    assert!(
        first_other >= 3,
        "the head probed before anything else went out"
    );
    assert!(
        got[first_other..].iter().all(|r| delivery_of(r) != d1),
        "d1 succeeded before d2/d3 went out"
    );
    // Probes back off (100, 200, 400 ms ...): a handful of attempts, not one per 10 ms backoff.
    assert!(
        first_other <= 8,
        "{first_other} attempts of d1 while the breaker was open"
    );
    assert_eq!(got.iter().filter(|r| delivery_of(r) == d2).count(), 1);
    assert_eq!(got.iter().filter(|r| delivery_of(r) == d3).count(), 1);

    for d in [&d2, &d3] {
        let v = wait_delivery(s, d, |v| v["status"] == "success").await;
        assert_eq!(
            v["attempt_number"], 1,
            "no attempt was spent while open: {v}"
        );
    }
    let v = wait_delivery(s, &d1, |v| v["status"] == "success").await;
    assert_eq!(
        v["attempt_number"].as_u64(),
        Some(first_other as u64),
        "{v}"
    );
    let h = wait_health(s, id, |h| h["circuit"]["state"] == "closed").await;
    assert_eq!(h["circuit"]["consecutive_failures"], 0, "{h}");
    assert!(h["circuit"]["opened_at"].is_null(), "{h}");
    wait_metric(s, "beema_circuit_open", |v| v == 0.0).await;
}

// ---------------------------------------------------------------------------------------------
// 4. rate limit

#[tokio::test]
async fn a_rate_limit_spaces_deliveries_and_can_be_raised_without_restart() {
    let env = Env::start();
    let s = &env.server;
    let mut rx = TestReceiver::start(200);
    let hook = s
        .create_webhook(
            TENANT,
            EVENT,
            &rx.url,
            json!({ "rate_limit": { "perSecond": 5, "burst": 1 } }),
        )
        .await;
    let id = id_of(&hook);

    publish_batch(s, 6, 6).await;
    let got = receive_until(&mut rx, WAIT, |g| g.len() == 6).await;
    let spread = got[5].at - got[0].at;
    assert!(
        spread >= Duration::from_millis(900),
        "6 events at 5/s with burst 1 take about 1 s, took {spread:?}"
    );
    assert_eq!(distinct_deliveries(&got).len(), 6, "none dropped");

    publish_batch(s, 20, 20).await;
    let mut got = receive_until(&mut rx, WAIT, |g| g.len() == 2).await;
    let (status, v) = s
        .json(
            reqwest::Method::PATCH,
            &format!("/api/webhooks/{id}"),
            &json!({ "rate_limit": { "perSecond": 10000, "burst": 1000 } }),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["rate_limit"],
        json!({ "perSecond": 10000, "burst": 1000 })
    );
    let changed = Instant::now();
    got.extend(receive_until(&mut rx, WAIT, |g| g.len() == 18).await);
    let rest = changed.elapsed();
    // At 5/s the remaining 18 would take 3.4 s or more.
    assert!(
        rest < Duration::from_millis(2500),
        "the new limit took effect at once, rest took {rest:?}"
    );
    assert_eq!(distinct_deliveries(&got).len(), 20, "none dropped");
    let h = wait_health(s, id, |_| true).await;
    assert_eq!(
        h["rate_limit"],
        json!({ "perSecond": 10000, "burst": 1000 }),
        "{h}"
    );
    let all = s
        .wait_deliveries(&format!("webhook_id={id}&limit=1000"), WAIT, |d| {
            d.len() == 26 && d.iter().all(|x| x["status"] == "success")
        })
        .await;
    assert_eq!(all.len(), 26);
}

// ---------------------------------------------------------------------------------------------
// 5. 410 Gone

#[tokio::test]
async fn gone_disables_the_webhook_and_waiting_deliveries_go_out_after_re_enabling() {
    let env = Env::start();
    let s = &env.server;
    let mut rx = TestReceiver::scripted(vec![Reply::status(410)], Reply::status(200));
    // ordered: one in flight, so the second and third deliveries are still waiting when the 410 lands.
    let hook = s
        .create_webhook(
            TENANT,
            EVENT,
            &rx.url,
            with(fast(3), json!({ "ordered": true })),
        )
        .await;
    let id = id_of(&hook);
    let events = publish_batch(s, 3, 3).await;

    let first = rx.expect(WAIT).await;
    assert_eq!(event_of(&first), events[0]);
    let w = wait_webhook(s, id, |w| w["enabled"] == false).await;
    assert!(
        w["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "{w}"
    );

    let list = deliveries_of(s, None, id).await;
    let by_event: HashMap<String, Value> = list
        .iter()
        .map(|d| (d["event_id"].as_str().unwrap().to_string(), d.clone()))
        .collect();
    let d1 = by_event[&events[0]]["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    let d1 = wait_delivery(s, &d1, |d| d["status"] == "failed").await;
    assert_eq!(d1["status_code"], 410, "{d1}");
    assert_eq!(d1["attempt_number"], 1, "a 410 is not retried: {d1}");
    for e in &events[1..] {
        let d = &by_event[e];
        assert_eq!(d["status"], "pending", "{d}");
        assert_eq!(d["attempt_number"], 0, "{d}");
    }

    // A disabled webhook matches no new events.
    let v = s.publish(TENANT, EVENT, json!({ "n": 99 })).await;
    assert_eq!(v["deliveries"], 0, "{v}");
    let (_, m) = s
        .post(
            "/api/webhooks/match",
            &json!({ "event_type": EVENT, "tenant_id": TENANT }),
        )
        .await;
    assert_eq!(m["webhooks"], json!([]), "{m}");
    assert!(
        rx.next(Duration::from_millis(200)).await.is_none(),
        "nothing is sent while disabled"
    );

    let (status, w) = s
        .json(
            reqwest::Method::PATCH,
            &format!("/api/webhooks/{id}"),
            &json!({ "enabled": true }),
        )
        .await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["enabled"], true);
    assert!(
        w["disabled_reason"].is_null(),
        "re-enabling clears the reason: {w}"
    );
    let got = receive_until(&mut rx, WAIT, |g| g.len() == 2).await;
    let order: Vec<String> = got.iter().map(event_of).collect();
    assert_eq!(
        order,
        events[1..].to_vec(),
        "the waiting deliveries went out, in order"
    );
    for e in &events[1..] {
        let d = by_event[e]["delivery_id"].as_str().unwrap();
        wait_delivery(s, d, |d| d["status"] == "success").await;
    }
    let v = s.publish(TENANT, EVENT, json!({ "n": 100 })).await;
    assert_eq!(v["deliveries"], 1, "matches again: {v}");
    rx.expect(WAIT).await;
}

#[tokio::test]
async fn gone_answered_to_a_breaker_probe_does_not_wedge_the_breaker() {
    let env = Env::start();
    let s = &env.server;
    let mut rx = TestReceiver::scripted(
        vec![Reply::status(500), Reply::status(410)],
        Reply::status(200),
    );
    let extra = with(
        fast(5),
        json!({ "ordered": true, "circuit_breaker": { "failureThreshold": 1, "cooldownMs": 50 } }),
    );
    let id = id_of(&s.create_webhook(TENANT, EVENT, &rx.url, extra).await);
    let events = publish_batch(s, 2, 2).await;

    // 500 opens the breaker; the probe after the cooldown gets 410, which disables the webhook.
    assert_eq!(event_of(&rx.expect(WAIT).await), events[0]);
    assert_eq!(event_of(&rx.expect(WAIT).await), events[0]);
    wait_webhook(s, id, |w| w["enabled"] == false).await;
    let (status, w) = s
        .json(
            reqwest::Method::PATCH,
            &format!("/api/webhooks/{id}"),
            &json!({ "enabled": true }),
        )
        .await;
    assert_eq!(status, 200, "{w}");

    // Re-enabled, the waiting delivery goes out: the answered probe did not leave the breaker half-open.
    assert_eq!(event_of(&rx.expect(WAIT).await), events[1]);
    let list = s
        .wait_deliveries(&format!("event_id={}", events[1]), WAIT, |d| {
            d.len() == 1 && d[0]["status"] == "success"
        })
        .await;
    assert_eq!(list[0]["attempt_number"], 1);
    wait_health(s, id, |h| h["circuit"]["state"] == "closed").await;
}

// ---------------------------------------------------------------------------------------------
// 6. delete

#[tokio::test]
async fn delete_cancels_undelivered_deliveries_and_nothing_is_sent_afterwards() {
    let env = Env::start();
    let s = &env.server;
    let mut rx = TestReceiver::start(200);
    // 10/s: a steady trickle, so a send after DELETE would show within a few hundred ms.
    let hook = s
        .create_webhook(
            TENANT,
            EVENT,
            &rx.url,
            json!({ "rate_limit": { "perSecond": 10, "burst": 1 } }),
        )
        .await;
    let id = id_of(&hook);
    publish_batch(s, 30, 30).await;
    receive_until(&mut rx, WAIT, |g| g.len() >= 3).await;

    let (status, _) = s.delete(&format!("/api/webhooks/{id}")).await;
    assert_eq!(status, 204);
    let deleted = Instant::now();
    // Requests written before DELETE returned may reach the receiver's handler a moment later;
    // anything well after it is a send after the delete.
    let mut late = Vec::new();
    while let Some(r) = rx.next(Duration::from_millis(400)).await {
        if r.at > deleted + Duration::from_millis(50) {
            late.push(delivery_of(&r));
        }
    }
    assert!(late.is_empty(), "sent after DELETE returned: {late:?}");

    let list = s
        .wait_deliveries(&format!("webhook_id={id}&limit=1000"), WAIT, |d| {
            d.len() == 30
                && d.iter()
                    .all(|x| x["status"] == "success" || x["status"] == "cancelled")
        })
        .await;
    let cancelled: Vec<&Value> = list.iter().filter(|d| d["status"] == "cancelled").collect();
    assert!(
        cancelled.len() >= 20,
        "the undelivered ones are cancelled: {}",
        cancelled.len()
    );
    let one = cancelled[0]["delivery_id"].as_str().unwrap();
    let (status, v) = s.get(&format!("/api/webhooks/deliveries/{one}")).await;
    assert_eq!(status, 200, "still readable by id: {v}");
    assert_eq!(v["status"], "cancelled");
    let (status, v) = s
        .get(&format!(
            "/api/webhooks/deliveries?status=cancelled&webhook_id={id}&limit=1000"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        v["deliveries"].as_array().map(Vec::len),
        Some(cancelled.len()),
        "listed as cancelled"
    );
    let (status, _) = s.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(status, 404);
    // Stopping a deleted webhook's actor is not a restart.
    let text = metrics(s).await;
    assert_eq!(
        metric(&text, "beema_actor_restarts_total"),
        Some(0.0),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. ordered webhooks

#[tokio::test]
async fn an_ordered_webhook_delivers_fifo_one_at_a_time() {
    let env = Env::start();
    let s = &env.server;
    let delay = Duration::from_millis(30);
    let mut rx = TestReceiver::scripted(
        vec![Reply::status(500).delayed(delay)],
        Reply::status(200).delayed(delay),
    );
    let hook = s
        .create_webhook(
            TENANT,
            EVENT,
            &rx.url,
            with(fast(5), json!({ "ordered": true })),
        )
        .await;
    let mut events = Vec::new();
    for n in 0..5 {
        events.push(publish_one(s, n).await.0);
    }

    let got = receive_until(&mut rx, WAIT, |g| g.len() == 6).await;
    let order: Vec<String> = got.iter().map(event_of).collect();
    let mut expected = vec![events[0].clone()];
    expected.extend(events.iter().cloned());
    assert_eq!(
        order, expected,
        "event 1 (retried) first, then the rest in publish order"
    );
    for w in got.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= delay - Duration::from_millis(1),
            "a request started before the previous answer: {gap:?}"
        );
    }
    let list = s
        .wait_deliveries(&format!("webhook_id={}", id_of(&hook)), WAIT, |d| {
            d.len() == 5 && d.iter().all(|x| x["status"] == "success")
        })
        .await;
    assert_eq!(list.len(), 5);
    assert!(rx.next(Duration::from_millis(100)).await.is_none());
}

// ---------------------------------------------------------------------------------------------
// 8. supervision

#[tokio::test]
async fn a_panicking_webhook_actor_is_restarted_and_still_delivers() {
    let env = Env::start();
    let s = &env.server;
    let mut rx = TestReceiver::start(200);
    // The injection hook is keyed by webhook id and global to the test process: push this webhook's
    // id well above those of other tests' webhooks so that no other actor takes the fault.
    for _ in 0..40 {
        s.create_webhook(TENANT, "unused/event", &rx.url, json!({}))
            .await;
    }
    let hook = s.create_webhook(TENANT, EVENT, &rx.url, json!({})).await;
    let id = id_of(&hook);
    assert!(id > 40);
    let before = metric(&metrics(s).await, "beema_actor_restarts_total").expect("restarts metric");

    beema_webhooks::testing::inject_panic(id);
    let (_, delivery_id) = publish_one(s, 1).await;
    let got = rx.expect(WAIT).await;
    assert_eq!(delivery_of(&got), delivery_id);
    wait_delivery(s, &delivery_id, |d| d["status"] == "success").await;

    let h = wait_health(s, id, |h| h["actor"] == "running").await;
    assert!(h["restarts"].as_u64().unwrap_or(0) >= 1, "{h}");
    let after = wait_metric(s, "beema_actor_restarts_total", |v| v > before).await;
    assert!(after >= before + 1.0);

    let (_, second) = publish_one(s, 2).await;
    assert_eq!(
        delivery_of(&rx.expect(WAIT).await),
        second,
        "the restarted actor keeps delivering"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. restart recovery

#[tokio::test]
async fn deliveries_waiting_at_shutdown_complete_after_a_restart() {
    let db = TestDb::new();
    let mut rx = TestReceiver::start(503);
    let server = TestServer::start(test_config(&db));
    // The breaker stays closed: on PostgreSQL it moves with the webhook to the next owner (the
    // restarted node), and an open one would hold the retries for its cooldown.
    let no_breaker = json!({ "circuit_breaker": { "failureThreshold": 1000, "cooldownMs": 10 } });
    let hook = server
        .create_webhook(TENANT, EVENT, &rx.url, with(fast(50), no_breaker))
        .await;
    let id = id_of(&hook);
    publish_batch(&server, 5, 5).await;
    let list = server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 5 && d.iter().all(|x| x["status"] == "retrying")
        })
        .await;
    let ids: HashSet<String> = list
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap().to_string())
        .collect();
    server.stop();

    rx.set_reply(Reply::status(200));
    rx.drain();
    let server = TestServer::start(test_config(&db));
    let list = server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 5 && d.iter().all(|x| x["status"] == "success")
        })
        .await;
    for d in &list {
        let id = d["delivery_id"].as_str().unwrap();
        let (_, v) = server.get(&format!("/api/webhooks/deliveries/{id}")).await;
        let attempts = v["attempts"].as_array().expect("attempts");
        assert!(attempts.len() >= 2, "attempts from both runs: {v}");
        assert_eq!(attempts[0]["status_code"], 503);
        assert_eq!(attempts.last().unwrap()["status_code"], 200);
        assert_eq!(
            v["attempt_number"].as_u64(),
            Some(attempts.len() as u64),
            "{v}"
        );
    }
    let received = distinct_deliveries(&rx.drain());
    assert!(
        received.is_superset(&ids),
        "every delivery went out after the restart"
    );
}

// ---------------------------------------------------------------------------------------------
// 10. bounded memory window

#[tokio::test]
async fn a_batch_much_larger_than_the_window_is_delivered_exactly_once() {
    let env = Env::with(|c| c.tuning.window = 10);
    let s = &env.server;
    let mut rx = TestReceiver::start(200);
    let hook = s.create_webhook(TENANT, EVENT, &rx.url, json!({})).await;
    let id = id_of(&hook);
    publish_batch(s, 300, 300).await;

    let list = s
        .wait_deliveries(
            &format!("webhook_id={id}&limit=1000"),
            Duration::from_secs(30),
            |d| d.len() == 300 && d.iter().all(|x| x["status"] == "success"),
        )
        .await;
    let ids: HashSet<String> = list
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap().to_string())
        .collect();
    let got = receive_until(&mut rx, WAIT, |g| g.len() >= 300).await;
    let received = distinct_deliveries(&got);
    let missing: Vec<&String> = ids.difference(&received).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    assert!(
        rx.next(Duration::from_millis(200)).await.is_none(),
        "duplicates were sent"
    );
    assert_eq!(got.len(), 300, "each delivered exactly once");
    let h = wait_health(s, id, |h| h["queue"]["pending"] == 0).await;
    assert_eq!(h["queue"]["in_flight"], 0, "{h}");
    assert_eq!(h["stats"]["delivered"], 300, "{h}");
}

// ---------------------------------------------------------------------------------------------
// 11 and 12. the real binary: SIGKILL and SIGTERM

/// Waits until every delivery of `webhook_id` is `success`; returns them.
async fn wait_all_success(bin: &NodeProcess, webhook_id: i64, n: usize) -> Vec<Value> {
    let what = format!("{n} successful deliveries");
    eventually(Duration::from_secs(30), &what, || async {
        let path = format!("/api/webhooks/deliveries?webhook_id={webhook_id}&limit=1000");
        let (status, v) = bin.get_json(&path).await;
        assert_eq!(status, 200, "{v}");
        let list = v["deliveries"].as_array().cloned().unwrap_or_default();
        if list.len() == n && list.iter().all(|d| d["status"] == "success") {
            return Ok(list);
        }
        let open = list.iter().filter(|d| d["status"] != "success").count();
        Err(format!(
            "{open} of {} deliveries not successful",
            list.len()
        ))
    })
    .await
}

/// The real binary on `db`, with a lease TTL that never matters on SQLite.
async fn start_binary(db: &TestDb) -> NodeProcess {
    NodeProcess::start(&db_url(db), "solo", 10_000).await
}

/// Starts the binary, creates a webhook to a 50 ms receiver and publishes 300 events; returns once
/// some of them have arrived (the rest are in flight or waiting).
async fn binary_mid_flight(
    db: &TestDb,
    rx: &mut TestReceiver,
) -> (NodeProcess, i64, Vec<Received>) {
    let bin = start_binary(db).await;
    let body =
        json!({ "webhook_name": "crash", "tenant_id": TENANT, "event_type": EVENT, "url": rx.url });
    let (status, hook) = bin
        .call(reqwest::Method::POST, "/api/webhooks", Some(&body))
        .await;
    assert_eq!(status, 201, "{hook}");
    let (status, v) = bin
        .call(reqwest::Method::POST, "/api/events", Some(&batch(300)))
        .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["deliveries"], 300);
    let got = receive_until(rx, WAIT, |g| g.len() >= 40).await;
    (bin, id_of(&hook), got)
}

/// The outcome of a first attempt answered 200 at `now`.
fn delivered_at(now: chrono::NaiveDateTime) -> beema_webhooks::db::models::DeliveryOutcome {
    beema_webhooks::db::models::DeliveryOutcome {
        status: beema_webhooks::domain::DeliveryStatus::Success,
        status_code: Some(200),
        response_body: None,
        error_message: None,
        attempt_number: 1,
        next_attempt_at: None,
        updated_at: now,
        delivered_at: Some(now),
    }
}

/// Outcomes commit without waiting for the disk, but the writer connection they used goes back to
/// waiting for it, so the next acknowledged publish on it is durable (README, Reliability).
#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_write_leaves_the_writer_committing_durably() {
    use beema_webhooks::db::store::batch::BatchWrite;
    use beema_webhooks::db::{DbConn, DbPool};
    use diesel::sql_types::Text;

    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        value: String,
    }
    let db = TestDb::new();
    beema_webhooks::db::migrate(&db.url).await.unwrap();
    let pool = DbPool::new(&db.url).unwrap();
    let mut conn = pool.write().await.unwrap();
    let now = chrono::Utc::now().naive_utc();
    let outcomes = vec![("d1".to_string(), delivered_at(now))];
    let setting: Vec<Setting> = match &mut conn {
        DbConn::Sqlite(c) => {
            let c = &mut **c;
            c.write_outcomes(vec![], outcomes, vec![], vec![])
                .await
                .unwrap();
            let q = diesel::sql_query(
                "SELECT CAST(synchronous AS TEXT) AS value FROM pragma_synchronous",
            );
            diesel_async::RunQueryDsl::load(q, c).await.unwrap()
        }
        DbConn::Pg(c) => {
            let c = &mut **c;
            c.write_outcomes(vec![], outcomes, vec![], vec![])
                .await
                .unwrap();
            let q = diesel::sql_query("SELECT current_setting('synchronous_commit') AS value");
            diesel_async::RunQueryDsl::load(q, c).await.unwrap()
        }
    };
    // SQLite: 2 = FULL; PostgreSQL: `on` (the recorder's `SET LOCAL` ended with its transaction).
    let durable = if db.is_pg() { "on" } else { "2" };
    assert_eq!(setting[0].value, durable);
}

/// The recorder's write sets every column of an outcome, and leaves a delivery cancelled meanwhile
/// (its webhook deleted while the attempt was out) cancelled, on both backends.
#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_write_sets_every_column_and_keeps_a_cancelled_delivery_cancelled() {
    use beema_webhooks::db::models::DeliveryOutcome;
    use beema_webhooks::db::store::batch::BatchWrite;
    use beema_webhooks::db::store::deliveries::find_delivery;
    use beema_webhooks::db::{DbConn, DbPool};
    use beema_webhooks::domain::DeliveryStatus;
    use diesel_async::SimpleAsyncConnection;

    let db = TestDb::new();
    beema_webhooks::db::migrate(&db.url).await.unwrap();
    let pool = DbPool::new(&db.url).unwrap();
    let mut conn = pool.write().await.unwrap();
    let setup = "INSERT INTO sys_webhooks (webhook_name, tenant_id, event_type, url, secret) \
         VALUES ('w', 't', 'claim/opened', 'http://127.0.0.1:9/', 's'); \
         INSERT INTO sys_webhook_deliveries (delivery_id, webhook_id, event_id, event_type, \
         tenant_id, status, attempt_number, created_at, updated_at) VALUES \
         ('open', 1, 'e1', 'claim/opened', 't', 'pending', 0, '2026-11-30 10:00:00', '2026-11-30 10:00:00'), \
         ('gone', 1, 'e1', 'claim/opened', 't', 'cancelled', 0, '2026-11-30 10:00:00', '2026-11-30 10:00:00')";
    let later = chrono::NaiveDate::from_ymd_opt(2026, 11, 30)
        .unwrap()
        .and_hms_milli_opt(10, 0, 1, 250)
        .unwrap();
    let retry_at = later + chrono::Duration::seconds(2);
    let outcome = DeliveryOutcome {
        status: DeliveryStatus::Retrying,
        status_code: Some(503),
        response_body: Some("busy".into()),
        error_message: Some("HTTP 503".into()),
        attempt_number: 1,
        next_attempt_at: Some(retry_at),
        updated_at: later,
        delivered_at: None,
    };
    let outcomes = vec![
        ("open".to_string(), outcome.clone()),
        ("gone".to_string(), outcome),
    ];
    match &mut conn {
        DbConn::Sqlite(c) => {
            c.batch_execute(setup).await.unwrap();
            c.write_outcomes(vec![], outcomes, vec![], vec![])
                .await
                .unwrap();
        }
        DbConn::Pg(c) => {
            c.batch_execute(setup).await.unwrap();
            c.write_outcomes(vec![], outcomes, vec![], vec![])
                .await
                .unwrap();
        }
    }
    let open = find_delivery(&mut conn, "open").await.unwrap().unwrap();
    assert_eq!(open.status, DeliveryStatus::Retrying);
    assert_eq!(open.status_code, Some(503));
    assert_eq!(open.response_body.as_deref(), Some("busy"));
    assert_eq!(open.error_message.as_deref(), Some("HTTP 503"));
    assert_eq!(open.attempt_number, 1);
    assert_eq!(open.next_attempt_at, Some(retry_at));
    assert_eq!(open.updated_at, later);
    assert_eq!(open.delivered_at, None);
    let gone = find_delivery(&mut conn, "gone").await.unwrap().unwrap();
    assert_eq!(gone.status, DeliveryStatus::Cancelled);
    assert_eq!(gone.attempt_number, 0);
}

/// A large recorder batch finds its deliveries by primary key, whatever the planner makes of the
/// table: given a few thousand outcomes, PostgreSQL hash-joined them against a scan of the whole
/// deliveries table, a cost that grows with the table. (SQLite updates row by row, by key.)
#[tokio::test(flavor = "multi_thread")]
async fn a_large_outcome_batch_finds_its_deliveries_by_key_not_by_a_table_scan() {
    use beema_webhooks::db::store::batch::BatchWrite;
    use beema_webhooks::db::{DbConn, DbPool};
    use diesel::sql_types::{BigInt, Nullable};
    use diesel_async::SimpleAsyncConnection;

    #[derive(diesel::QueryableByName)]
    struct Scans {
        #[diesel(sql_type = Nullable<BigInt>)]
        seq_scan: Option<i64>,
        #[diesel(sql_type = Nullable<BigInt>)]
        idx_scan: Option<i64>,
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let db = TestDb::new();
    if !db.is_pg() {
        return;
    }
    beema_webhooks::db::migrate(&db.url).await.unwrap();
    let pool = DbPool::new(&db.url).unwrap();
    let mut conn = pool.write().await.unwrap();
    let DbConn::Pg(c) = &mut conn else {
        unreachable!("a PostgreSQL pool")
    };
    let c = &mut **c;
    c.batch_execute(
        "INSERT INTO sys_webhooks (webhook_name, tenant_id, event_type, url, secret) \
         VALUES ('w', 't', 'claim/opened', 'http://127.0.0.1:9/', 's'); \
         INSERT INTO sys_webhook_deliveries (delivery_id, webhook_id, event_id, event_type, \
         tenant_id, status, attempt_number, created_at, updated_at) \
         SELECT 'd' || lpad(g::text, 6, '0'), currval('sys_webhooks_webhook_id_seq'), 'e' || g, \
         'claim/opened', 't', 'pending', 0, now(), now() FROM generate_series(1, 20000) g; \
         ANALYZE sys_webhook_deliveries",
    )
    .await
    .unwrap();
    // Flushed before the answer to this query comes back (PostgreSQL 15), so the counters below
    // include every statement before it.
    let scans = async |c: &mut diesel_async::AsyncPgConnection| -> Scans {
        c.batch_execute("SELECT pg_stat_force_next_flush()")
            .await
            .unwrap();
        let q = diesel::sql_query(
            "SELECT seq_scan, idx_scan FROM pg_stat_user_tables \
             WHERE relname = 'sys_webhook_deliveries'",
        );
        diesel_async::RunQueryDsl::get_result(q, c).await.unwrap()
    };
    let before = scans(c).await;
    let now = chrono::Utc::now().naive_utc();
    let outcomes = (1..=3000)
        .map(|i| (format!("d{i:06}"), delivered_at(now)))
        .collect();
    c.write_outcomes(vec![], outcomes, vec![], vec![])
        .await
        .unwrap();
    let after = scans(c).await;
    assert_eq!(
        after.seq_scan, before.seq_scan,
        "the recorder's update scanned the deliveries table"
    );
    assert!(after.idx_scan > before.idx_scan);
    let q = diesel::sql_query(
        "SELECT count(*) AS n FROM sys_webhook_deliveries WHERE status = 'success'",
    );
    let updated: Count = diesel_async::RunQueryDsl::get_result(q, c).await.unwrap();
    assert_eq!(updated.n, 3000);
}

#[tokio::test]
async fn sigkill_mid_flight_loses_no_delivery() {
    let db = TestDb::new();
    let mut rx = TestReceiver::scripted(
        vec![],
        Reply::status(200).delayed(Duration::from_millis(50)),
    );
    let (mut bin, id, mut got) = binary_mid_flight(&db, &mut rx).await;
    bin.sigkill();
    let status = bin.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success(), "killed: {status:?}");
    drop(bin);
    got.extend(rx.drain());
    assert!(
        distinct_deliveries(&got).len() < 300,
        "killed before everything went out"
    );

    let bin = start_binary(&db).await;
    let list = wait_all_success(&bin, id, 300).await;
    got.extend(rx.drain());
    let received = distinct_deliveries(&got);
    let missing: Vec<&str> = list
        .iter()
        .filter_map(|d| d["delivery_id"].as_str())
        .filter(|d| !received.contains(*d))
        .collect();
    assert!(
        missing.is_empty(),
        "recorded as success but never received: {missing:?}\n{}",
        bin.log()
    );
}

#[tokio::test]
async fn sigterm_drains_exits_zero_and_the_rest_go_out_after_the_next_start() {
    let db = TestDb::new();
    let mut rx = TestReceiver::scripted(
        vec![],
        Reply::status(200).delayed(Duration::from_millis(50)),
    );
    let (mut bin, id, mut got) = binary_mid_flight(&db, &mut rx).await;
    bin.sigterm();
    let status = bin.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "clean shutdown exits 0:\n{}",
        bin.log()
    );
    drop(bin);
    got.extend(rx.drain());
    let before = distinct_deliveries(&got).len();
    assert!(before < 300, "shut down before everything went out");

    let bin = start_binary(&db).await;
    let list = wait_all_success(&bin, id, 300).await;
    got.extend(rx.drain());
    let received = distinct_deliveries(&got);
    let missing: Vec<&str> = list
        .iter()
        .filter_map(|d| d["delivery_id"].as_str())
        .filter(|d| !received.contains(*d))
        .collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    // In-flight attempts were drained and recorded, so nothing was sent twice.
    assert_eq!(
        got.len(),
        received.len(),
        "a graceful shutdown sends nothing twice"
    );
}

// ---------------------------------------------------------------------------------------------
// 13. health and metrics

#[tokio::test]
async fn health_and_metrics_report_what_happened() {
    let env = Env::start();
    let s = &env.server;
    let ok_rx = TestReceiver::scripted(vec![Reply::status(500)], Reply::status(200));
    let bad_rx = TestReceiver::start(500);
    let text = metrics(s).await;
    for series in [
        "beema_deliveries_total{status=\"success\"}",
        "beema_deliveries_total{status=\"failed\"}",
        "beema_attempts_total{outcome=\"success\"}",
        "beema_attempts_total{outcome=\"failure\"}",
        "beema_attempt_duration_seconds_count",
        "beema_queue_depth",
        "beema_circuit_open",
        "beema_actor_restarts_total",
    ] {
        assert_eq!(
            metric(&text, series),
            Some(0.0),
            "{series} exists at zero:\n{text}"
        );
    }

    let good = id_of(&s.create_webhook(TENANT, EVENT, &ok_rx.url, fast(3)).await);
    let bad = id_of(
        &s.create_webhook(TENANT, "claim/closed", &bad_rx.url, fast(2))
            .await,
    );
    let other = id_of(
        &s.create_webhook("tenant-2", EVENT, &ok_rx.url, json!({}))
            .await,
    );
    publish_batch(s, 3, 3).await;
    s.publish(TENANT, "claim/closed", json!({})).await;
    s.wait_deliveries(&format!("webhook_id={good}"), WAIT, |d| {
        d.len() == 3 && d.iter().all(|x| x["status"] == "success")
    })
    .await;
    s.wait_deliveries(&format!("webhook_id={bad}"), WAIT, |d| {
        d.len() == 1 && d[0]["status"] == "failed"
    })
    .await;

    let h = wait_health(s, good, |h| {
        h["queue"]["pending"] == 0 && h["queue"]["in_flight"] == 0
    })
    .await;
    assert_eq!(h["webhook_id"], good);
    assert_eq!(h["actor"], "running");
    assert_eq!(h["restarts"], 0);
    assert_eq!(h["circuit"]["state"], "closed");
    assert_eq!(h["stats"]["delivered"], 3, "{h}");
    assert_eq!(h["stats"]["failed"], 0, "{h}");
    assert_eq!(h["stats"]["attempts"], 4, "{h}");
    assert_eq!(h["last_error"], "HTTP 500", "{h}");
    assert!(
        h["last_success_at"].is_string() && h["last_failure_at"].is_string(),
        "{h}"
    );
    let (p50, p99) = (
        h["stats"]["latency_ms"]["p50"].as_u64(),
        h["stats"]["latency_ms"]["p99"].as_u64(),
    );
    assert!(matches!((p50, p99), (Some(a), Some(b)) if a <= b), "{h}");

    let h = wait_health(s, bad, |h| h["queue"]["pending"] == 0).await;
    assert_eq!(h["stats"]["delivered"], 0, "{h}");
    assert_eq!(h["stats"]["failed"], 1, "{h}");
    assert_eq!(h["stats"]["attempts"], 2, "{h}");
    assert_eq!(h["last_error"], "HTTP 500", "{h}");
    assert!(h["last_success_at"].is_null(), "{h}");

    let req = s
        .request(reqwest::Method::GET, "/api/health/webhooks")
        .header("x-tenant-id", TENANT);
    let (status, all) = s.send(req).await;
    assert_eq!(status, 200, "{all}");
    let mut ids: Vec<i64> = all["webhooks"]
        .as_array()
        .expect("webhooks")
        .iter()
        .filter_map(|h| h["webhook_id"].as_i64())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![good, bad],
        "the tenant's webhooks only (not {other})"
    );

    let text = metrics(s).await;
    let m =
        |series: &str| metric(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
    assert_eq!(m("beema_deliveries_total{status=\"success\"}"), 3.0);
    assert_eq!(m("beema_deliveries_total{status=\"failed\"}"), 1.0);
    assert_eq!(m("beema_attempts_total{outcome=\"success\"}"), 3.0);
    assert_eq!(m("beema_attempts_total{outcome=\"failure\"}"), 3.0);
    assert_eq!(m("beema_attempt_duration_seconds_count"), 6.0);
    assert_eq!(m("beema_queue_depth"), 0.0);
    assert_eq!(m("beema_circuit_open"), 0.0);
    assert_eq!(m("beema_actor_restarts_total"), 0.0);
    assert!(
        text.contains("beema_attempt_duration_seconds_bucket{le=\"0.1\"}"),
        "{text}"
    );
}

/// A database outage: publishing is refused (503, nothing half-accepted), `/readyz` turns 503, and
/// everything resumes by itself when the database is back. PostgreSQL only: an embedded SQLite file
/// cannot go away while its process holds it open.
#[tokio::test]
async fn a_database_outage_is_survived_without_a_restart() {
    let db = TestDb::new();
    if !db.is_pg() {
        return;
    }
    let server = TestServer::start(test_config(&db));
    let mut rx = TestReceiver::start(200);
    server
        .create_webhook("t1", "claim/opened", &rx.url, json!({}))
        .await;

    db.set_pg_available(false);
    eventually(
        Duration::from_secs(10),
        "readyz to notice the outage",
        || async { (server.get("/readyz").await.0 == 503).then_some(()) },
    )
    .await;
    let (status, v) = server
        .post(
            "/api/events",
            &json!({"event": "claim/opened", "data": {"tenantId": "t1"}}),
        )
        .await;
    assert_eq!(status, 503, "{v}");
    assert!(rx.next(Duration::from_millis(300)).await.is_none());

    db.set_pg_available(true);
    eventually(Duration::from_secs(15), "readyz to recover", || async {
        (server.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let published = server
        .publish("t1", "claim/opened", json!({"after": "outage"}))
        .await;
    assert_eq!(published["deliveries"], 1);
    assert_eq!(
        rx.expect(Duration::from_secs(10)).await.json()["data"]["after"],
        "outage"
    );
}
