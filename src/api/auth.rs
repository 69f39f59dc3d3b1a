//! Who is calling: the global admin token, the event key, or a tenant API key bound to one tenant.
//!
//! Tokens are compared in constant time; tenant keys are looked up by their SHA-256, so the
//! database never sees a key and the lookup leaks nothing useful through timing.

use actix_web::HttpRequest;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::db::store::keys;

/// Header naming the tenant.
pub const TENANT_HEADER: &str = "x-tenant-id";

/// An admin caller.
#[derive(Debug, Clone)]
pub struct Admin {
    /// True for the global admin (token, or open mode on loopback).
    pub global: bool,
    /// The tenant the caller acts for: its key's tenant, or `X-Tenant-ID` for the global admin.
    pub tenant: Option<String>,
    /// For `created_by` / `updated_by`.
    pub name: String,
    /// The tenant key used (None for the global admin): `GET /api/whoami`, the audit log's actor.
    pub key_id: Option<String>,
}

impl Admin {
    /// 403 unless the caller may touch `tenant`'s resources.
    pub fn check_tenant(&self, tenant: &str) -> ApiResult<()> {
        if self.global || self.tenant.as_deref() == Some(tenant) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this resource belongs to another tenant",
            ))
        }
    }

    /// The audit log's actor: the `key_id` of the tenant key used, else `admin`.
    pub fn actor(&self) -> String {
        self.key_id
            .clone()
            .unwrap_or_else(|| crate::domain::audit::ADMIN.to_string())
    }

    /// 403 unless the caller is the global admin.
    pub fn require_global(&self) -> ApiResult<()> {
        if self.global {
            Ok(())
        } else {
            Err(ApiError::forbidden("only the global admin may do this"))
        }
    }
}

/// A publisher; `tenant` is set when its key binds it to one tenant.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// The only tenant it may publish for.
    pub tenant: Option<String>,
}

/// SHA-256 (hex) of an API key, as stored.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn bearer(req: &HttpRequest) -> ApiResult<Option<String>> {
    let Some(v) = req.headers().get("authorization") else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    match v.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim().to_string()))
        }
        _ => Err(ApiError::unauthorized(
            "Authorization must be `Bearer <token>`",
        )),
    }
}

/// The `X-Tenant-ID` header, validated.
pub fn tenant_header(req: &HttpRequest) -> ApiResult<Option<String>> {
    let Some(v) = req.headers().get(TENANT_HEADER) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::bad_param("X-Tenant-ID", "not valid text"))?;
    super::validate::tenant_id(v).map_err(|m| ApiError::bad_param("X-Tenant-ID", m))?;
    Ok(Some(v.to_string()))
}

/// Authenticates an admin call. The token is checked before `X-Tenant-ID` is read, so a bad
/// token is a 401 whatever the header holds (README, API).
pub async fn admin(req: &HttpRequest, st: &AppState) -> ApiResult<Admin> {
    let cfg = &st.config;
    match bearer(req)? {
        None if cfg.admin_token.is_some() => {
            return Err(ApiError::unauthorized("missing bearer token"))
        }
        None => {}
        Some(token) if cfg.admin_token.as_deref().is_some_and(|t| same(t, &token)) => {}
        Some(token) => {
            return match find_key(st, &token).await? {
                Some(key) => tenant_admin(req, key),
                None => Err(ApiError::unauthorized("invalid credentials")),
            }
        }
    }
    Ok(Admin {
        global: true,
        tenant: tenant_header(req)?,
        name: "admin".into(),
        key_id: None,
    })
}

/// A tenant key as an admin: only an `admin` key, and only for its own tenant.
fn tenant_admin(req: &HttpRequest, key: crate::db::models::ApiKeyRow) -> ApiResult<Admin> {
    if key.role != "admin" {
        return Err(ApiError::forbidden(
            "a publisher key can only publish events",
        ));
    }
    if tenant_header(req)?.is_some_and(|t| t != key.tenant_id) {
        return Err(ApiError::forbidden("this key belongs to another tenant"));
    }
    Ok(Admin {
        global: false,
        tenant: Some(key.tenant_id),
        name: format!("key:{}", key.name),
        key_id: Some(key.key_id),
    })
}

/// Authenticates a publish call; `path_key` is the key of `/e/{key}`.
pub async fn publisher(
    req: &HttpRequest,
    st: &AppState,
    path_key: Option<&str>,
) -> ApiResult<Publisher> {
    let header_key = req
        .headers()
        .get("x-beema-event-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let presented = match path_key {
        Some(k) => Some(k.to_string()),
        None => header_key.or(bearer(req)?),
    };
    let cfg = &st.config;
    let Some(key) = presented else {
        return match cfg.event_key {
            None => Ok(Publisher { tenant: None }),
            Some(_) => Err(ApiError::unauthorized("missing event key")),
        };
    };
    let global = cfg.event_key.as_deref().is_some_and(|k| same(k, &key))
        || cfg.admin_token.as_deref().is_some_and(|t| same(t, &key));
    if global {
        return Ok(Publisher { tenant: None });
    }
    if let Some(k) = find_key(st, &key).await? {
        return Ok(Publisher {
            tenant: Some(k.tenant_id),
        });
    }
    // Open mode: the Inngest SDK always puts some key in the path.
    if cfg.event_key.is_none() && path_key.is_some() {
        return Ok(Publisher { tenant: None });
    }
    Err(ApiError::unauthorized("invalid event key"))
}

async fn find_key(st: &AppState, token: &str) -> ApiResult<Option<crate::db::models::ApiKeyRow>> {
    if !token.starts_with("bk_") {
        return Ok(None);
    }
    let mut conn = st.db.read().await?;
    Ok(keys::find_by_hash(&mut conn, &hash_key(token)).await?)
}
