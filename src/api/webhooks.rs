//! `/api/webhooks`: registration CRUD, matching, secrets and test sends (README, API).

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::audit::{webhook_changed, webhook_created, webhook_deleted};
use super::auth::Admin;
use super::body::path_id;
use super::error::{ApiError, ApiResult};
use super::extract::{limit, Json, OptionalJson, Query};
use super::openapi::{op, MatchRequest, Op, WebhookCreate, WebhookUpdate};
use super::views::WebhookView;
use super::webhook_input::{check, required, resolve, MatchInput, RotateInput, WebhookInput};
use super::{validate, AppState};
use crate::db::json::Json as JsonColumn;
use crate::db::models::{NewWebhookRow, WebhookChanges, WebhookRow};
use crate::db::store::webhooks::{self as store, WebhookFilter};
use crate::delivery::signing::generate_secret;
use crate::delivery::ssrf::{check_url, TargetError};
use crate::domain::audit::action;
use crate::domain::{is_plain_http, PreviousSecret, Webhook, MAX_PREVIOUS_SECRETS};

/// Operations of this resource.
pub fn operations() -> Vec<Op> {
    vec![
        op(__path_list, list),
        op(__path_create, create),
        op(__path_update_by_body, update_by_body),
        op(__path_delete_by_query, delete_by_query),
        op(__path_match_event, match_event),
        op(__path_get, get),
        op(__path_update_by_path, update_by_path),
        op(__path_delete_by_path, delete_by_path),
        op(__path_rotate_secret, rotate_secret),
        op(__path_get_secret, get_secret),
        op(__path_test_send, test_send),
    ]
}

/// Query of `GET /api/webhooks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only webhooks of this event type.
    pub event_type: Option<String>,
    /// Only enabled (or only disabled) webhooks.
    pub enabled: Option<bool>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Only ids greater than this (the previous page's `next_after`).
    pub after: Option<i64>,
    /// Only this tenant (the global admin; a tenant key sees its own).
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub tenant_id: Option<String>,
}

/// The `{id}` of a webhook path.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)] // describes the path for the document; the handlers parse it themselves
struct WebhookId(#[param(minimum = 1)] i64);

/// Query of `DELETE /api/webhooks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// The webhook to delete.
    #[param(required = true)]
    pub id: Option<i64>,
}

/// Checks a target URL at create/update. A host that does not resolve (yet) is accepted: DNS may be
/// down or the record not published, and the HTTP client's resolver checks every address at connect
/// time anyway. A resolver that hangs answers 503 after [`DNS_TIMEOUT`] instead of holding the
/// request.
async fn check_target(st: &AppState, url: &str) -> ApiResult<()> {
    let checked = bounded(DNS_TIMEOUT, "the DNS lookup of the url's host", async {
        check_url(&st.config.targets, url).await
    })
    .await?;
    match checked {
        Ok(_) | Err(TargetError::Unresolvable(_)) => Ok(()),
        Err(e) => Err(ApiError::validation("url", e.to_string())),
    }
}

/// `BEEMA_REQUIRE_HTTPS`: an enabled webhook must not be left on `http` (no loopback exception).
fn check_https(st: &AppState, url: &str, enabled: bool) -> ApiResult<()> {
    if st.config.require_https && enabled && is_plain_http(url) {
        return Err(ApiError::validation(
            "url",
            "must be https: this server requires HTTPS (BEEMA_REQUIRE_HTTPS)",
        ));
    }
    Ok(())
}

/// Longest wait for the DNS lookup of a target at create/update.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `fut` for at most `limit`; past it, a 503 naming `what`. Only for futures that are safe
/// to drop half-way (no SQLite query in flight: dropping one on an actix thread panics).
pub async fn bounded<T>(
    limit: Duration,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> ApiResult<T> {
    tokio::time::timeout(limit, fut).await.map_err(|_| {
        ApiError::unavailable(format!(
            "{what} did not answer within {} ms",
            limit.as_millis()
        ))
    })
}

/// Loads a webhook the caller may touch (404 unknown, 403 another tenant's).
pub async fn load_owned(st: &AppState, admin: &Admin, id: i64) -> ApiResult<Webhook> {
    let mut conn = st.db.read().await?;
    let row = store::find_webhook(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")))?;
    let w = row.into_webhook(&st.cipher)?;
    admin.check_tenant(&w.tenant_id)?;
    Ok(w)
}

/// Create a webhook.
#[utoipa::path(post, path = "/api/webhooks", request_body = WebhookCreate,
    responses((status = 201, description = "The webhook, its secret in full", body = WebhookView)))]
async fn create(
    admin: Admin,
    Json(input): Json<WebhookInput>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
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
    if tenant == crate::domain::ops::OPS_TENANT {
        admin.require_global()?;
    }
    let r = resolve(&input, None)?;
    let secret = match &input.secret {
        Some(s) => {
            check("secret", validate::secret(s))?;
            s.clone()
        }
        None => generate_secret(),
    };
    // On create even a disabled webhook: it could only ever be enabled by changing its url.
    check_https(&st, &r.url, true)?;
    check_target(&st, &r.url).await?;
    let now = Utc::now().naive_utc();
    let row = NewWebhookRow {
        webhook_name: r.name,
        tenant_id: tenant,
        event_type: r.event_type,
        url: r.url,
        secret: st.cipher.seal(&secret),
        enabled: r.enabled,
        headers: JsonColumn::new(&r.headers),
        retry_config: JsonColumn::new(&r.retry),
        rate_limit: r.rate_limit.as_ref().map(JsonColumn::new),
        circuit_breaker: JsonColumn::new(&r.breaker),
        timeout_ms: r.timeout_ms as i64,
        ordered: r.ordered,
        disabled_reason: None,
        previous_secrets: JsonColumn::new(&Vec::new()),
        created_at: now,
        updated_at: now,
        created_by: input.created_by.clone().or(Some(admin.name.clone())),
        updated_by: input.updated_by.clone().or(Some(admin.name.clone())),
        filter: r.filter.as_ref().map(|f| JsonColumn::new(f.source())),
        transform: r.transform.clone(),
        batch: r.batch.as_ref().map(JsonColumn::new),
    };
    let (actor, cipher) = (admin.actor(), st.cipher.clone());
    let mut conn = st.db.write().await?;
    let stored = store::insert_webhook_audited(&mut conn, &row, move |stored| {
        webhook_created(actor, stored, &cipher)
    })
    .await?;
    drop(conn);
    let w = stored.into_webhook(&st.cipher)?;
    st.dispatcher.upsert(Arc::new(w.clone())).await?;
    if let Some(cluster) = &st.cluster {
        cluster.kick(); // find it an owner now, not at the next round
    }
    Ok(HttpResponse::Created().json(WebhookView::new(&w, true)))
}

/// List webhooks, in ascending id.
#[utoipa::path(get, path = "/api/webhooks", params(ListQuery),
    responses((status = 200, description = "`{\"webhooks\": [...], \"next_after\": id | null}`")))]
async fn list(
    admin: Admin,
    Query(q): Query<ListQuery>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let tenant = match (q.tenant_id, &admin.tenant) {
        (Some(t), _) => {
            validate::tenant_id(&t).map_err(|m| ApiError::bad_param("tenant_id", m))?;
            admin.check_tenant(&t)?;
            Some(t)
        }
        (None, t) => t.clone(),
    };
    let limit = limit(q.limit)?;
    let filter = WebhookFilter {
        tenant_id: tenant,
        event_type: q.event_type,
        enabled: q.enabled,
        after: q.after,
        // One more than the page tells whether another page follows, so that a full last page
        // still answers `next_after: null` (README, API).
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
        .map(|r| {
            r.into_webhook(&st.cipher)
                .map(|w| WebhookView::new(&w, false))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(json!({ "webhooks": views, "next_after": next_after })))
}

/// One webhook, its secret masked.
#[utoipa::path(get, path = "/api/webhooks/{id}", params(WebhookId),
    responses((status = 200, description = "The webhook", body = WebhookView)))]
async fn get(
    admin: Admin,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let w = load_owned(&st, &admin, path_id(&id, "id")?).await?;
    Ok(HttpResponse::Ok().json(WebhookView::new(&w, false)))
}

/// Update a webhook; omitted fields stay as they are.
#[utoipa::path(method(put, patch), path = "/api/webhooks/{id}", params(WebhookId),
    request_body = WebhookInput,
    responses((status = 200, description = "The webhook", body = WebhookView)))]
async fn update_by_path(
    admin: Admin,
    id: web::Path<String>,
    Json(input): Json<WebhookInput>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id, "id")?;
    update(&st, &admin, id, input).await
}

/// Update the webhook named by `webhook_id` in the body.
#[utoipa::path(put, path = "/api/webhooks", request_body = WebhookUpdate,
    responses((status = 200, description = "The webhook", body = WebhookView)))]
async fn update_by_body(
    admin: Admin,
    Json(input): Json<WebhookInput>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
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
    check_https(st, &r.url, r.enabled)?;
    if r.url != current.url {
        check_target(st, &r.url).await?;
    }
    if let Some(s) = &input.secret {
        check("secret", validate::secret(s))?;
    }
    // Only the fields the caller sent are written: a column nobody mentioned may have changed
    // since `current` was read (a 410 disabling the webhook), and must keep that change.
    let changes = WebhookChanges {
        webhook_name: input.webhook_name.is_some().then_some(r.name),
        event_type: input.event_type.is_some().then_some(r.event_type),
        url: input.url.is_some().then_some(r.url),
        secret: input.secret.as_deref().map(|s| st.cipher.seal(s)),
        enabled: input.enabled,
        headers: input.headers.is_some().then(|| JsonColumn::new(&r.headers)),
        retry_config: input
            .retry_config
            .is_some()
            .then(|| JsonColumn::new(&r.retry)),
        rate_limit: input
            .rate_limit
            .is_some()
            .then(|| r.rate_limit.as_ref().map(JsonColumn::new)),
        circuit_breaker: input
            .circuit_breaker
            .is_some()
            .then(|| JsonColumn::new(&r.breaker)),
        timeout_ms: input.timeout_ms.is_some().then_some(r.timeout_ms as i64),
        ordered: input.ordered,
        // Re-enabling clears the reason the dispatcher disabled it for.
        disabled_reason: (input.enabled == Some(true)).then_some(None),
        previous_secrets: None,
        updated_at: Some(Utc::now().naive_utc()),
        updated_by: Some(input.updated_by.clone().or(Some(admin.name.clone()))),
        filter: input
            .filter
            .is_some()
            .then(|| r.filter.as_ref().map(|f| JsonColumn::new(f.source()))),
        transform: input.transform.is_some().then(|| r.transform.clone()),
        batch: input
            .batch
            .is_some()
            .then(|| r.batch.as_ref().map(JsonColumn::new)),
    };
    let w = save(st, admin, id, changes).await?;
    Ok(HttpResponse::Ok().json(WebhookView::new(&w, false)))
}

/// Writes changes with their audit entry (none when they changed nothing) and tells the router
/// before answering.
async fn save(
    st: &AppState,
    admin: &Admin,
    id: i64,
    changes: WebhookChanges,
) -> ApiResult<Webhook> {
    let (actor, cipher) = (admin.actor(), st.cipher.clone());
    let mut conn = st.db.write().await?;
    let row = store::update_webhook_audited::<ApiError, _, _>(
        &mut conn,
        id,
        move |_| Ok(Some(changes)),
        move |before, after| webhook_changed(actor, None, before, after, &cipher),
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")))?;
    drop(conn);
    publish_change(st, row).await
}

/// Tells the runtime about a stored change before answering.
async fn publish_change(st: &AppState, row: WebhookRow) -> ApiResult<Webhook> {
    let w = row.into_webhook(&st.cipher)?;
    st.dispatcher.upsert(Arc::new(w.clone())).await?;
    Ok(w)
}

/// Delete a webhook; its undelivered deliveries are cancelled.
#[utoipa::path(delete, path = "/api/webhooks/{id}", params(WebhookId),
    responses((status = 204, description = "Deleted")))]
async fn delete_by_path(
    admin: Admin,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    delete(&st, &admin, path_id(&id, "id")?).await
}

/// Delete a webhook named by `?id=N`.
#[utoipa::path(delete, path = "/api/webhooks", params(DeleteQuery),
    responses((status = 204, description = "Deleted")))]
async fn delete_by_query(
    admin: Admin,
    Query(q): Query<DeleteQuery>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id =
        q.id.ok_or_else(|| ApiError::bad_param("id", "is required"))?;
    delete(&st, &admin, id).await
}

async fn delete(st: &AppState, admin: &Admin, id: i64) -> ApiResult<HttpResponse> {
    // The row, not the webhook: one whose settings no longer parse can still be deleted.
    let mut conn = st.db.write().await?;
    let row = store::find_webhook(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")))?;
    admin.check_tenant(&row.tenant_id)?;
    let entry = webhook_deleted(admin.actor(), &row, &st.cipher);
    // Cancel in the database first: the actor may still send until the router retires it below,
    // which is before this call returns.
    if !store::delete_webhook_audited(&mut conn, id, Utc::now().naive_utc(), Some(entry)).await? {
        return Err(ApiError::not_found(format!("webhook {id} not found")));
    }
    drop(conn);
    st.dispatcher.remove(id).await?;
    if let Some(cluster) = &st.cluster {
        // Owned elsewhere: answered once its owner has stopped it (or its lease expired).
        cluster.deleted(id).await;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// The enabled webhooks an event would go to.
#[utoipa::path(post, path = "/api/webhooks/match", request_body = MatchRequest,
    responses((status = 200, description = "`{\"webhooks\": [...]}`")))]
async fn match_event(
    admin: Admin,
    Json(input): Json<MatchInput>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let event_type = required(input.event_type, "event_type")?;
    check("event_type", validate::event_type(&event_type))?;
    let tenant = input
        .tenant_id
        .or(admin.tenant.clone())
        .ok_or_else(|| ApiError::validation("tenant_id", "is required"))?;
    check("tenant_id", validate::tenant_id(&tenant))?;
    admin.check_tenant(&tenant)?;
    let mut matches = st.dispatcher.matching(&tenant, &event_type);
    if let Some(data) = input.data {
        // Without `data`, filters are not evaluated (the caller asks about routing by type only).
        let payload = json!({
            "event": event_type,
            "data": data,
            "user": input.user.unwrap_or(serde_json::Value::Null),
            "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        });
        matches.retain(|w| w.passes(&payload));
    }
    let views: Vec<WebhookView> = matches.iter().map(|w| WebhookView::new(w, false)).collect();
    Ok(HttpResponse::Ok().json(json!({ "webhooks": views })))
}

/// The full signing secret.
#[utoipa::path(get, path = "/api/webhooks/{id}/secret", params(WebhookId),
    responses((status = 200, description = "`{\"secret\": \"whsec_...\"}`")))]
async fn get_secret(
    admin: Admin,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let w = load_owned(&st, &admin, path_id(&id, "id")?).await?;
    Ok(HttpResponse::Ok().json(json!({ "secret": w.secret })))
}

/// Rotate the signing secret; the old one keeps signing beside it for the grace.
#[utoipa::path(post, path = "/api/webhooks/{id}/rotate-secret", params(WebhookId),
    request_body(content = Option<RotateInput>, description = "May be left out"),
    responses((status = 200, description = "The webhook with its new secret", body = WebhookView)))]
async fn rotate_secret(
    admin: Admin,
    id: web::Path<String>,
    OptionalJson(input): OptionalJson<RotateInput>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id, "id")?;
    let input = input.unwrap_or_default();
    let grace = input.grace_seconds.unwrap_or(86_400);
    check("grace_seconds", validate::range(grace, 0, 604_800))?;
    let new_secret = match input.secret {
        Some(s) => {
            check("secret", validate::secret(&s))?;
            s
        }
        None => generate_secret(),
    };
    load_owned(&st, &admin, id).await?;
    let cipher = st.cipher.clone();
    let (actor, audit_cipher) = (admin.actor(), st.cipher.clone());
    let by = admin.name.clone();
    // Read and write under one lock: a concurrent rotation's new secret becomes an old one here
    // instead of being overwritten.
    let mut conn = st.db.write().await?;
    let rotate = move |row: WebhookRow| {
        let current = row.into_webhook(&cipher)?;
        let now = Utc::now();
        let previous = rotated_previous(current.secret, current.previous_secrets, grace, now);
        let sealed: Vec<PreviousSecret> = previous
            .into_iter()
            .map(|p| PreviousSecret {
                secret: cipher.seal(&p.secret),
                expires_at: p.expires_at,
            })
            .collect();
        Ok::<_, ApiError>(Some(WebhookChanges {
            secret: Some(cipher.seal(&new_secret)),
            previous_secrets: Some(JsonColumn::new(&sealed)),
            updated_at: Some(now.naive_utc()),
            updated_by: Some(Some(by)),
            ..Default::default()
        }))
    };
    let audit = move |before: &WebhookRow, after: &WebhookRow| {
        let act = Some(action::WEBHOOK_SECRET_ROTATED);
        webhook_changed(actor, act, before, after, &audit_cipher)
    };
    let row = store::update_webhook_audited(&mut conn, id, rotate, audit)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")))?;
    drop(conn);
    let w = publish_change(&st, row).await?;
    Ok(HttpResponse::Ok().json(WebhookView::new(&w, true)))
}

/// The old secrets after a rotation: those still in grace, plus the current one for `grace`
/// seconds; the oldest grace ends first and beyond the cap it is dropped.
fn rotated_previous(
    current: String,
    previous: Vec<PreviousSecret>,
    grace: i64,
    now: chrono::DateTime<Utc>,
) -> Vec<PreviousSecret> {
    let mut previous: Vec<PreviousSecret> = previous
        .into_iter()
        .filter(|p| p.expires_at > now)
        .collect();
    if grace > 0 {
        previous.push(PreviousSecret {
            secret: current,
            expires_at: now + chrono::Duration::seconds(grace),
        });
    }
    previous.sort_by_key(|p| p.expires_at);
    let excess = previous.len().saturating_sub(MAX_PREVIOUS_SECRETS);
    previous.drain(..excess);
    previous
}

/// Send a `webhook/test` event to this webhook alone.
#[utoipa::path(post, path = "/api/webhooks/{id}/test", params(WebhookId),
    responses((status = 202, description = "`{\"delivery_id\": \"...\"}`")))]
async fn test_send(
    admin: Admin,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
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
    // Marked first, so that replay never sees the event without its mark.
    let mut conn = st.db.write().await?;
    crate::db::store::replay::mark_test_event(&mut conn, &event.event_id).await?;
    drop(conn);
    let accepted = st
        .intake
        .publish(vec![event])
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let delivery_id = accepted.delivery_ids.first().cloned().unwrap_or_default();
    Ok(HttpResponse::Accepted()
        .json(json!({ "delivery_id": delivery_id, "event_id": accepted.ids.first() })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hanging_lookup_is_a_503_in_the_error_shape() {
        let err = bounded(
            Duration::from_millis(20),
            "the DNS lookup",
            std::future::pending::<()>(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status, actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.code, "unavailable");
        assert!(err.message.contains("the DNS lookup"), "{}", err.message);
    }

    fn old(secret: &str, expires_at: chrono::DateTime<Utc>) -> PreviousSecret {
        PreviousSecret {
            secret: secret.into(),
            expires_at,
        }
    }

    #[test]
    fn a_rotation_keeps_the_current_secret_for_the_grace_and_drops_expired_ones() {
        let now = Utc::now();
        let hour = chrono::Duration::hours(1);
        let kept = rotated_previous(
            "current".into(),
            vec![old("expired", now - hour), old("live", now + hour)],
            7200,
            now,
        );
        let secrets: Vec<&str> = kept.iter().map(|p| p.secret.as_str()).collect();
        assert_eq!(secrets, ["live", "current"]);
        assert_eq!(kept[1].expires_at, now + hour * 2);
        let none = rotated_previous("current".into(), vec![], 0, now);
        assert!(none.is_empty(), "no grace: the old secret stops at once");
    }

    #[test]
    fn beyond_the_cap_the_oldest_grace_goes_first() {
        let now = Utc::now();
        let full: Vec<PreviousSecret> = (0..MAX_PREVIOUS_SECRETS as i64)
            .map(|i| old(&format!("s{i}"), now + chrono::Duration::minutes(i + 1)))
            .collect();
        let kept = rotated_previous("current".into(), full, 86_400, now);
        assert_eq!(kept.len(), MAX_PREVIOUS_SECRETS);
        assert_eq!(kept[0].secret, "s1", "s0 ended first and was dropped");
        assert_eq!(kept.last().unwrap().secret, "current");
    }

    #[tokio::test]
    async fn an_answer_within_the_bound_passes_through() {
        let v = bounded(Duration::from_secs(5), "x", async { 7 }).await;
        assert_eq!(v.unwrap(), 7);
    }
}
