//! Authentication: the admin token on every admin route, the event key in each of its forms,
//! and tenant keys (roles, management by the global admin, immediate revocation).

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::{create_hook, create_key, id_of, locked_env, ADMIN, EVENT, WAIT};
use crate::utils::{assert_error, TestReceiver};

/// Every admin route with a body it would accept.
fn admin_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    let dummy = "/api/webhooks/deliveries/00000000-0000-0000-0000-000000000000";
    vec![
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
        (Method::GET, dummy, None),
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
    ]
}

/// A named way of presenting (wrong) credentials: a bearer token and extra headers.
type Credentials = (&'static str, Option<String>, Vec<(&'static str, String)>);

/// Credentials that must never open an admin route.
fn not_admin() -> Vec<Credentials> {
    vec![
        ("without credentials", None, vec![]),
        ("wrong token", Some("wrong".into()), vec![]),
        ("token with a suffix", Some(format!("{ADMIN}x")), vec![]),
        (
            "Basic scheme",
            None,
            vec![("authorization", format!("Basic {ADMIN}"))],
        ),
        ("event key as bearer", Some(EVENT.into()), vec![]),
        (
            "event key header",
            None,
            vec![("x-beema-event-key", EVENT.into())],
        ),
        (
            "made-up tenant key",
            Some("bk_not-a-real-key".into()),
            vec![],
        ),
    ]
}

#[tokio::test]
async fn admin_routes_require_the_admin_token() {
    let env = locked_env();
    let s = &env.server;
    for (method, path, body) in admin_routes() {
        for (name, bearer, headers) in not_admin() {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let got = s
                .call_as(
                    method.clone(),
                    path,
                    bearer.as_deref(),
                    &headers,
                    body.as_ref(),
                )
                .await;
            assert_error(
                (got.0, &got.1),
                401,
                None,
                None,
                format!("{method} {path} {name}"),
            );
        }
    }

    // The admin token works.
    let (st, v) = s
        .call_as(Method::GET, "/api/webhooks", Some(ADMIN), &[], None)
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s
        .call_as(Method::GET, "/api/keys", Some(ADMIN), &[], None)
        .await;
    assert_eq!(st, 200, "{v}");
    let resp = s
        .request_as(Method::GET, "/metrics", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("beema_deliveries_total"));
    let (st, v) = s
        .call_as(Method::GET, "/api/openapi.json", Some(ADMIN), &[], None)
        .await;
    assert_eq!(st, 200);
    assert!(v["openapi"].as_str().unwrap_or("").starts_with('3'), "{v}");

    // Liveness and readiness need nothing.
    let (st, v) = s.call_as(Method::GET, "/healthz", None, &[], None).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("ok")));
    let (st, v) = s.call_as(Method::GET, "/readyz", None, &[], None).await;
    assert_eq!(st, 200, "{v}");
}

#[tokio::test]
async fn publishing_takes_the_event_key_in_every_form() {
    let env = locked_env();
    let s = &env.server;
    let mut rx = TestReceiver::start(200);
    create_hook(s, Some(ADMIN), json!({"webhook_name": "h", "tenant_id": "tenant-1", "event_type": "claim/opened", "url": rx.url})).await;
    let event = json!({"event": "claim/opened", "data": {"tenantId": "tenant-1", "n": 1}});
    let post =
        |path: String, bearer: Option<&'static str>, headers: Vec<(&'static str, &'static str)>| {
            let event = &event;
            async move {
                s.call_as(Method::POST, &path, bearer, &headers, Some(event))
                    .await
            }
        };

    // Authorization: Bearer <event key>
    let (st, v) = post("/api/events".into(), Some(EVENT), vec![]).await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["deliveries"], 1);
    // X-Beema-Event-Key, on both publishing routes.
    for path in ["/api/events", "/api/inngest"] {
        let (st, v) = post(path.into(), None, vec![("x-beema-event-key", EVENT)]).await;
        assert_eq!(st, 202, "{path}: {v}");
    }
    // /e/{key}: the Inngest event API answer.
    let (st, v) = post(format!("/e/{EVENT}"), None, vec![]).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["ids"].as_array().map(Vec::len), Some(1), "{v}");
    for _ in 0..4 {
        rx.expect(WAIT).await;
    }

    // Wrong or missing keys, in every form.
    let suffixed = format!("{EVENT}x");
    for (name, path, bearer, headers) in [
        ("no key", "/api/events", None, vec![]),
        ("wrong bearer", "/api/events", Some("wrong"), vec![]),
        (
            "wrong header",
            "/api/events",
            None,
            vec![("x-beema-event-key", "wrong")],
        ),
        (
            "key with a suffix",
            "/api/events",
            Some(suffixed.as_str()),
            vec![],
        ),
        (
            "made-up tenant key",
            "/api/events",
            Some("bk_made-up"),
            vec![],
        ),
        (
            "wrong bearer on inngest",
            "/api/inngest",
            Some("wrong"),
            vec![],
        ),
        ("wrong key in the path", "/e/wrong", None, vec![]),
        (
            "made-up tenant key in the path",
            "/e/bk_made-up",
            None,
            vec![],
        ),
        (
            "key with a suffix in the path",
            &*format!("/e/{EVENT}x"),
            None,
            vec![],
        ),
    ] {
        let got = s
            .call_as(Method::POST, path, bearer, &headers, Some(&event))
            .await;
        assert_error(
            (got.0, &got.1),
            401,
            None,
            None,
            format!("publish, {name}: {path}"),
        );
    }
    // Nothing was accepted by the refused calls.
    assert!(rx.next(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn tenant_keys_are_shown_once_and_never_listed() {
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
    let akey = admin_key["key"].as_str().unwrap();
    let pkey = pub_key["key"].as_str().unwrap();
    assert_ne!(akey, pkey);

    // Listing shows the keys, never their values.
    let (st, list) = s
        .call_as(Method::GET, "/api/keys", Some(ADMIN), &[], None)
        .await;
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
    assert!(!text.contains(akey) && !text.contains(pkey), "{text}");

    // Validation.
    for (name, body, field) in [
        (
            "unknown role",
            json!({"tenant_id": "t", "role": "root"}),
            "role",
        ),
        (
            "null tenant",
            json!({"tenant_id": null, "role": "admin"}),
            "tenant_id",
        ),
        (
            "bad tenant",
            json!({"tenant_id": "bad tenant", "role": "admin"}),
            "tenant_id",
        ),
    ] {
        let got = s
            .call_as(Method::POST, "/api/keys", Some(ADMIN), &[], Some(&body))
            .await;
        assert_error((got.0, &got.1), 422, None, Some(field), name);
    }

    // Tenant keys cannot manage keys, whatever their role.
    let revoke = format!("/api/keys/{}", admin_key["key_id"].as_str().unwrap());
    let new = json!({"tenant_id": "tenant-a", "role": "admin"});
    for k in [akey, pkey] {
        for (name, method, path, body) in [
            ("tenant key lists keys", Method::GET, "/api/keys", None),
            (
                "tenant key creates a key",
                Method::POST,
                "/api/keys",
                Some(&new),
            ),
            (
                "tenant key revokes a key",
                Method::DELETE,
                revoke.as_str(),
                None,
            ),
        ] {
            let got = s.call_as(method, path, Some(k), &[], body).await;
            assert_error((got.0, &got.1), 403, None, None, name);
        }
    }
}

#[tokio::test]
async fn tenant_keys_act_for_their_tenant_by_role_and_are_revoked_at_once() {
    let env = locked_env();
    let s = &env.server;
    let admin_key = create_key(s, "tenant-a", "admin", "ops").await;
    let pub_key = create_key(s, "tenant-a", "publisher", "kernel").await;
    let akey = admin_key["key"].as_str().unwrap();
    let pkey = pub_key["key"].as_str().unwrap();

    // A publisher key publishes for its tenant, in every form, and is refused on admin routes.
    let mut rx = TestReceiver::start(200);
    let hook = create_hook(
        s,
        Some(akey),
        json!({"webhook_name": "a hook", "event_type": "claim/opened", "url": rx.url}),
    )
    .await;
    assert_eq!(
        hook["tenant_id"], "tenant-a",
        "an admin key creates for its own tenant"
    );
    let hook_id = id_of(&hook);
    let event = json!({"event": "claim/opened", "data": {"tenantId": "tenant-a"}});
    let no_tenant = json!({"event": "claim/opened", "data": {}});
    let (st, v) = s
        .call_as(Method::POST, "/api/events", Some(pkey), &[], Some(&event))
        .await;
    assert_eq!((st, &v["deliveries"]), (202, &json!(1)), "{v}");
    let (st, v) = s
        .call_as(
            Method::POST,
            "/api/events",
            None,
            &[("x-beema-event-key", pkey)],
            Some(&no_tenant),
        )
        .await;
    assert_eq!(
        (st, &v["deliveries"]),
        (202, &json!(1)),
        "a bound key implies its tenant: {v}"
    );
    let (st, v) = s
        .call_as(Method::POST, &format!("/e/{pkey}"), None, &[], Some(&event))
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
        let got = s.call_as(m.clone(), &path, Some(pkey), &[], None).await;
        assert_error(
            (got.0, &got.1),
            403,
            None,
            None,
            format!("publisher key on {m} {path}"),
        );
    }
    let create = json!({"webhook_name": "p", "event_type": "*", "url": rx.url});
    let got = s
        .call_as(
            Method::POST,
            "/api/webhooks",
            Some(pkey),
            &[],
            Some(&create),
        )
        .await;
    assert_error(
        (got.0, &got.1),
        403,
        None,
        None,
        "publisher key creates a webhook",
    );

    // An admin key manages its tenant's webhooks.
    let (st, v) = s
        .call_as(Method::GET, "/api/webhooks", Some(akey), &[], None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["webhooks"].as_array().unwrap().len(), 1);
    let (st, v) = s
        .call_as(
            Method::GET,
            "/api/webhooks",
            Some(akey),
            &[("x-tenant-id", "tenant-a")],
            None,
        )
        .await;
    assert_eq!(st, 200, "its own tenant named explicitly: {v}");
    let rename = json!({"webhook_name": "renamed"});
    let (st, v) = s
        .call_as(
            Method::PATCH,
            &format!("/api/webhooks/{hook_id}"),
            Some(akey),
            &[],
            Some(&rename),
        )
        .await;
    assert_eq!(
        (st, v["webhook_name"].as_str()),
        (200, Some("renamed")),
        "{v}"
    );
    let (st, v) = s
        .call_as(
            Method::GET,
            &format!("/api/webhooks/{hook_id}/secret"),
            Some(akey),
            &[],
            None,
        )
        .await;
    assert_eq!(
        (st, v["secret"].as_str()),
        (200, hook["secret"].as_str()),
        "{v}"
    );
    let (st, v) = s
        .call_as(
            Method::GET,
            "/api/webhooks/deliveries",
            Some(akey),
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
        let (st, v) = s
            .call_as(Method::DELETE, &path, Some(ADMIN), &[], None)
            .await;
        assert_eq!(st, 204, "{v}");
        let got = s
            .call_as(Method::DELETE, &path, Some(ADMIN), &[], None)
            .await;
        assert_error((got.0, &got.1), 404, None, None, "revoking twice");
    }
    let in_path = format!("/e/{pkey}");
    for (name, method, path, bearer, headers, body) in [
        (
            "revoked admin key",
            Method::GET,
            "/api/webhooks",
            Some(akey),
            vec![],
            None,
        ),
        (
            "revoked publisher key",
            Method::POST,
            "/api/events",
            Some(pkey),
            vec![],
            Some(&event),
        ),
        (
            "revoked key in the path",
            Method::POST,
            in_path.as_str(),
            None,
            vec![],
            Some(&event),
        ),
        (
            "revoked key in the header",
            Method::POST,
            "/api/events",
            None,
            vec![("x-beema-event-key", pkey)],
            Some(&event),
        ),
    ] {
        let got = s.call_as(method, path, bearer, &headers, body).await;
        assert_error((got.0, &got.1), 401, None, None, name);
    }
    let got = s
        .call_as(
            Method::DELETE,
            "/api/keys/no-such-key",
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_error((got.0, &got.1), 404, None, None, "unknown key");
    assert!(
        rx.next(Duration::from_millis(300)).await.is_none(),
        "a revoked key published"
    );
}
