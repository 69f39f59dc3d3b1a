//! The webhook API (README, API), black-box: CRUD, paging, secrets, validation, errors.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};

use crate::utils::{
    assert_error, beema_signature, standard_signature, standard_verifies, Env, Received,
    TestReceiver,
};

const WAIT: Duration = Duration::from_secs(10);
const RX_URL: &str = "http://127.0.0.1:9/hook";

// ---------------------------------------------------------------------------------------------
// helpers

/// A valid create body with `extra` merged over it.
fn body(extra: Value) -> Value {
    let mut b = json!({
        "webhook_name": "Slack Notifications", "tenant_id": "tenant-1",
        "event_type": "claim/opened", "url": "https://hooks.example.com/beema",
    });
    let o = b.as_object_mut().unwrap();
    for (k, v) in extra.as_object().expect("extra is an object") {
        o.insert(k.clone(), v.clone());
    }
    b
}

/// Asserts a 422 naming `field`.
fn assert_invalid(status: u16, v: &Value, field: &str) {
    assert_error(
        (status, v),
        422,
        Some("validation_failed"),
        Some(field),
        format_args!("expected 422 on {field}"),
    );
}

async fn create_status(env: &Env, b: &Value) -> (u16, Value) {
    env.server.post("/api/webhooks", b).await
}

/// Creates with `body(extra)` and expects 422 naming `field`.
async fn expect_invalid_create(env: &Env, extra: Value, field: &str) {
    let b = body(extra);
    let (status, v) = create_status(env, &b).await;
    assert_invalid(status, &v, field);
}

/// Creates with `body(extra)` and expects 201.
async fn expect_created(env: &Env, extra: Value) -> Value {
    let b = body(extra);
    let (status, v) = create_status(env, &b).await;
    assert_eq!(status, 201, "expected 201 for {b}: {v}");
    v
}

fn id(v: &Value) -> i64 {
    v["webhook_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("webhook_id in {v}"))
}

fn mask(secret: &str) -> String {
    format!("{}…", secret.chars().take(10).collect::<String>())
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap_or_else(|| panic!("array: {list}"))
        .iter()
        .map(id)
        .collect()
}

/// GET with an `X-Tenant-ID`.
async fn get_as(env: &Env, tenant: &str, path: &str) -> (u16, Value) {
    env.server
        .send(
            env.server
                .request(Method::GET, path)
                .header("x-tenant-id", tenant),
        )
        .await
}

/// A raw request with a body and content type.
async fn raw(
    env: &Env,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut r = env.server.request(method, path).body(body);
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    env.server.send(r).await
}

/// The signatures of `webhook-signature`, checking each is `v1,`.
fn signatures(got: &Received) -> Vec<String> {
    let h = got
        .header("webhook-signature")
        .expect("webhook-signature header");
    let sigs: Vec<String> = h.split(' ').map(str::to_string).collect();
    for s in &sigs {
        assert!(s.starts_with("v1,"), "signature {s} in {h}");
    }
    sigs
}

/// Sends a test event to webhook `id` and returns what the receiver got.
async fn test_delivery(env: &Env, rx: &mut TestReceiver, id: i64) -> Received {
    let (status, v) = env
        .server
        .post(&format!("/api/webhooks/{id}/test"), &json!({}))
        .await;
    assert_eq!(status, 202, "{v}");
    let delivery_id = v["delivery_id"].as_str().expect("delivery_id").to_string();
    let got = rx.expect(WAIT).await;
    assert_eq!(got.header("webhook-id"), Some(delivery_id.as_str()));
    got
}

async fn rotate(env: &Env, id: i64, b: Value) -> Value {
    let (status, v) = env
        .server
        .post(&format!("/api/webhooks/{id}/rotate-secret"), &b)
        .await;
    assert_eq!(status, 200, "rotate: {v}");
    v
}

// ---------------------------------------------------------------------------------------------
// create

#[tokio::test]
async fn create_answers_201_with_the_contract_defaults() {
    let env = Env::start();
    let (status, w) = create_status(&env, &body(json!({}))).await;
    assert_eq!(status, 201, "{w}");
    assert!(w["webhook_id"].as_i64().is_some_and(|i| i > 0), "{w}");
    assert_eq!(w["webhook_name"], "Slack Notifications");
    assert_eq!(w["tenant_id"], "tenant-1");
    assert_eq!(w["event_type"], "claim/opened");
    assert_eq!(w["url"], "https://hooks.example.com/beema");
    assert_eq!(w["enabled"], true);
    assert_eq!(w["headers"], json!({}));
    assert_eq!(
        w["retry_config"],
        json!({"maxAttempts": 4, "backoffMs": 1000})
    );
    assert_eq!(w["rate_limit"], Value::Null);
    assert!(w.as_object().unwrap().contains_key("rate_limit"));
    assert_eq!(
        w["circuit_breaker"],
        json!({"failureThreshold": 5, "cooldownMs": 30000})
    );
    assert_eq!(w["timeout_ms"], 30000);
    assert_eq!(w["ordered"], false);
    assert_eq!(w["disabled_reason"], Value::Null);
    assert!(w.as_object().unwrap().contains_key("disabled_reason"));
    for ts in ["created_at", "updated_at"] {
        let s = w[ts].as_str().unwrap_or_else(|| panic!("{ts} in {w}"));
        chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{ts} {s}: {e}"));
    }
    assert!(w["created_by"].is_string(), "{w}");
    assert!(w["updated_by"].is_string(), "{w}");
    // The stored webhook reads back the same.
    let (status, got) = env.server.get(&format!("/api/webhooks/{}", id(&w))).await;
    assert_eq!(status, 200);
    for k in [
        "webhook_name",
        "tenant_id",
        "event_type",
        "url",
        "enabled",
        "headers",
        "retry_config",
        "rate_limit",
        "circuit_breaker",
        "timeout_ms",
        "ordered",
        "disabled_reason",
        "created_by",
    ] {
        assert_eq!(got[k], w[k], "{k}");
    }
}

#[tokio::test]
async fn create_stores_every_supplied_setting() {
    let env = Env::start();
    let w = expect_created(
        &env,
        json!({
            "enabled": false, "headers": {"Authorization": "Bearer token", "X-Custom": "v"},
            "retry_config": {"maxAttempts": 7, "backoffMs": 250}, "rate_limit": {"perSecond": 50, "burst": 10},
            "circuit_breaker": {"failureThreshold": 3, "cooldownMs": 1000}, "timeout_ms": 5000, "ordered": true,
            "created_by": "alice", "updated_by": "bob",
        }),
    )
    .await;
    let (_, got) = env.server.get(&format!("/api/webhooks/{}", id(&w))).await;
    for v in [&w, &got] {
        assert_eq!(v["enabled"], false);
        assert_eq!(
            v["headers"],
            json!({"Authorization": "Bearer token", "X-Custom": "v"})
        );
        assert_eq!(
            v["retry_config"],
            json!({"maxAttempts": 7, "backoffMs": 250})
        );
        assert_eq!(v["rate_limit"], json!({"perSecond": 50, "burst": 10}));
        assert_eq!(
            v["circuit_breaker"],
            json!({"failureThreshold": 3, "cooldownMs": 1000})
        );
        assert_eq!(v["timeout_ms"], 5000);
        assert_eq!(v["ordered"], true);
        assert_eq!(v["created_by"], "alice");
        assert_eq!(v["updated_by"], "bob");
    }
}

#[tokio::test]
async fn create_generates_a_whsec_secret_of_32_random_bytes_shown_in_full_once() {
    let env = Env::start();
    let a = expect_created(&env, json!({})).await;
    let b = expect_created(&env, json!({})).await;
    let secret = a["secret"].as_str().unwrap();
    let rest = secret
        .strip_prefix("whsec_")
        .unwrap_or_else(|| panic!("whsec_ prefix: {secret}"));
    assert_eq!(
        STANDARD.decode(rest).expect("standard base64").len(),
        32,
        "{secret}"
    );
    assert_ne!(a["secret"], b["secret"], "each webhook gets its own secret");
    // Afterwards only the masked form is shown, except by the secret endpoint.
    let (_, got) = env.server.get(&format!("/api/webhooks/{}", id(&a))).await;
    assert_eq!(got["secret"], mask(secret));
    let (status, s) = env
        .server
        .get(&format!("/api/webhooks/{}/secret", id(&a)))
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s, json!({"secret": secret}));
}

#[tokio::test]
async fn create_keeps_a_caller_supplied_secret() {
    let env = Env::start();
    let w = expect_created(&env, json!({"secret": "my-own-secret-value"})).await;
    assert_eq!(w["secret"], "my-own-secret-value");
    let (_, s) = env
        .server
        .get(&format!("/api/webhooks/{}/secret", id(&w)))
        .await;
    assert_eq!(s["secret"], "my-own-secret-value");
    let (_, got) = env.server.get(&format!("/api/webhooks/{}", id(&w))).await;
    assert_eq!(got["secret"], "my-own-sec…");
}

#[tokio::test]
async fn create_takes_the_tenant_from_the_body_else_the_tenant_header() {
    let env = Env::start();
    // Body only.
    let w = expect_created(&env, json!({"tenant_id": "from-body"})).await;
    assert_eq!(w["tenant_id"], "from-body");
    // Header only.
    let mut b = body(json!({}));
    b.as_object_mut().unwrap().remove("tenant_id");
    let req = env
        .server
        .request(Method::POST, "/api/webhooks")
        .header("content-type", "application/json")
        .header("x-tenant-id", "from-header");
    let (status, w) = env.server.send(req.body(b.to_string())).await;
    assert_eq!(status, 201, "{w}");
    assert_eq!(w["tenant_id"], "from-header");
    // `null` in the body counts as omitted.
    let mut nb = b.clone();
    nb["tenant_id"] = Value::Null;
    let req = env
        .server
        .request(Method::POST, "/api/webhooks")
        .header("content-type", "application/json")
        .header("x-tenant-id", "from-header");
    let (status, w) = env.server.send(req.body(nb.to_string())).await;
    assert_eq!(status, 201, "{w}");
    assert_eq!(w["tenant_id"], "from-header");
    // The body wins for the global admin.
    let req = env
        .server
        .request(Method::POST, "/api/webhooks")
        .header("content-type", "application/json")
        .header("x-tenant-id", "from-header");
    let (status, w) = env
        .server
        .send(req.body(body(json!({"tenant_id": "from-body"})).to_string()))
        .await;
    assert_eq!(status, 201, "{w}");
    assert_eq!(w["tenant_id"], "from-body");
    // Neither: 422 on tenant_id.
    let (status, v) = create_status(&env, &b).await;
    assert_invalid(status, &v, "tenant_id");
}

#[tokio::test]
async fn create_records_created_by_and_updated_by() {
    let env = Env::start();
    let w = expect_created(&env, json!({"created_by": "user-123"})).await;
    assert_eq!(w["created_by"], "user-123");
    let w = expect_created(&env, json!({})).await;
    assert!(
        w["created_by"].as_str().is_some_and(|s| !s.is_empty()),
        "a default creator is recorded: {w}"
    );
    assert!(
        w["updated_by"].as_str().is_some_and(|s| !s.is_empty()),
        "{w}"
    );
}

#[tokio::test]
async fn optional_fields_sent_as_null_take_their_defaults_on_create() {
    let env = Env::start();
    let w = expect_created(
        &env,
        json!({"secret": null, "enabled": null, "headers": null, "retry_config": null, "rate_limit": null,
               "circuit_breaker": null, "timeout_ms": null, "ordered": null, "created_by": null}),
    )
    .await;
    assert!(w["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(w["enabled"], true);
    assert_eq!(w["headers"], json!({}));
    assert_eq!(
        w["retry_config"],
        json!({"maxAttempts": 4, "backoffMs": 1000})
    );
    assert_eq!(w["rate_limit"], Value::Null);
    assert_eq!(
        w["circuit_breaker"],
        json!({"failureThreshold": 5, "cooldownMs": 30000})
    );
    assert_eq!(w["timeout_ms"], 30000);
    assert_eq!(w["ordered"], false);
    // Partial nested objects take the other defaults.
    let w = expect_created(
        &env,
        json!({"retry_config": {"maxAttempts": 9}, "circuit_breaker": {"cooldownMs": 500}}),
    )
    .await;
    assert_eq!(
        w["retry_config"],
        json!({"maxAttempts": 9, "backoffMs": 1000})
    );
    assert_eq!(
        w["circuit_breaker"],
        json!({"failureThreshold": 5, "cooldownMs": 500})
    );
}

#[tokio::test]
async fn required_fields_sent_as_null_are_422() {
    let env = Env::start();
    for field in ["webhook_name", "event_type", "url"] {
        expect_invalid_create(&env, json!({ field: null }), field).await;
        let mut b = body(json!({}));
        b.as_object_mut().unwrap().remove(field);
        let (status, v) = create_status(&env, &b).await;
        assert_invalid(status, &v, field);
    }
    expect_invalid_create(&env, json!({"tenant_id": null}), "tenant_id").await;
}

// ---------------------------------------------------------------------------------------------
// list and get

#[tokio::test]
async fn list_is_scoped_by_the_tenant_header_and_global_without_it() {
    let env = Env::start();
    let a1 = id(&env
        .server
        .create_webhook("tenant-a", "claim/opened", RX_URL, json!({}))
        .await);
    let b1 = id(&env
        .server
        .create_webhook("tenant-b", "claim/opened", RX_URL, json!({}))
        .await);
    let a2 = id(&env
        .server
        .create_webhook("tenant-a", "policy/bound", RX_URL, json!({}))
        .await);

    let (status, v) = get_as(&env, "tenant-a", "/api/webhooks").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(ids(&v["webhooks"]), vec![a1, a2]);
    assert!(v["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["tenant_id"] == "tenant-a"));
    assert_eq!(v["next_after"], Value::Null);
    assert!(v.as_object().unwrap().contains_key("next_after"));

    let (_, v) = get_as(&env, "tenant-b", "/api/webhooks").await;
    assert_eq!(ids(&v["webhooks"]), vec![b1]);
    let (_, v) = get_as(&env, "tenant-none", "/api/webhooks").await;
    assert_eq!(ids(&v["webhooks"]), Vec::<i64>::new());

    let (status, v) = env.server.get("/api/webhooks").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&v["webhooks"]), vec![a1, b1, a2]);
}

#[tokio::test]
async fn list_filters_by_event_type_and_enabled() {
    let env = Env::start();
    let t = "tenant-1";
    let on_open = id(&env
        .server
        .create_webhook(t, "claim/opened", RX_URL, json!({}))
        .await);
    let off_open = id(&env
        .server
        .create_webhook(t, "claim/opened", RX_URL, json!({"enabled": false}))
        .await);
    let on_bound = id(&env
        .server
        .create_webhook(t, "policy/bound", RX_URL, json!({}))
        .await);
    let star = id(&env.server.create_webhook(t, "*", RX_URL, json!({})).await);

    let (_, v) = get_as(&env, t, "/api/webhooks?event_type=claim/opened").await;
    assert_eq!(ids(&v["webhooks"]), vec![on_open, off_open]);
    let (_, v) = get_as(&env, t, "/api/webhooks?event_type=claim%2Fopened").await;
    assert_eq!(
        ids(&v["webhooks"]),
        vec![on_open, off_open],
        "percent-encoded filter"
    );
    let (_, v) = get_as(&env, t, "/api/webhooks?event_type=*").await;
    assert_eq!(ids(&v["webhooks"]), vec![star]);
    let (_, v) = get_as(&env, t, "/api/webhooks?enabled=true").await;
    assert_eq!(ids(&v["webhooks"]), vec![on_open, on_bound, star]);
    let (_, v) = get_as(&env, t, "/api/webhooks?enabled=false").await;
    assert_eq!(ids(&v["webhooks"]), vec![off_open]);
    let (_, v) = get_as(
        &env,
        t,
        "/api/webhooks?event_type=claim/opened&enabled=true",
    )
    .await;
    assert_eq!(ids(&v["webhooks"]), vec![on_open]);
    let (_, v) = get_as(&env, t, "/api/webhooks?event_type=nothing/here").await;
    assert_eq!(ids(&v["webhooks"]), Vec::<i64>::new());
}

#[tokio::test]
async fn list_pages_by_limit_and_after_without_skips_or_repeats() {
    let env = Env::start();
    let mut created = Vec::new();
    for i in 0..7 {
        let tenant = if i % 3 == 2 { "other" } else { "tenant-1" };
        created.push((
            tenant,
            id(&env
                .server
                .create_webhook(tenant, "claim/opened", RX_URL, json!({}))
                .await),
        ));
    }
    // Global listing: 7 webhooks in pages of 3 → 3, 3, 1.
    let all: Vec<i64> = created.iter().map(|(_, i)| *i).collect();
    let mut seen: Vec<i64> = Vec::new();
    let mut after: Option<i64> = None;
    let mut pages = 0;
    loop {
        let path = match after {
            Some(a) => format!("/api/webhooks?limit=3&after={a}"),
            None => "/api/webhooks?limit=3".to_string(),
        };
        let (status, v) = env.server.get(&path).await;
        assert_eq!(status, 200, "{v}");
        let page = ids(&v["webhooks"]);
        pages += 1;
        assert!(page.len() <= 3);
        seen.extend(&page);
        if page.len() == 3 {
            assert_eq!(
                v["next_after"],
                json!(page[2]),
                "a full page points at its last id: {v}"
            );
        }
        match v["next_after"].as_i64() {
            Some(n) => after = Some(n),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen, all, "every webhook once, in ascending id");
    assert_eq!(pages, 3);

    // The tenant's listing (5 webhooks) in pages of 2: 2, 2, 1.
    let mine: Vec<i64> = created
        .iter()
        .filter(|(t, _)| *t == "tenant-1")
        .map(|(_, i)| *i)
        .collect();
    let (_, p1) = get_as(&env, "tenant-1", "/api/webhooks?limit=2").await;
    assert_eq!(ids(&p1["webhooks"]), mine[0..2]);
    assert_eq!(p1["next_after"], json!(mine[1]));
    let (_, p2) = get_as(
        &env,
        "tenant-1",
        &format!("/api/webhooks?limit=2&after={}", mine[1]),
    )
    .await;
    assert_eq!(ids(&p2["webhooks"]), mine[2..4]);
    let (_, p3) = get_as(
        &env,
        "tenant-1",
        &format!("/api/webhooks?limit=2&after={}", mine[3]),
    )
    .await;
    assert_eq!(ids(&p3["webhooks"]), mine[4..5]);
    assert_eq!(p3["next_after"], Value::Null);

    // after=0 is the start; after the last id is an empty last page.
    let (_, v) = env.server.get("/api/webhooks?after=0").await;
    assert_eq!(ids(&v["webhooks"]), all);
    let (_, v) = env
        .server
        .get(&format!("/api/webhooks?after={}", all[6]))
        .await;
    assert_eq!(ids(&v["webhooks"]), Vec::<i64>::new());
    assert_eq!(v["next_after"], Value::Null);
}

#[tokio::test]
async fn an_exactly_full_last_page_has_no_next_after() {
    let env = Env::start();
    let mut all = Vec::new();
    for _ in 0..4 {
        all.push(id(&env
            .server
            .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
            .await));
    }
    let (_, v) = env.server.get("/api/webhooks?limit=2").await;
    assert_eq!(ids(&v["webhooks"]), all[0..2]);
    assert_eq!(v["next_after"], json!(all[1]));
    let (_, v) = env
        .server
        .get(&format!("/api/webhooks?limit=2&after={}", all[1]))
        .await;
    assert_eq!(ids(&v["webhooks"]), all[2..4]);
    assert_eq!(
        v["next_after"],
        Value::Null,
        "the last page says so even when it is full: {v}"
    );
    let (_, v) = env.server.get("/api/webhooks?limit=4").await;
    assert_eq!(ids(&v["webhooks"]), all);
    assert_eq!(v["next_after"], Value::Null, "{v}");
}

#[tokio::test]
async fn list_default_limit_is_100_and_max_is_1000() {
    let env = Env::start();
    for _ in 0..101 {
        env.server
            .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
            .await;
    }
    let (_, v) = env.server.get("/api/webhooks").await;
    assert_eq!(v["webhooks"].as_array().unwrap().len(), 100);
    let last = ids(&v["webhooks"])[99];
    assert_eq!(v["next_after"], json!(last));
    let (_, v) = env.server.get(&format!("/api/webhooks?after={last}")).await;
    assert_eq!(v["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(v["next_after"], Value::Null);
    let (status, v) = env.server.get("/api/webhooks?limit=1000").await;
    assert_eq!(status, 200);
    assert_eq!(v["webhooks"].as_array().unwrap().len(), 101);
    let (status, v) = env.server.get("/api/webhooks?limit=1001").await;
    assert_error(
        (status, &v),
        400,
        Some("invalid_parameter"),
        Some("limit"),
        "",
    );
}

#[tokio::test]
async fn listings_and_get_mask_the_secret_to_ten_chars_and_an_ellipsis() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    let full = w["secret"].as_str().unwrap().to_string();
    let masked = mask(&full);
    assert_eq!(masked.chars().count(), 11);
    assert!(masked.ends_with('\u{2026}'));
    let (_, list) = env.server.get("/api/webhooks").await;
    assert_eq!(list["webhooks"][0]["secret"], masked.as_str());
    let (_, one) = env.server.get(&format!("/api/webhooks/{}", id(&w))).await;
    assert_eq!(one["secret"], masked.as_str());
    let (_, m) = env
        .server
        .post(
            "/api/webhooks/match",
            &json!({"event_type": "claim/opened", "tenant_id": "tenant-1"}),
        )
        .await;
    assert_eq!(m["webhooks"][0]["secret"], masked.as_str());
    let (_, upd) = env
        .server
        .json(
            Method::PATCH,
            &format!("/api/webhooks/{}", id(&w)),
            &json!({"webhook_name": "renamed"}),
        )
        .await;
    assert_eq!(
        upd["secret"],
        masked.as_str(),
        "update does not reveal the secret"
    );
    // Characters, not bytes.
    let w = env
        .server
        .create_webhook(
            "tenant-1",
            "claim/opened",
            RX_URL,
            json!({"secret": "ßéçrêtßéçrêt-ünïcode"}),
        )
        .await;
    let (_, one) = env.server.get(&format!("/api/webhooks/{}", id(&w))).await;
    assert_eq!(one["secret"], "ßéçrêtßéçr…");
}

#[tokio::test]
async fn get_returns_one_webhook_masked() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook(
            "tenant-1",
            "claim/opened",
            RX_URL,
            json!({"headers": {"Authorization": "Bearer t"}}),
        )
        .await;
    let (status, got) = env.server.get(&format!("/api/webhooks/{}", id(&w))).await;
    assert_eq!(status, 200, "{got}");
    let mut expected = w.clone();
    expected["secret"] = json!(mask(w["secret"].as_str().unwrap()));
    assert_eq!(got, expected);
}

// ---------------------------------------------------------------------------------------------
// update

#[tokio::test]
async fn put_with_webhook_id_in_the_body_updates() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook(
            "tenant-1",
            "claim/opened",
            RX_URL,
            json!({"headers": {"X-A": "1"}}),
        )
        .await;
    let (status, u) = env
        .server
        .json(Method::PUT, "/api/webhooks", &json!({"webhook_id": id(&w), "webhook_name": "renamed", "enabled": false, "updated_by": "carol"}))
        .await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(u["webhook_id"], w["webhook_id"]);
    assert_eq!(u["webhook_name"], "renamed");
    assert_eq!(u["enabled"], false);
    assert_eq!(u["updated_by"], "carol");
    // Omitted fields stay.
    for k in [
        "tenant_id",
        "event_type",
        "url",
        "headers",
        "retry_config",
        "rate_limit",
        "circuit_breaker",
        "timeout_ms",
        "ordered",
        "created_at",
        "created_by",
    ] {
        assert_eq!(u[k], w[k], "{k}");
    }
    let (_, got) = env.server.get(&format!("/api/webhooks/{}", id(&w))).await;
    assert_eq!(got["webhook_name"], "renamed");
    assert_eq!(got["enabled"], false);
    // The secret is unchanged.
    let (_, s) = env
        .server
        .get(&format!("/api/webhooks/{}/secret", id(&w)))
        .await;
    assert_eq!(s["secret"], w["secret"]);
    let created = chrono::DateTime::parse_from_rfc3339(w["updated_at"].as_str().unwrap()).unwrap();
    let updated = chrono::DateTime::parse_from_rfc3339(u["updated_at"].as_str().unwrap()).unwrap();
    assert!(updated >= created);
}

#[tokio::test]
async fn put_on_the_collection_needs_a_known_webhook_id() {
    let env = Env::start();
    let (status, v) = env
        .server
        .json(Method::PUT, "/api/webhooks", &json!({"webhook_name": "x"}))
        .await;
    assert_invalid(status, &v, "webhook_id");
    let (status, v) = env
        .server
        .json(
            Method::PUT,
            "/api/webhooks",
            &json!({"webhook_id": null, "webhook_name": "x"}),
        )
        .await;
    assert_invalid(status, &v, "webhook_id");
    let (status, v) = env
        .server
        .json(
            Method::PUT,
            "/api/webhooks",
            &json!({"webhook_id": 424242, "webhook_name": "x"}),
        )
        .await;
    assert_error((status, &v), 404, Some("not_found"), None, "");
    let (status, v) = env
        .server
        .json(
            Method::PUT,
            "/api/webhooks",
            &json!({"webhook_id": "seven"}),
        )
        .await;
    assert_error(
        (status, &v),
        422,
        Some("validation_failed"),
        Some("webhook_id"),
        "",
    );
}

#[tokio::test]
async fn put_and_patch_by_path_change_only_the_fields_sent() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook(
            "tenant-1",
            "claim/opened",
            RX_URL,
            json!({"headers": {"X-A": "1"}, "retry_config": {"maxAttempts": 6, "backoffMs": 500}, "rate_limit": {"perSecond": 5, "burst": 2}, "timeout_ms": 1234}),
        )
        .await;
    let path = format!("/api/webhooks/{}", id(&w));
    for method in [Method::PUT, Method::PATCH] {
        let (status, u) = env
            .server
            .json(
                method.clone(),
                &path,
                &json!({"event_type": format!("ev/{method}")}),
            )
            .await;
        assert_eq!(status, 200, "{method}: {u}");
        assert_eq!(u["event_type"], format!("ev/{method}"));
        for k in [
            "webhook_name",
            "tenant_id",
            "url",
            "enabled",
            "headers",
            "retry_config",
            "rate_limit",
            "circuit_breaker",
            "timeout_ms",
            "ordered",
            "created_at",
            "created_by",
        ] {
            assert_eq!(u[k], w[k], "{method} {k}");
        }
    }
    // Each field on its own.
    let (_, u) = env
        .server
        .json(
            Method::PATCH,
            &path,
            &json!({"url": "https://other.example.com/x"}),
        )
        .await;
    assert_eq!(u["url"], "https://other.example.com/x");
    let (_, u) = env
        .server
        .json(Method::PATCH, &path, &json!({"headers": {"X-B": "2"}}))
        .await;
    assert_eq!(
        u["headers"],
        json!({"X-B": "2"}),
        "headers are replaced as a whole"
    );
    let (_, u) = env
        .server
        .json(
            Method::PATCH,
            &path,
            &json!({"retry_config": {"maxAttempts": 2}}),
        )
        .await;
    assert_eq!(
        u["retry_config"],
        json!({"maxAttempts": 2, "backoffMs": 500}),
        "an omitted nested field stays"
    );
    let (_, u) = env
        .server
        .json(
            Method::PATCH,
            &path,
            &json!({"circuit_breaker": {"failureThreshold": 9}}),
        )
        .await;
    assert_eq!(
        u["circuit_breaker"],
        json!({"failureThreshold": 9, "cooldownMs": 30000})
    );
    let (_, u) = env
        .server
        .json(
            Method::PATCH,
            &path,
            &json!({"timeout_ms": 100, "ordered": true}),
        )
        .await;
    assert_eq!(u["timeout_ms"], 100);
    assert_eq!(u["ordered"], true);
    let (_, u) = env.server.json(Method::PATCH, &path, &json!({})).await;
    assert_eq!(u["timeout_ms"], 100, "an empty body changes nothing");
    assert_eq!(u["rate_limit"], json!({"perSecond": 5, "burst": 2}));
    let (_, got) = env.server.get(&path).await;
    assert_eq!(got["headers"], json!({"X-B": "2"}));
    assert_eq!(got["event_type"], "ev/PATCH");
    assert_eq!(
        got["retry_config"],
        json!({"maxAttempts": 2, "backoffMs": 500})
    );
}

#[tokio::test]
async fn update_treats_null_as_omitted() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook(
            "tenant-1",
            "claim/opened",
            RX_URL,
            json!({"enabled": false, "headers": {"X-A": "1"}, "timeout_ms": 777, "ordered": true}),
        )
        .await;
    let path = format!("/api/webhooks/{}", id(&w));
    let (status, u) = env
        .server
        .json(
            Method::PATCH,
            &path,
            &json!({"webhook_name": null, "event_type": null, "url": null, "secret": null, "enabled": null, "headers": null,
                    "retry_config": null, "circuit_breaker": null, "timeout_ms": null, "ordered": null, "tenant_id": null}),
        )
        .await;
    assert_eq!(status, 200, "{u}");
    for k in [
        "webhook_name",
        "tenant_id",
        "event_type",
        "url",
        "enabled",
        "headers",
        "retry_config",
        "rate_limit",
        "circuit_breaker",
        "timeout_ms",
        "ordered",
    ] {
        assert_eq!(u[k], w[k], "{k}");
    }
    assert_eq!(u["secret"], mask(w["secret"].as_str().unwrap()).as_str());
    let (_, s) = env.server.get(&format!("{path}/secret")).await;
    assert_eq!(s["secret"], w["secret"]);
}

#[tokio::test]
async fn rate_limit_null_means_unlimited_and_omitted_keeps_it() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook(
            "tenant-1",
            "claim/opened",
            RX_URL,
            json!({"rate_limit": {"perSecond": 50, "burst": 10}}),
        )
        .await;
    assert_eq!(w["rate_limit"], json!({"perSecond": 50, "burst": 10}));
    let path = format!("/api/webhooks/{}", id(&w));
    let (_, u) = env
        .server
        .json(Method::PATCH, &path, &json!({"webhook_name": "x"}))
        .await;
    assert_eq!(
        u["rate_limit"],
        json!({"perSecond": 50, "burst": 10}),
        "omitted: unchanged"
    );
    let (status, u) = env
        .server
        .json(Method::PATCH, &path, &json!({"rate_limit": null}))
        .await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(u["rate_limit"], Value::Null, "null: unlimited");
    let (_, got) = env.server.get(&path).await;
    assert_eq!(got["rate_limit"], Value::Null);
    let (_, u) = env
        .server
        .json(
            Method::PUT,
            &path,
            &json!({"rate_limit": {"perSecond": 3, "burst": 1}}),
        )
        .await;
    assert_eq!(u["rate_limit"], json!({"perSecond": 3, "burst": 1}));
    let (_, u) = env
        .server
        .json(
            Method::PUT,
            "/api/webhooks",
            &json!({"webhook_id": id(&w), "rate_limit": null}),
        )
        .await;
    assert_eq!(u["rate_limit"], Value::Null);
}

#[tokio::test]
async fn update_validates_like_create_and_leaves_the_webhook_alone_when_invalid() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    let path = format!("/api/webhooks/{}", id(&w));
    let cases = [
        (json!({"webhook_name": ""}), "webhook_name"),
        (json!({"event_type": "bad type"}), "event_type"),
        (json!({"url": "ftp://example.com/x"}), "url"),
        (json!({"headers": {"Host": "x"}}), "headers.Host"),
        (
            json!({"retry_config": {"maxAttempts": 0}}),
            "retry_config.maxAttempts",
        ),
        (
            json!({"retry_config": {"backoffMs": 5}}),
            "retry_config.backoffMs",
        ),
        (json!({"timeout_ms": 99}), "timeout_ms"),
        (json!({"enabled": "yes"}), "enabled"),
    ];
    for (b, field) in cases {
        let (status, v) = env.server.json(Method::PATCH, &path, &b).await;
        assert_invalid(status, &v, field);
    }
    let (status, v) = env
        .server
        .json(
            Method::PUT,
            "/api/webhooks",
            &json!({"webhook_id": id(&w), "timeout_ms": 120_001}),
        )
        .await;
    assert_invalid(status, &v, "timeout_ms");
    let (_, got) = env.server.get(&path).await;
    let mut expected = w.clone();
    expected["secret"] = json!(mask(w["secret"].as_str().unwrap()));
    assert_eq!(got, expected, "nothing changed");
}

#[tokio::test]
async fn update_changes_what_match_sees() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    let path = format!("/api/webhooks/{}", id(&w));
    let m = |ev: &'static str| json!({"event_type": ev, "tenant_id": "tenant-1"});
    env.server
        .json(Method::PATCH, &path, &json!({"event_type": "policy/bound"}))
        .await;
    let (_, v) = env
        .server
        .post("/api/webhooks/match", &m("claim/opened"))
        .await;
    assert_eq!(ids(&v["webhooks"]), Vec::<i64>::new());
    let (_, v) = env
        .server
        .post("/api/webhooks/match", &m("policy/bound"))
        .await;
    assert_eq!(ids(&v["webhooks"]), vec![id(&w)]);
    env.server
        .json(Method::PATCH, &path, &json!({"enabled": false}))
        .await;
    let (_, v) = env
        .server
        .post("/api/webhooks/match", &m("policy/bound"))
        .await;
    assert_eq!(ids(&v["webhooks"]), Vec::<i64>::new());
    env.server
        .json(Method::PATCH, &path, &json!({"enabled": true}))
        .await;
    let (_, v) = env
        .server
        .post("/api/webhooks/match", &m("policy/bound"))
        .await;
    assert_eq!(ids(&v["webhooks"]), vec![id(&w)]);
}

// ---------------------------------------------------------------------------------------------
// delete

#[tokio::test]
async fn delete_by_query_id_answers_204_then_404() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    let keep = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    let (status, v) = env
        .server
        .delete(&format!("/api/webhooks?id={}", id(&w)))
        .await;
    assert_eq!(status, 204, "{v}");
    let (status, v) = env.server.get(&format!("/api/webhooks/{}", id(&w))).await;
    assert_error((status, &v), 404, Some("not_found"), None, "");
    let (status, _) = env
        .server
        .delete(&format!("/api/webhooks?id={}", id(&w)))
        .await;
    assert_eq!(status, 404);
    let (_, list) = env.server.get("/api/webhooks").await;
    assert_eq!(ids(&list["webhooks"]), vec![id(&keep)]);
    // Missing or malformed id.
    let (status, v) = env.server.delete("/api/webhooks").await;
    assert_error((status, &v), 400, Some("invalid_parameter"), Some("id"), "");
    let (status, v) = env.server.delete("/api/webhooks?id=x").await;
    assert_error((status, &v), 400, Some("invalid_parameter"), Some("id"), "");
}

#[tokio::test]
async fn delete_by_path_answers_204_then_404_everywhere() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    let path = format!("/api/webhooks/{}", id(&w));
    let (status, _) = env.server.delete(&path).await;
    assert_eq!(status, 204);
    assert_eq!(env.server.get(&path).await.0, 404);
    assert_eq!(env.server.delete(&path).await.0, 404);
    assert_eq!(
        env.server
            .json(Method::PATCH, &path, &json!({"webhook_name": "x"}))
            .await
            .0,
        404
    );
    assert_eq!(
        env.server
            .json(
                Method::PUT,
                "/api/webhooks",
                &json!({"webhook_id": id(&w), "webhook_name": "x"})
            )
            .await
            .0,
        404
    );
    assert_eq!(env.server.get(&format!("{path}/secret")).await.0, 404);
    assert_eq!(
        env.server
            .post(&format!("{path}/rotate-secret"), &json!({}))
            .await
            .0,
        404
    );
    assert_eq!(
        env.server.post(&format!("{path}/test"), &json!({})).await.0,
        404
    );
    let (_, v) = env
        .server
        .post(
            "/api/webhooks/match",
            &json!({"event_type": "claim/opened", "tenant_id": "tenant-1"}),
        )
        .await;
    assert_eq!(
        ids(&v["webhooks"]),
        Vec::<i64>::new(),
        "a deleted webhook matches nothing"
    );
    let (_, list) = env.server.get("/api/webhooks").await;
    assert_eq!(ids(&list["webhooks"]), Vec::<i64>::new());
}

#[tokio::test]
async fn delete_cancels_waiting_deliveries_which_stay_readable() {
    let env = Env::start();
    let mut rx = TestReceiver::start(500);
    let w = env
        .server
        .create_webhook(
            "tenant-1",
            "claim/opened",
            &rx.url,
            json!({"retry_config": {"maxAttempts": 5, "backoffMs": 3_600_000}}),
        )
        .await;
    let published = env
        .server
        .publish("tenant-1", "claim/opened", json!({}))
        .await;
    assert_eq!(published["deliveries"], 1);
    rx.expect(WAIT).await;
    let q = format!("webhook_id={}", id(&w));
    env.server
        .wait_deliveries(&q, WAIT, |d| d.len() == 1 && d[0]["status"] == "retrying")
        .await;
    let (status, _) = env
        .server
        .delete(&format!("/api/webhooks/{}", id(&w)))
        .await;
    assert_eq!(status, 204);
    let list = env.server.wait_deliveries(&q, WAIT, |d| d.len() == 1).await;
    assert_eq!(list[0]["status"], "cancelled", "{list:?}");
    let (status, one) = env
        .server
        .get(&format!(
            "/api/webhooks/deliveries/{}",
            list[0]["delivery_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["status"], "cancelled");
}

// ---------------------------------------------------------------------------------------------
// match

#[tokio::test]
async fn match_returns_enabled_exact_and_wildcard_webhooks_of_the_tenant() {
    let env = Env::start();
    let exact = id(&env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await);
    let star = id(&env
        .server
        .create_webhook("tenant-1", "*", RX_URL, json!({}))
        .await);
    let _disabled = env
        .server
        .create_webhook(
            "tenant-1",
            "claim/opened",
            RX_URL,
            json!({"enabled": false}),
        )
        .await;
    let _other_type = env
        .server
        .create_webhook("tenant-1", "policy/bound", RX_URL, json!({}))
        .await;
    let _other_tenant = env
        .server
        .create_webhook("tenant-2", "claim/opened", RX_URL, json!({}))
        .await;
    let _other_star = env
        .server
        .create_webhook("tenant-2", "*", RX_URL, json!({}))
        .await;

    let (status, v) = env
        .server
        .post(
            "/api/webhooks/match",
            &json!({"event_type": "claim/opened", "tenant_id": "tenant-1"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let mut got = ids(&v["webhooks"]);
    got.sort();
    assert_eq!(got, vec![exact, star]);
    assert!(v["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["secret"].as_str().unwrap().ends_with('…')));

    let (_, v) = env
        .server
        .post(
            "/api/webhooks/match",
            &json!({"event_type": "something/else", "tenant_id": "tenant-1"}),
        )
        .await;
    assert_eq!(ids(&v["webhooks"]), vec![star]);
    let (_, v) = env
        .server
        .post(
            "/api/webhooks/match",
            &json!({"event_type": "claim/opened", "tenant_id": "tenant-3"}),
        )
        .await;
    assert_eq!(ids(&v["webhooks"]), Vec::<i64>::new());
    // The tenant header stands in for tenant_id.
    let req = env
        .server
        .request(Method::POST, "/api/webhooks/match")
        .header("content-type", "application/json")
        .header("x-tenant-id", "tenant-1");
    let (status, v) = env
        .server
        .send(req.body(json!({"event_type": "other"}).to_string()))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(ids(&v["webhooks"]), vec![star]);
}

#[tokio::test]
async fn match_validates_its_body() {
    let env = Env::start();
    let (status, v) = env
        .server
        .post("/api/webhooks/match", &json!({"tenant_id": "tenant-1"}))
        .await;
    assert_invalid(status, &v, "event_type");
    let (status, v) = env
        .server
        .post(
            "/api/webhooks/match",
            &json!({"event_type": "bad type", "tenant_id": "tenant-1"}),
        )
        .await;
    assert_invalid(status, &v, "event_type");
    let (status, v) = env
        .server
        .post(
            "/api/webhooks/match",
            &json!({"event_type": "claim/opened"}),
        )
        .await;
    assert_invalid(status, &v, "tenant_id");
    let (status, v) = env
        .server
        .post(
            "/api/webhooks/match",
            &json!({"event_type": "claim/opened", "tenant_id": "bad tenant"}),
        )
        .await;
    assert_invalid(status, &v, "tenant_id");
}

// ---------------------------------------------------------------------------------------------
// secrets and rotation

#[tokio::test]
async fn secret_endpoint_returns_the_full_secret() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    let (status, v) = env
        .server
        .get(&format!("/api/webhooks/{}/secret", id(&w)))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"secret": w["secret"]}));
    let (status, v) = env.server.get("/api/webhooks/999999/secret").await;
    assert_error((status, &v), 404, Some("not_found"), None, "");
}

#[tokio::test]
async fn rotate_returns_the_webhook_with_a_new_full_secret() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    let old = w["secret"].as_str().unwrap().to_string();
    let r = rotate(&env, id(&w), json!({"grace_seconds": 60})).await;
    let new = r["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let rest = new.strip_prefix("whsec_").expect("whsec_");
    assert_eq!(STANDARD.decode(rest).unwrap().len(), 32);
    assert_eq!(r["webhook_id"], w["webhook_id"]);
    assert_eq!(r["url"], w["url"]);
    let (_, s) = env
        .server
        .get(&format!("/api/webhooks/{}/secret", id(&w)))
        .await;
    assert_eq!(s["secret"], new.as_str());
    let (_, got) = env.server.get(&format!("/api/webhooks/{}", id(&w))).await;
    assert_eq!(got["secret"], mask(&new));
    // No body at all, and an empty object, both rotate with the defaults.
    let (status, r2) = env
        .server
        .send(env.server.request(
            Method::POST,
            &format!("/api/webhooks/{}/rotate-secret", id(&w)),
        ))
        .await;
    assert_eq!(status, 200, "{r2}");
    assert_ne!(r2["secret"], new.as_str());
    let r3 = rotate(&env, id(&w), json!({})).await;
    assert_ne!(r3["secret"], r2["secret"]);
}

#[tokio::test]
async fn rotate_accepts_the_new_secret_from_the_body() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    let r = rotate(
        &env,
        id(&w),
        json!({"secret": "whsec_bXktb3duLW5ldy1zZWNyZXQtdmFsdWUtMzJieXRlcyE="}),
    )
    .await;
    assert_eq!(
        r["secret"],
        "whsec_bXktb3duLW5ldy1zZWNyZXQtdmFsdWUtMzJieXRlcyE="
    );
    let (_, s) = env
        .server
        .get(&format!("/api/webhooks/{}/secret", id(&w)))
        .await;
    assert_eq!(s["secret"], r["secret"]);
    let (status, v) = env
        .server
        .post(
            &format!("/api/webhooks/{}/rotate-secret", id(&w)),
            &json!({"secret": "short"}),
        )
        .await;
    assert_invalid(status, &v, "secret");
}

#[tokio::test]
async fn rotate_validates_grace_seconds() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    let path = format!("/api/webhooks/{}/rotate-secret", id(&w));
    for bad in [json!(-1), json!(604_801), json!("soon")] {
        let (status, v) = env.server.post(&path, &json!({"grace_seconds": bad})).await;
        assert_invalid(status, &v, "grace_seconds");
    }
    let (_, s) = env
        .server
        .get(&format!("/api/webhooks/{}/secret", id(&w)))
        .await;
    assert_eq!(
        s["secret"], w["secret"],
        "a refused rotation changes nothing"
    );
    rotate(&env, id(&w), json!({"grace_seconds": 604_800})).await;
    rotate(&env, id(&w), json!({"grace_seconds": 0})).await;
    let (status, v) = env
        .server
        .post("/api/webhooks/777777/rotate-secret", &json!({}))
        .await;
    assert_eq!(status, 404, "{v}");
}

#[tokio::test]
async fn during_a_rotation_grace_deliveries_carry_a_signature_per_live_secret() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", &rx.url, json!({}))
        .await;
    let old = w["secret"].as_str().unwrap().to_string();

    let got = test_delivery(&env, &mut rx, id(&w)).await;
    assert_eq!(
        signatures(&got),
        vec![standard_signature(&old, &got)],
        "one secret, one signature"
    );

    let new = rotate(&env, id(&w), json!({"grace_seconds": 3600})).await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let got = test_delivery(&env, &mut rx, id(&w)).await;
    let sigs: BTreeSet<String> = signatures(&got).into_iter().collect();
    let expected: BTreeSet<String> = [
        standard_signature(&new, &got),
        standard_signature(&old, &got),
    ]
    .into_iter()
    .collect();
    assert_eq!(sigs, expected);
    // Receivers holding either secret verify it with an independent implementation.
    for s in [&old, &new] {
        assert!(standard_verifies(s, &got), "verifies with either secret");
    }
    // X-Beema-Signature uses the current secret.
    assert_eq!(
        got.header("x-beema-signature").unwrap(),
        beema_signature(&new, &got.body)
    );
}

#[tokio::test]
async fn a_rotation_without_grace_signs_with_the_new_secret_only() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", &rx.url, json!({}))
        .await;
    let r = rotate(
        &env,
        id(&w),
        json!({"grace_seconds": 0, "secret": "plain-rotated-secret"}),
    )
    .await;
    assert_eq!(r["secret"], "plain-rotated-secret");
    let got = test_delivery(&env, &mut rx, id(&w)).await;
    assert_eq!(
        signatures(&got),
        vec![standard_signature("plain-rotated-secret", &got)]
    );
}

#[tokio::test]
async fn rotation_keeps_at_most_ten_old_secrets_and_eleven_signatures() {
    let env = Env::start();
    let mut rx = TestReceiver::start(200);
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", &rx.url, json!({}))
        .await;
    let mut secrets = vec![w["secret"].as_str().unwrap().to_string()];
    for _ in 0..12 {
        let r = rotate(&env, id(&w), json!({"grace_seconds": 3600})).await;
        secrets.push(r["secret"].as_str().unwrap().to_string());
    }
    let got = test_delivery(&env, &mut rx, id(&w)).await;
    let sigs = signatures(&got);
    assert_eq!(sigs.len(), 11, "current + 10 old: {sigs:?}");
    let got_set: BTreeSet<String> = sigs.into_iter().collect();
    let live: BTreeSet<String> = secrets[2..]
        .iter()
        .map(|s| standard_signature(s, &got))
        .collect();
    assert_eq!(got_set, live, "the two oldest secrets are dropped");
    for dropped in &secrets[..2] {
        assert!(!got_set.contains(&standard_signature(dropped, &got)));
    }
}

// ---------------------------------------------------------------------------------------------
// validation

#[tokio::test]
async fn webhook_name_must_be_1_to_200_characters() {
    let env = Env::start();
    expect_invalid_create(&env, json!({"webhook_name": ""}), "webhook_name").await;
    expect_invalid_create(
        &env,
        json!({"webhook_name": "x".repeat(201)}),
        "webhook_name",
    )
    .await;
    expect_invalid_create(&env, json!({"webhook_name": 42}), "webhook_name").await;
    expect_created(&env, json!({"webhook_name": "x"})).await;
    expect_created(&env, json!({"webhook_name": "x".repeat(200)})).await;
    expect_created(&env, json!({"webhook_name": "é".repeat(200)})).await;
}

#[tokio::test]
async fn tenant_id_must_be_1_to_128_safe_characters() {
    let env = Env::start();
    for bad in [
        json!(""),
        json!("tenant 1"),
        json!("tenant/1"),
        json!("ténant"),
        json!("t".repeat(129)),
        json!(7),
    ] {
        expect_invalid_create(&env, json!({ "tenant_id": bad }), "tenant_id").await;
    }
    for good in ["t", "Tenant_1.eu:a-b", &"t".repeat(128)] {
        let w = expect_created(&env, json!({ "tenant_id": good })).await;
        assert_eq!(w["tenant_id"], good);
    }
}

#[tokio::test]
async fn event_type_must_be_a_star_or_1_to_256_safe_characters() {
    let env = Env::start();
    for bad in [
        json!(""),
        json!("claim opened"),
        json!("claim*"),
        json!("**"),
        json!("claim?x"),
        json!("a".repeat(257)),
        json!(1),
    ] {
        expect_invalid_create(&env, json!({ "event_type": bad }), "event_type").await;
    }
    for good in [
        "*",
        "claim/*",
        "claim/opened",
        "A-z_0.9:x/y",
        &"a".repeat(256),
    ] {
        let w = expect_created(&env, json!({ "event_type": good })).await;
        assert_eq!(w["event_type"], good);
    }
}

#[tokio::test]
async fn url_must_be_absolute_http_or_https_without_credentials() {
    let env = Env::start();
    for bad in [
        "",
        "not a url",
        "/relative/path",
        "hooks.example.com/x",
        "ftp://example.com/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://",
        "http://user:pass@example.com/x",
        "https://user@example.com/x",
        "https://:pass@example.com/x",
    ] {
        let b = body(json!({ "url": bad }));
        let (status, v) = create_status(&env, &b).await;
        assert_invalid(status, &v, "url");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with("url: "),
            "{v}"
        );
    }
    expect_invalid_create(&env, json!({"url": 5}), "url").await;
    for good in [
        "http://example.com",
        "https://example.com:8443/a/b?c=d",
        "http://127.0.0.1:9/hook",
    ] {
        let w = expect_created(&env, json!({ "url": good })).await;
        assert_eq!(w["url"], good);
    }
}

#[tokio::test]
async fn headers_must_be_string_values_without_reserved_names() {
    let env = Env::start();
    for name in [
        "Host",
        "host",
        "Content-Length",
        "Content-Type",
        "content-type",
        "X-Beema-Signature",
        "x-beema-event",
        "X-BEEMA-anything",
        "webhook-id",
        "Webhook-Signature",
        "WEBHOOK-TIMESTAMP",
    ] {
        let b = body(json!({ "headers": { name: "v" } }));
        let (status, v) = create_status(&env, &b).await;
        assert_eq!(status, 422, "{name}: {v}");
        let field = v["error"]["field"].as_str().unwrap_or_default();
        assert!(
            field == "headers" || field == format!("headers.{name}"),
            "{name}: field {field}"
        );
    }
    for value in [
        json!(1),
        json!(true),
        json!(null),
        json!({"a": "b"}),
        json!(["x"]),
    ] {
        let (status, v) =
            create_status(&env, &body(json!({ "headers": { "X-Custom": value } }))).await;
        assert_eq!(status, 422, "{value}: {v}");
        assert!(
            v["error"]["field"]
                .as_str()
                .unwrap_or_default()
                .starts_with("headers"),
            "{v}"
        );
    }
    expect_invalid_create(&env, json!({"headers": "Authorization: x"}), "headers").await;
    expect_invalid_create(&env, json!({"headers": ["x"]}), "headers").await;
    let (status, v) = create_status(&env, &body(json!({"headers": {"bad name": "v"}}))).await;
    assert_eq!(status, 422, "{v}");
    let (status, v) = create_status(&env, &body(json!({"headers": {"X-Ok": "line\nbreak"}}))).await;
    assert_eq!(status, 422, "{v}");
    let w = expect_created(&env, json!({"headers": {"Authorization": "Bearer token", "X-Webhook-Source": "beema", "X-Beemax": "1"}})).await;
    assert_eq!(w["headers"]["Authorization"], "Bearer token");
}

#[tokio::test]
async fn retry_config_bounds_are_enforced() {
    let env = Env::start();
    for bad in [json!(0), json!(51), json!(-1), json!("4")] {
        expect_invalid_create(
            &env,
            json!({"retry_config": {"maxAttempts": bad}}),
            "retry_config.maxAttempts",
        )
        .await;
    }
    for bad in [json!(9), json!(3_600_001), json!(-10)] {
        expect_invalid_create(
            &env,
            json!({"retry_config": {"backoffMs": bad}}),
            "retry_config.backoffMs",
        )
        .await;
    }
    for (max, backoff) in [(1, 10), (50, 3_600_000)] {
        let w = expect_created(
            &env,
            json!({"retry_config": {"maxAttempts": max, "backoffMs": backoff}}),
        )
        .await;
        assert_eq!(
            w["retry_config"],
            json!({"maxAttempts": max, "backoffMs": backoff})
        );
    }
}

#[tokio::test]
async fn timeout_ms_must_be_100_to_120000() {
    let env = Env::start();
    for bad in [
        json!(99),
        json!(120_001),
        json!(0),
        json!(-5),
        json!(1.5),
        json!("100"),
    ] {
        expect_invalid_create(&env, json!({ "timeout_ms": bad }), "timeout_ms").await;
    }
    for good in [100, 120_000] {
        let w = expect_created(&env, json!({ "timeout_ms": good })).await;
        assert_eq!(w["timeout_ms"], good);
    }
}

#[tokio::test]
async fn wrongly_typed_optional_fields_are_422_naming_them() {
    let env = Env::start();
    expect_invalid_create(&env, json!({"enabled": "yes"}), "enabled").await;
    expect_invalid_create(&env, json!({"ordered": 1}), "ordered").await;
    expect_invalid_create(&env, json!({"secret": 12345678}), "secret").await;
    expect_invalid_create(&env, json!({"secret": "short"}), "secret").await;
    expect_invalid_create(&env, json!({"retry_config": "fast"}), "retry_config").await;
    let (status, v) = create_status(&env, &body(json!({"rate_limit": {"perSecond": 0}}))).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["field"]
            .as_str()
            .unwrap_or_default()
            .starts_with("rate_limit"),
        "{v}"
    );
}

#[tokio::test]
async fn errors_have_the_contract_shape() {
    let env = Env::start();
    let (status, v) = create_status(&env, &body(json!({"url": "ftp://example.com"}))).await;
    assert_eq!(status, 422);
    let e = v["error"].as_object().expect("error object");
    let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, vec!["code", "field", "message"], "{v}");
    assert_eq!(
        v.as_object().unwrap().len(),
        1,
        "only `error` at the top: {v}"
    );
    assert_eq!(e["code"], "validation_failed");
    assert_eq!(e["field"], "url");
    assert!(e["message"].as_str().unwrap().starts_with("url: "), "{v}");
    // Errors without a field still carry the key, as null.
    let (status, v) = env.server.get("/api/webhooks/424242").await;
    assert_error((status, &v), 404, Some("not_found"), None, "");
}

// ---------------------------------------------------------------------------------------------
// malformed requests

#[tokio::test]
async fn malformed_json_is_400() {
    let env = Env::start();
    for bad in ["{not json", "{\"webhook_name\": ", "", "{} trailing"] {
        let (status, v) = raw(
            &env,
            Method::POST,
            "/api/webhooks",
            Some("application/json"),
            bad.to_string(),
        )
        .await;
        assert_error(
            (status, &v),
            400,
            Some("bad_request"),
            None,
            format_args!("{bad:?}"),
        );
    }
    for (method, path, body) in [
        (Method::PATCH, "/api/webhooks/1", "{oops"),
        (Method::PUT, "/api/webhooks", "{oops"),
        (Method::POST, "/api/webhooks/match", "["),
    ] {
        let (status, v) = raw(&env, method.clone(), path, Some("application/json"), body).await;
        assert_eq!(status, 400, "{method} {path}: {v}");
    }
    // Deeply nested JSON does not crash the server.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, _) = raw(
        &env,
        Method::POST,
        "/api/webhooks",
        Some("application/json"),
        deep,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(env.server.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn json_that_is_not_an_object_is_a_client_error() {
    let env = Env::start();
    for bad in ["[]", "42", "\"str\"", "null", "true", "[1,2,3]"] {
        let (status, v) = raw(
            &env,
            Method::POST,
            "/api/webhooks",
            Some("application/json"),
            bad,
        )
        .await;
        assert!(status == 400 || status == 422, "{bad}: {status} {v}");
        assert!(v["error"]["code"].is_string(), "{bad}: {v}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let env = Env::start();
    let b = body(json!({})).to_string();
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let (status, v) = raw(&env, Method::POST, "/api/webhooks", ct, b.clone()).await;
        assert_error(
            (status, &v),
            415,
            Some("unsupported_media_type"),
            None,
            format_args!("{ct:?}"),
        );
    }
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    let (status, _) = raw(
        &env,
        Method::PATCH,
        &format!("/api/webhooks/{}", id(&w)),
        Some("text/plain"),
        "{}",
    )
    .await;
    assert_eq!(status, 415);
    let (status, _) = raw(&env, Method::PUT, "/api/webhooks", Some("text/plain"), "{}").await;
    assert_eq!(status, 415);
    let (status, _) = raw(
        &env,
        Method::POST,
        "/api/webhooks/match",
        Some("text/plain"),
        "{}",
    )
    .await;
    assert_eq!(status, 415);
    // A charset parameter is fine.
    let (status, v) = raw(
        &env,
        Method::POST,
        "/api/webhooks",
        Some("application/json; charset=utf-8"),
        b,
    )
    .await;
    assert_eq!(status, 201, "{v}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let env = Env::with(|c| c.max_body_bytes = 1000);
    let big = body(json!({"webhook_name": "x".repeat(1500)})).to_string();
    assert!(big.len() > 1000);
    let (status, v) = raw(
        &env,
        Method::POST,
        "/api/webhooks",
        Some("application/json"),
        big.clone(),
    )
    .await;
    assert_error((status, &v), 413, Some("payload_too_large"), None, "");
    let (status, _) = raw(
        &env,
        Method::PUT,
        "/api/webhooks",
        Some("application/json"),
        big.clone(),
    )
    .await;
    assert_eq!(status, 413);
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    let (status, _) = raw(
        &env,
        Method::PATCH,
        &format!("/api/webhooks/{}", id(&w)),
        Some("application/json"),
        big.clone(),
    )
    .await;
    assert_eq!(status, 413);
    let (status, _) = raw(
        &env,
        Method::POST,
        "/api/webhooks/match",
        Some("application/json"),
        big,
    )
    .await;
    assert_eq!(status, 413);
    // Just under the limit is read (and here found invalid, not too large).
    let under = body(json!({"webhook_name": "x".repeat(201)})).to_string();
    assert!(under.len() < 1000);
    let (status, v) = raw(
        &env,
        Method::POST,
        "/api/webhooks",
        Some("application/json"),
        under,
    )
    .await;
    assert_invalid(status, &v, "webhook_name");
    assert_eq!(env.server.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn malformed_query_parameters_are_400() {
    let env = Env::start();
    for (q, field) in [
        ("limit=many", "limit"),
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=", "limit"),
        ("limit=1.5", "limit"),
        ("after=x", "after"),
        ("after=", "after"),
        ("enabled=perhaps", "enabled"),
        ("enabled=1", "enabled"),
        ("enabled=", "enabled"),
    ] {
        let (status, v) = env.server.get(&format!("/api/webhooks?{q}")).await;
        assert_error(
            (status, &v),
            400,
            Some("invalid_parameter"),
            Some(field),
            format_args!("{q}"),
        );
    }
    let (status, v) = env
        .server
        .get("/api/webhooks?limit=99999999999999999999999")
        .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn a_path_id_that_is_not_an_id_is_400_or_404() {
    let env = Env::start();
    for bad in [
        "abc",
        "-1",
        "0",
        "1.5",
        "99999999999999999999999",
        "1e3",
        "%20",
        "1%2F2",
    ] {
        let base = format!("/api/webhooks/{bad}");
        let calls = [
            env.server.get(&base).await,
            env.server
                .json(Method::PUT, &base, &json!({"webhook_name": "x"}))
                .await,
            env.server
                .json(Method::PATCH, &base, &json!({"webhook_name": "x"}))
                .await,
            env.server.delete(&base).await,
            env.server.get(&format!("{base}/secret")).await,
            env.server
                .post(&format!("{base}/rotate-secret"), &json!({}))
                .await,
            env.server.post(&format!("{base}/test"), &json!({})).await,
        ];
        for (i, (status, v)) in calls.iter().enumerate() {
            assert!(
                *status == 400 || *status == 404,
                "{bad} call {i}: {status} {v}"
            );
            assert!(v["error"]["code"].is_string(), "{bad} call {i}: {v}");
        }
    }
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let env = Env::start();
    let base = "/api/webhooks/987654";
    let calls = [
        env.server.get(base).await,
        env.server
            .json(Method::PUT, base, &json!({"webhook_name": "x"}))
            .await,
        env.server
            .json(Method::PATCH, base, &json!({"webhook_name": "x"}))
            .await,
        env.server.delete(base).await,
        env.server.delete("/api/webhooks?id=987654").await,
        env.server.get(&format!("{base}/secret")).await,
        env.server
            .post(&format!("{base}/rotate-secret"), &json!({}))
            .await,
        env.server.post(&format!("{base}/test"), &json!({})).await,
    ];
    for (i, (status, v)) in calls.iter().enumerate() {
        assert_error(
            (*status, v),
            404,
            Some("not_found"),
            None,
            format_args!("call {i}"),
        );
    }
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_error_shape() {
    let env = Env::start();
    for path in ["/api/nope", "/api/webhooks/1/nope", "/nope", "/api"] {
        let (status, v) = env.server.get(path).await;
        assert_error(
            (status, &v),
            404,
            Some("not_found"),
            None,
            format_args!("{path}"),
        );
    }
    let (status, v) = env.server.post("/api/nope", &json!({})).await;
    assert_eq!(status, 404, "{v}");
}

// ---------------------------------------------------------------------------------------------
// operations

#[tokio::test]
async fn healthz_and_readyz_answer_200() {
    let env = Env::start();
    let (status, v) = env.server.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(v["status"], "ok");
    let (status, v) = env.server.get("/readyz").await;
    assert_eq!(status, 200, "{v}");
    // Load balancers probe with HEAD; other methods are 405 in the error shape.
    for path in ["/healthz", "/readyz"] {
        let (status, _) = env
            .server
            .send(env.server.request(reqwest::Method::HEAD, path))
            .await;
        assert_eq!(status, 200, "HEAD {path}");
        let (status, v) = env
            .server
            .json(reqwest::Method::PUT, path, &json!({}))
            .await;
        assert_eq!(status, 405, "PUT {path}: {v}");
        assert!(v["error"]["code"].is_string(), "{v}");
    }
}

#[tokio::test]
async fn openapi_json_describes_every_route() {
    let env = Env::start();
    let (status, doc) = env.server.get("/api/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "openapi version: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    assert!(doc["info"]["version"].is_string());
    // Every route the server registers (see also tests/it/openapi_routes.rs).
    for (method, path) in beema_webhooks::api::route_table() {
        let method = method.as_str().to_ascii_lowercase();
        let op = &doc["paths"][&path][&method];
        assert!(op.is_object(), "{method} {path} is described");
        assert!(op["responses"].is_object(), "{method} {path} has responses");
    }
    // Every `$ref` points at a schema that exists.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("local ref {r}"));
        assert!(schemas.contains_key(name), "{r} resolves");
    }
    // Path parameters are declared.
    let params = doc["paths"]["/api/webhooks/{id}"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    assert!(params
        .iter()
        .any(|p| p["name"] == "id" && p["in"] == "path"));
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "$ref" {
                    out.extend(x.as_str().map(str::to_string));
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// SSRF at create

#[tokio::test]
async fn private_targets_are_refused_at_create_unless_allowed() {
    let env = Env::with(|c| c.targets.allow_private = false);
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:8080/x",
        "http://10.0.0.1/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://0.0.0.0/x",
        "http://2130706433/x",
        "http://0x7f.0.0.1/x",
    ] {
        let (status, v) = create_status(&env, &body(json!({ "url": url }))).await;
        assert_invalid(status, &v, "url");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("BEEMA_ALLOW_PRIVATE_TARGETS"),
            "{url}: {v}"
        );
    }
    // Nothing was stored.
    let (_, list) = env.server.get("/api/webhooks").await;
    assert_eq!(ids(&list["webhooks"]), Vec::<i64>::new());
    // A public literal is fine; moving it to a private address is refused too.
    let w = expect_created(&env, json!({"url": "https://93.184.215.14/hook"})).await;
    let (status, v) = env
        .server
        .json(
            Method::PATCH,
            &format!("/api/webhooks/{}", id(&w)),
            &json!({"url": "http://127.0.0.1/x"}),
        )
        .await;
    assert_invalid(status, &v, "url");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("BEEMA_ALLOW_PRIVATE_TARGETS"),
        "{v}"
    );
}

#[tokio::test]
async fn allowed_target_cidrs_let_a_private_range_through() {
    let env = Env::with(|c| {
        c.targets.allow_private = false;
        c.targets.allowed_cidrs = vec!["10.20.0.0/16".parse().unwrap()];
    });
    expect_created(&env, json!({"url": "http://10.20.1.2/hook"})).await;
    expect_invalid_create(&env, json!({"url": "http://10.21.1.2/hook"}), "url").await;
}

#[tokio::test]
async fn a_known_route_with_another_method_answers_405_in_the_error_shape() {
    let env = Env::start();
    let w = env
        .server
        .create_webhook("tenant-1", "claim/opened", RX_URL, json!({}))
        .await;
    for (method, path) in [
        (Method::POST, format!("/api/webhooks/{}", id(&w))),
        (Method::PATCH, "/api/webhooks".to_string()),
        (Method::GET, "/api/webhooks/match".to_string()),
        (Method::DELETE, format!("/api/webhooks/{}/secret", id(&w))),
        (
            Method::GET,
            format!("/api/webhooks/{}/rotate-secret", id(&w)),
        ),
    ] {
        let (status, v) = env
            .server
            .send(env.server.request(method.clone(), &path))
            .await;
        assert_error(
            (status, &v),
            405,
            Some("method_not_allowed"),
            None,
            format_args!("{method} {path}"),
        );
    }
    let (status, _) = env.server.get(&format!("/api/webhooks/{}", id(&w))).await;
    assert_eq!(status, 200, "the webhook is untouched");
}

#[tokio::test]
async fn a_url_is_stored_without_surrounding_whitespace() {
    let env = Env::start();
    let w = expect_created(&env, json!({"url": "  https://hooks.example.com/x \n"})).await;
    assert_eq!(w["url"], "https://hooks.example.com/x");
    let (_, u) = env
        .server
        .json(
            Method::PATCH,
            &format!("/api/webhooks/{}", id(&w)),
            &json!({"url": " http://example.com/y "}),
        )
        .await;
    assert_eq!(u["url"], "http://example.com/y");
    expect_invalid_create(&env, json!({"url": "   "}), "url").await;
}
