//! Hostile input: malformed, oversized, wrongly typed and odd requests get a 4xx in the error
//! shape (never a 5xx), change nothing, and the server stays up.

use reqwest::Method;
use serde_json::{json, Value};

use super::{create_hook, guarded_env, id_of, ADMIN, EVENT};

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

/// The hostile requests in named groups; a case is named by its group and position in it.
fn hostile_cases(id: i64) -> Vec<(&'static str, Vec<Case>)> {
    let w = format!("/api/webhooks/{id}");
    vec![
        ("malformed body", vec![
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
        ]),
        ("too big", vec![
            case(Method::POST, "/api/webhooks", j(with("webhook_name", json!("x".repeat(2 * 1024 * 1024)))), 413),
            case(Method::POST, "/api/webhooks", j(with("webhook_name", json!("x".repeat(1_000_000)))), 422),
            case(Method::POST, "/api/webhooks", j(with("secret", json!("s".repeat(1_000_000)))), 422),
            case(Method::POST, "/api/webhooks", j(with("tenant_id", json!("t".repeat(1_000_000)))), 422),
            case(Method::POST, "/api/webhooks", j(with("event_type", json!("e".repeat(1_000_000)))), 422),
        ]),
        ("null in a required field", vec![
            case(Method::POST, "/api/webhooks", j(with("webhook_name", Value::Null)), 422),
            case(Method::POST, "/api/webhooks", j(with("url", Value::Null)), 422),
            case(Method::POST, "/api/webhooks", j(with("event_type", Value::Null)), 422),
            case(Method::POST, "/api/webhooks", j(with("tenant_id", Value::Null)), 422),
            case(Method::PUT, "/api/webhooks", j(json!({"webhook_id": null, "webhook_name": "x"})), 422),
            case(Method::POST, "/api/webhooks/match", j(json!({"event_type": null, "tenant_id": "t"})), 422),
            case(Method::POST, "/api/events", j(json!({"event": null, "data": {"tenantId": "t"}})), 422),
            case(Method::POST, "/api/keys", j(json!({"tenant_id": "t", "role": null})), 422),
            case(Method::POST, "/api/webhooks/deliveries", j(json!({"webhook_id": id, "event_id": null, "event_type": "a", "status": "success"})), 422),
        ]),
        ("number out of range", vec![
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
        ]),
        ("unicode or control character", vec![
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
        ]),
        ("batch", vec![
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
        ]),
        ("path garbage", vec![
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
        ]),
        ("query garbage", vec![
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
        ]),
        ("wrong type", wrong_type_cases(id, &w)),
        ("header", header_cases()),
    ]
}

/// Every webhook field with values of the wrong type, on create, PATCH and PUT.
fn wrong_type_cases(id: i64, w: &str) -> Vec<Case> {
    let mut cases = vec![
        case(Method::POST, "/api/webhooks", Some(b"{}".to_vec()), 422),
        case(
            Method::POST,
            "/api/webhooks/match",
            Some(b"{}".to_vec()),
            422,
        ),
        case(
            Method::PUT,
            "/api/webhooks",
            j(json!({"webhook_id": "1"})),
            422,
        ),
        case(
            Method::PUT,
            "/api/webhooks",
            j(json!({"webhook_id": 1.5})),
            422,
        ),
        case(
            Method::PUT,
            "/api/webhooks",
            j(json!({"webhook_id": 99999999999999999999999.0})),
            422,
        ),
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
        cases.push(case(Method::PATCH, w, j(one.clone()), 422));
        one["webhook_id"] = json!(id);
        cases.push(case(Method::PUT, "/api/webhooks", j(one), 422));
    }
    cases
}

/// Media types, tenancy and credential headers that are wrong or hostile.
fn header_cases() -> Vec<Case> {
    let mut cases = Vec::new();
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

    cases
}

#[tokio::test]
async fn hostile_input_gets_4xx_and_the_server_survives() {
    let env = guarded_env();
    let s = &env.server;
    let hook = create_hook(s, Some(ADMIN), valid_hook()).await;
    let id = id_of(&hook);

    let mut failures = Vec::new();
    let mut count = 0;
    for (group, cases) in hostile_cases(id) {
        for (i, c) in cases.iter().enumerate() {
            count += 1;
            let name = format!("{group} #{}", i + 1);
            if let Some(failure) = misbehaviour(s, c).await {
                failures.push(format!("{name}: {failure}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} hostile requests misbehaved:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Still alive and unchanged.
    let (st, v) = s.get("/healthz").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("ok")));
    let (st, _) = s.get("/readyz").await;
    assert_eq!(st, 200);
    let w = format!("/api/webhooks/{id}");
    let (st, v) = s.call_as(Method::GET, &w, Some(ADMIN), &[], None).await;
    assert_eq!(st, 200);
    assert_eq!(v["webhook_name"], hook["webhook_name"]);
    assert_eq!(v["timeout_ms"], hook["timeout_ms"]);
    let (_, list) = s
        .call_as(Method::GET, "/api/webhooks", Some(ADMIN), &[], None)
        .await;
    assert_eq!(
        list["webhooks"].as_array().unwrap().len(),
        1,
        "a hostile request created a webhook: {list}"
    );
    let (_, d) = s
        .call_as(
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

/// Sends one hostile request; says how the answer breaks the rules (a 5xx, an unexpected
/// status, not the error shape, a 422 without a field), or `None` when it keeps them.
async fn misbehaviour(s: &crate::utils::TestServer, c: &Case) -> Option<String> {
    let mut r = s.request_as(c.method.clone(), &c.path, c.bearer);
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
        Some(format!("{ctx}: 5xx {status} {v}"))
    } else if status != c.status && Some(status) != c.or {
        Some(format!("{ctx}: expected {} got {status} {v}", c.status))
    } else if !(parsed["error"]["code"].is_string() && parsed["error"]["message"].is_string()) {
        Some(format!("{ctx}: not the error shape: {v}"))
    } else if status == 422 && !parsed["error"]["field"].is_string() {
        Some(format!("{ctx}: 422 without a field: {v}"))
    } else {
        None
    }
}

/// Strings a database may refuse (NUL, lone surrogates escaped, odd Unicode) are either accepted
/// and read back unchanged or refused with a 4xx, never a 5xx, on every backend.
#[tokio::test]
async fn awkward_strings_never_cause_5xx() {
    let env = guarded_env();
    let s = &env.server;
    let hook = create_hook(s, Some(ADMIN), valid_hook()).await;
    let id = id_of(&hook);
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
            s.call_as(
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
            s.call_as(
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
            s.call_as(
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
            s.call_as(
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
            s.call_as(
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
            s.call_as(
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
            s.call_as(Method::POST, "/api/events", Some(EVENT), &[], Some(&ev))
                .await,
            None,
        );
        let key = json!({"tenant_id": "t", "role": "admin", "name": a});
        check(
            format!("key name {a:?}"),
            s.call_as(Method::POST, "/api/keys", Some(ADMIN), &[], Some(&key))
                .await,
            Some(("name", a)),
        );
        let rec = json!({"webhook_id": id, "event_id": format!("evt-{a}"), "event_type": "a/b", "status": "failed", "response_body": a, "error_message": a});
        check(
            format!("record with {a:?}"),
            s.call_as(
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
            s.call_as(
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
            s.call_as(
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
            s.call_as(
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
            s.call_as(
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
