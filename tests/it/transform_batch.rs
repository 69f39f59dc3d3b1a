//! Payload transforms (README, Routing and payloads): the body as sent and signed, every 422,
//! failures that end a delivery without a request, runaway programs killed in their worker,
//! retries' bytes.

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
    let done = env
        .server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 1 && d[0]["status"] == "success"
        })
        .await;
    // The delivery log shows the body the receiver got, not the event as published.
    let sent: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let detail = format!(
        "/api/webhooks/deliveries/{}",
        done[0]["delivery_id"].as_str().unwrap()
    );
    env.server
        .wait_get(&detail, WAIT, |v| v["payload"] == sent)
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

// ---- README, Routing and payloads batching ----

#[tokio::test]
async fn invalid_batch_settings_are_422s_naming_the_field() {
    let env = Env::start();
    let rx = TestReceiver::start(200);
    let cases = [
        (json!({"maxEvents": 1, "maxWaitMs": 0}), "batch.maxEvents"),
        (
            json!({"maxEvents": 1001, "maxWaitMs": 0}),
            "batch.maxEvents",
        ),
        (json!({"maxWaitMs": 0}), "batch.maxEvents"),
        (json!({"maxEvents": 2.5, "maxWaitMs": 0}), "batch.maxEvents"),
        (json!({"maxEvents": 2, "maxWaitMs": -1}), "batch.maxWaitMs"),
        (
            json!({"maxEvents": 2, "maxWaitMs": 60001}),
            "batch.maxWaitMs",
        ),
        (json!({"maxEvents": 2}), "batch.maxWaitMs"),
    ];
    for (batch, field) in &cases {
        let body = json!({"webhook_name": "h", "tenant_id": "t1", "event_type": "x",
                          "url": rx.url, "batch": batch});
        let (status, v) = env.server.post("/api/webhooks", &body).await;
        assert_eq!(status, 422, "{batch}: {v}");
        assert_eq!(v["error"]["field"], *field, "{batch}: {v}");
    }
    let hook = env
        .server
        .create_webhook(
            "t1",
            "x",
            &rx.url,
            json!({"batch": {"maxEvents": 1000, "maxWaitMs": 60000}}),
        )
        .await;
    assert_eq!(
        hook["batch"],
        json!({"maxEvents": 1000, "maxWaitMs": 60000})
    );
    let id = hook["webhook_id"].as_i64().unwrap();
    let (status, v) = env
        .server
        .json(
            reqwest::Method::PUT,
            "/api/webhooks",
            &json!({"webhook_id": id, "batch": null}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["batch"], Value::Null);
}

/// Creates a batching webhook and publishes `n` events one by one; their event ids in order.
async fn batching_hook(env: &Env, url: &str, extra: Value, n: usize) -> (i64, String, Vec<String>) {
    let hook = env
        .server
        .create_webhook("t1", "claim/opened", url, extra)
        .await;
    let id = hook["webhook_id"].as_i64().unwrap();
    let secret = hook["secret"].as_str().unwrap().to_string();
    let mut events = Vec::new();
    for i in 0..n {
        let v = env
            .server
            .publish("t1", "claim/opened", json!({"i": i}))
            .await;
        events.push(v["ids"][0].as_str().unwrap().to_string());
    }
    (id, secret, events)
}

#[tokio::test]
async fn a_batch_carries_deliveries_in_order_signed_as_one_request() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    // maxWaitMs is long: only a full batch goes, so the three events must travel together.
    let (id, secret, events) = batching_hook(
        &env,
        &rx.url,
        json!({"batch": {"maxEvents": 3, "maxWaitMs": 60000}}),
        3,
    )
    .await;
    let got = rx.expect(WAIT).await;
    let body = got.json();
    assert_eq!(body["type"], "batch");
    let entries = body["deliveries"].as_array().unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, events.iter().map(String::as_str).collect::<Vec<_>>());
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["event"], "claim/opened");
        assert_eq!(e["data"]["i"], i);
        assert!(e["timestamp"].is_string() && e.get("user").is_some(), "{e}");
    }
    let batch_id = got.header("x-beema-delivery").unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&batch_id).is_ok(), "{batch_id}");
    assert_eq!(got.header("webhook-id"), Some(batch_id.as_str()));
    assert_eq!(got.header("x-beema-event"), Some("batch"));
    assert!(standard_verifies(&secret, &got), "webhook-signature");
    assert_eq!(
        got.header("x-beema-signature").unwrap(),
        beema_signature(&secret, &got.body)
    );

    let list = env
        .server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 3 && d.iter().all(|x| x["status"] == "success")
        })
        .await;
    for d in &list {
        let delivery_id = d["delivery_id"].as_str().unwrap();
        assert!(entries.iter().any(|e| e["delivery_id"] == delivery_id));
        let (_, one) = env
            .server
            .get(&format!("/api/webhooks/deliveries/{delivery_id}"))
            .await;
        let attempts = one["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{one}");
        assert_eq!(attempts[0]["batch_id"], batch_id.as_str());
        assert_eq!(attempts[0]["status_code"], 200);
        let sent = entries.iter().find(|e| e["delivery_id"] == delivery_id);
        assert_eq!(
            Some(&one["payload"]),
            sent,
            "the payload is the member's own entry of the batch"
        );
    }
    assert!(rx.drain().is_empty(), "one request for the three");

    // A lone event goes at the latest maxWaitMs after it became ready: a batch of one.
    let mut lone = TestReceiver::start(200);
    batching_hook(
        &env,
        &lone.url,
        json!({"batch": {"maxEvents": 100, "maxWaitMs": 100}, "event_type": "claim/opened"}),
        0,
    )
    .await;
    env.server
        .publish("t1", "claim/opened", json!({"lone": true}))
        .await;
    let one = lone.expect(WAIT).await.json();
    assert_eq!(one["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(one["deliveries"][0]["data"]["lone"], true);
}

#[tokio::test]
async fn a_failed_batch_is_retried_whole_with_the_same_bytes() {
    let env = Env::start();
    let mut rx = TestReceiver::scripted(vec![Reply::status(500)], Reply::status(200));
    let (id, _, _) = batching_hook(
        &env,
        &rx.url,
        json!({"batch": {"maxEvents": 2, "maxWaitMs": 60000},
               "retry_config": {"maxAttempts": 3, "backoffMs": 10},
               // `now` differs on every run: the retry must not build or transform anew.
               "transform": "{n: (.deliveries | length), at: now, ids: [.deliveries[].delivery_id]}"}),
        2,
    )
    .await;
    let first = rx.expect(WAIT).await;
    let second = rx.expect(WAIT).await;
    assert_eq!(first.body, second.body, "same members, same bytes");
    assert_eq!(first.json()["n"], 2);
    let batch_id = first.header("webhook-id").unwrap().to_string();
    assert_eq!(second.header("webhook-id"), Some(batch_id.as_str()));
    let list = env
        .server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 2 && d.iter().all(|x| x["status"] == "success")
        })
        .await;
    for d in &list {
        assert_eq!(d["attempt_number"], 2);
        let (_, one) = env
            .server
            .get(&format!(
                "/api/webhooks/deliveries/{}",
                d["delivery_id"].as_str().unwrap()
            ))
            .await;
        let codes: Vec<&Value> = one["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| &a["status_code"])
            .collect();
        assert_eq!(codes, [&json!(500), &json!(200)], "{one}");
        assert!(one["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["batch_id"] == batch_id.as_str()));
    }
}

#[tokio::test]
async fn a_410_on_a_batch_fails_every_member_and_disables_the_webhook() {
    let env = Env::start();
    let mut rx = TestReceiver::start(410);
    let (id, _, _) = batching_hook(
        &env,
        &rx.url,
        json!({"batch": {"maxEvents": 2, "maxWaitMs": 60000}}),
        2,
    )
    .await;
    rx.expect(WAIT).await;
    env.server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 2
                && d.iter()
                    .all(|x| x["status"] == "failed" && x["status_code"] == 410)
        })
        .await;
    env.server
        .wait_get(&format!("/api/webhooks/{id}"), WAIT, |w| {
            w["enabled"] == false
        })
        .await;
    assert!(rx.drain().is_empty(), "one request, no retry");
}

#[tokio::test]
async fn a_manually_retried_member_goes_in_a_new_batch_with_one_attempt() {
    let env = Env::start();
    let mut rx = TestReceiver::scripted(vec![Reply::status(200)], Reply::status(500));
    let (id, _, _) = batching_hook(
        &env,
        &rx.url,
        json!({"batch": {"maxEvents": 2, "maxWaitMs": 60000},
               "retry_config": {"maxAttempts": 5, "backoffMs": 10}}),
        2,
    )
    .await;
    let first = rx.expect(WAIT).await;
    let list = env
        .server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 2 && d.iter().all(|x| x["status"] == "success")
        })
        .await;
    let target = list[0]["delivery_id"].as_str().unwrap().to_string();
    let (status, v) = env
        .server
        .post(
            &format!("/api/webhooks/deliveries/{target}/retry"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let again = rx.expect(WAIT).await;
    assert_ne!(
        again.header("webhook-id"),
        first.header("webhook-id"),
        "a new batch"
    );
    let body = again.json();
    assert_eq!(body["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(body["deliveries"][0]["delivery_id"], target.as_str());
    // Answered 500: such a batch gets one attempt, then the member is final.
    env.server
        .wait_deliveries(&format!("webhook_id={id}&status=failed"), WAIT, |d| {
            d.len() == 1 && d[0]["delivery_id"] == target.as_str() && d[0]["attempt_number"] == 2
        })
        .await;
    assert!(rx.drain().is_empty(), "no automatic retry");
}

#[tokio::test]
async fn the_openapi_document_describes_transform_batch_and_batch_id() {
    let env = Env::start();
    let (status, doc) = env.server.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("WebhookInput", "transform"),
        ("WebhookInput", "batch"),
        ("WebhookView", "transform"),
        ("WebhookView", "batch"),
        ("AttemptView", "batch_id"),
        ("BatchInput", "maxEvents"),
        ("BatchInput", "maxWaitMs"),
        ("BatchSettings", "maxEvents"),
    ] {
        assert!(
            schemas[schema]["properties"].get(field).is_some(),
            "{schema}.{field} in {}",
            schemas[schema]
        );
    }
    // Every reference resolves.
    let text = doc.to_string();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(schemas.get(name).is_some(), "dangling $ref {name}");
    }
}

#[tokio::test]
async fn a_test_send_goes_as_a_batch_of_one() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    let hook = env
        .server
        .create_webhook(
            "t1",
            "claim/opened",
            &rx.url,
            json!({"batch": {"maxEvents": 10, "maxWaitMs": 60000}}),
        )
        .await;
    let id = hook["webhook_id"].as_i64().unwrap();
    // One ordinary event waits for the batch to fill; the test event does not join it.
    env.server
        .publish("t1", "claim/opened", json!({"i": 0}))
        .await;
    let (status, v) = env
        .server
        .post(&format!("/api/webhooks/{id}/test"), &json!({}))
        .await;
    assert_eq!(status, 202, "{v}");
    let got = rx.expect(WAIT).await;
    assert_eq!(got.header("x-beema-event"), Some("batch"));
    let body = got.json();
    let entries = body["deliveries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{body}");
    assert_eq!(entries[0]["event"], "webhook/test");
    assert_eq!(entries[0]["delivery_id"], v["delivery_id"]);
}

#[tokio::test]
async fn a_batch_closes_before_its_body_passes_the_body_limit() {
    const LIMIT: usize = 800;
    let env = Env::with(|c| c.max_body_bytes = LIMIT);
    let mut rx = TestReceiver::start(200);
    // Neither maxEvents nor maxWaitMs closes these batches: only their size does.
    let (_, _, events) = batching_hook(
        &env,
        &rx.url,
        json!({"batch": {"maxEvents": 1000, "maxWaitMs": 60000}}),
        7,
    )
    .await;
    let mut sent = Vec::new();
    for _ in 0..2 {
        let got = rx.expect(WAIT).await;
        assert!(got.body.len() <= LIMIT, "{} bytes", got.body.len());
        let body = got.json();
        let entries = body["deliveries"].as_array().unwrap();
        assert!(entries.len() > 1, "{body}");
        sent.extend(
            entries
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(
        sent,
        events[..sent.len()],
        "acceptance order across batches"
    );
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Rows of `sys_webhook_sent_bodies`, read past the server.
async fn stored_bodies(db: &crate::utils::TestDb) -> i64 {
    use beema_webhooks::config::DatabaseUrl;
    let sql = "SELECT COUNT(*) AS n FROM sys_webhook_sent_bodies";
    match &db.url {
        DatabaseUrl::Sqlite(path) => {
            use diesel::{Connection, RunQueryDsl};
            let mut c = diesel::SqliteConnection::establish(path).expect("open the SQLite file");
            diesel::sql_query(sql)
                .get_result::<Count>(&mut c)
                .expect("count")
                .n
        }
        DatabaseUrl::Postgres(url) => {
            use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
            let mut c = AsyncPgConnection::establish(url)
                .await
                .expect("connect to PostgreSQL");
            diesel::sql_query(sql)
                .get_result::<Count>(&mut c)
                .await
                .expect("count")
                .n
        }
    }
}

#[tokio::test]
async fn a_waiting_batch_is_resent_exactly_after_a_restart() {
    use crate::utils::{eventually, test_config, TestDb, TestServer};
    let db = TestDb::new();
    let mut rx = TestReceiver::start(503);
    let server = TestServer::start(test_config(&db));
    let hook = server
        .create_webhook(
            "t1",
            "claim/opened",
            &rx.url,
            json!({"batch": {"maxEvents": 2, "maxWaitMs": 60000},
                   "retry_config": {"maxAttempts": 5, "backoffMs": 1000},
                   "transform": "{at: now, ids: [.deliveries[].delivery_id]}"}),
        )
        .await;
    let id = hook["webhook_id"].as_i64().unwrap();
    // A lone delivery whose transformed body must survive too.
    let mut lone = TestReceiver::start(503);
    let single = server
        .create_webhook(
            "t1",
            "claim/closed",
            &lone.url,
            json!({"retry_config": {"maxAttempts": 5, "backoffMs": 1000},
                   "transform": "{at: now}"}),
        )
        .await;
    let single_id = single["webhook_id"].as_i64().unwrap();
    for i in 0..2 {
        server
            .publish("t1", "claim/opened", json!({ "i": i }))
            .await;
    }
    server.publish("t1", "claim/closed", json!({})).await;
    let first = rx.expect(WAIT).await;
    let lone_first = lone.expect(WAIT).await;
    server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 2 && d.iter().all(|x| x["status"] == "retrying")
        })
        .await;
    server
        .wait_deliveries(&format!("webhook_id={single_id}"), WAIT, |d| {
            d.len() == 1 && d[0]["status"] == "retrying"
        })
        .await;
    eventually(WAIT, "the batch and lone bodies to be stored", || async {
        match stored_bodies(&db).await {
            2 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    server.stop();

    rx.set_reply(Reply::status(200));
    rx.drain();
    lone.set_reply(Reply::status(200));
    lone.drain();
    let server = TestServer::start(test_config(&db));
    let lone_again = lone.expect(WAIT).await;
    assert_eq!(
        lone_again.body, lone_first.body,
        "the lone body as first sent"
    );
    let again = rx.expect(WAIT).await;
    assert_eq!(
        again.header("webhook-id"),
        first.header("webhook-id"),
        "same batch id"
    );
    assert_eq!(
        again.body, first.body,
        "same bytes (the transform did not run again)"
    );
    server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 2 && d.iter().all(|x| x["status"] == "success")
        })
        .await;
    eventually(WAIT, "the stored body to be dropped", || async {
        match stored_bodies(&db).await {
            0 => Ok(()),
            n => Err(n),
        }
    })
    .await;
}

#[tokio::test]
async fn an_ordered_batching_webhook_keeps_order_and_a_failing_batch_holds_back_the_next() {
    let env = Env::start();
    let mut rx = TestReceiver::scripted(vec![Reply::status(500)], Reply::status(200));
    let (_, _, events) = batching_hook(
        &env,
        &rx.url,
        json!({"ordered": true, "batch": {"maxEvents": 2, "maxWaitMs": 0},
               "retry_config": {"maxAttempts": 3, "backoffMs": 50}}),
        5,
    )
    .await;
    let mut requests = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    while seen.len() < events.len() {
        let got = rx.expect(WAIT).await;
        let batch_id = got.header("webhook-id").unwrap().to_string();
        let ids: Vec<String> = got.json()["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        if !requests.iter().any(|(b, _)| *b == batch_id) {
            seen.extend(ids.clone());
        }
        requests.push((batch_id, got.body));
    }
    assert_eq!(seen, events, "acceptance order within and across batches");
    assert_eq!(
        requests[0], requests[1],
        "the failed first batch went again before any other"
    );
}

#[tokio::test]
async fn a_transformed_batch_shows_its_whole_body_on_every_member() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    let (id, _, events) = batching_hook(
        &env,
        &rx.url,
        json!({"batch": {"maxEvents": 2, "maxWaitMs": 60000}, "transform": "[.deliveries[].id]"}),
        2,
    )
    .await;
    let got = rx.expect(WAIT).await;
    let sent: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        sent,
        json!(events),
        "a transform's output need not be an object"
    );
    let done = env
        .server
        .wait_deliveries(&format!("webhook_id={id}"), WAIT, |d| {
            d.len() == 2 && d.iter().all(|x| x["status"] == "success")
        })
        .await;
    for d in &done {
        let detail = format!(
            "/api/webhooks/deliveries/{}",
            d["delivery_id"].as_str().unwrap()
        );
        env.server
            .wait_get(&detail, WAIT, |v| v["payload"] == sent)
            .await;
    }
}
