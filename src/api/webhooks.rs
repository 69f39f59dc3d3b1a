//! `/api/webhooks`: registration CRUD, matching, secrets and test sends (contract §2.1).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::{self, Admin};
use super::body::{from_value, object, path_id, read_json, whole, Query};
use super::error::{ApiError, ApiResult};
use super::{validate, AppState};
use crate::actors::messages::{Remove, Upsert};
use crate::db::models::{NewWebhookRow, WebhookChanges};
use crate::db::store::webhooks::{self as store, WebhookFilter};
use crate::delivery::signing::generate_secret;
use crate::delivery::ssrf::{check_url, TargetError};
use crate::domain::{
    BreakerSettings, PreviousSecret, RateLimit, RetryConfig, Webhook, WebhookView,
    MAX_PREVIOUS_SECRETS,
};

/// Routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/webhooks")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .route(web::put().to(update_by_body))
            .route(web::delete().to(delete_by_query)),
    )
    .service(web::resource("/api/webhooks/match").route(web::post().to(match_event)))
    .service(
        web::resource("/api/webhooks/{id}")
            .route(web::get().to(get))
            .route(web::put().to(update_by_path))
            .route(web::patch().to(update_by_path))
            .route(web::delete().to(delete_by_path)),
    )
    .service(web::resource("/api/webhooks/{id}/rotate-secret").route(web::post().to(rotate_secret)))
    .service(web::resource("/api/webhooks/{id}/secret").route(web::get().to(get_secret)))
    .service(web::resource("/api/webhooks/{id}/test").route(web::post().to(test_send)));
}

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
    /// An exact event name or `*`.
    #[schema(pattern = r"^(\*|[A-Za-z0-9_.:/-]{1,256})$")]
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
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
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
    #[schema(pattern = r"^(\*|[A-Za-z0-9_.:/-]{1,256})$")]
    pub event_type: Option<String>,
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub tenant_id: Option<String>,
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
struct Resolved {
    name: String,
    event_type: String,
    url: String,
    enabled: bool,
    headers: BTreeMap<String, String>,
    retry: RetryConfig,
    rate_limit: Option<RateLimit>,
    breaker: BreakerSettings,
    timeout_ms: u64,
    ordered: bool,
}

fn required<T>(v: Option<T>, field: &str) -> ApiResult<T> {
    v.ok_or_else(|| ApiError::validation(field, "is required"))
}

fn check(field: &str, r: Result<(), String>) -> ApiResult<()> {
    r.map_err(|m| ApiError::validation(field, m))
}

fn resolve(input: &WebhookInput, base: Option<&Webhook>) -> ApiResult<Resolved> {
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
    let timeout_ms = match input.timeout_ms {
        Some(t) => {
            check("timeout_ms", validate::range(t, 100, 120_000))?;
            t as u64
        }
        None => base.map_or(30_000, |b| b.timeout_ms),
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

/// Checks a target URL at create/update. A host that does not resolve (yet) is accepted: DNS may
/// be down or the record not published, and the HTTP client's resolver checks every address at
/// connect time anyway.
async fn check_target(st: &AppState, url: &str) -> ApiResult<()> {
    match check_url(&st.config.targets, url).await {
        Ok(_) | Err(TargetError::Unresolvable(_)) => Ok(()),
        Err(e) => Err(ApiError::validation("url", e.to_string())),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Loads a webhook the caller may touch (404 unknown, 403 another tenant's).
pub async fn load_owned(st: &AppState, admin: &Admin, id: i64) -> ApiResult<Webhook> {
    let mut conn = st.db.read().await?;
    let row = store::find_webhook(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")))?;
    let w = Webhook::from_row(row, &st.cipher)?;
    admin.check_tenant(&w.tenant_id)?;
    Ok(w)
}

async fn create(
    req: HttpRequest,
    st: web::Data<AppState>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let input: WebhookInput = from_value(
        read_json(&req, payload, st.config.max_body_bytes).await?,
        "",
    )?;
    let tenant = match (&input.tenant_id, &admin.tenant) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => {
            return Err(ApiError::validation(
                "tenant_id",
                "is required (or send X-Tenant-ID)",
            ))
        }
    };
    check("tenant_id", validate::tenant_id(&tenant))?;
    admin.check_tenant(&tenant)?;
    let r = resolve(&input, None)?;
    let secret = match &input.secret {
        Some(s) => {
            check("secret", validate::secret(s))?;
            s.clone()
        }
        None => generate_secret(),
    };
    check_target(&st, &r.url).await?;
    let now = Utc::now().naive_utc();
    let row = NewWebhookRow {
        webhook_name: r.name,
        tenant_id: tenant,
        event_type: r.event_type,
        url: r.url,
        secret: st.cipher.seal(&secret),
        enabled: r.enabled,
        headers: to_json(&r.headers),
        retry_config: to_json(&r.retry),
        rate_limit: r.rate_limit.map(|x| to_json(&x)),
        circuit_breaker: to_json(&r.breaker),
        timeout_ms: r.timeout_ms as i64,
        ordered: r.ordered,
        disabled_reason: None,
        previous_secrets: json!([]),
        created_at: now,
        updated_at: now,
        created_by: input.created_by.clone().or(Some(admin.name.clone())),
        updated_by: input.updated_by.clone().or(Some(admin.name.clone())),
    };
    let mut conn = st.db.write().await?;
    let stored = store::insert_webhook(&mut conn, &row).await?;
    drop(conn);
    let w = Webhook::from_row(stored, &st.cipher)?;
    st.actors
        .router
        .send(Upsert(Arc::new(w.clone())))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(HttpResponse::Created().json(WebhookView::new(&w, true)))
}

async fn list(req: HttpRequest, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let q = Query::parse(
        &req,
        &["event_type", "enabled", "limit", "after", "tenant_id"],
    )?;
    let tenant = match (q.str("tenant_id"), &admin.tenant) {
        (Some(t), _) => {
            validate::tenant_id(t).map_err(|m| ApiError::bad_param("tenant_id", m))?;
            admin.check_tenant(t)?;
            Some(t.to_string())
        }
        (None, t) => t.clone(),
    };
    let limit = q.limit()?;
    let filter = WebhookFilter {
        tenant_id: tenant,
        event_type: q.str("event_type").map(str::to_string),
        enabled: q.bool("enabled")?,
        after: q.int("after")?,
        // One more than the page tells whether another page follows, so that a full last page
        // still answers `next_after: null` (§4).
        limit: limit + 1,
    };
    let mut conn = st.db.read().await?;
    let mut rows = store::list_webhooks(&mut conn, &filter).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_after = if more {
        rows.last().map(|r| r.webhook_id)
    } else {
        None
    };
    let views = rows
        .into_iter()
        .map(|r| Webhook::from_row(r, &st.cipher).map(|w| WebhookView::new(&w, false)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(json!({ "webhooks": views, "next_after": next_after })))
}

async fn get(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let w = load_owned(&st, &admin, path_id(&id, "id")?).await?;
    Ok(HttpResponse::Ok().json(WebhookView::new(&w, false)))
}

async fn update_by_path(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let id = path_id(&id, "id")?;
    let input: WebhookInput = from_value(
        read_json(&req, payload, st.config.max_body_bytes).await?,
        "",
    )?;
    update(&st, &admin, id, input).await
}

async fn update_by_body(
    req: HttpRequest,
    st: web::Data<AppState>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let input: WebhookInput = from_value(
        read_json(&req, payload, st.config.max_body_bytes).await?,
        "",
    )?;
    let id = required(input.webhook_id, "webhook_id")?;
    update(&st, &admin, id, input).await
}

async fn update(
    st: &AppState,
    admin: &Admin,
    id: i64,
    input: WebhookInput,
) -> ApiResult<HttpResponse> {
    let current = load_owned(st, admin, id).await?;
    if input
        .tenant_id
        .as_deref()
        .is_some_and(|t| t != current.tenant_id)
    {
        return Err(ApiError::validation("tenant_id", "cannot be changed"));
    }
    let r = resolve(&input, Some(&current))?;
    if r.url != current.url {
        check_target(st, &r.url).await?;
    }
    if let Some(s) = &input.secret {
        check("secret", validate::secret(s))?;
    }
    let changes = WebhookChanges {
        webhook_name: Some(r.name),
        event_type: Some(r.event_type),
        url: Some(r.url),
        secret: input.secret.as_deref().map(|s| st.cipher.seal(s)),
        enabled: Some(r.enabled),
        headers: Some(to_json(&r.headers)),
        retry_config: Some(to_json(&r.retry)),
        rate_limit: Some(r.rate_limit.map(|x| to_json(&x))),
        circuit_breaker: Some(to_json(&r.breaker)),
        timeout_ms: Some(r.timeout_ms as i64),
        ordered: Some(r.ordered),
        // Re-enabling clears the reason the dispatcher disabled it for.
        disabled_reason: if r.enabled { Some(None) } else { None },
        previous_secrets: None,
        updated_at: Some(Utc::now().naive_utc()),
        updated_by: Some(input.updated_by.clone().or(Some(admin.name.clone()))),
    };
    let w = save(st, id, &changes).await?;
    Ok(HttpResponse::Ok().json(WebhookView::new(&w, false)))
}

/// Writes changes and tells the router before answering.
async fn save(st: &AppState, id: i64, changes: &WebhookChanges) -> ApiResult<Webhook> {
    let mut conn = st.db.write().await?;
    let row = store::update_webhook(&mut conn, id, changes)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")))?;
    drop(conn);
    let w = Webhook::from_row(row, &st.cipher)?;
    st.actors
        .router
        .send(Upsert(Arc::new(w.clone())))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(w)
}

async fn delete_by_path(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    delete(&st, &admin, path_id(&id, "id")?).await
}

async fn delete_by_query(req: HttpRequest, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let q = Query::parse(&req, &["id"])?;
    let id = q
        .int("id")?
        .ok_or_else(|| ApiError::bad_param("id", "is required"))?;
    delete(&st, &admin, id).await
}

async fn delete(st: &AppState, admin: &Admin, id: i64) -> ApiResult<HttpResponse> {
    load_owned(st, admin, id).await?;
    let mut conn = st.db.write().await?;
    // Cancel in the database first: the actor may still send until the router retires it below,
    // which is before this call returns.
    if !store::delete_webhook(&mut conn, id, Utc::now().naive_utc()).await? {
        return Err(ApiError::not_found(format!("webhook {id} not found")));
    }
    drop(conn);
    st.actors
        .router
        .send(Remove(id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(HttpResponse::NoContent().finish())
}

async fn match_event(
    req: HttpRequest,
    st: web::Data<AppState>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let input: MatchInput = from_value(
        read_json(&req, payload, st.config.max_body_bytes).await?,
        "",
    )?;
    let event_type = required(input.event_type, "event_type")?;
    check("event_type", validate::event_type(&event_type))?;
    let tenant = input
        .tenant_id
        .or(admin.tenant.clone())
        .ok_or_else(|| ApiError::validation("tenant_id", "is required"))?;
    check("tenant_id", validate::tenant_id(&tenant))?;
    admin.check_tenant(&tenant)?;
    let matches = st
        .actors
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .matching(&tenant, &event_type);
    let views: Vec<WebhookView> = matches.iter().map(|w| WebhookView::new(w, false)).collect();
    Ok(HttpResponse::Ok().json(json!({ "webhooks": views })))
}

async fn get_secret(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let w = load_owned(&st, &admin, path_id(&id, "id")?).await?;
    Ok(HttpResponse::Ok().json(json!({ "secret": w.secret })))
}

async fn rotate_secret(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let id = path_id(&id, "id")?;
    let has_body = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v != "0")
        || req.headers().contains_key("transfer-encoding");
    let input: RotateInput = if has_body {
        from_value(
            read_json(&req, payload, st.config.max_body_bytes).await?,
            "",
        )?
    } else {
        RotateInput::default()
    };
    let grace = input.grace_seconds.unwrap_or(86_400);
    check("grace_seconds", validate::range(grace, 0, 604_800))?;
    let new_secret = match input.secret {
        Some(s) => {
            check("secret", validate::secret(&s))?;
            s
        }
        None => generate_secret(),
    };
    let current = load_owned(&st, &admin, id).await?;
    let now = Utc::now();
    let mut previous: Vec<PreviousSecret> = current
        .previous_secrets
        .into_iter()
        .filter(|p| p.expires_at > now)
        .collect();
    if grace > 0 {
        previous.push(PreviousSecret {
            secret: current.secret,
            expires_at: now + chrono::Duration::seconds(grace),
        });
    }
    // The oldest grace ends first; beyond the cap it is dropped.
    previous.sort_by_key(|p| p.expires_at);
    let excess = previous.len().saturating_sub(MAX_PREVIOUS_SECRETS);
    previous.drain(..excess);
    let sealed: Vec<PreviousSecret> = previous
        .iter()
        .map(|p| PreviousSecret {
            secret: st.cipher.seal(&p.secret),
            expires_at: p.expires_at,
        })
        .collect();
    let changes = WebhookChanges {
        secret: Some(st.cipher.seal(&new_secret)),
        previous_secrets: Some(to_json(&sealed)),
        updated_at: Some(now.naive_utc()),
        updated_by: Some(Some(admin.name.clone())),
        ..Default::default()
    };
    let w = save(&st, id, &changes).await?;
    Ok(HttpResponse::Ok().json(WebhookView::new(&w, true)))
}

async fn test_send(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let w = load_owned(&st, &admin, path_id(&id, "id")?).await?;
    let data = json!({ "webhook_id": w.id, "tenantId": w.tenant_id, "message": "test delivery from beema-webhooks" });
    let event = super::events::build_event(
        "webhook/test",
        &w.tenant_id,
        &data,
        &json!({}),
        None,
        Utc::now(),
        Some(w.id),
    );
    let accepted = st
        .intake
        .publish(vec![event])
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let delivery_id = accepted.delivery_ids.first().cloned().unwrap_or_default();
    Ok(HttpResponse::Accepted()
        .json(json!({ "delivery_id": delivery_id, "event_id": accepted.ids.first() })))
}
