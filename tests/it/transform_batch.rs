//! Payload transforms (contract §9): the body as sent and signed, every 422, failures that end a
//! delivery without a request, runaway programs killed in their worker, retries' bytes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::utils::{beema_signature, standard_verifies, Env, Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_transform_shapes_the_body_and_both_signatures_cover_it() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    let program = "{claim: .data.claimNumber, amount: .data.claimAmount, type: .event}";
    let hook = env
        .server
        .create_webhook(
            "t1",
            "claim/opened",
            &rx.url,
            json!({ "transform": program }),
        )
        .await;
    assert_eq!(hook["transform"], program);
    let secret = hook["secret"].as_str().unwrap().to_string();
    let id = hook["webhook_id"].as_i64().unwrap();
    let (_, shown) = env.server.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(shown["transform"], program);

    env.server
        .publish(
            "t1",
            "claim/opened",
            json!({"claimNumber": "CLM-001", "claimAmount": 10000}),
        )
        .await;
    let got = rx.expect(WAIT).await;
    assert_eq!(
        std::str::from_utf8(&got.body).unwrap(),
        r#"{"claim":"CLM-001","amount":10000,"type":"claim/opened"}"#
    );
    assert_eq!(got.header("x-beema-event"), Some("claim/opened"));
    assert!(standard_verifies(&secret, &got), "webhook-signature");
    assert_eq!(
        got.header("x-beema-signature").unwrap(),
        beema_signature(&secret, &got.body)
    );
    env.server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 1 && d[0]["status"] == "success"
        })
        .await;

    // `null` on update removes it: the next event goes as published.
    let (status, v) = env
        .server
        .json(
            reqwest::Method::PUT,
            "/api/webhooks",
            &json!({"webhook_id": id, "transform": null}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["transform"], Value::Null);
    env.server
        .publish("t1", "claim/opened", json!({"claimNumber": "CLM-002"}))
        .await;
    let plain = rx.expect(WAIT).await.json();
    assert_eq!(plain["event"], "claim/opened");
    assert_eq!(plain["data"]["claimNumber"], "CLM-002");
}

#[tokio::test]
async fn every_invalid_transform_is_a_422_naming_the_field() {
    let env = Env::start();
    let rx = TestReceiver::start(200);
    let too_long = json!(format!(".{}", " ".repeat(8192)));
    let invalid = [
        json!(5),
        json!(true),
        json!({"a": 1}),
        json!(["."]),
        json!(""),
        too_long,
        json!(".a |"),
        json!("{a: }"),
        json!("nosuchfunction"),
        json!("$undefined"),
        json!("$ENV"),
        json!("$ENV.HOME"),
        json!("env"),
        json!("env.HOME"),
        json!("input"),
        json!("inputs"),
        json!("input_filename"),
        json!("halt"),
        json!("halt_error"),
        json!("halt_error(1)"),
        json!("debug"),
        json!("debug(\"x\")"),
        json!("stderr"),
        json!(r#"import "secrets" as s; ."#),
        json!(r#"include "secrets"; ."#),
    ];
    for bad in &invalid {
        let body = json!({"webhook_name": "h", "tenant_id": "t1", "event_type": "x",
                          "url": rx.url, "transform": bad});
        let (status, v) = env.server.post("/api/webhooks", &body).await;
        assert_eq!(status, 422, "create with transform {bad}: {v}");
        assert_eq!(v["error"]["field"], "transform", "{bad}: {v}");
    }
    let hook = env
        .server
        .create_webhook("t1", "x", &rx.url, json!({"transform": "."}))
        .await;
    let id = hook["webhook_id"].as_i64().unwrap();
    for bad in &invalid {
        let (status, v) = env
            .server
            .json(
                reqwest::Method::PUT,
                "/api/webhooks",
                &json!({"webhook_id": id, "transform": bad}),
            )
            .await;
        assert_eq!(status, 422, "update with transform {bad}: {v}");
        assert_eq!(v["error"]["field"], "transform", "{bad}: {v}");
    }
    let (_, still) = env.server.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(still["transform"], ".", "a refused update changes nothing");
}

/// Creates a webhook with `program` for `event`, publishes one event, and returns its delivery
/// once it is final.
async fn final_delivery(env: &Env, url: &str, event: &str, program: &str) -> Value {
    let hook = env
        .server
        .create_webhook("t1", event, url, json!({ "transform": program }))
        .await;
    let id = hook["webhook_id"].as_i64().unwrap();
    env.server.publish("t1", event, json!({"n": 1})).await;
    let list = env
        .server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 1 && (d[0]["status"] == "failed" || d[0]["status"] == "success")
        })
        .await;
    let delivery_id = list[0]["delivery_id"].as_str().unwrap();
    let (status, one) = env
        .server
        .get(&format!("/api/webhooks/deliveries/{delivery_id}"))
        .await;
    assert_eq!(status, 200);
    one
}

fn assert_failed_by_transform(d: &Value, reason: &str) {
    assert_eq!(d["status"], "failed", "{d}");
    let message = d["error_message"].as_str().unwrap_or_default();
    assert!(message.starts_with("transform: "), "{d}");
    assert!(message.contains(reason), "{reason} in {d}");
    assert_eq!(d["status_code"], Value::Null, "{d}");
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(0), "{d}");
}

#[tokio::test]
async fn a_failing_transform_fails_the_delivery_without_a_request_or_attempt() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    let cases = [
        ("e/error", r#"error("boom")"#, "boom"),
        ("e/two", ".data.n, .data.n", "2 outputs, expected 1"),
        ("e/none", "empty", "no output, expected 1"),
    ];
    for (event, program, reason) in cases {
        let d = final_delivery(&env, &rx.url, event, program).await;
        assert_failed_by_transform(&d, reason);
    }
    assert!(rx.drain().is_empty(), "no request was sent");
}

#[tokio::test]
async fn a_runaway_transform_is_killed_and_the_server_keeps_serving() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    let started = std::time::Instant::now();
    for (event, program) in [
        ("r/loop", "def f: f; f"),
        ("r/memory", "[range(1e9)]"),
        ("r/recursion", "def f: [f]; f"),
        ("r/forever", "last(repeat(1))"),
    ] {
        let d = final_delivery(&env, &rx.url, event, program).await;
        assert_failed_by_transform(&d, "");
    }
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "each stopped within about 1 s"
    );
    assert!(rx.drain().is_empty(), "no request was sent");

    // The dispatcher is unharmed: a plain webhook still delivers, the API answers.
    env.server
        .create_webhook("t1", "ok/event", &rx.url, json!({"transform": ".data"}))
        .await;
    env.server
        .publish("t1", "ok/event", json!({"k": "v"}))
        .await;
    let got = rx.expect(WAIT).await;
    assert_eq!(got.json(), json!({"k": "v", "tenantId": "t1"}));
    let (status, _) = env.server.get("/api/webhooks").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn retries_send_the_first_transformed_bytes_and_a_manual_retry_the_current_program() {
    let env = Env::start();
    let mut rx = TestReceiver::scripted(vec![Reply::status(500)], Reply::status(200));
    // `now` differs on every run: equal bodies prove the retry did not run the program again.
    let hook = env
        .server
        .create_webhook(
            "t1",
            "claim/opened",
            &rx.url,
            json!({"transform": "{n: .data.n, at: now}",
                   "retry_config": {"maxAttempts": 3, "backoffMs": 10}}),
        )
        .await;
    let id = hook["webhook_id"].as_i64().unwrap();
    env.server
        .publish("t1", "claim/opened", json!({"n": 7}))
        .await;
    let first = rx.expect(WAIT).await;
    let second = rx.expect(WAIT).await;
    assert_eq!(first.json()["n"], 7);
    assert_eq!(first.body, second.body, "a retry sends the same bytes");
    let delivery_id = second.header("x-beema-delivery").unwrap().to_string();
    env.server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 1 && d[0]["status"] == "success"
        })
        .await;

    let (status, v) = env
        .server
        .json(
            reqwest::Method::PUT,
            "/api/webhooks",
            &json!({"webhook_id": id, "transform": "{number: .data.n}"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = env
        .server
        .post(
            &format!("/api/webhooks/deliveries/{delivery_id}/retry"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let again = rx.expect(WAIT).await;
    assert_eq!(again.header("x-beema-delivery"), Some(delivery_id.as_str()));
    assert_eq!(std::str::from_utf8(&again.body).unwrap(), r#"{"number":7}"#);
}
