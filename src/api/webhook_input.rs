//! Bodies of the webhook API as sent, and how they merge over defaults or the stored webhook
//! into validated settings (the rules in the README, API).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::ToSchema;

use super::body::{object, whole};
use super::error::{ApiError, ApiResult};
use super::validate;
use crate::domain::{BatchSettings, BreakerSettings, RateLimit, RetryConfig, Webhook};
use crate::routing::filter::Filter;

/// Body of create and update; every field optional here, required ones are checked by hand so
/// that `null` and absence behave the same.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct WebhookInput {
    /// Only for `PUT /api/webhooks`.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole")]
    pub webhook_id: Option<i64>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub webhook_name: Option<String>,
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub tenant_id: Option<String>,
    /// An exact event name, `*` or `<prefix>/*`.
    #[schema(pattern = r"^(\*|[A-Za-z0-9_.:/-]{1,254}/\*|[A-Za-z0-9_.:/-]{1,256})$")]
    pub event_type: Option<String>,
    /// Absolute `http`/`https` URL without credentials.
    #[schema(pattern = r"^https?://[^/?#@\s]+")]
    pub url: Option<String>,
    #[schema(
        min_length = 8,
        max_length = 1024,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]+$"
    )]
    pub secret: Option<String>,
    pub enabled: Option<bool>,
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub headers: Option<BTreeMap<String, Value>>,
    #[serde(default, deserialize_with = "object")]
    pub retry_config: Option<RetryInput>,
    /// `null` means unlimited.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<RateLimitInput>)]
    pub rate_limit: Option<Option<RateLimitInput>>,
    #[serde(default, deserialize_with = "object")]
    pub circuit_breaker: Option<BreakerInput>,
    #[schema(minimum = 100, maximum = 120_000)]
    #[serde(default, deserialize_with = "whole")]
    pub timeout_ms: Option<i64>,
    pub ordered: Option<bool>,
    /// A filter on the payload (README, Routing and payloads); `null` on update removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Option<Value>>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    /// A jq program (1–8192 bytes) applied to the body when a delivery is first sent; `null`
    /// removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 8192)]
    pub transform: Option<Option<Value>>,
    /// `null` means one delivery per request.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<BatchInput>)]
    pub batch: Option<Option<BatchInput>>,
}

/// `batch` as sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchInput {
    /// Required.
    #[schema(minimum = 2, maximum = 1000)]
    #[serde(default, deserialize_with = "whole")]
    pub max_events: Option<i64>,
    /// Required.
    #[schema(minimum = 0, maximum = 60_000)]
    #[serde(default, deserialize_with = "whole")]
    pub max_wait_ms: Option<i64>,
}

/// `retry_config` as sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryInput {
    #[schema(minimum = 1, maximum = 50)]
    #[serde(default, deserialize_with = "whole")]
    pub max_attempts: Option<i64>,
    #[schema(minimum = 10, maximum = 3_600_000)]
    #[serde(default, deserialize_with = "whole")]
    pub backoff_ms: Option<i64>,
}

/// `rate_limit` as sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitInput {
    /// Required when `rate_limit` is an object.
    #[schema(minimum = 1, maximum = 100_000)]
    #[serde(default, deserialize_with = "whole")]
    pub per_second: Option<i64>,
    #[schema(minimum = 1, maximum = 100_000)]
    #[serde(default, deserialize_with = "whole")]
    pub burst: Option<i64>,
}

/// `circuit_breaker` as sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakerInput {
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "whole")]
    pub failure_threshold: Option<i64>,
    #[schema(minimum = 10, maximum = 600_000)]
    #[serde(default, deserialize_with = "whole")]
    pub cooldown_ms: Option<i64>,
}

/// Body of `rotate-secret`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RotateInput {
    /// How long the old secret keeps signing (default 86400, at most 604800).
    #[schema(minimum = 0, maximum = 604_800)]
    #[serde(default, deserialize_with = "whole")]
    pub grace_seconds: Option<i64>,
    /// The new secret (generated when absent).
    #[schema(
        min_length = 8,
        max_length = 1024,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]+$"
    )]
    pub secret: Option<String>,
}

/// Body of `match`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MatchInput {
    /// An exact event name, `*` or `<prefix>/*`.
    #[schema(pattern = r"^(\*|[A-Za-z0-9_.:/-]{1,254}/\*|[A-Za-z0-9_.:/-]{1,256})$")]
    pub event_type: Option<String>,
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub tenant_id: Option<String>,
    /// With `data`, filters are evaluated against `{"event", "data", "user", "timestamp": now}`.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// The event's `user`, for filters (with `data`).
    #[schema(value_type = Option<Object>)]
    pub user: Option<Value>,
}

/// Tells an explicit `null` (Some(None)) from an absent field (None), whatever the value's type.
fn nullable<'de, D>(d: D) -> Result<Option<Option<Value>>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<Value>::deserialize(d).map(Some)
}

/// Tells an explicit `null` (Some(None)) from an absent field (None); only an object is a value.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    object(d).map(Some)
}

/// The webhook fields after merging input over defaults or the stored webhook.
pub(super) struct Resolved {
    pub(super) name: String,
    pub(super) event_type: String,
    pub(super) url: String,
    pub(super) enabled: bool,
    pub(super) headers: BTreeMap<String, String>,
    pub(super) retry: RetryConfig,
    pub(super) rate_limit: Option<RateLimit>,
    pub(super) breaker: BreakerSettings,
    pub(super) timeout_ms: u64,
    pub(super) ordered: bool,
    pub(super) filter: Option<Arc<Filter>>,
    pub(super) transform: Option<String>,
    pub(super) batch: Option<BatchSettings>,
}

pub(super) fn required<T>(v: Option<T>, field: &str) -> ApiResult<T> {
    v.ok_or_else(|| ApiError::validation(field, "is required"))
}

pub(super) fn check(field: &str, r: Result<(), String>) -> ApiResult<()> {
    r.map_err(|m| ApiError::validation(field, m))
}

pub(super) fn resolve(input: &WebhookInput, base: Option<&Webhook>) -> ApiResult<Resolved> {
    let name = match (&input.webhook_name, base) {
        (Some(n), _) => n.clone(),
        (None, Some(b)) => b.name.clone(),
        (None, None) => required(None, "webhook_name")?,
    };
    check("webhook_name", validate::webhook_name(&name))?;
    let event_type = match (&input.event_type, base) {
        (Some(e), _) => e.clone(),
        (None, Some(b)) => b.event_type.clone(),
        (None, None) => required(None, "event_type")?,
    };
    check("event_type", validate::event_type(&event_type))?;
    let url = match (&input.url, base) {
        // Stored as the sender will parse it: surrounding whitespace is not part of the URL.
        (Some(u), _) => u.trim().to_string(),
        (None, Some(b)) => b.url.clone(),
        (None, None) => required(None, "url")?,
    };
    let headers = match &input.headers {
        Some(h) => resolve_headers(h)?,
        None => base.map(|b| b.headers.clone()).unwrap_or_default(),
    };
    let retry = resolve_retry(
        input.retry_config.as_ref(),
        base.map(|b| b.retry).unwrap_or_default(),
    )?;
    let rate_limit = match &input.rate_limit {
        Some(Some(r)) => Some(resolve_rate_limit(r)?),
        Some(None) => None,
        None => base.and_then(|b| b.rate_limit),
    };
    let breaker = resolve_breaker(
        input.circuit_breaker.as_ref(),
        base.map(|b| b.breaker).unwrap_or_default(),
    )?;
    let filter = match &input.filter {
        Some(Some(f)) => Some(Arc::new(
            Filter::compile(f.clone()).map_err(|m| ApiError::validation("filter", m))?,
        )),
        Some(None) => None,
        None => base.and_then(|b| b.filter.clone()),
    };
    let timeout_ms = match input.timeout_ms {
        Some(t) => {
            check("timeout_ms", validate::range(t, 100, 120_000))?;
            t as u64
        }
        None => base.map_or(crate::domain::DEFAULT_TIMEOUT_MS, |b| b.timeout_ms),
    };
    Ok(Resolved {
        name,
        event_type,
        url,
        enabled: input.enabled.or(base.map(|b| b.enabled)).unwrap_or(true),
        headers,
        retry,
        rate_limit,
        breaker,
        timeout_ms,
        ordered: input.ordered.or(base.map(|b| b.ordered)).unwrap_or(false),
        filter,
        transform: resolve_transform(input.transform.as_ref(), base)?,
        batch: match &input.batch {
            Some(Some(b)) => Some(resolve_batch(b)?),
            Some(None) => None,
            None => base.and_then(|b| b.batch),
        },
    })
}

fn resolve_headers(h: &BTreeMap<String, Value>) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in h {
        let field = format!("headers.{k}");
        let Value::String(s) = v else {
            return Err(ApiError::validation(field, "header values must be strings"));
        };
        check(&field, validate::header(k, s))?;
        out.insert(k.clone(), s.clone());
    }
    Ok(out)
}

fn resolve_retry(input: Option<&RetryInput>, base: RetryConfig) -> ApiResult<RetryConfig> {
    let Some(r) = input else { return Ok(base) };
    let max = r.max_attempts.unwrap_or(i64::from(base.max_attempts));
    check("retry_config.maxAttempts", validate::range(max, 1, 50))?;
    let backoff = r.backoff_ms.unwrap_or(base.backoff_ms as i64);
    check(
        "retry_config.backoffMs",
        validate::range(backoff, 10, 3_600_000),
    )?;
    Ok(RetryConfig {
        max_attempts: max as u32,
        backoff_ms: backoff as u64,
    })
}

fn resolve_rate_limit(r: &RateLimitInput) -> ApiResult<RateLimit> {
    let per_second = required(r.per_second, "rate_limit.perSecond")?;
    check(
        "rate_limit.perSecond",
        validate::range(per_second, 1, 100_000),
    )?;
    let burst = r.burst.unwrap_or(per_second);
    check("rate_limit.burst", validate::range(burst, 1, 100_000))?;
    Ok(RateLimit {
        per_second: per_second as u32,
        burst: burst as u32,
    })
}

fn resolve_breaker(
    input: Option<&BreakerInput>,
    base: BreakerSettings,
) -> ApiResult<BreakerSettings> {
    let Some(b) = input else { return Ok(base) };
    let threshold = b
        .failure_threshold
        .unwrap_or(i64::from(base.failure_threshold));
    check(
        "circuit_breaker.failureThreshold",
        validate::range(threshold, 1, 1000),
    )?;
    let cooldown = b.cooldown_ms.unwrap_or(base.cooldown_ms as i64);
    check(
        "circuit_breaker.cooldownMs",
        validate::range(cooldown, 10, 600_000),
    )?;
    Ok(BreakerSettings {
        failure_threshold: threshold as u32,
        cooldown_ms: cooldown as u64,
    })
}

fn resolve_transform(
    input: Option<&Option<Value>>,
    base: Option<&Webhook>,
) -> ApiResult<Option<String>> {
    match input {
        None => Ok(base.and_then(|b| b.transform.clone())),
        Some(None) => Ok(None),
        Some(Some(Value::String(code))) => {
            check("transform", crate::transform::check_program(code))?;
            Ok(Some(code.clone()))
        }
        Some(Some(_)) => Err(ApiError::validation(
            "transform",
            "must be a string or null",
        )),
    }
}

fn resolve_batch(b: &BatchInput) -> ApiResult<BatchSettings> {
    let max_events = required(b.max_events, "batch.maxEvents")?;
    check("batch.maxEvents", validate::range(max_events, 2, 1000))?;
    let max_wait = required(b.max_wait_ms, "batch.maxWaitMs")?;
    check("batch.maxWaitMs", validate::range(max_wait, 0, 60_000))?;
    Ok(BatchSettings {
        max_events: max_events as u32,
        max_wait_ms: max_wait as u64,
    })
}
