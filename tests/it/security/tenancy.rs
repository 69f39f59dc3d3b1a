//! Tenant isolation: a tenant key never reads, changes, publishes into or learns anything of
//! another tenant, by any route, header, query or body.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::{create_hook, create_key, id_of, locked_env, ADMIN, EVENT, QUIET, WAIT};
use crate::utils::{assert_error, deliveries_of, eventually, TestReceiver, TestServer};

const B_SECRET: &str = "whsec_QmVlbWFUZW5hbnRCU2VjcmV0S2V5MTIzNDU2Nzg5MA==";
const B_NAME: &str = "B-PRIVATE-HOOK-NAME";

/// One request tenant A makes: a name for failure messages, then what is sent.
struct Case {
    name: String,
    method: Method,
    path: String,
    bearer: Option<String>,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

fn case(name: impl Into<String>, method: Method, path: impl Into<String>, bearer: &str) -> Case {
    Case {
        name: name.into(),
        method,
        path: path.into(),
        bearer: Some(bearer.to_string()),
        headers: vec![],
        body: None,
    }
}

impl Case {
    fn header(mut self, k: &'static str, v: &str) -> Self {
        self.headers.push((k, v.to_string()));
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    async fn send(&self, s: &TestServer) -> (u16, Value) {
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.call_as(
            self.method.clone(),
            &self.path,
            self.bearer.as_deref(),
            &headers,
            self.body.as_ref(),
        )
        .await
    }
}

fn event_for(tenant: &str) -> Value {
    json!({"event": "claim/opened", "data": {"tenantId": tenant}})
}

/// What tenant B owns, and what of it must never reach A.
struct TenantB {
    rx: TestReceiver,
    key: String,
    hooks: [i64; 2],
    delivery: String,
    event: String,
}

/// Two tenants with one finished delivery each; returns (A's admin key, A's publisher key,
/// A's receiver, A's webhook id, B).
async fn two_tenants(s: &TestServer) -> (String, String, TestReceiver, i64, TenantB) {
    let key = |v: Value| v["key"].as_str().unwrap().to_string();
    let a = key(create_key(s, "tenant-a", "admin", "a-admin").await);
    let a_pub = key(create_key(s, "tenant-a", "publisher", "a-pub").await);
    let b = key(create_key(s, "tenant-b", "admin", "b-admin").await);
    let mut rx_a = TestReceiver::start(200);
    let mut rx_b = TestReceiver::start(200);
    let hook_a = create_hook(
        s,
        Some(&a),
        json!({"webhook_name": "a hook", "event_type": "claim/opened", "url": rx_a.url}),
    )
    .await;
    let hook_b = create_hook(
        s,
        Some(&b),
        json!({"webhook_name": B_NAME, "event_type": "claim/opened", "url": rx_b.url, "secret": B_SECRET, "headers": {"Authorization": "Bearer B-PRIVATE-TOKEN"}}),
    )
    .await;
    assert_eq!(hook_b["tenant_id"], "tenant-b");
    // A second B webhook created by the global admin with tenant_id in the body.
    let hook_b2 = create_hook(s, Some(ADMIN), json!({"webhook_name": B_NAME, "tenant_id": "tenant-b", "event_type": "*", "url": rx_b.url, "secret": B_SECRET})).await;
    let (ida, idb) = (id_of(&hook_a), id_of(&hook_b));

    // One delivery each, finished.
    let (st, pa) = s
        .call_as(
            Method::POST,
            "/api/events",
            Some(EVENT),
            &[],
            Some(&event_for("tenant-a")),
        )
        .await;
    assert_eq!(st, 202, "{pa}");
    let (st, pb) = s
        .call_as(
            Method::POST,
            "/api/events",
            Some(EVENT),
            &[],
            Some(&event_for("tenant-b")),
        )
        .await;
    assert_eq!((st, &pb["deliveries"]), (202, &json!(2)), "{pb}");
    rx_a.expect(WAIT).await;
    rx_b.expect(WAIT).await;
    rx_b.expect(WAIT).await;
    let succeeded = |id: i64| async move {
        let d = deliveries_of(s, Some(ADMIN), id).await;
        d.first()
            .filter(|d| d["status"] == "success")
            .map(|d| d["delivery_id"].as_str().unwrap().to_string())
    };
    let delivery = eventually(WAIT, "B's delivery to succeed", || succeeded(idb)).await;
    eventually(WAIT, "A's delivery to succeed", || succeeded(ida)).await;
    let b = TenantB {
        rx: rx_b,
        key: b,
        hooks: [idb, id_of(&hook_b2)],
        delivery,
        event: pb["ids"][0].as_str().unwrap().to_string(),
    };
    (a, a_pub, rx_a, ida, b)
}

/// Every request by which A might reach B's webhooks, deliveries or events: each must be 403.
fn reaching_for_b(a: &str, a_pub: &str, rx_a: &str, b: &TenantB) -> Vec<Case> {
    let patch = json!({"webhook_name": "pwned", "url": rx_a, "enabled": false});
    let mut cases = Vec::new();
    for id in b.hooks {
        let p = format!("/api/webhooks/{id}");
        let mut by_body = patch.clone();
        by_body["webhook_id"] = json!(id);
        let record = json!({"webhook_id": id, "event_id": "evt-x", "event_type": "claim/opened", "status": "pending"});
        cases.extend([
            case(format!("GET B's webhook {id}"), Method::GET, &p, a),
            case(format!("PUT B's webhook {id}"), Method::PUT, &p, a).body(patch.clone()),
            case(format!("PATCH B's webhook {id}"), Method::PATCH, &p, a).body(patch.clone()),
            case(
                format!("PUT /api/webhooks with B's id {id}"),
                Method::PUT,
                "/api/webhooks",
                a,
            )
            .body(by_body),
            case(format!("DELETE B's webhook {id}"), Method::DELETE, &p, a),
            case(
                format!("DELETE ?id= B's webhook {id}"),
                Method::DELETE,
                format!("/api/webhooks?id={id}"),
                a,
            ),
            case(
                format!("B's secret {id}"),
                Method::GET,
                format!("{p}/secret"),
                a,
            ),
            case(
                format!("rotate B's secret {id}"),
                Method::POST,
                format!("{p}/rotate-secret"),
                a,
            )
            .body(json!({"secret": "whsec_attackerchosen"})),
            case(
                format!("rotate B's secret {id}, no body"),
                Method::POST,
                format!("{p}/rotate-secret"),
                a,
            ),
            case(
                format!("test-send B's webhook {id}"),
                Method::POST,
                format!("{p}/test"),
                a,
            ),
            case(
                format!("B's webhook health {id}"),
                Method::GET,
                format!("{p}/health"),
                a,
            ),
            case(
                format!("record a delivery for B's {id}"),
                Method::POST,
                "/api/webhooks/deliveries",
                a,
            )
            .body(record),
            // Even naming its own tenant in the header does not help.
            case(format!("GET B's webhook {id} naming A"), Method::GET, &p, a)
                .header("x-tenant-id", "tenant-a"),
        ]);
    }
    let d = &b.delivery;
    cases.extend([
        case("match for B", Method::POST, "/api/webhooks/match", a)
            .body(json!({"event_type": "claim/opened", "tenant_id": "tenant-b"})),
        case("match with X-Tenant-ID B", Method::POST, "/api/webhooks/match", a)
            .header("x-tenant-id", "tenant-b")
            .body(json!({"event_type": "claim/opened"})),
        case("list with X-Tenant-ID B", Method::GET, "/api/webhooks", a)
            .header("x-tenant-id", "tenant-b"),
        case("list ?tenant_id=B", Method::GET, "/api/webhooks?tenant_id=tenant-b", a),
        case(
            "deliveries ?tenant_id=B",
            Method::GET,
            "/api/webhooks/deliveries?tenant_id=tenant-b",
            a,
        ),
        case("deliveries X-Tenant-ID B", Method::GET, "/api/webhooks/deliveries", a)
            .header("x-tenant-id", "tenant-b"),
        case("B's delivery", Method::GET, format!("/api/webhooks/deliveries/{d}"), a),
        case(
            "retry B's delivery",
            Method::POST,
            format!("/api/webhooks/deliveries/{d}/retry"),
            a,
        ),
        case("health with X-Tenant-ID B", Method::GET, "/api/health/webhooks", a)
            .header("x-tenant-id", "tenant-b"),
        case("create for B", Method::POST, "/api/webhooks", a).body(
            json!({"webhook_name": "sneaky", "tenant_id": "tenant-b", "event_type": "*", "url": rx_a}),
        ),
        case("create with X-Tenant-ID B", Method::POST, "/api/webhooks", a)
            .header("x-tenant-id", "tenant-b")
            .body(json!({"webhook_name": "sneaky", "event_type": "*", "url": rx_a})),
    ]);
    // Publishing for B with A's keys (publisher and admin), in every form.
    for (who, key) in [("publisher", a_pub), ("admin", a)] {
        let no_tenant = json!({"event": "claim/opened", "data": {}});
        cases.extend([
            case(
                format!("{who}: publish data.tenantId B"),
                Method::POST,
                "/api/events",
                key,
            )
            .body(event_for("tenant-b")),
            case(
                format!("{who}: publish X-Tenant-ID B"),
                Method::POST,
                "/api/events",
                key,
            )
            .header("x-tenant-id", "tenant-b")
            .body(no_tenant),
            case(
                format!("{who}: publish A with X-Tenant-ID B"),
                Method::POST,
                "/api/events",
                key,
            )
            .header("x-tenant-id", "tenant-b")
            .body(event_for("tenant-a")),
            // A batch with one B event is refused whole: A's event is not stored either.
            case(
                format!("{who}: batch with a B event"),
                Method::POST,
                "/api/events",
                key,
            )
            .body(json!([event_for("tenant-a"), event_for("tenant-b")])),
        ]);
        let mut by_header = case(
            format!("{who}: publish via header for B"),
            Method::POST,
            "/api/inngest",
            key,
        )
        .header("x-beema-event-key", key)
        .body(event_for("tenant-b"));
        by_header.bearer = None;
        let mut by_path = case(
            format!("{who}: publish /e/ for B"),
            Method::POST,
            format!("/e/{key}"),
            key,
        )
        .body(event_for("tenant-b"));
        by_path.bearer = None;
        cases.extend([by_header, by_path]);
    }
    cases
}

#[tokio::test]
async fn a_tenant_key_never_reaches_another_tenants_resources() {
    let env = locked_env();
    let s = &env.server;
    let (a, a_pub, mut rx_a, ida, mut b) = two_tenants(s).await;

    // Everything A gets back, checked for B's data at the end.
    let mut seen = Vec::<String>::new();
    for c in reaching_for_b(&a, &a_pub, &rx_a.url, &b) {
        let got = c.send(s).await;
        assert_error((got.0, &got.1), 403, None, None, &c.name);
        seen.push(got.1.to_string());
    }

    // What A may see contains only A.
    let ids = |v: &Value| -> Vec<i64> {
        v["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect()
    };
    let mut ok = |name: &str, got: (u16, Value)| -> Value {
        assert_eq!(got.0, 200, "{name}: {}", got.1);
        seen.push(got.1.to_string());
        got.1
    };
    let list = ok(
        "A's list",
        case("", Method::GET, "/api/webhooks", &a).send(s).await,
    );
    assert_eq!(ids(&list), vec![ida], "{list}");
    let filtered = "/api/webhooks?event_type=claim/opened&limit=1000";
    let list = ok(
        "A's filtered list",
        case("", Method::GET, filtered, &a).send(s).await,
    );
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1, "{list}");
    let m = case("", Method::POST, "/api/webhooks/match", &a)
        .body(json!({"event_type": "claim/opened"}));
    let m = ok("A's match", m.send(s).await);
    assert_eq!(ids(&m), vec![ida], "{m}");
    let d = ok(
        "A's deliveries",
        case("", Method::GET, "/api/webhooks/deliveries", &a)
            .send(s)
            .await,
    );
    let d = d["deliveries"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d.iter()
            .all(|d| d["tenant_id"] == "tenant-a" && d["webhook_id"] == ida),
        "{d:?}"
    );
    let [idb, idb2] = b.hooks;
    for q in [
        format!("webhook_id={idb}"),
        format!("event_id={}", b.event),
        format!("webhook_id={idb2}&status=success"),
    ] {
        let path = format!("/api/webhooks/deliveries?{q}");
        let d = ok(
            "A filters for B",
            case("", Method::GET, path, &a).send(s).await,
        );
        assert_eq!(
            d["deliveries"].as_array().map(Vec::len),
            Some(0),
            "A sees B's deliveries with ?{q}: {d}"
        );
    }
    let h = ok(
        "A's health",
        case("", Method::GET, "/api/health/webhooks", &a)
            .send(s)
            .await,
    );
    assert_eq!(ids(&h), vec![ida], "{h}");

    // Unknown ids are 404 for a tenant key as well.
    let got = case("", Method::GET, "/api/webhooks/999999", &a)
        .send(s)
        .await;
    assert_error((got.0, &got.1), 404, None, None, "unknown webhook");

    // A cannot move its own webhook into B (by any update form).
    for c in [
        case(
            "PATCH moving to B",
            Method::PATCH,
            format!("/api/webhooks/{ida}"),
            &a,
        )
        .body(json!({"tenant_id": "tenant-b"})),
        case(
            "PUT moving to B",
            Method::PUT,
            format!("/api/webhooks/{ida}"),
            &a,
        )
        .body(json!({"tenant_id": "tenant-b"})),
        case("PUT by body moving to B", Method::PUT, "/api/webhooks", &a)
            .body(json!({"webhook_id": ida, "tenant_id": "tenant-b"})),
    ] {
        let (st, v) = c.send(s).await;
        assert!((400..500).contains(&st), "{}: {st} {v}", c.name);
        seen.push(v.to_string());
    }
    let (_, own) = case("", Method::GET, format!("/api/webhooks/{ida}"), &a)
        .send(s)
        .await;
    assert_eq!(own["tenant_id"], "tenant-a", "{own}");

    // Zero leaks: nothing of B's in anything A got back.
    let masked_b = format!("{}…", &B_SECRET[..10]);
    for body in &seen {
        for secret_thing in [
            B_SECRET,
            B_NAME,
            b.rx.url.as_str(),
            "B-PRIVATE-TOKEN",
            masked_b.as_str(),
            b.delivery.as_str(),
            b.event.as_str(),
        ] {
            assert!(
                !body.contains(secret_thing),
                "B's `{secret_thing}` leaked to A in {body}"
            );
        }
    }

    // B's webhooks are untouched, and nothing extra was sent to B or stored for A.
    for id in b.hooks {
        let (st, w) = case("", Method::GET, format!("/api/webhooks/{id}"), &b.key)
            .send(s)
            .await;
        assert_eq!(st, 200, "B's webhook survived: {w}");
        assert_eq!(
            (
                w["webhook_name"].as_str(),
                w["enabled"].as_bool(),
                w["url"].as_str()
            ),
            (Some(B_NAME), Some(true), Some(b.rx.url.as_str()))
        );
        let (_, sec) = case(
            "",
            Method::GET,
            format!("/api/webhooks/{id}/secret"),
            &b.key,
        )
        .send(s)
        .await;
        assert_eq!(sec["secret"], B_SECRET);
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
        b.rx.next(QUIET).await.is_none(),
        "B's receiver got a request A asked for"
    );
    assert!(rx_a.next(Duration::from_millis(100)).await.is_none());
}
