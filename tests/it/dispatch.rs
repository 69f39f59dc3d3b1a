//! Events flow: intake, matching, signed delivery, the delivery log.

use std::time::Duration;

use serde_json::json;

use crate::utils::{Env, TestReceiver};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_published_event_reaches_the_receiver_signed_and_logged() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    let hook = env.server.create_webhook("tenant-1", "claim/opened", &rx.url, json!({"headers": {"Authorization": "Bearer t"}})).await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let published = env.server.publish("tenant-1", "claim/opened", json!({"claimNumber": "CLM-001"})).await;
    assert_eq!(published["deliveries"], 1);
    let event_id = published["ids"][0].as_str().unwrap().to_string();

    let got = rx.expect(WAIT).await;
    let body = got.json();
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["event"], "claim/opened");
    assert_eq!(body["data"]["claimNumber"], "CLM-001");
    assert_eq!(got.header("authorization"), Some("Bearer t"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert!(got.header("user-agent").unwrap().starts_with("beema-webhooks/"));
    let delivery_id = got.header("x-beema-delivery").unwrap().to_string();
    assert_eq!(got.header("webhook-id"), Some(delivery_id.as_str()));

    // Standard Webhooks, checked by an independent implementation.
    let wh = standardwebhooks::Webhook::new(&secret).expect("whsec secret");
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, got.header(name).unwrap().parse().unwrap());
    }
    wh.verify(&got.body, &headers).expect("standard webhooks signature verifies");
    // X-Beema-Signature: HMAC-SHA256 keyed by the secret as written.
    use hmac::{Mac, KeyInit};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&got.body);
    assert_eq!(got.header("x-beema-signature").unwrap(), format!("sha256={}", hex::encode(mac.finalize().into_bytes())));

    let list = env
        .server
        .wait_deliveries(&format!("event_id={event_id}"), WAIT, |d| d.len() == 1 && d[0]["status"] == "success")
        .await;
    assert_eq!(list[0]["delivery_id"], delivery_id.as_str());
    assert_eq!(list[0]["status_code"], 200);
    let (status, one) = env.server.get(&format!("/api/webhooks/deliveries/{delivery_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["attempts"].as_array().unwrap().len(), 1);
}
