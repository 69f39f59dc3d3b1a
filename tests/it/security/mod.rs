//! Security, one file per area: authentication and tenant keys ([`auth`]), tenant isolation
//! ([`tenancy`]), the SSRF guard ([`url_guard`]), secrets at rest ([`secrets_at_rest`]), hostile
//! input ([`hostile_input`]) and the real binary's startup checks ([`startup`]).

mod auth;
mod hostile_input;
mod secrets_at_rest;
mod startup;
mod tenancy;
mod url_guard;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::utils::{Env, TestServer};

const ADMIN: &str = "admin-token-for-security-tests";
const EVENT: &str = "event-key-for-security-tests";
const SECRET_KEY: &str = "secret-at-rest-key-for-security-tests";
const WAIT: Duration = Duration::from_secs(10);
/// How long a negative check ("nothing arrives") waits.
const QUIET: Duration = Duration::from_secs(2);

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

/// Tokens set and private targets refused, with no exception for the local receivers.
fn guarded_env() -> Env {
    Env::with(|cfg| {
        cfg.admin_token = Some(ADMIN.into());
        cfg.event_key = Some(EVENT.into());
        cfg.targets.allow_private = false;
    })
}

/// Creates a webhook as `bearer`, asserting 201.
async fn create_hook(s: &TestServer, bearer: Option<&str>, body: Value) -> Value {
    let (st, v) = s
        .call_as(Method::POST, "/api/webhooks", bearer, &[], Some(&body))
        .await;
    assert_eq!(st, 201, "create webhook {body}: {v}");
    v
}

/// Creates a tenant API key as the global admin.
async fn create_key(s: &TestServer, tenant: &str, role: &str, name: &str) -> Value {
    let body = json!({"tenant_id": tenant, "role": role, "name": name});
    let (st, v) = s
        .call_as(Method::POST, "/api/keys", Some(ADMIN), &[], Some(&body))
        .await;
    assert_eq!(st, 201, "create key: {v}");
    v
}

/// The id of a created webhook.
fn id_of(hook: &Value) -> i64 {
    hook["webhook_id"].as_i64().expect("webhook_id")
}
