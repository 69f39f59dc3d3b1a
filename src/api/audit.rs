//! `GET /api/audit` (README, Audit log), and the audit entries of webhook and key changes:
//! a webhook's fields as the API shows them, only those a change touched, secrets redacted.

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::{limit, Query};
use super::openapi::{op, Op};
use super::views::WebhookView;
use super::{validate, AppState};
use crate::db::models::{ApiKeyRow, WebhookRow};
use crate::db::store::audit::{self as store, AuditFilter, AuditRow, NewAuditEntry};
use crate::domain::audit::{action, changed_fields, redact_webhook, update_action};
use crate::domain::utc;
use crate::secrets::SecretCipher;

/// Operations of this resource.
pub fn operations() -> Vec<Op> {
    vec![op(__path_list, list)]
}

/// Query of `GET /api/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about this webhook.
    #[param(minimum = 1)]
    pub webhook_id: Option<i64>,
    /// Only this tenant (the global admin; a tenant key sees its own).
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub tenant_id: Option<String>,
    /// Only this action (`webhook.updated`, ...).
    #[param(pattern = r"^[a-z_]{1,32}\.[a-z_]{1,32}$")]
    pub action: Option<String>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The previous page's `next_after`.
    pub after: Option<String>,
}

/// One entry as the API returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub audit_id: String,
    pub at: DateTime<Utc>,
    /// `admin`, the `key_id` of a tenant key, or `system`.
    pub actor: String,
    pub action: String,
    pub tenant_id: Option<String>,
    pub webhook_id: Option<i64>,
    pub key_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl From<AuditRow> for AuditView {
    fn from(r: AuditRow) -> Self {
        // An entry this server wrote is JSON; a damaged one shows as null rather than failing the
        // page.
        let state = |j: Option<crate::db::json::Json<Value>>| j.and_then(|j| j.parse().ok());
        Self {
            audit_id: r.audit_id,
            at: utc(r.at),
            actor: r.actor,
            action: r.action,
            tenant_id: r.tenant_id,
            webhook_id: r.webhook_id,
            key_id: r.key_id,
            before: state(r.before),
            after: state(r.after),
        }
    }
}

/// The opaque cursor of the page after the entry numbered `seq`.
fn cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("audit:{seq}"))
}

/// The entry number a cursor stands for (400 when it is not one of ours).
fn parse_cursor(c: &str) -> ApiResult<i64> {
    let bad = || ApiError::bad_param("after", "is not a cursor from a previous page");
    let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix("audit:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(bad)
}

fn check_action(a: &str) -> ApiResult<()> {
    let ok = a.split_once('.').is_some_and(|(x, y)| {
        [x, y].iter().all(|p| {
            (1..=32).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_param(
            "action",
            "must look like `webhook.updated`",
        ))
    }
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/audit", params(AuditQuery),
    responses((status = 200, description = "`{\"entries\": [...], \"next_after\": \"…\" | null}`")))]
async fn list(
    admin: Admin,
    Query(q): Query<AuditQuery>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let tenant = match q.tenant_id {
        Some(t) => {
            validate::tenant_id(&t).map_err(|m| ApiError::bad_param("tenant_id", m))?;
            admin.check_tenant(&t)?;
            Some(t)
        }
        None => admin.tenant.clone(),
    };
    if let Some(a) = &q.action {
        check_action(a)?;
    }
    if q.webhook_id.is_some_and(|w| w < 1) {
        return Err(ApiError::bad_param("webhook_id", "must be at least 1"));
    }
    let limit = limit(q.limit)?;
    let filter = AuditFilter {
        tenant_id: tenant,
        webhook_id: q.webhook_id,
        action: q.action,
        before_seq: q.after.as_deref().map(parse_cursor).transpose()?,
        // One more than the page tells whether another page follows.
        limit: limit + 1,
    };
    let mut conn = st.db.read().await?;
    let mut rows = store::list(&mut conn, &filter).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_after = more
        .then(|| rows.last().map(|r| cursor(r.audit_seq)))
        .flatten();
    let entries: Vec<AuditView> = rows.into_iter().map(AuditView::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "entries": entries, "next_after": next_after })))
}

/// A stored webhook as the API shows it, its secret in full (redacted later, after comparing).
/// A row whose settings no longer parse shows its plain columns.
pub fn webhook_state(row: &WebhookRow, cipher: &SecretCipher) -> Value {
    match row.clone().into_webhook(cipher) {
        Ok(w) => serde_json::to_value(WebhookView::new(&w, true)).unwrap_or(Value::Null),
        Err(_) => json!({
            "webhook_id": row.webhook_id,
            "webhook_name": row.webhook_name,
            "tenant_id": row.tenant_id,
            "event_type": row.event_type,
            "url": row.url,
            "enabled": row.enabled,
            "disabled_reason": row.disabled_reason,
        }),
    }
}

fn webhook_entry(actor: String, act: &str, row: &WebhookRow) -> NewAuditEntry {
    let mut e = NewAuditEntry::new(actor, act);
    e.tenant_id = Some(row.tenant_id.clone());
    e.webhook_id = Some(row.webhook_id);
    e
}

/// `webhook.created`: no `before`, the whole webhook `after`.
pub fn webhook_created(actor: String, row: &WebhookRow, cipher: &SecretCipher) -> NewAuditEntry {
    let after = redact_webhook(webhook_state(row, cipher));
    webhook_entry(actor, action::WEBHOOK_CREATED, row).states(None, Some(after))
}

/// `webhook.deleted`: the whole webhook `before`, no `after`.
pub fn webhook_deleted(actor: String, row: &WebhookRow, cipher: &SecretCipher) -> NewAuditEntry {
    let before = redact_webhook(webhook_state(row, cipher));
    webhook_entry(actor, action::WEBHOOK_DELETED, row).states(Some(before), None)
}

/// An update's entry (`webhook.updated`, `.enabled` or `.disabled`, or `act` when given), with the
/// fields it changed; None when it changed nothing.
pub fn webhook_changed(
    actor: String,
    act: Option<&str>,
    before: &WebhookRow,
    after: &WebhookRow,
    cipher: &SecretCipher,
) -> Option<NewAuditEntry> {
    let (old, new) = changed_fields(
        &webhook_state(before, cipher),
        &webhook_state(after, cipher),
    )?;
    let act = act.unwrap_or_else(|| update_action(&new));
    let entry = webhook_entry(actor, act, after).states(
        Some(redact_webhook(Value::Object(old))),
        Some(redact_webhook(Value::Object(new))),
    );
    Some(entry)
}

/// A key's fields in its entries.
fn key_state(k: &ApiKeyRow) -> Value {
    json!({ "key_id": k.key_id, "tenant_id": k.tenant_id, "role": k.role, "name": k.name })
}

/// `key.created` or `key.revoked`.
pub fn key_entry(actor: String, act: &str, k: &ApiKeyRow) -> NewAuditEntry {
    let mut e = NewAuditEntry::new(actor, act);
    e.tenant_id = Some(k.tenant_id.clone());
    e.key_id = Some(k.key_id.clone());
    if act == action::KEY_CREATED {
        e.states(None, Some(key_state(k)))
    } else {
        e.states(Some(key_state(k)), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_anything_else_is_refused() {
        assert_eq!(parse_cursor(&cursor(42)).unwrap(), 42);
        for bad in [
            "",
            "42",
            "!!",
            &URL_SAFE_NO_PAD.encode("audit:-1"),
            &URL_SAFE_NO_PAD.encode("x:1"),
        ] {
            assert_eq!(parse_cursor(bad).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn actions_are_two_lowercase_words() {
        assert!(check_action("webhook.secret_rotated").is_ok());
        for bad in ["webhook", "Webhook.updated", "a.b.c", ".x", "x."] {
            assert!(check_action(bad).is_err(), "{bad}");
        }
    }
}
