//! Security: authentication, tenant keys and roles, tenant isolation on every route, the SSRF
//! guard (registration and connect time, no redirects), secrets at rest, hostile input and
//! startup refusal of the real binary.

use std::future::Future;
use std::time::Duration;

use beema_webhooks::config::DatabaseUrl;
use reqwest::Method;
use serde_json::{json, Value};

use crate::utils::{test_config, Env, Reply, TestDb, TestReceiver, TestServer};

const ADMIN: &str = "admin-token-for-security-tests";
const EVENT: &str = "event-key-for-security-tests";
const SECRET_KEY: &str = "secret-at-rest-key-for-security-tests";
const WAIT: Duration = Duration::from_secs(10);
/// How long a negative check ("nothing arrives") waits.
const QUIET: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// helpers

/// Tokens set, private targets refused, only 127.0.0.1 allowed (for the test receivers), secrets sealed.
fn locked_env() -> Env {
    Env::with(|cfg| {
        cfg.admin_token = Some(ADMIN.into());
        cfg.event_key = Some(EVENT.into());
        cfg.targets.allow_private = false;
        cfg.targets.allowed_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        cfg.secret_key = Some(SECRET_KEY.into());
    })
}

/// A request with an optional bearer token (the servers here carry no default token).
fn req(
    s: &TestServer,
    method: Method,
    path: &str,
    bearer: Option<&str>,
) -> reqwest::RequestBuilder {
    let r = s.request(method, path);
    match bearer {
        Some(t) => r.bearer_auth(t),
        None => r,
    }
}

/// Sends `body` as JSON with an optional bearer token and extra headers.
async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Value) {
    let mut r = req(s, method, path, bearer);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    s.send(r).await
}

/// Asserts the status and the contract's error shape.
#[track_caller]
fn assert_error(got: (u16, &Value), status: u16, ctx: &str) {
    let (s, v) = got;
    assert_eq!(s, status, "{ctx}: {v}");
    assert!(
        v["error"]["code"].is_string() && v["error"]["message"].is_string(),
        "{ctx}: not the error shape: {v}"
    );
}

/// Polls `f` every 20 ms until it yields a value, or panics after `timeout`.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The deliveries of a webhook as the global admin sees them.
async fn deliveries_of(s: &TestServer, bearer: Option<&str>, webhook_id: i64) -> Vec<Value> {
    let (st, v) = call(
        s,
        Method::GET,
        &format!("/api/webhooks/deliveries?webhook_id={webhook_id}"),
        bearer,
        &[],
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v["deliveries"].as_array().cloned().unwrap_or_default()
}

/// Creates a webhook as `bearer`, asserting 201.
async fn create_hook(s: &TestServer, bearer: Option<&str>, body: Value) -> Value {
    let (st, v) = call(s, Method::POST, "/api/webhooks", bearer, &[], Some(&body)).await;
    assert_eq!(st, 201, "create webhook {body}: {v}");
    v
}

/// Creates a tenant API key as the global admin.
async fn create_key(s: &TestServer, tenant: &str, role: &str, name: &str) -> Value {
    let body = json!({"tenant_id": tenant, "role": role, "name": name});
    let (st, v) = call(s, Method::POST, "/api/keys", Some(ADMIN), &[], Some(&body)).await;
    assert_eq!(st, 201, "create key: {v}");
    v
}

// ---------------------------------------------------------------------------------------------
// 1. authentication

#[tokio::test]
async fn admin_routes_require_the_admin_token() {
    let env = locked_env();
    let s = &env.server;
    let admin_routes: &[(Method, &str, Option<Value>)] = &[
        (Method::GET, "/api/webhooks", None),
        (
            Method::POST,
            "/api/webhooks",
            Some(
                json!({"webhook_name": "x", "tenant_id": "t", "event_type": "*", "url": "http://127.0.0.1:9/"}),
            ),
        ),
        (
            Method::PUT,
            "/api/webhooks",
            Some(json!({"webhook_id": 1, "webhook_name": "x"})),
        ),
        (Method::DELETE, "/api/webhooks?id=1", None),
        (Method::GET, "/api/webhooks/1", None),
        (
            Method::PATCH,
            "/api/webhooks/1",
            Some(json!({"webhook_name": "x"})),
        ),
        (Method::GET, "/api/webhooks/1/secret", None),
        (
            Method::POST,
            "/api/webhooks/1/rotate-secret",
            Some(json!({})),
        ),
        (Method::POST, "/api/webhooks/1/test", None),
        (Method::GET, "/api/webhooks/1/health", None),
        (
            Method::POST,
            "/api/webhooks/match",
            Some(json!({"event_type": "a", "tenant_id": "t"})),
        ),
        (Method::GET, "/api/webhooks/deliveries", None),
        (
            Method::GET,
            "/api/webhooks/deliveries/00000000-0000-0000-0000-000000000000",
            None,
        ),
        (
            Method::POST,
            "/api/webhooks/deliveries/00000000-0000-0000-0000-000000000000/retry",
            None,
        ),
        (Method::GET, "/api/health/webhooks", None),
        (Method::GET, "/api/keys", None),
        (
            Method::POST,
            "/api/keys",
            Some(json!({"tenant_id": "t", "role": "admin"})),
        ),
        (Method::DELETE, "/api/keys/some-key", None),
        (Method::GET, "/metrics", None),
        (Method::GET, "/api/openapi.json", None),
    ];
    for (method, path, body) in admin_routes {
        let ctx = format!("{method} {path}");
        // No credentials, a wrong token, a wrong scheme, the event key as bearer or in its header.
        assert_error(
            call(s, method.clone(), path, None, &[], body.as_ref())
                .await
                .pipe(),
            401,
            &format!("{ctx} without credentials"),
        );
        assert_error(
            call(s, method.clone(), path, Some("wrong"), &[], body.as_ref())
                .await
                .pipe(),
            401,
            &format!("{ctx} wrong token"),
        );
        assert_error(
            call(
                s,
                method.clone(),
                path,
                Some(&format!("{ADMIN}x")),
                &[],
                body.as_ref(),
            )
            .await
            .pipe(),
            401,
            &format!("{ctx} token with a suffix"),
        );
        assert_error(
            call(
                s,
                method.clone(),
                path,
                None,
                &[("authorization", &format!("Basic {ADMIN}"))],
                body.as_ref(),
            )
            .await
            .pipe(),
            401,
            &format!("{ctx} Basic scheme"),
        );
        assert_error(
            call(s, method.clone(), path, Some(EVENT), &[], body.as_ref())
                .await
                .pipe(),
            401,
            &format!("{ctx} event key as bearer"),
        );
        assert_error(
            call(
                s,
                method.clone(),
                path,
                None,
                &[("x-beema-event-key", EVENT)],
                body.as_ref(),
            )
            .await
            .pipe(),
            401,
            &format!("{ctx} event key header"),
        );
        assert_error(
            call(
                s,
                method.clone(),
                path,
                Some("bk_not-a-real-key"),
                &[],
                body.as_ref(),
            )
            .await
            .pipe(),
            401,
            &format!("{ctx} made-up tenant key"),
        );
    }

    // The admin token works.
    let (st, v) = call(s, Method::GET, "/api/webhooks", Some(ADMIN), &[], None).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = call(s, Method::GET, "/api/keys", Some(ADMIN), &[], None).await;
    assert_eq!(st, 200, "{v}");
    let resp = req(s, Method::GET, "/metrics", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("beema_deliveries_total"));
    let (st, v) = call(s, Method::GET, "/api/openapi.json", Some(ADMIN), &[], None).await;
    assert_eq!(st, 200);
    assert!(v["openapi"].as_str().unwrap_or("").starts_with('3'), "{v}");

    // Liveness and readiness need nothing.
    let (st, v) = call(s, Method::GET, "/healthz", None, &[], None).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("ok")));
    let (st, v) = call(s, Method::GET, "/readyz", None, &[], None).await;
    assert_eq!(st, 200, "{v}");
}

/// Turns `(u16, Value)` into what [`assert_error`] takes.
trait Pipe {
    fn pipe(&self) -> (u16, &Value);
}

impl Pipe for (u16, Value) {
    fn pipe(&self) -> (u16, &Value) {
        (self.0, &self.1)
    }
}

#[tokio::test]
async fn publishing_takes_the_event_key_in_every_form() {
    let env = locked_env();
    let s = &env.server;
    let mut rx = TestReceiver::start(200);
    create_hook(s, Some(ADMIN), json!({"webhook_name": "h", "tenant_id": "tenant-1", "event_type": "claim/opened", "url": rx.url})).await;
    let event = json!({"event": "claim/opened", "data": {"tenantId": "tenant-1", "n": 1}});

    // Authorization: Bearer <event key>
    let (st, v) = call(
        s,
        Method::POST,
        "/api/events",
        Some(EVENT),
        &[],
        Some(&event),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["deliveries"], 1);
    // X-Beema-Event-Key
    let (st, v) = call(
        s,
        Method::POST,
        "/api/events",
        None,
        &[("x-beema-event-key", EVENT)],
        Some(&event),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    let (st, v) = call(
        s,
        Method::POST,
        "/api/inngest",
        None,
        &[("x-beema-event-key", EVENT)],
        Some(&event),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    // /e/{key}: the Inngest event API answer.
    let (st, v) = call(
        s,
        Method::POST,
        &format!("/e/{EVENT}"),
        None,
        &[],
        Some(&event),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["ids"].as_array().map(Vec::len), Some(1), "{v}");
    for _ in 0..4 {
        rx.expect(WAIT).await;
    }

    // Wrong or missing keys, in every form.
    for (path, bearer, headers) in [
        ("/api/events", None, vec![]),
        ("/api/events", Some("wrong"), vec![]),
        ("/api/events", None, vec![("x-beema-event-key", "wrong")]),
        ("/api/events", Some(&*format!("{EVENT}x")), vec![]),
        ("/api/events", Some("bk_made-up"), vec![]),
        ("/api/inngest", Some("wrong"), vec![]),
        ("/e/wrong", None, vec![]),
        ("/e/bk_made-up", None, vec![]),
        (&*format!("/e/{EVENT}x"), None, vec![]),
    ] {
        let got = call(s, Method::POST, path, bearer, &headers, Some(&event)).await;
        assert_error(
            got.pipe(),
            401,
            &format!("publish {path} {bearer:?} {headers:?}"),
        );
    }
    // Nothing was accepted by the refused calls.
    assert!(rx.next(Duration::from_millis(300)).await.is_none());
}

// ---------------------------------------------------------------------------------------------
// 2. tenant keys and roles

#[tokio::test]
async fn tenant_keys_are_managed_by_the_global_admin_and_revoked_at_once() {
    let env = locked_env();
    let s = &env.server;
    let admin_key = create_key(s, "tenant-a", "admin", "ops").await;
    let pub_key = create_key(s, "tenant-a", "publisher", "kernel").await;
    for (k, role, name) in [
        (&admin_key, "admin", "ops"),
        (&pub_key, "publisher", "kernel"),
    ] {
        assert!(k["key"].as_str().unwrap().starts_with("bk_"), "{k}");
        assert!(k["key"].as_str().unwrap().len() > 30, "{k}");
        assert_eq!(k["tenant_id"], "tenant-a");
        assert_eq!(k["role"], role);
        assert_eq!(k["name"], name);
        assert!(
            k["key_id"].is_string() && k["created_at"].is_string(),
            "{k}"
        );
    }
    let akey = admin_key["key"].as_str().unwrap().to_string();
    let pkey = pub_key["key"].as_str().unwrap().to_string();
    assert_ne!(akey, pkey);

    // Listing shows the keys, never their values.
    let (st, list) = call(s, Method::GET, "/api/keys", Some(ADMIN), &[], None).await;
    assert_eq!(st, 200, "{list}");
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{list}");
    for k in keys {
        assert!(k.get("key").is_none(), "a listing shows a key value: {k}");
        assert!(
            k.get("key_hash").is_none(),
            "a listing shows a key hash: {k}"
        );
    }
    let text = list.to_string();
    assert!(!text.contains(&akey) && !text.contains(&pkey), "{text}");

    // Validation.
    let (st, v) = call(
        s,
        Method::POST,
        "/api/keys",
        Some(ADMIN),
        &[],
        Some(&json!({"tenant_id": "t", "role": "root"})),
    )
    .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (422, Some("role")),
        "{v}"
    );
    let (st, v) = call(
        s,
        Method::POST,
        "/api/keys",
        Some(ADMIN),
        &[],
        Some(&json!({"tenant_id": null, "role": "admin"})),
    )
    .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (422, Some("tenant_id")),
        "{v}"
    );
    let (st, v) = call(
        s,
        Method::POST,
        "/api/keys",
        Some(ADMIN),
        &[],
        Some(&json!({"tenant_id": "bad tenant", "role": "admin"})),
    )
    .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (422, Some("tenant_id")),
        "{v}"
    );

    // Tenant keys cannot manage keys, whatever their role.
    for k in [&akey, &pkey] {
        let new = json!({"tenant_id": "tenant-a", "role": "admin"});
        assert_error(
            call(s, Method::GET, "/api/keys", Some(k), &[], None)
                .await
                .pipe(),
            403,
            "tenant key lists keys",
        );
        assert_error(
            call(s, Method::POST, "/api/keys", Some(k), &[], Some(&new))
                .await
                .pipe(),
            403,
            "tenant key creates a key",
        );
        let path = format!("/api/keys/{}", admin_key["key_id"].as_str().unwrap());
        assert_error(
            call(s, Method::DELETE, &path, Some(k), &[], None)
                .await
                .pipe(),
            403,
            "tenant key revokes a key",
        );
    }

    // A publisher key publishes for its tenant, in every form, and is refused on admin routes.
    let mut rx = TestReceiver::start(200);
    let hook = create_hook(
        s,
        Some(&akey),
        json!({"webhook_name": "a hook", "event_type": "claim/opened", "url": rx.url}),
    )
    .await;
    assert_eq!(
        hook["tenant_id"], "tenant-a",
        "an admin key creates for its own tenant"
    );
    let hook_id = hook["webhook_id"].as_i64().unwrap();
    let event = json!({"event": "claim/opened", "data": {"tenantId": "tenant-a"}});
    let no_tenant = json!({"event": "claim/opened", "data": {}});
    let (st, v) = call(
        s,
        Method::POST,
        "/api/events",
        Some(&pkey),
        &[],
        Some(&event),
    )
    .await;
    assert_eq!((st, &v["deliveries"]), (202, &json!(1)), "{v}");
    let (st, v) = call(
        s,
        Method::POST,
        "/api/events",
        None,
        &[("x-beema-event-key", &pkey)],
        Some(&no_tenant),
    )
    .await;
    assert_eq!(
        (st, &v["deliveries"]),
        (202, &json!(1)),
        "a bound key implies its tenant: {v}"
    );
    let (st, v) = call(
        s,
        Method::POST,
        &format!("/e/{pkey}"),
        None,
        &[],
        Some(&event),
    )
    .await;
    assert_eq!((st, &v["status"]), (200, &json!(200)), "{v}");
    for _ in 0..3 {
        rx.expect(WAIT).await;
    }
    for (m, path) in [
        (Method::GET, "/api/webhooks".to_string()),
        (Method::GET, format!("/api/webhooks/{hook_id}")),
        (Method::GET, format!("/api/webhooks/{hook_id}/secret")),
        (Method::DELETE, format!("/api/webhooks/{hook_id}")),
        (Method::GET, "/api/webhooks/deliveries".to_string()),
        (Method::GET, "/api/health/webhooks".to_string()),
        (Method::GET, "/metrics".to_string()),
    ] {
        assert_error(
            call(s, m.clone(), &path, Some(&pkey), &[], None)
                .await
                .pipe(),
            403,
            &format!("publisher key on {m} {path}"),
        );
    }
    let create = json!({"webhook_name": "p", "event_type": "*", "url": rx.url});
    assert_error(
        call(
            s,
            Method::POST,
            "/api/webhooks",
            Some(&pkey),
            &[],
            Some(&create),
        )
        .await
        .pipe(),
        403,
        "publisher key creates a webhook",
    );

    // An admin key manages its tenant's webhooks.
    let (st, v) = call(s, Method::GET, "/api/webhooks", Some(&akey), &[], None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["webhooks"].as_array().unwrap().len(), 1);
    let (st, v) = call(
        s,
        Method::GET,
        "/api/webhooks",
        Some(&akey),
        &[("x-tenant-id", "tenant-a")],
        None,
    )
    .await;
    assert_eq!(st, 200, "its own tenant named explicitly: {v}");
    let (st, v) = call(
        s,
        Method::PATCH,
        &format!("/api/webhooks/{hook_id}"),
        Some(&akey),
        &[],
        Some(&json!({"webhook_name": "renamed"})),
    )
    .await;
    assert_eq!(
        (st, v["webhook_name"].as_str()),
        (200, Some("renamed")),
        "{v}"
    );
    let (st, v) = call(
        s,
        Method::GET,
        &format!("/api/webhooks/{hook_id}/secret"),
        Some(&akey),
        &[],
        None,
    )
    .await;
    assert_eq!(
        (st, v["secret"].as_str()),
        (200, hook["secret"].as_str()),
        "{v}"
    );
    let (st, v) = call(
        s,
        Method::GET,
        "/api/webhooks/deliveries",
        Some(&akey),
        &[],
        None,
    )
    .await;
    assert_eq!(
        (st, v["deliveries"].as_array().map(Vec::len)),
        (200, Some(3)),
        "{v}"
    );

    // Revocation: 204, then both keys stop working immediately.
    for k in [&admin_key, &pub_key] {
        let path = format!("/api/keys/{}", k["key_id"].as_str().unwrap());
        let (st, v) = call(s, Method::DELETE, &path, Some(ADMIN), &[], None).await;
        assert_eq!(st, 204, "{v}");
        assert_error(
            call(s, Method::DELETE, &path, Some(ADMIN), &[], None)
                .await
                .pipe(),
            404,
            "revoking twice",
        );
    }
    assert_error(
        call(s, Method::GET, "/api/webhooks", Some(&akey), &[], None)
            .await
            .pipe(),
        401,
        "revoked admin key",
    );
    assert_error(
        call(
            s,
            Method::POST,
            "/api/events",
            Some(&pkey),
            &[],
            Some(&event),
        )
        .await
        .pipe(),
        401,
        "revoked publisher key",
    );
    assert_error(
        call(
            s,
            Method::POST,
            &format!("/e/{pkey}"),
            None,
            &[],
            Some(&event),
        )
        .await
        .pipe(),
        401,
        "revoked key in the path",
    );
    assert_error(
        call(
            s,
            Method::POST,
            "/api/events",
            None,
            &[("x-beema-event-key", &pkey)],
            Some(&event),
        )
        .await
        .pipe(),
        401,
        "revoked key in the header",
    );
    assert_error(
        call(
            s,
            Method::DELETE,
            "/api/keys/no-such-key",
            Some(ADMIN),
            &[],
            None,
        )
        .await
        .pipe(),
        404,
        "unknown key",
    );
    assert!(
        rx.next(Duration::from_millis(300)).await.is_none(),
        "a revoked key published"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. tenant isolation

#[tokio::test]
async fn a_tenant_key_never_reaches_another_tenants_resources() {
    let env = locked_env();
    let s = &env.server;
    let a = create_key(s, "tenant-a", "admin", "a-admin").await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let a_pub = create_key(s, "tenant-a", "publisher", "a-pub").await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let b = create_key(s, "tenant-b", "admin", "b-admin").await["key"]
        .as_str()
        .unwrap()
        .to_string();

    let mut rx_a = TestReceiver::start(200);
    let mut rx_b = TestReceiver::start(200);
    let b_secret = "whsec_QmVlbWFUZW5hbnRCU2VjcmV0S2V5MTIzNDU2Nzg5MA==";
    let b_name = "B-PRIVATE-HOOK-NAME";
    let hook_a = create_hook(
        s,
        Some(&a),
        json!({"webhook_name": "a hook", "event_type": "claim/opened", "url": rx_a.url}),
    )
    .await;
    let hook_b = create_hook(
        s,
        Some(&b),
        json!({"webhook_name": b_name, "event_type": "claim/opened", "url": rx_b.url, "secret": b_secret, "headers": {"Authorization": "Bearer B-PRIVATE-TOKEN"}}),
    )
    .await;
    // A second B webhook created by the global admin with tenant_id in the body.
    let hook_b2 = create_hook(s, Some(ADMIN), json!({"webhook_name": b_name, "tenant_id": "tenant-b", "event_type": "*", "url": rx_b.url, "secret": b_secret})).await;
    assert_eq!(hook_b["tenant_id"], "tenant-b");
    let (ida, idb, idb2) = (
        hook_a["webhook_id"].as_i64().unwrap(),
        hook_b["webhook_id"].as_i64().unwrap(),
        hook_b2["webhook_id"].as_i64().unwrap(),
    );

    // One delivery each, finished.
    let ev = |t: &str| json!({"event": "claim/opened", "data": {"tenantId": t}});
    let (st, pa) = call(
        s,
        Method::POST,
        "/api/events",
        Some(EVENT),
        &[],
        Some(&ev("tenant-a")),
    )
    .await;
    assert_eq!(st, 202, "{pa}");
    let (st, pb) = call(
        s,
        Method::POST,
        "/api/events",
        Some(EVENT),
        &[],
        Some(&ev("tenant-b")),
    )
    .await;
    assert_eq!((st, &pb["deliveries"]), (202, &json!(2)), "{pb}");
    rx_a.expect(WAIT).await;
    rx_b.expect(WAIT).await;
    rx_b.expect(WAIT).await;
    let b_event = pb["ids"][0].as_str().unwrap().to_string();
    let b_delivery = eventually(WAIT, "B's delivery to succeed", || async {
        let d = deliveries_of(s, Some(ADMIN), idb).await;
        d.first()
            .filter(|d| d["status"] == "success")
            .map(|d| d["delivery_id"].as_str().unwrap().to_string())
    })
    .await;
    eventually(WAIT, "A's delivery to succeed", || async {
        deliveries_of(s, Some(ADMIN), ida)
            .await
            .first()
            .filter(|d| d["status"] == "success")
            .map(|_| ())
    })
    .await;

    // Everything A gets back, checked for B's data at the end.
    let mut seen = Vec::<String>::new();
    let forbid = |got: (u16, Value), ctx: &str, seen: &mut Vec<String>| {
        assert_error(got.pipe(), 403, ctx);
        seen.push(got.1.to_string());
    };
    let patch = json!({"webhook_name": "pwned", "url": rx_a.url, "enabled": false});
    for id in [idb, idb2] {
        let p = format!("/api/webhooks/{id}");
        forbid(
            call(s, Method::GET, &p, Some(&a), &[], None).await,
            "GET B's webhook",
            &mut seen,
        );
        forbid(
            call(s, Method::PUT, &p, Some(&a), &[], Some(&patch)).await,
            "PUT B's webhook",
            &mut seen,
        );
        forbid(
            call(s, Method::PATCH, &p, Some(&a), &[], Some(&patch)).await,
            "PATCH B's webhook",
            &mut seen,
        );
        let mut by_body = patch.clone();
        by_body["webhook_id"] = json!(id);
        forbid(
            call(
                s,
                Method::PUT,
                "/api/webhooks",
                Some(&a),
                &[],
                Some(&by_body),
            )
            .await,
            "PUT /api/webhooks with B's id",
            &mut seen,
        );
        forbid(
            call(s, Method::DELETE, &p, Some(&a), &[], None).await,
            "DELETE B's webhook",
            &mut seen,
        );
        forbid(
            call(
                s,
                Method::DELETE,
                &format!("/api/webhooks?id={id}"),
                Some(&a),
                &[],
                None,
            )
            .await,
            "DELETE ?id= B's webhook",
            &mut seen,
        );
        forbid(
            call(s, Method::GET, &format!("{p}/secret"), Some(&a), &[], None).await,
            "B's secret",
            &mut seen,
        );
        forbid(
            call(
                s,
                Method::POST,
                &format!("{p}/rotate-secret"),
                Some(&a),
                &[],
                Some(&json!({"secret": "whsec_attackerchosen"})),
            )
            .await,
            "rotate B's secret",
            &mut seen,
        );
        forbid(
            call(
                s,
                Method::POST,
                &format!("{p}/rotate-secret"),
                Some(&a),
                &[],
                None,
            )
            .await,
            "rotate B's secret, no body",
            &mut seen,
        );
        forbid(
            call(s, Method::POST, &format!("{p}/test"), Some(&a), &[], None).await,
            "test-send B's webhook",
            &mut seen,
        );
        forbid(
            call(s, Method::GET, &format!("{p}/health"), Some(&a), &[], None).await,
            "B's webhook health",
            &mut seen,
        );
        let record = json!({"webhook_id": id, "event_id": "evt-x", "event_type": "claim/opened", "status": "pending"});
        forbid(
            call(
                s,
                Method::POST,
                "/api/webhooks/deliveries",
                Some(&a),
                &[],
                Some(&record),
            )
            .await,
            "record a delivery for B",
            &mut seen,
        );
        // Even naming its own tenant in the header does not help.
        forbid(
            call(
                s,
                Method::GET,
                &p,
                Some(&a),
                &[("x-tenant-id", "tenant-a")],
                None,
            )
            .await,
            "GET B's webhook naming A",
            &mut seen,
        );
    }
    let match_b = json!({"event_type": "claim/opened", "tenant_id": "tenant-b"});
    forbid(
        call(
            s,
            Method::POST,
            "/api/webhooks/match",
            Some(&a),
            &[],
            Some(&match_b),
        )
        .await,
        "match for B",
        &mut seen,
    );
    forbid(
        call(
            s,
            Method::POST,
            "/api/webhooks/match",
            Some(&a),
            &[("x-tenant-id", "tenant-b")],
            Some(&json!({"event_type": "claim/opened"})),
        )
        .await,
        "match with X-Tenant-ID B",
        &mut seen,
    );
    forbid(
        call(
            s,
            Method::GET,
            "/api/webhooks",
            Some(&a),
            &[("x-tenant-id", "tenant-b")],
            None,
        )
        .await,
        "list with X-Tenant-ID B",
        &mut seen,
    );
    forbid(
        call(
            s,
            Method::GET,
            "/api/webhooks?tenant_id=tenant-b",
            Some(&a),
            &[],
            None,
        )
        .await,
        "list ?tenant_id=B",
        &mut seen,
    );
    forbid(
        call(
            s,
            Method::GET,
            "/api/webhooks/deliveries?tenant_id=tenant-b",
            Some(&a),
            &[],
            None,
        )
        .await,
        "deliveries ?tenant_id=B",
        &mut seen,
    );
    forbid(
        call(
            s,
            Method::GET,
            "/api/webhooks/deliveries",
            Some(&a),
            &[("x-tenant-id", "tenant-b")],
            None,
        )
        .await,
        "deliveries X-Tenant-ID B",
        &mut seen,
    );
    forbid(
        call(
            s,
            Method::GET,
            &format!("/api/webhooks/deliveries/{b_delivery}"),
            Some(&a),
            &[],
            None,
        )
        .await,
        "B's delivery",
        &mut seen,
    );
    forbid(
        call(
            s,
            Method::POST,
            &format!("/api/webhooks/deliveries/{b_delivery}/retry"),
            Some(&a),
            &[],
            None,
        )
        .await,
        "retry B's delivery",
        &mut seen,
    );
    forbid(
        call(
            s,
            Method::GET,
            "/api/health/webhooks",
            Some(&a),
            &[("x-tenant-id", "tenant-b")],
            None,
        )
        .await,
        "health with X-Tenant-ID B",
        &mut seen,
    );
    let create_b = json!({"webhook_name": "sneaky", "tenant_id": "tenant-b", "event_type": "*", "url": rx_a.url});
    forbid(
        call(
            s,
            Method::POST,
            "/api/webhooks",
            Some(&a),
            &[],
            Some(&create_b),
        )
        .await,
        "create for B",
        &mut seen,
    );
    let create_hdr = json!({"webhook_name": "sneaky", "event_type": "*", "url": rx_a.url});
    forbid(
        call(
            s,
            Method::POST,
            "/api/webhooks",
            Some(&a),
            &[("x-tenant-id", "tenant-b")],
            Some(&create_hdr),
        )
        .await,
        "create with X-Tenant-ID B",
        &mut seen,
    );

    // Publishing for B with A's keys (publisher and admin), in every form.
    for key in [&a_pub, &a] {
        forbid(
            call(
                s,
                Method::POST,
                "/api/events",
                Some(key),
                &[],
                Some(&ev("tenant-b")),
            )
            .await,
            "publish data.tenantId B",
            &mut seen,
        );
        let no_tenant = json!({"event": "claim/opened", "data": {}});
        forbid(
            call(
                s,
                Method::POST,
                "/api/events",
                Some(key),
                &[("x-tenant-id", "tenant-b")],
                Some(&no_tenant),
            )
            .await,
            "publish X-Tenant-ID B",
            &mut seen,
        );
        forbid(
            call(
                s,
                Method::POST,
                "/api/events",
                Some(key),
                &[("x-tenant-id", "tenant-b")],
                Some(&ev("tenant-a")),
            )
            .await,
            "publish A with X-Tenant-ID B",
            &mut seen,
        );
        forbid(
            call(
                s,
                Method::POST,
                "/api/inngest",
                None,
                &[("x-beema-event-key", key)],
                Some(&ev("tenant-b")),
            )
            .await,
            "publish via header for B",
            &mut seen,
        );
        forbid(
            call(
                s,
                Method::POST,
                &format!("/e/{key}"),
                None,
                &[],
                Some(&ev("tenant-b")),
            )
            .await,
            "publish /e/ for B",
            &mut seen,
        );
        // A batch with one B event is refused whole: A's event is not stored either.
        let batch = json!([ev("tenant-a"), ev("tenant-b")]);
        forbid(
            call(s, Method::POST, "/api/events", Some(key), &[], Some(&batch)).await,
            "batch with a B event",
            &mut seen,
        );
    }

    // What A may see contains only A.
    let mut ok = |got: (u16, Value), ctx: &str| -> Value {
        assert_eq!(got.0, 200, "{ctx}: {}", got.1);
        seen.push(got.1.to_string());
        got.1
    };
    let list = ok(
        call(s, Method::GET, "/api/webhooks", Some(&a), &[], None).await,
        "A's list",
    );
    let ids: Vec<i64> = list["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["webhook_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![ida], "{list}");
    let list = ok(
        call(
            s,
            Method::GET,
            "/api/webhooks?event_type=claim/opened&limit=1000",
            Some(&a),
            &[],
            None,
        )
        .await,
        "A's filtered list",
    );
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1, "{list}");
    let m = ok(
        call(
            s,
            Method::POST,
            "/api/webhooks/match",
            Some(&a),
            &[],
            Some(&json!({"event_type": "claim/opened"})),
        )
        .await,
        "A's match",
    );
    let ids: Vec<i64> = m["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["webhook_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![ida], "{m}");
    let d = ok(
        call(
            s,
            Method::GET,
            "/api/webhooks/deliveries",
            Some(&a),
            &[],
            None,
        )
        .await,
        "A's deliveries",
    );
    let d = d["deliveries"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d.iter()
            .all(|d| d["tenant_id"] == "tenant-a" && d["webhook_id"] == ida),
        "{d:?}"
    );
    for q in [
        format!("webhook_id={idb}"),
        format!("event_id={b_event}"),
        format!("webhook_id={idb2}&status=success"),
    ] {
        let d = ok(
            call(
                s,
                Method::GET,
                &format!("/api/webhooks/deliveries?{q}"),
                Some(&a),
                &[],
                None,
            )
            .await,
            "A filters for B",
        );
        assert_eq!(
            d["deliveries"].as_array().map(Vec::len),
            Some(0),
            "A sees B's deliveries with ?{q}: {d}"
        );
    }
    let h = ok(
        call(s, Method::GET, "/api/health/webhooks", Some(&a), &[], None).await,
        "A's health",
    );
    let ids: Vec<i64> = h["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["webhook_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![ida], "{h}");

    // Unknown ids are 404 for a tenant key as well.
    assert_error(
        call(s, Method::GET, "/api/webhooks/999999", Some(&a), &[], None)
            .await
            .pipe(),
        404,
        "unknown webhook",
    );

    // A cannot move its own webhook into B (by any update form), nor publish into B through it.
    for (m, path, body) in [
        (
            Method::PATCH,
            format!("/api/webhooks/{ida}"),
            json!({"tenant_id": "tenant-b"}),
        ),
        (
            Method::PUT,
            format!("/api/webhooks/{ida}"),
            json!({"tenant_id": "tenant-b"}),
        ),
        (
            Method::PUT,
            "/api/webhooks".to_string(),
            json!({"webhook_id": ida, "tenant_id": "tenant-b"}),
        ),
    ] {
        let (st, v) = call(s, m.clone(), &path, Some(&a), &[], Some(&body)).await;
        assert!((400..500).contains(&st), "{m} {path} moving to B: {st} {v}");
        seen.push(v.to_string());
    }
    let (_, own) = call(
        s,
        Method::GET,
        &format!("/api/webhooks/{ida}"),
        Some(&a),
        &[],
        None,
    )
    .await;
    assert_eq!(own["tenant_id"], "tenant-a", "{own}");

    // Zero leaks: nothing of B's in anything A got back.
    let masked_b = format!("{}…", &b_secret[..10]);
    for body in &seen {
        for secret_thing in [
            b_secret,
            b_name,
            rx_b.url.as_str(),
            "B-PRIVATE-TOKEN",
            masked_b.as_str(),
            b_delivery.as_str(),
            b_event.as_str(),
        ] {
            assert!(
                !body.contains(secret_thing),
                "B's `{secret_thing}` leaked to A in {body}"
            );
        }
    }

    // B's webhooks are untouched, and nothing extra was sent to B or stored for A.
    for id in [idb, idb2] {
        let (st, w) = call(
            s,
            Method::GET,
            &format!("/api/webhooks/{id}"),
            Some(&b),
            &[],
            None,
        )
        .await;
        assert_eq!(st, 200, "B's webhook survived: {w}");
        assert_eq!(
            (
                w["webhook_name"].as_str(),
                w["enabled"].as_bool(),
                w["url"].as_str()
            ),
            (Some(b_name), Some(true), Some(rx_b.url.as_str()))
        );
        let (_, sec) = call(
            s,
            Method::GET,
            &format!("/api/webhooks/{id}/secret"),
            Some(&b),
            &[],
            None,
        )
        .await;
        assert_eq!(sec["secret"], b_secret);
    }
    assert_eq!(
        deliveries_of(s, Some(ADMIN), idb).await.len(),
        1,
        "a delivery was added to B"
    );
    assert_eq!(
        deliveries_of(s, Some(ADMIN), ida).await.len(),
        1,
        "a refused batch stored A's event"
    );
    assert!(
        rx_b.next(QUIET).await.is_none(),
        "B's receiver got a request A asked for"
    );
    assert!(rx_a.next(Duration::from_millis(100)).await.is_none());
}

// ---------------------------------------------------------------------------------------------
// 4. SSRF guard

/// Every spelling of a non-public target.
const PRIVATE_URLS: &[&str] = &[
    "http://127.0.0.1/",
    "http://localhost/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://127.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::1]/",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://[fd00::1]/",
    // More of the same.
    "http://0177.0.0.1/",
    "http://0x7f000001/",
    "http://127.0.0.1:8080/hook",
    "https://127.0.0.1/",
    "http://LOCALHOST/",
    "http://172.16.0.1/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://198.18.0.1/",
];

/// URLs refused for their form, whatever the policy.
const MALFORMED_URLS: &[&str] = &[
    "http://user:pass@93.184.216.34/",
    "http://user@93.184.216.34/",
    "https://:pw@93.184.216.34/",
    "ftp://93.184.216.34/",
    "file:///etc/passwd",
    "gopher://93.184.216.34/",
    "javascript:alert(1)",
    "/relative/path",
    "93.184.216.34",
    "",
    "http://",
];

#[tokio::test]
async fn private_targets_are_refused_on_create_and_update() {
    let env = Env::with(|cfg| {
        cfg.admin_token = Some(ADMIN.into());
        cfg.event_key = Some(EVENT.into());
        cfg.targets.allow_private = false;
    });
    let s = &env.server;
    // A public IP literal needs no DNS and is allowed.
    let public = "http://93.184.216.34/hook";
    let hook = create_hook(
        s,
        Some(ADMIN),
        json!({"webhook_name": "pub", "tenant_id": "t", "event_type": "*", "url": public}),
    )
    .await;
    let id = hook["webhook_id"].as_i64().unwrap();

    let check = |(st, v): (u16, Value), url: &str, how: &str, names_setting: bool| {
        assert_eq!(st, 422, "{how} {url}: {v}");
        assert_eq!(v["error"]["field"], "url", "{how} {url}: {v}");
        assert_eq!(v["error"]["code"], "validation_failed", "{how} {url}: {v}");
        if names_setting {
            let msg = v["error"]["message"].as_str().unwrap_or("");
            assert!(
                msg.contains("BEEMA_ALLOW_PRIVATE_TARGETS"),
                "{how} {url}: message does not name the setting: {msg}"
            );
        }
    };
    for (urls, names_setting) in [(PRIVATE_URLS, true), (MALFORMED_URLS, false)] {
        for url in urls {
            let body =
                json!({"webhook_name": "x", "tenant_id": "t", "event_type": "*", "url": url});
            check(
                call(
                    s,
                    Method::POST,
                    "/api/webhooks",
                    Some(ADMIN),
                    &[],
                    Some(&body),
                )
                .await,
                url,
                "create",
                names_setting,
            );
            let up = json!({"url": url});
            check(
                call(
                    s,
                    Method::PUT,
                    &format!("/api/webhooks/{id}"),
                    Some(ADMIN),
                    &[],
                    Some(&up),
                )
                .await,
                url,
                "PUT",
                names_setting,
            );
            check(
                call(
                    s,
                    Method::PATCH,
                    &format!("/api/webhooks/{id}"),
                    Some(ADMIN),
                    &[],
                    Some(&up),
                )
                .await,
                url,
                "PATCH",
                names_setting,
            );
            let by_body = json!({"webhook_id": id, "url": url});
            check(
                call(
                    s,
                    Method::PUT,
                    "/api/webhooks",
                    Some(ADMIN),
                    &[],
                    Some(&by_body),
                )
                .await,
                url,
                "PUT by body",
                names_setting,
            );
        }
    }
    // Nothing was created or changed.
    let (_, list) = call(s, Method::GET, "/api/webhooks", Some(ADMIN), &[], None).await;
    let list = list["webhooks"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["url"], public);
}

#[tokio::test]
async fn allowed_cidrs_let_a_local_receiver_through() {
    let env = Env::with(|cfg| {
        cfg.admin_token = Some(ADMIN.into());
        cfg.event_key = Some(EVENT.into());
        cfg.targets.allow_private = false;
        cfg.targets.allowed_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
    });
    let s = &env.server;
    let mut rx = TestReceiver::start(200);
    let hook = create_hook(
        s,
        Some(ADMIN),
        json!({"webhook_name": "local", "tenant_id": "t", "event_type": "a/b", "url": rx.url}),
    )
    .await;
    let (st, v) = call(
        s,
        Method::POST,
        "/api/events",
        Some(EVENT),
        &[],
        Some(&json!({"event": "a/b", "data": {"tenantId": "t"}})),
    )
    .await;
    assert_eq!((st, &v["deliveries"]), (202, &json!(1)), "{v}");
    let got = rx.expect(WAIT).await;
    assert_eq!(got.json()["event"], "a/b");
    let id = hook["webhook_id"].as_i64().unwrap();
    eventually(WAIT, "the delivery to succeed", || async {
        deliveries_of(s, Some(ADMIN), id)
            .await
            .first()
            .filter(|d| d["status"] == "success")
            .map(|_| ())
    })
    .await;
    // Only that range: its neighbours stay refused.
    for url in [
        "http://127.0.0.2/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://169.254.169.254/",
    ] {
        let body = json!({"webhook_name": "x", "tenant_id": "t", "event_type": "*", "url": url});
        let (st, v) = call(
            s,
            Method::POST,
            "/api/webhooks",
            Some(ADMIN),
            &[],
            Some(&body),
        )
        .await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (422, Some("url")),
            "{url}: {v}"
        );
    }
}

#[tokio::test]
async fn targets_are_checked_again_at_connect_time() {
    let db = TestDb::new();
    let mut rx = TestReceiver::start(200);
    let port = rx
        .url
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let by_name = format!("http://localhost:{port}/hook");
    // Registered while private targets were allowed.
    let first = TestServer::start(test_config(&db));
    let literal = first
        .create_webhook(
            "t",
            "a/b",
            &rx.url,
            json!({"retry_config": {"maxAttempts": 1}}),
        )
        .await;
    let named = first
        .create_webhook(
            "t",
            "a/b",
            &by_name,
            json!({"retry_config": {"maxAttempts": 1}}),
        )
        .await;
    first.stop();

    // The same database, now with the guard on.
    let mut config = test_config(&db);
    config.targets.allow_private = false;
    let second = TestServer::start(config);
    let published = second.publish("t", "a/b", json!({})).await;
    assert_eq!(published["deliveries"], 2);
    assert!(
        rx.next(QUIET).await.is_none(),
        "a non-public target was contacted"
    );
    for hook in [&literal, &named] {
        let id = hook["webhook_id"].as_i64().unwrap();
        let delivery = eventually(WAIT, "the blocked attempt to be recorded", || async {
            let d = deliveries_of(&second, None, id).await;
            d.first().filter(|d| d["status"] == "failed").cloned()
        })
        .await;
        assert!(delivery["status_code"].is_null(), "{delivery}");
        let (st, one) = second
            .get(&format!(
                "/api/webhooks/deliveries/{}",
                delivery["delivery_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(st, 200);
        let attempts = one["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{one}");
        let err = attempts[0]["error_message"].as_str().unwrap_or("");
        assert!(
            err.contains("blocked") || err.contains("non-public"),
            "{} attempt error: {err}",
            hook["url"]
        );
        assert!(attempts[0]["status_code"].is_null(), "{one}");
    }
    assert!(rx.drain().is_empty());
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let env = Env::with(|cfg| {
        cfg.targets.allow_private = false;
        cfg.targets.allowed_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
    });
    let s = &env.server;
    let mut other = TestReceiver::start(200);
    let mut hooks = Vec::new();
    let mut redirectors = Vec::new();
    for status in [301, 302, 303, 307, 308] {
        let r = TestReceiver::start(200);
        r.set_reply(Reply::status(status).header("Location", &other.url));
        let h = s
            .create_webhook(
                "t",
                "a/b",
                &r.url,
                json!({"retry_config": {"maxAttempts": 1}}),
            )
            .await;
        hooks.push((status, h["webhook_id"].as_i64().unwrap()));
        redirectors.push(r);
    }
    s.publish("t", "a/b", json!({})).await;
    for r in redirectors.iter_mut() {
        r.expect(WAIT).await;
    }
    assert!(other.next(QUIET).await.is_none(), "a redirect was followed");
    for (status, id) in hooks {
        let d = eventually(WAIT, "the redirected delivery to fail", || async {
            deliveries_of(s, None, id)
                .await
                .first()
                .filter(|d| d["status"] == "failed")
                .cloned()
        })
        .await;
        assert_eq!(d["status_code"], status, "{d}");
        let (_, one) = s
            .get(&format!(
                "/api/webhooks/deliveries/{}",
                d["delivery_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(one["attempts"][0]["status_code"], status, "{one}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. secrets at rest

#[derive(diesel::QueryableByName, Debug)]
struct StoredSecrets {
    #[diesel(sql_type = diesel::sql_types::Text)]
    secret: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    prev: String,
}

/// The raw `secret` and `previous_secrets` columns of one webhook, read past the server.
async fn stored_secrets(db: &TestDb, id: i64) -> StoredSecrets {
    use diesel::sql_types::BigInt;
    match &db.url {
        DatabaseUrl::Sqlite(path) => {
            use diesel::{Connection, RunQueryDsl};
            let mut c = diesel::SqliteConnection::establish(path).expect("open the SQLite file");
            diesel::sql_query("SELECT secret, json(previous_secrets) AS prev FROM sys_webhooks WHERE webhook_id = ?")
                .bind::<BigInt, _>(id)
                .get_result(&mut c)
                .expect("read sys_webhooks")
        }
        DatabaseUrl::Postgres(url) => {
            use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
            let mut c = AsyncPgConnection::establish(url)
                .await
                .expect("connect to PostgreSQL");
            diesel::sql_query("SELECT secret, previous_secrets::text AS prev FROM sys_webhooks WHERE webhook_id = $1")
                .bind::<BigInt, _>(id)
                .get_result(&mut c)
                .await
                .expect("read sys_webhooks")
        }
    }
}

/// For SQLite: no file of the database (main, WAL, journal) holds `needle` anywhere.
fn sqlite_files_lack(db: &TestDb, needle: &str) {
    let DatabaseUrl::Sqlite(path) = &db.url else {
        return;
    };
    let dir = std::path::Path::new(path).parent().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let bytes = std::fs::read(&p).unwrap_or_default();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{} holds a secret in clear",
            p.display()
        );
    }
}

fn verify_standard(secret: &str, got: &crate::utils::Received) -> bool {
    let wh = standardwebhooks::Webhook::new(secret).expect("whsec secret");
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, got.header(name).unwrap().parse().unwrap());
    }
    wh.verify(&got.body, &headers).is_ok()
}

fn beema_sig(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_still_sign() {
    let env = locked_env();
    let s = &env.server;
    let mut rx = TestReceiver::start(200);
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let new = "whsec_c2Vjb25kU2VjcmV0Rm9yUm90YXRpb25UZXN0cw==";
    let hook = create_hook(s, Some(ADMIN), json!({"webhook_name": "sealed", "tenant_id": "t", "event_type": "a/b", "url": rx.url, "secret": old})).await;
    assert_eq!(hook["secret"], old, "create returns the secret in full");
    let id = hook["webhook_id"].as_i64().unwrap();

    let row = stored_secrets(&env.db, id).await;
    assert!(
        row.secret.starts_with("enc:v1:"),
        "stored secret is not sealed: {}",
        row.secret
    );
    assert!(
        !row.secret.contains(old) && !row.secret.contains(&old[6..]),
        "{}",
        row.secret
    );
    assert_eq!(row.prev.replace(' ', ""), "[]");
    sqlite_files_lack(&env.db, &old[6..]);

    // The API still knows it, and deliveries are signed with it.
    let (st, v) = call(
        s,
        Method::GET,
        &format!("/api/webhooks/{id}/secret"),
        Some(ADMIN),
        &[],
        None,
    )
    .await;
    assert_eq!((st, v["secret"].as_str()), (200, Some(old)), "{v}");
    let (_, v) = call(
        s,
        Method::GET,
        &format!("/api/webhooks/{id}"),
        Some(ADMIN),
        &[],
        None,
    )
    .await;
    assert_eq!(v["secret"], format!("{}…", &old[..10]));
    let ev = json!({"event": "a/b", "data": {"tenantId": "t"}});
    let (st, _) = call(s, Method::POST, "/api/events", Some(EVENT), &[], Some(&ev)).await;
    assert_eq!(st, 202);
    let got = rx.expect(WAIT).await;
    assert!(
        verify_standard(old, &got),
        "signature does not verify with the secret"
    );
    assert_eq!(
        got.header("x-beema-signature").unwrap(),
        beema_sig(old, &got.body)
    );

    // Rotation: the new one and the old one (in grace) are both sealed.
    let (st, v) = call(
        s,
        Method::POST,
        &format!("/api/webhooks/{id}/rotate-secret"),
        Some(ADMIN),
        &[],
        Some(&json!({"secret": new, "grace_seconds": 3600})),
    )
    .await;
    assert_eq!((st, v["secret"].as_str()), (200, Some(new)), "{v}");
    let row = stored_secrets(&env.db, id).await;
    assert!(row.secret.starts_with("enc:v1:"), "{}", row.secret);
    for plain in [old, new, &old[6..], &new[6..]] {
        assert!(!row.secret.contains(plain), "{}", row.secret);
        assert!(
            !row.prev.contains(plain),
            "an old secret is stored in clear: {}",
            row.prev
        );
    }
    let prev: Value = serde_json::from_str(&row.prev).unwrap();
    let prev = prev.as_array().unwrap();
    assert_eq!(prev.len(), 1, "{prev:?}");
    assert!(
        prev[0]["secret"].as_str().unwrap().starts_with("enc:v1:"),
        "{prev:?}"
    );
    sqlite_files_lack(&env.db, &old[6..]);
    sqlite_files_lack(&env.db, &new[6..]);

    let (st, _) = call(s, Method::POST, "/api/events", Some(EVENT), &[], Some(&ev)).await;
    assert_eq!(st, 202);
    let got = rx.expect(WAIT).await;
    assert!(
        verify_standard(new, &got),
        "does not verify with the new secret"
    );
    assert!(
        verify_standard(old, &got),
        "does not verify with the old secret in grace"
    );
    assert_eq!(
        got.header("webhook-signature").unwrap().split(' ').count(),
        2
    );
    assert_eq!(
        got.header("x-beema-signature").unwrap(),
        beema_sig(new, &got.body)
    );

    // An update that sets the secret seals it too.
    let third = "a-plain-caller-secret-123";
    let (st, v) = call(
        s,
        Method::PATCH,
        &format!("/api/webhooks/{id}"),
        Some(ADMIN),
        &[],
        Some(&json!({"secret": third})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let row = stored_secrets(&env.db, id).await;
    assert!(
        row.secret.starts_with("enc:v1:") && !row.secret.contains(third),
        "{}",
        row.secret
    );
    sqlite_files_lack(&env.db, third);
    let (_, v) = call(
        s,
        Method::GET,
        &format!("/api/webhooks/{id}/secret"),
        Some(ADMIN),
        &[],
        None,
    )
    .await;
    assert_eq!(v["secret"], third);
}

#[tokio::test]
async fn sealed_secrets_survive_a_restart() {
    let db = TestDb::new();
    let mut rx = TestReceiver::start(200);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut config = test_config(&db);
    config.secret_key = Some(SECRET_KEY.into());
    let first = TestServer::start(config.clone());
    let hook = first
        .create_webhook("t", "a/b", &rx.url, json!({"secret": secret}))
        .await;
    first.stop();
    let second = TestServer::start(config);
    let id = hook["webhook_id"].as_i64().unwrap();
    let (st, v) = second.get(&format!("/api/webhooks/{id}/secret")).await;
    assert_eq!((st, v["secret"].as_str()), (200, Some(secret)), "{v}");
    second.publish("t", "a/b", json!({})).await;
    let got = rx.expect(WAIT).await;
    assert!(verify_standard(secret, &got));
    assert!(stored_secrets(&db, id).await.secret.starts_with("enc:v1:"));
}

// ---------------------------------------------------------------------------------------------
// 6. hostile input

/// One hostile request: method, path, content type, raw body, expected status.
struct Case {
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    content_type: &'static str,
    headers: Vec<(&'static str, Vec<u8>)>,
    bearer: Option<&'static str>,
    status: u16,
    /// Another acceptable status (a path id that is not an id: 400 or 404).
    or: Option<u16>,
}

impl Case {
    fn or(mut self, status: u16) -> Self {
        self.or = Some(status);
        self
    }
}

fn case(method: Method, path: impl Into<String>, body: Option<Vec<u8>>, status: u16) -> Case {
    Case {
        method,
        path: path.into(),
        body,
        content_type: "application/json",
        headers: vec![],
        bearer: Some(ADMIN),
        status,
        or: None,
    }
}

fn j(v: Value) -> Option<Vec<u8>> {
    Some(v.to_string().into_bytes())
}

fn valid_hook() -> Value {
    json!({"webhook_name": "n", "tenant_id": "t", "event_type": "*", "url": "http://93.184.216.34/"})
}

fn with(field: &str, value: Value) -> Value {
    let mut v = valid_hook();
    v[field] = value;
    v
}

#[tokio::test]
async fn hostile_input_gets_4xx_and_the_server_survives() {
    let env = Env::with(|cfg| {
        cfg.admin_token = Some(ADMIN.into());
        cfg.event_key = Some(EVENT.into());
        cfg.targets.allow_private = false;
    });
    let s = &env.server;
    let hook = create_hook(s, Some(ADMIN), valid_hook()).await;
    let id = hook["webhook_id"].as_i64().unwrap();
    let w = format!("/api/webhooks/{id}");

    let mut cases = vec![
        // Malformed bodies.
        case(Method::POST, "/api/webhooks", Some("[".repeat(10_000).into_bytes()), 400),
        case(Method::POST, "/api/webhooks", Some("{\"a\":".repeat(10_000).into_bytes()), 400),
        case(Method::POST, "/api/events", Some("[".repeat(10_000).into_bytes()), 400),
        case(Method::POST, "/api/webhooks", Some(vec![0xff, 0xfe, 0xfd, b'{', b'}']), 400),
        case(Method::POST, "/api/webhooks", Some(b"{\"webhook_name\": \"\xff\xfe\"}".to_vec()), 400),
        case(Method::POST, "/api/webhooks", Some(vec![]), 400),
        case(Method::POST, "/api/webhooks", None, 415),
        case(Method::POST, "/api/webhooks", Some(b"{\"webhook_name\": ".to_vec()), 400),
        case(Method::POST, "/api/webhooks", Some(b"not json at all".to_vec()), 400),
        case(Method::POST, "/api/webhooks", Some(b"{} trailing".to_vec()), 400),
        case(Method::POST, "/api/webhooks", Some(b"\"a string\"".to_vec()), 422),
        case(Method::POST, "/api/webhooks", Some(b"[1,2,3]".to_vec()), 422),
        case(Method::POST, "/api/webhooks", Some(b"null".to_vec()), 422),
        case(Method::PATCH, &*w, Some(b"{\"timeout_ms\": 1e999}".to_vec()), 400),
        case(Method::POST, &*w, j(json!({})), 405),
        case(Method::PUT, "/healthz", j(json!({})), 405),
        case(Method::PATCH, &*w, Some(vec![]), 400),
        case(Method::POST, "/api/events", Some(vec![0xc3, 0x28]), 400),
        case(Method::POST, "/api/webhooks/match", Some(b"{".to_vec()), 400),
        case(Method::POST, "/api/keys", Some(b"{".to_vec()), 400),
        // Too big.
        case(Method::POST, "/api/webhooks", j(with("webhook_name", json!("x".repeat(2 * 1024 * 1024)))), 413),
        case(Method::POST, "/api/webhooks", j(with("webhook_name", json!("x".repeat(1_000_000)))), 422),
        case(Method::POST, "/api/webhooks", j(with("secret", json!("s".repeat(1_000_000)))), 422),
        case(Method::POST, "/api/webhooks", j(with("tenant_id", json!("t".repeat(1_000_000)))), 422),
        case(Method::POST, "/api/webhooks", j(with("event_type", json!("e".repeat(1_000_000)))), 422),
        // null in required fields.
        case(Method::POST, "/api/webhooks", j(with("webhook_name", Value::Null)), 422),
        case(Method::POST, "/api/webhooks", j(with("url", Value::Null)), 422),
        case(Method::POST, "/api/webhooks", j(with("event_type", Value::Null)), 422),
        case(Method::POST, "/api/webhooks", j(with("tenant_id", Value::Null)), 422),
        case(Method::PUT, "/api/webhooks", j(json!({"webhook_id": null, "webhook_name": "x"})), 422),
        case(Method::POST, "/api/webhooks/match", j(json!({"event_type": null, "tenant_id": "t"})), 422),
        case(Method::POST, "/api/events", j(json!({"event": null, "data": {"tenantId": "t"}})), 422),
        case(Method::POST, "/api/keys", j(json!({"tenant_id": "t", "role": null})), 422),
        case(Method::POST, "/api/webhooks/deliveries", j(json!({"webhook_id": id, "event_id": null, "event_type": "a", "status": "success"})), 422),
        // Numbers out of range, overflowing, negative, fractional.
        case(Method::POST, "/api/webhooks", j(with("timeout_ms", json!(u64::MAX))), 422),
        case(Method::POST, "/api/webhooks", j(with("timeout_ms", json!(-1))), 422),
        case(Method::POST, "/api/webhooks", j(with("timeout_ms", json!(1.5))), 422),
        case(Method::POST, "/api/webhooks", j(with("timeout_ms", json!(i64::MAX))), 422),
        case(Method::POST, "/api/webhooks", j(with("timeout_ms", json!(i64::MIN))), 422),
        case(Method::POST, "/api/webhooks", Some(br#"{"webhook_name":"n","tenant_id":"t","event_type":"*","url":"http://93.184.216.34/","timeout_ms":99999999999999999999999}"#.to_vec()), 422),
        case(Method::POST, "/api/webhooks", j(with("retry_config", json!({"maxAttempts": 4294967297u64}))), 422),
        case(Method::POST, "/api/webhooks", j(with("retry_config", json!({"maxAttempts": -5}))), 422),
        case(Method::POST, "/api/webhooks", j(with("retry_config", json!({"maxAttempts": 0}))), 422),
        case(Method::POST, "/api/webhooks", j(with("retry_config", json!({"backoffMs": i64::MAX}))), 422),
        case(Method::POST, "/api/webhooks", j(with("retry_config", json!({"backoffMs": -1}))), 422),
        case(Method::POST, "/api/webhooks", j(with("rate_limit", json!({"perSecond": 4294967296u64}))), 422),
        case(Method::POST, "/api/webhooks", j(with("rate_limit", json!({"perSecond": -1}))), 422),
        case(Method::POST, "/api/webhooks", j(with("rate_limit", json!({"perSecond": 0}))), 422),
        case(Method::POST, "/api/webhooks", j(with("rate_limit", json!({"perSecond": 10, "burst": u64::MAX}))), 422),
        case(Method::POST, "/api/webhooks", j(with("rate_limit", json!({}))), 422),
        case(Method::POST, "/api/webhooks", j(with("circuit_breaker", json!({"failureThreshold": -1}))), 422),
        case(Method::POST, "/api/webhooks", j(with("circuit_breaker", json!({"cooldownMs": 1e300}))), 422),
        case(Method::POST, &*format!("{w}/rotate-secret"), j(json!({"grace_seconds": -1})), 422),
        case(Method::POST, &*format!("{w}/rotate-secret"), j(json!({"grace_seconds": u64::MAX})), 422),
        case(Method::POST, &*format!("{w}/rotate-secret"), j(json!({"grace_seconds": "1"})), 422),
        case(Method::POST, &*format!("{w}/rotate-secret"), j(json!({"secret": "short"})), 422),
        case(Method::POST, &*format!("{w}/rotate-secret"), j(json!({"secret": "has a space in it"})), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a", "data": {"tenantId": "t"}, "ts": i64::MAX})), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a", "data": {"tenantId": "t"}, "ts": i64::MIN})), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a", "data": {"tenantId": "t"}, "ts": u64::MAX})), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a", "data": {"tenantId": "t"}, "ts": -1.5})), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a", "data": {"tenantId": "t"}, "timestamp": "yesterday"})), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a", "data": {"tenantId": "t"}, "timestamp": "+275760-09-13T00:00:00Z"})), 422),
        case(Method::POST, "/api/webhooks/deliveries", j(json!({"webhook_id": id, "event_id": "e", "event_type": "a", "status": "success", "status_code": u64::MAX})), 422),
        case(Method::POST, "/api/webhooks/deliveries", j(json!({"webhook_id": id, "event_id": "e", "event_type": "a", "status": "success", "attempt_number": -1})), 422),
        case(Method::POST, "/api/webhooks/deliveries", j(json!({"webhook_id": -1, "event_id": "e", "event_type": "a", "status": "success"})), 422),
        case(Method::POST, "/api/webhooks/deliveries", j(json!({"webhook_id": id, "event_id": "e", "event_type": "a", "status": "exploded"})), 422),
        // Unicode and control characters where ids and names go.
        case(Method::POST, "/api/webhooks", j(with("tenant_id", json!("ténant"))), 422),
        case(Method::POST, "/api/webhooks", j(with("tenant_id", json!("t\u{0}"))), 422),
        case(Method::POST, "/api/webhooks", j(with("tenant_id", json!("👾"))), 422),
        case(Method::POST, "/api/webhooks", j(with("event_type", json!("claim/öffnen"))), 422),
        case(Method::POST, "/api/webhooks", j(with("event_type", json!("a\u{202e}b"))), 422),
        case(Method::POST, "/api/webhooks", j(with("webhook_name", json!(" "))), 422),
        case(Method::POST, "/api/webhooks", j(with("webhook_name", json!(""))), 422),
        case(Method::POST, "/api/webhooks", j(with("headers", json!({"X-Ok": "line\r\nInjected: yes"}))), 422),
        case(Method::POST, "/api/webhooks", j(with("headers", json!({"Bad Name": "v"}))), 422),
        case(Method::POST, "/api/webhooks", j(with("headers", json!({"X-Ünïcode": "v"}))), 422),
        case(Method::POST, "/api/webhooks", j(with("headers", json!({"Host": "evil.example"}))), 422),
        case(Method::POST, "/api/webhooks", j(with("headers", json!({"X-Beema-Signature": "forged"}))), 422),
        case(Method::POST, "/api/webhooks", j(with("headers", json!({"webhook-signature": "forged"}))), 422),
        case(Method::POST, "/api/webhooks", j(with("secret", json!("new\u{0}line-secret"))), 422),
        case(Method::POST, "/api/events", j(json!({"event": "ev\u{0}il", "data": {"tenantId": "t"}})), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a", "data": {"tenantId": "t\u{0}"}})), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a", "data": {"tenantId": "t"}, "id": ""})), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a", "data": {"tenantId": "t"}, "id": "x".repeat(300)})), 422),
        case(Method::POST, "/api/keys", j(json!({"tenant_id": "t", "role": "admin", "name": ""})), 422),
        case(Method::POST, "/api/keys", j(json!({"tenant_id": "t", "role": "ADMIN"})), 422),
        // Batches.
        case(Method::POST, "/api/events", j(Value::Array(vec![json!({"event": "a", "data": {"tenantId": "t"}}); 1001])), 422),
        case(Method::POST, "/api/events", j(json!([])), 422),
        case(Method::POST, "/api/events", j(json!([{"event": "a", "data": {"tenantId": "t"}}, 5])), 422),
        case(Method::POST, "/api/events", j(json!([{"event": "a", "data": {"tenantId": "t"}}, null])), 422),
        case(Method::POST, "/api/events", j(json!([[{"event": "a", "data": {"tenantId": "t"}}]])), 422),
        case(Method::POST, "/api/events", j(json!("claim/opened")), 422),
        case(Method::POST, "/api/events", j(json!(42)), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a", "data": [1, 2]})), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a", "data": {"tenantId": 7}})), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a", "data": {"tenantId": "t"}, "user": "root"})), 422),
        case(Method::POST, "/api/events", j(json!({"event": "a"})), 422),
        // Path garbage.
        case(Method::GET, "/api/webhooks/%00", None, 400),
        case(Method::GET, "/api/webhooks/99999999999999999999999", None, 400),
        case(Method::GET, "/api/webhooks/-1", None, 400),
        case(Method::GET, "/api/webhooks/0", None, 400),
        case(Method::GET, "/api/webhooks/1.5", None, 400),
        case(Method::GET, "/api/webhooks/0x10", None, 400),
        case(Method::GET, "/api/webhooks/%F0%9F%92%A5", None, 400),
        case(Method::GET, "/api/webhooks/%FF%FE", None, 400),
        case(Method::GET, "/api/webhooks/1%20OR%201=1", None, 400),
        case(Method::GET, "/api/webhooks/'%3B%20DROP%20TABLE%20sys_webhooks%3B--", None, 400),
        case(Method::PUT, "/api/webhooks/%00", j(json!({})), 400),
        case(Method::PATCH, "/api/webhooks/-1", j(json!({})), 400),
        case(Method::DELETE, "/api/webhooks/99999999999999999999999", None, 400),
        case(Method::GET, "/api/webhooks/%00/secret", None, 400),
        case(Method::POST, "/api/webhooks/-1/rotate-secret", None, 400),
        case(Method::POST, "/api/webhooks/abc/test", None, 400),
        case(Method::GET, "/api/webhooks/99999999999999999999999/health", None, 400),
        case(Method::GET, "/api/webhooks/9223372036854775807", None, 404),
        case(Method::GET, "/api/webhooks/deliveries/%00", None, 404).or(400),
        case(Method::GET, "/api/webhooks/deliveries/%F0%9F%92%A5", None, 404),
        case(Method::GET, "/api/webhooks/deliveries/'%20OR%20'1'='1", None, 404),
        case(Method::POST, "/api/webhooks/deliveries/%00/retry", None, 404).or(400),
        case(Method::DELETE, "/api/keys/%00", None, 404).or(400),
        case(Method::DELETE, "/api/keys/'%20OR%201=1--", None, 404),
        case(Method::GET, "/api/%00", None, 404),
        case(Method::GET, "/nope/../../etc/passwd", None, 404),
        // Query garbage.
        case(Method::GET, "/api/webhooks?limit=many", None, 400),
        case(Method::GET, "/api/webhooks?limit=-1", None, 400),
        case(Method::GET, "/api/webhooks?limit=0", None, 400),
        case(Method::GET, "/api/webhooks?limit=1001", None, 400),
        case(Method::GET, "/api/webhooks?limit=99999999999999999999999", None, 400),
        case(Method::GET, "/api/webhooks?after=x", None, 400),
        case(Method::GET, "/api/webhooks?after=%00", None, 400),
        case(Method::GET, "/api/webhooks?enabled=perhaps", None, 400),
        case(Method::GET, "/api/webhooks?enabled=", None, 400),
        case(Method::GET, "/api/webhooks?what=1", None, 400),
        case(Method::GET, "/api/webhooks?%ZZ=%ZZ", None, 400),
        case(Method::GET, "/api/webhooks?tenant_id=bad%20tenant&limit=x", None, 400),
        case(Method::GET, "/api/webhooks/deliveries?status=exploded", None, 400),
        case(Method::GET, "/api/webhooks/deliveries?webhook_id=abc", None, 400),
        case(Method::GET, "/api/webhooks/deliveries?limit=1e3", None, 400),
        case(Method::DELETE, "/api/webhooks?id=abc", None, 400),
        case(Method::DELETE, "/api/webhooks", None, 400),
        case(Method::DELETE, "/api/webhooks?id=99999999999999999999999", None, 400),
        // Wrong types for every webhook field.
        case(Method::POST, "/api/webhooks", Some(b"{}".to_vec()), 422),
        case(Method::POST, "/api/webhooks/match", Some(b"{}".to_vec()), 422),
        case(Method::PUT, "/api/webhooks", j(json!({"webhook_id": "1"})), 422),
        case(Method::PUT, "/api/webhooks", j(json!({"webhook_id": 1.5})), 422),
        case(Method::PUT, "/api/webhooks", j(json!({"webhook_id": 99999999999999999999999.0})), 422),
    ];
    let wrong_types: &[(&str, Value)] = &[
        ("webhook_name", json!(123)),
        ("webhook_name", json!(["a"])),
        ("tenant_id", json!([])),
        ("tenant_id", json!(1)),
        ("event_type", json!({})),
        ("event_type", json!(true)),
        ("url", json!(1)),
        ("url", json!({"href": "http://93.184.216.34/"})),
        ("secret", json!(true)),
        ("secret", json!(12345678901u64)),
        ("enabled", json!("yes")),
        ("enabled", json!(1)),
        ("headers", json!("Authorization: x")),
        ("headers", json!(["a"])),
        ("headers", json!({"X-A": 1})),
        ("headers", json!({"X-A": null})),
        ("headers", json!({"X-A": ["v"]})),
        ("retry_config", json!("fast")),
        ("retry_config", json!({"maxAttempts": "4"})),
        ("retry_config", json!({"backoffMs": [1]})),
        ("rate_limit", json!(5)),
        ("rate_limit", json!({"perSecond": "5"})),
        ("circuit_breaker", json!([])),
        ("circuit_breaker", json!({"failureThreshold": true})),
        ("timeout_ms", json!("100")),
        ("timeout_ms", json!({})),
        ("ordered", json!(1)),
        ("ordered", json!("true")),
        ("created_by", json!(5)),
        ("updated_by", json!({})),
    ];
    for (field, value) in wrong_types {
        cases.push(case(
            Method::POST,
            "/api/webhooks",
            j(with(field, value.clone())),
            422,
        ));
        let mut one = json!({});
        one[*field] = value.clone();
        cases.push(case(Method::PATCH, &*w, j(one.clone()), 422));
        one["webhook_id"] = json!(id);
        cases.push(case(Method::PUT, "/api/webhooks", j(one), 422));
    }
    // Headers: media type and tenancy.
    let mut wrong_ct = case(Method::POST, "/api/webhooks", j(valid_hook()), 415);
    wrong_ct.content_type = "text/plain";
    cases.push(wrong_ct);
    let mut form = case(Method::POST, "/api/events", Some(b"event=a".to_vec()), 415);
    form.content_type = "application/x-www-form-urlencoded";
    form.bearer = Some(EVENT);
    cases.push(form);
    let mut bad_tenant = case(Method::GET, "/api/webhooks", None, 400);
    bad_tenant
        .headers
        .push(("x-tenant-id", b"bad tenant".to_vec()));
    cases.push(bad_tenant);
    let mut binary_tenant = case(Method::GET, "/api/webhooks", None, 400);
    binary_tenant
        .headers
        .push(("x-tenant-id", vec![0xff, 0xfe]));
    cases.push(binary_tenant);
    let mut long_tenant = case(Method::POST, "/api/events", j(json!({"event": "a"})), 400);
    long_tenant.headers.push(("x-tenant-id", vec![b't'; 4000]));
    long_tenant.bearer = Some(EVENT);
    cases.push(long_tenant);
    let mut binary_auth = case(Method::GET, "/api/webhooks", None, 401);
    binary_auth.bearer = None;
    binary_auth
        .headers
        .push(("authorization", b"Bearer \xff\xfe".to_vec()));
    cases.push(binary_auth);
    let mut empty_bearer = case(Method::GET, "/api/webhooks", None, 401);
    empty_bearer.bearer = None;
    empty_bearer
        .headers
        .push(("authorization", b"Bearer ".to_vec()));
    cases.push(empty_bearer);
    let mut binary_key = case(
        Method::POST,
        "/api/events",
        j(json!({"event": "a", "data": {"tenantId": "t"}})),
        401,
    );
    binary_key.bearer = None;
    binary_key
        .headers
        .push(("x-beema-event-key", vec![0xff, 0xfe]));
    cases.push(binary_key);
    let mut huge_key = case(
        Method::POST,
        "/api/events",
        j(json!({"event": "a", "data": {"tenantId": "t"}})),
        401,
    );
    huge_key.bearer = None;
    huge_key.headers.push((
        "authorization",
        format!("Bearer bk_{}", "k".repeat(6000)).into_bytes(),
    ));
    cases.push(huge_key);
    let mut path_key = case(
        Method::POST,
        "/e/%00",
        j(json!({"event": "a", "data": {"tenantId": "t"}})),
        401,
    );
    path_key.bearer = None;
    cases.push(path_key);

    let mut failures = Vec::new();
    for c in &cases {
        let mut r = req(s, c.method.clone(), &c.path, c.bearer);
        for (k, v) in &c.headers {
            r = r.header(*k, reqwest::header::HeaderValue::from_bytes(v).unwrap());
        }
        if let Some(b) = &c.body {
            r = r.header("content-type", c.content_type).body(b.clone());
        }
        let (status, parsed) = s.send(r).await;
        let v: String = parsed.to_string().chars().take(300).collect();
        let body_start: String = c
            .body
            .as_ref()
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(80)]).into_owned())
            .unwrap_or_default();
        let ctx = format!(
            "{} {} {body_start}",
            c.method,
            &c.path[..c.path.len().min(120)]
        );
        if status >= 500 {
            failures.push(format!("{ctx}: 5xx {status} {v}"));
        } else if status != c.status && Some(status) != c.or {
            failures.push(format!("{ctx}: expected {} got {status} {v}", c.status));
        } else if !(parsed["error"]["code"].is_string() && parsed["error"]["message"].is_string()) {
            failures.push(format!("{ctx}: not the error shape: {v}"));
        } else if status == 422 && !parsed["error"]["field"].is_string() {
            failures.push(format!("{ctx}: 422 without a field: {v}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile requests misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Still alive and unchanged.
    let (st, v) = s.get("/healthz").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("ok")));
    let (st, _) = s.get("/readyz").await;
    assert_eq!(st, 200);
    let (st, v) = call(s, Method::GET, &w, Some(ADMIN), &[], None).await;
    assert_eq!(st, 200);
    assert_eq!(v["webhook_name"], hook["webhook_name"]);
    assert_eq!(v["timeout_ms"], hook["timeout_ms"]);
    let (_, list) = call(s, Method::GET, "/api/webhooks", Some(ADMIN), &[], None).await;
    assert_eq!(
        list["webhooks"].as_array().unwrap().len(),
        1,
        "a hostile request created a webhook: {list}"
    );
    let (_, d) = call(
        s,
        Method::GET,
        "/api/webhooks/deliveries",
        Some(ADMIN),
        &[],
        None,
    )
    .await;
    assert_eq!(
        d["deliveries"].as_array().unwrap().len(),
        0,
        "a hostile request stored a delivery: {d}"
    );
    create_hook(s, Some(ADMIN), with("webhook_name", json!("still works"))).await;
}

/// Strings a database may refuse (NUL, lone surrogates escaped, odd Unicode) are either accepted
/// and read back unchanged or refused with a 4xx, never a 5xx, on every backend.
#[tokio::test]
async fn awkward_strings_never_cause_5xx() {
    let env = Env::with(|cfg| {
        cfg.admin_token = Some(ADMIN.into());
        cfg.event_key = Some(EVENT.into());
        cfg.targets.allow_private = false;
    });
    let s = &env.server;
    let hook = create_hook(s, Some(ADMIN), valid_hook()).await;
    let id = hook["webhook_id"].as_i64().unwrap();
    let awkward = [
        "nul\u{0}byte",
        "名前🎉",
        "\u{202e}rtl",
        "tab\there",
        "\u{feff}bom",
        "new\nline",
        "\u{7f}del",
    ];
    let mut failures = Vec::new();
    let mut check = |what: String, (st, v): (u16, Value), expect_back: Option<(&str, &str)>| {
        if st >= 500 || st == 0 {
            failures.push(format!("{what}: {st} {v}"));
        } else if (200..300).contains(&st) {
            if let Some((field, value)) = expect_back {
                if v[field] != value {
                    failures.push(format!("{what}: stored {field} differs: {v}"));
                }
            }
        } else if !v["error"]["code"].is_string() {
            failures.push(format!("{what}: not the error shape {st} {v}"));
        }
    };
    for a in awkward {
        check(
            format!("create name {a:?}"),
            call(
                s,
                Method::POST,
                "/api/webhooks",
                Some(ADMIN),
                &[],
                Some(&with("webhook_name", json!(a))),
            )
            .await,
            Some(("webhook_name", a)),
        );
        check(
            format!("patch name {a:?}"),
            call(
                s,
                Method::PATCH,
                &format!("/api/webhooks/{id}"),
                Some(ADMIN),
                &[],
                Some(&json!({"webhook_name": a})),
            )
            .await,
            Some(("webhook_name", a)),
        );
        check(
            format!("created_by {a:?}"),
            call(
                s,
                Method::POST,
                "/api/webhooks",
                Some(ADMIN),
                &[],
                Some(&with("created_by", json!(a))),
            )
            .await,
            Some(("created_by", a)),
        );
        check(
            format!("updated_by {a:?}"),
            call(
                s,
                Method::PATCH,
                &format!("/api/webhooks/{id}"),
                Some(ADMIN),
                &[],
                Some(&json!({"updated_by": a})),
            )
            .await,
            Some(("updated_by", a)),
        );
        check(
            format!("url {a:?}"),
            call(
                s,
                Method::POST,
                "/api/webhooks",
                Some(ADMIN),
                &[],
                Some(&with("url", json!(format!("http://93.184.216.34/{a}")))),
            )
            .await,
            None,
        );
        check(
            format!("secret {a:?}"),
            call(
                s,
                Method::POST,
                "/api/webhooks",
                Some(ADMIN),
                &[],
                Some(&with("secret", json!(format!("whsec_{a}{a}")))),
            )
            .await,
            None,
        );
        let ev = json!({"event": "a/b", "data": {"tenantId": "t", "text": a, a: a}, "user": {"name": a}, "id": format!("idem-{a}")});
        check(
            format!("event with {a:?}"),
            call(s, Method::POST, "/api/events", Some(EVENT), &[], Some(&ev)).await,
            None,
        );
        let key = json!({"tenant_id": "t", "role": "admin", "name": a});
        check(
            format!("key name {a:?}"),
            call(s, Method::POST, "/api/keys", Some(ADMIN), &[], Some(&key)).await,
            Some(("name", a)),
        );
        let rec = json!({"webhook_id": id, "event_id": format!("evt-{a}"), "event_type": "a/b", "status": "failed", "response_body": a, "error_message": a});
        check(
            format!("record with {a:?}"),
            call(
                s,
                Method::POST,
                "/api/webhooks/deliveries",
                Some(ADMIN),
                &[],
                Some(&rec),
            )
            .await,
            Some(("error_message", a)),
        );
        check(
            format!("event_id query {a:?}"),
            call(
                s,
                Method::GET,
                &format!("/api/webhooks/deliveries?event_id={}", urlencode(a)),
                Some(ADMIN),
                &[],
                None,
            )
            .await,
            None,
        );
        check(
            format!("before query {a:?}"),
            call(
                s,
                Method::GET,
                &format!("/api/webhooks/deliveries?before={}", urlencode(a)),
                Some(ADMIN),
                &[],
                None,
            )
            .await,
            None,
        );
        check(
            format!("event_type query {a:?}"),
            call(
                s,
                Method::GET,
                &format!("/api/webhooks?event_type={}", urlencode(a)),
                Some(ADMIN),
                &[],
                None,
            )
            .await,
            None,
        );
        check(
            format!("delivery path {a:?}"),
            call(
                s,
                Method::GET,
                &format!("/api/webhooks/deliveries/{}", urlencode(a)),
                Some(ADMIN),
                &[],
                None,
            )
            .await,
            None,
        );
    }
    assert!(
        failures.is_empty(),
        "awkward strings misbehaved:\n{}",
        failures.join("\n")
    );
    let (st, _) = s.get("/healthz").await;
    assert_eq!(st, 200);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------
// 7. startup refusal of the real binary

/// Runs the binary with a clean environment; returns (exit success, stderr).
async fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_beema-webhooks"));
    cmd.args(args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("BEEMA_") || k == "DATABASE_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("the binary should exit on bad configuration, not serve")
        .expect("run the binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn assert_one_line_refusal((ok, stderr): (bool, String), must_name: &str, ctx: &str) {
    assert!(!ok, "{ctx}: exited successfully");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{ctx}: expected a one-line reason, got:\n{stderr}"
    );
    assert!(
        lines[0].contains(must_name),
        "{ctx}: `{}` does not name {must_name}",
        lines[0]
    );
}

#[tokio::test]
async fn the_binary_refuses_bad_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());

    // Open admin API / ingest on a public interface.
    let r = run_binary(&["--listen", "0.0.0.0:0", "--database-url", &db], &[]).await;
    assert_one_line_refusal(r, "BEEMA_ADMIN_TOKEN", "no tokens on 0.0.0.0");
    let r = run_binary(
        &["serve", "--listen", "0.0.0.0:0", "--database-url", &db],
        &[("BEEMA_ADMIN_TOKEN", "a")],
    )
    .await;
    assert_one_line_refusal(r, "BEEMA_EVENT_KEY", "no event key on 0.0.0.0");
    let r = run_binary(
        &["--database-url", &db],
        &[("BEEMA_LISTEN", "[::]:0"), ("BEEMA_EVENT_KEY", "e")],
    )
    .await;
    assert_one_line_refusal(r, "BEEMA_ADMIN_TOKEN", "no admin token on [::] via env");
    // An empty token counts as none.
    let r = run_binary(
        &[
            "--listen",
            "0.0.0.0:0",
            "--database-url",
            &db,
            "--admin-token",
            "",
            "--event-key",
            "e",
        ],
        &[],
    )
    .await;
    assert_one_line_refusal(r, "BEEMA_ADMIN_TOKEN", "empty admin token");

    // Unparsable settings.
    let r = run_binary(
        &["--listen", "127.0.0.1:0"],
        &[("DATABASE_URL", "mysql://x")],
    )
    .await;
    assert_one_line_refusal(r, "DATABASE_URL", "mysql URL");
    let r = run_binary(
        &["--listen", "127.0.0.1:0", "--database-url", "sqlite://"],
        &[],
    )
    .await;
    assert_one_line_refusal(r, "DATABASE_URL", "empty sqlite path");
    let r = run_binary(&["--listen", "not-an-address", "--database-url", &db], &[]).await;
    assert_one_line_refusal(r, "BEEMA_LISTEN", "bad listen address");
    let r = run_binary(
        &["--listen", "127.0.0.1:0", "--database-url", &db],
        &[("BEEMA_ALLOWED_TARGET_CIDRS", "10.0.0.0/99")],
    )
    .await;
    assert_one_line_refusal(r, "BEEMA_ALLOWED_TARGET_CIDRS", "bad CIDR");

    // An unreachable database.
    let r = run_binary(
        &[
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
        ],
        &[],
    )
    .await;
    assert_one_line_refusal(r, "beema-webhooks:", "unreachable PostgreSQL");

    // The port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let r = run_binary(&["--listen", &addr, "--database-url", &db], &[]).await;
    assert_one_line_refusal(r, &addr, "port in use");
    drop(taken);
}
