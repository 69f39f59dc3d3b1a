//! Checks on answers that many test modules share: the error shape and the delivery log.

use std::fmt::Display;

use serde_json::Value;

use super::TestServer;

/// Asserts an error answer: `status`, the contract's error shape (`code`, a non-empty `message`,
/// a `field` key, `null` when no field is at fault) and, when given, the `code` and `field`.
/// `ctx` names the request in the failure message. Returns the error object.
#[track_caller]
pub fn assert_error(
    (got_status, body): (u16, &Value),
    status: u16,
    code: Option<&str>,
    field: Option<&str>,
    ctx: impl Display,
) -> Value {
    assert_eq!(got_status, status, "{ctx}: {body}");
    let e = &body["error"];
    assert!(
        e["code"].is_string() && e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{ctx}: not the error shape: {body}"
    );
    assert!(
        e.as_object().is_some_and(|o| o.contains_key("field")),
        "{ctx}: the error has no field key: {body}"
    );
    if let Some(code) = code {
        assert_eq!(e["code"], code, "{ctx}: {body}");
    }
    if let Some(field) = field {
        assert_eq!(e["field"], field, "{ctx}: {body}");
    }
    e.clone()
}

/// The deliveries of a webhook (at most 1000), newest first, as `bearer` (or the server's own
/// token) sees them.
pub async fn deliveries_of(s: &TestServer, bearer: Option<&str>, webhook_id: i64) -> Vec<Value> {
    let mut req = s.request(
        reqwest::Method::GET,
        &format!("/api/webhooks/deliveries?webhook_id={webhook_id}&limit=1000"),
    );
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let (status, v) = s.send(req).await;
    assert_eq!(status, 200, "deliveries of {webhook_id}: {v}");
    v["deliveries"].as_array().cloned().unwrap_or_default()
}
