//! `/api/keys`: tenant API keys, managed by the global admin only.

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::audit::key_entry;
use super::auth::hash_key;
use super::error::{ApiError, ApiResult};
use super::extract::{GlobalAdmin, Json};
use super::openapi::{op, KeyRequest, Op};
use super::{validate, AppState};
use crate::db::models::ApiKeyRow;
use crate::db::store::keys as store;
use crate::domain::audit::action;
use crate::domain::ops::OPS_TENANT;
use crate::domain::utc;

/// Operations of this resource.
pub fn operations() -> Vec<Op> {
    vec![
        op(__path_create, create),
        op(__path_list, list),
        op(__path_revoke, revoke),
    ]
}

/// Body of `POST /api/keys`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct KeyInput {
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub tenant_id: Option<String>,
    /// `admin` or `publisher`.
    #[schema(pattern = r"^(admin|publisher)$")]
    pub role: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub name: Option<String>,
}

/// A key as listed (its value is never shown again after creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub key_id: String,
    pub tenant_id: String,
    pub role: String,
    pub name: String,
    pub created_at: chrono::DateTime<Utc>,
    /// Only in the response of `POST /api/keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<ApiKeyRow> for KeyView {
    fn from(r: ApiKeyRow) -> Self {
        Self {
            key_id: r.key_id,
            tenant_id: r.tenant_id,
            role: r.role,
            name: r.name,
            created_at: utc(r.created_at),
            key: None,
        }
    }
}

/// A new key: `bk_` and 32 bytes from the OS CSPRNG.
fn new_key() -> String {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("OS random source");
    format!("bk_{}", URL_SAFE_NO_PAD.encode(raw))
}

/// Create a tenant API key (global admin only); the key is shown this once.
#[utoipa::path(post, path = "/api/keys", request_body = KeyRequest,
    responses((status = 201, description = "The key", body = KeyView)))]
async fn create(
    GlobalAdmin(admin): GlobalAdmin,
    Json(input): Json<KeyInput>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let tenant = input
        .tenant_id
        .ok_or_else(|| ApiError::validation("tenant_id", "is required"))?;
    validate::tenant_id(&tenant).map_err(|m| ApiError::validation("tenant_id", m))?;
    if tenant == OPS_TENANT {
        return Err(ApiError::validation(
            "tenant_id",
            format!("tenant `{OPS_TENANT}` is reserved: its webhooks are the global admin's"),
        ));
    }
    let role = input
        .role
        .ok_or_else(|| ApiError::validation("role", "is required"))?;
    if role != "admin" && role != "publisher" {
        return Err(ApiError::validation("role", "must be admin or publisher"));
    }
    let name = input.name.unwrap_or_else(|| role.clone());
    validate::webhook_name(&name).map_err(|m| ApiError::validation("name", m))?;
    let key = new_key();
    let row = ApiKeyRow {
        key_id: Uuid::now_v7().to_string(),
        tenant_id: tenant,
        role,
        name,
        key_hash: hash_key(&key),
        created_at: Utc::now().naive_utc(),
        revoked_at: None,
    };
    let entry = key_entry(admin.actor(), action::KEY_CREATED, &row);
    let mut conn = st.db.write().await?;
    store::insert_key_audited(&mut conn, &row, &entry).await?;
    let mut view = KeyView::from(row);
    view.key = Some(key);
    Ok(HttpResponse::Created().json(view))
}

/// List tenant API keys, without their values (global admin only).
#[utoipa::path(get, path = "/api/keys",
    responses((status = 200, description = "`{\"keys\": [...]}`")))]
async fn list(_: GlobalAdmin, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = st.db.read().await?;
    let keys: Vec<KeyView> = store::list_keys(&mut conn)
        .await?
        .into_iter()
        .map(KeyView::from)
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "keys": keys })))
}

/// Revoke a tenant API key (global admin only); it stops working at once.
#[utoipa::path(delete, path = "/api/keys/{key_id}", params(("key_id" = String, Path)),
    responses((status = 204, description = "Revoked")))]
async fn revoke(
    GlobalAdmin(admin): GlobalAdmin,
    key_id: web::Path<String>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let actor = admin.actor();
    let mut conn = st.db.write().await?;
    let audit = move |k: &ApiKeyRow| key_entry(actor, action::KEY_REVOKED, k);
    let revoked = store::revoke_key_audited(&mut conn, &key_id, Utc::now().naive_utc(), audit);
    if revoked.await?.is_none() {
        return Err(ApiError::not_found(format!("key {key_id} not found")));
    }
    Ok(HttpResponse::NoContent().finish())
}
