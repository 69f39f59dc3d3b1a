//! Events flow: intake, matching, signed delivery, the delivery log.

use std::time::Duration;

use serde_json::json;

use crate::utils::{beema_signature, standard_verifies, Env, TestReceiver};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_published_event_reaches_the_receiver_signed_and_logged() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    let hook = env
        .server
        .create_webhook(
            "tenant-1",
            "claim/opened",
            &rx.url,
            json!({"headers": {"Authorization": "Bearer t"}}),
        )
        .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let published = env
        .server
        .publish(
            "tenant-1",
            "claim/opened",
            json!({"claimNumber": "CLM-001"}),
        )
        .await;
    assert_eq!(published["deliveries"], 1);
    let event_id = published["ids"][0].as_str().unwrap().to_string();

    let got = rx.expect(WAIT).await;
    let body = got.json();
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["event"], "claim/opened");
    assert_eq!(body["data"]["claimNumber"], "CLM-001");
    assert_eq!(got.header("authorization"), Some("Bearer t"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert!(got
        .header("user-agent")
        .unwrap()
        .starts_with("beema-webhooks/"));
    let delivery_id = got.header("x-beema-delivery").unwrap().to_string();
    assert_eq!(got.header("webhook-id"), Some(delivery_id.as_str()));

    // Standard Webhooks, checked by an independent implementation.
    assert!(
        standard_verifies(&secret, &got),
        "standard webhooks signature verifies"
    );
    // X-Beema-Signature: HMAC-SHA256 keyed by the secret as written.
    assert_eq!(
        got.header("x-beema-signature").unwrap(),
        beema_signature(&secret, &got.body)
    );

    let list = env
        .server
        .wait_deliveries(&format!("event_id={event_id}"), WAIT, |d| {
            d.len() == 1 && d[0]["status"] == "success"
        })
        .await;
    assert_eq!(list[0]["delivery_id"], delivery_id.as_str());
    assert_eq!(list[0]["status_code"], 200);
    let (status, one) = env
        .server
        .get(&format!("/api/webhooks/deliveries/{delivery_id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["attempts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn events_go_to_exact_and_wildcard_webhooks_of_their_tenant_only() {
    let env = Env::start();
    let mut exact = TestReceiver::start(200);
    let mut star = TestReceiver::start(200);
    let mut other_tenant = TestReceiver::start(200);
    let mut other_type = TestReceiver::start(200);
    env.server
        .create_webhook("t1", "claim/opened", &exact.url, json!({}))
        .await;
    env.server
        .create_webhook("t1", "*", &star.url, json!({}))
        .await;
    env.server
        .create_webhook("t2", "claim/opened", &other_tenant.url, json!({}))
        .await;
    env.server
        .create_webhook("t1", "policy/bound", &other_type.url, json!({}))
        .await;

    let v = env.server.publish("t1", "claim/opened", json!({})).await;
    assert_eq!(v["deliveries"], 2);
    assert_eq!(exact.expect(WAIT).await.json()["event"], "claim/opened");
    assert_eq!(star.expect(WAIT).await.json()["event"], "claim/opened");
    assert!(other_tenant
        .next(Duration::from_millis(300))
        .await
        .is_none());
    assert!(other_type.next(Duration::from_millis(100)).await.is_none());
}

#[tokio::test]
async fn a_disabled_webhook_gets_nothing() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    env.server
        .create_webhook("t1", "claim/opened", &rx.url, json!({"enabled": false}))
        .await;
    let v = env.server.publish("t1", "claim/opened", json!({})).await;
    assert_eq!(v["deliveries"], 0);
    assert!(rx.next(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    env.server
        .create_webhook("t1", "*", &rx.url, json!({}))
        .await;
    let good = json!([
        {"event": "a/one", "data": {"tenantId": "t1", "n": 1}},
        {"name": "a/two", "data": {"tenantId": "t1", "n": 2}},
        {"event": "a/three", "data": {"n": 3}},
    ]);
    let req = env
        .server
        .request(reqwest::Method::POST, "/api/events")
        .header("content-type", "application/json")
        .header("X-Tenant-ID", "t1")
        .body(good.to_string());
    let (status, v) = env.server.send(req).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["ids"].as_array().unwrap().len(), 3);
    assert_eq!(v["deliveries"], 3);
    let mut seen: Vec<i64> = Vec::new();
    for _ in 0..3 {
        seen.push(rx.expect(WAIT).await.json()["data"]["n"].as_i64().unwrap());
    }
    seen.sort();
    assert_eq!(seen, vec![1, 2, 3]);

    let bad = json!([{"event": "a/one", "data": {"tenantId": "t1"}}, {"data": {"tenantId": "t1"}}]);
    let (status, v) = env.server.post("/api/events", &bad).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains('1'),
        "names the index: {v}"
    );
    assert!(
        rx.next(Duration::from_millis(300)).await.is_none(),
        "nothing of a rejected batch is delivered"
    );
    let list = env
        .server
        .wait_deliveries("limit=100", WAIT, |d| d.len() == 3)
        .await;
    assert_eq!(list.len(), 3);
}

#[tokio::test]
async fn an_idempotent_id_is_delivered_once() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    env.server
        .create_webhook("t1", "claim/opened", &rx.url, json!({}))
        .await;
    let event = json!({"event": "claim/opened", "id": "evt-42", "data": {"tenantId": "t1"}});
    let (s1, first) = env.server.post("/api/events", &event).await;
    let (s2, again) = env.server.post("/api/inngest", &event).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(first["ids"], again["ids"]);
    assert_eq!(first["deliveries"], 1);
    assert_eq!(again["deliveries"], 0);
    // Same id, other tenant: a different event.
    let (_, other) = env
        .server
        .post(
            "/api/events",
            &json!({"event": "claim/opened", "id": "evt-42", "data": {"tenantId": "t2"}}),
        )
        .await;
    assert_ne!(other["ids"], first["ids"]);
    rx.expect(WAIT).await;
    assert!(
        rx.next(Duration::from_millis(300)).await.is_none(),
        "delivered once"
    );
}

#[tokio::test]
async fn the_inngest_event_api_form_answers_like_inngest() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    env.server
        .create_webhook("t1", "policy/bound", &rx.url, json!({}))
        .await;
    let (status, v) = env
        .server
        .post("/e/any-dev-key", &json!([{"name": "policy/bound", "data": {"tenantId": "t1", "policyNumber": "POL-1"}, "ts": 1760000000000i64}]))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], 200);
    assert_eq!(v["ids"].as_array().unwrap().len(), 1);
    let body = rx.expect(WAIT).await.json();
    assert_eq!(body["data"]["policyNumber"], "POL-1");
    assert_eq!(body["timestamp"], "2025-10-09T08:53:20Z");
}

#[tokio::test]
async fn deliveries_can_be_filtered_paged_recorded_and_retried() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    let hook = env
        .server
        .create_webhook("t1", "*", &rx.url, json!({}))
        .await;
    let id = hook["webhook_id"].as_i64().unwrap();
    for i in 0..5 {
        env.server
            .publish(
                "t1",
                if i % 2 == 0 { "a/even" } else { "a/odd" },
                json!({"i": i}),
            )
            .await;
    }
    for _ in 0..5 {
        rx.expect(WAIT).await;
    }
    env.server
        .wait_deliveries(&format!("webhook_id={id}&status=success"), WAIT, |d| {
            d.len() == 5
        })
        .await;
    let (_, even) = env
        .server
        .get("/api/webhooks/deliveries?event_type=a/even")
        .await;
    assert_eq!(even["deliveries"].as_array().unwrap().len(), 3);

    // Paging: newest first, no skips or repeats.
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/webhooks/deliveries?limit=2&before={c}"),
            None => "/api/webhooks/deliveries?limit=2".to_string(),
        };
        let (status, page) = env.server.get(&q).await;
        assert_eq!(status, 200);
        for d in page["deliveries"].as_array().unwrap() {
            ids.push(d["delivery_id"].as_str().unwrap().to_string());
        }
        match page["next_before"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(ids, sorted, "newest first");
    sorted.dedup();
    assert_eq!(sorted.len(), 5);

    // Retry of a finished delivery keeps its id.
    let target = ids[2].clone();
    let (status, v) = env
        .server
        .post(
            &format!("/api/webhooks/deliveries/{target}/retry"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let again = rx.expect(WAIT).await;
    assert_eq!(again.header("x-beema-delivery"), Some(target.as_str()));
    env.server
        .wait_deliveries(&format!("webhook_id={id}&status=success"), WAIT, |d| {
            d.iter()
                .any(|x| x["delivery_id"] == target.as_str() && x["attempt_number"] == 2)
        })
        .await;

    // Recording a result from outside (`POST /api/webhooks/deliveries`).
    let (status, rec) = env
        .server
        .post(
            "/api/webhooks/deliveries",
            &json!({"webhook_id": id, "event_id": "ext-1", "event_type": "claim/opened", "status": "success",
                    "status_code": 200, "response_body": "ok", "attempt_number": 1}),
        )
        .await;
    assert_eq!(status, 201, "{rec}");
    assert_eq!(rec["status"], "success");
    let (_, by_event) = env
        .server
        .get("/api/webhooks/deliveries?event_id=ext-1")
        .await;
    assert_eq!(by_event["deliveries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_test_send_goes_to_that_webhook_alone() {
    let env = Env::start();
    let mut a = TestReceiver::start(200);
    let mut b = TestReceiver::start(200);
    let hook = env
        .server
        .create_webhook("t1", "*", &a.url, json!({}))
        .await;
    env.server
        .create_webhook("t1", "*", &b.url, json!({}))
        .await;
    let id = hook["webhook_id"].as_i64().unwrap();
    let (status, v) = env
        .server
        .post(&format!("/api/webhooks/{id}/test"), &json!({}))
        .await;
    assert_eq!(status, 202, "{v}");
    let got = a.expect(WAIT).await;
    assert_eq!(got.header("x-beema-event"), Some("webhook/test"));
    assert_eq!(got.header("x-beema-delivery"), v["delivery_id"].as_str());
    assert!(b.next(Duration::from_millis(300)).await.is_none());
}
