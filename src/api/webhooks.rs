//! `/api/webhooks`: registration CRUD, matching, secrets and test sends (contract §2.1).

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::{json, Value};

use super::auth::{self, Admin};
use super::body::{from_value, path_id, read_json, Query};
use super::error::{ApiError, ApiResult};
use super::webhook_input::{check, required, resolve, MatchInput, RotateInput, WebhookInput};
use super::{validate, AppState};
use crate::db::models::{NewWebhookRow, WebhookChanges};
use crate::db::store::webhooks::{self as store, WebhookFilter};
use crate::delivery::signing::generate_secret;
use crate::delivery::ssrf::{check_url, TargetError};
use crate::domain::{PreviousSecret, Webhook, WebhookView, MAX_PREVIOUS_SECRETS};

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
    st.dispatcher.upsert(Arc::new(w.clone())).await?;
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
    st.dispatcher.upsert(Arc::new(w.clone())).await?;
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
    st.dispatcher.remove(id).await?;
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
    let matches = st.dispatcher.matching(&tenant, &event_type);
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
