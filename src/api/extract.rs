//! Extractors: a handler's arguments say who may call it and what it reads (`Admin`,
//! `Publisher`, `Json<T>`, `Query<T>`), and each answers in the error shape when it refuses.
//!
//! Credentials come first (README, API): a missing or wrong token is a 401 even when the body or
//! the query is malformed too. actix polls a handler's extractors together, and a tenant key is
//! looked up in the database, so the identity extractor leaves a gate in the request that the body
//! and query extractors wait on: they start only once the identity is settled, and when it failed,
//! its error is the one answered (actix answers the first argument's error).

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures::channel::oneshot;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::openapi::path::ParameterIn;
use utoipa::IntoParams;

use super::auth::{self, Admin, Publisher};
use super::body::{from_value, read_json};
use super::error::{ApiError, ApiResult};
use super::AppState;

/// Settles when the request's identity extractor has finished (either way).
#[derive(Clone)]
struct CredentialsGate(Shared<oneshot::Receiver<()>>);

/// Puts a gate in the request; it opens when the returned sender is dropped.
fn close_gate(req: &HttpRequest) -> oneshot::Sender<()> {
    let (tx, rx) = oneshot::channel();
    req.extensions_mut().insert(CredentialsGate(rx.shared()));
    tx
}

/// Waits until the credentials were checked, when the handler checks any.
async fn after_credentials(req: &HttpRequest) {
    let gate = req.extensions().get::<CredentialsGate>().cloned();
    if let Some(CredentialsGate(gate)) = gate {
        let _ = gate.await;
    }
}

fn state(req: &HttpRequest) -> ApiResult<web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state missing"))
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        let checked = close_gate(&req);
        async move {
            let admin = auth::admin(&req, &*state(&req)?).await;
            drop(checked);
            admin
        }
        .boxed_local()
    }
}

/// The global admin: anyone else is refused (403) before the body is read.
pub struct GlobalAdmin(pub Admin);

impl FromRequest for GlobalAdmin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let admin = Admin::from_request(req, payload);
        async move {
            let admin = admin.await?;
            admin.require_global()?;
            Ok(GlobalAdmin(admin))
        }
        .boxed_local()
    }
}

impl FromRequest for Publisher {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    /// The key of `/e/{key}` counts as the presented key.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        let checked = close_gate(&req);
        async move {
            let path_key = req.match_info().get("key").map(str::to_string);
            let publisher = publisher(&req, path_key.as_deref()).await;
            drop(checked);
            publisher
        }
        .boxed_local()
    }
}

/// A publisher, and a key bound to one tenant refused (403) for another tenant's `X-Tenant-ID`.
async fn publisher(req: &HttpRequest, path_key: Option<&str>) -> ApiResult<Publisher> {
    let publisher = auth::publisher(req, &*state(req)?, path_key).await?;
    if let (Some(bound), Some(header)) = (&publisher.tenant, auth::tenant_header(req)?) {
        if *bound != header {
            return Err(ApiError::forbidden("this key belongs to another tenant"));
        }
    }
    Ok(publisher)
}

/// The `X-Tenant-ID` header, validated (400 when malformed, after the credentials).
pub struct TenantHeader(pub Option<String>);

impl FromRequest for TenantHeader {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        async move {
            after_credentials(&req).await;
            auth::tenant_header(&req).map(TenantHeader)
        }
        .boxed_local()
    }
}

/// A JSON object body deserialized into `T`: 415 not JSON, 413 over `max_body_bytes`, 400
/// malformed, 422 naming the field of a wrong type.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let value = JsonValue::from_request(req, payload);
        async move { Ok(Json(from_value(value.await?.0, "")?)) }.boxed_local()
    }
}

/// Any JSON body (the events API takes one event or an array), with the rules of [`Json`].
pub struct JsonValue(pub Value);

impl FromRequest for JsonValue {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        async move {
            after_credentials(&req).await;
            let limit = state(&req)?.config.max_body_bytes;
            Ok(JsonValue(read_json(&req, payload, limit).await?))
        }
        .boxed_local()
    }
}

/// A body that may be left out (no `Content-Length`, or 0, and no chunked body): `None`; when
/// sent, the rules of [`Json`].
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let headers = req.headers();
        let sent = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v != "0")
            || headers.contains_key("transfer-encoding");
        if !sent {
            return async { Ok(OptionalJson(None)) }.boxed_local();
        }
        let body = Json::<T>::from_request(req, payload);
        async move { Ok(OptionalJson(Some(body.await?.0))) }.boxed_local()
    }
}

/// Query parameters deserialized into `T`. Names are those `T` declares for the OpenAPI
/// document; any other is a 400, and so is a value of the wrong type (naming the parameter).
/// A name given twice takes its last value.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + IntoParams + 'static> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        async move {
            after_credentials(&req).await;
            parse_query(req.query_string()).map(Query)
        }
        .boxed_local()
    }
}

/// The names `T` takes as query parameters.
fn query_names<T: IntoParams>() -> Vec<String> {
    T::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .map(|p| p.name)
        .collect()
}

fn parse_query<T: DeserializeOwned + IntoParams>(raw: &str) -> ApiResult<T> {
    let allowed = query_names::<T>();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if !allowed.iter().any(|a| *a == k) {
            return Err(ApiError::bad_param(
                &k,
                format!("unknown query parameter; allowed: {}", allowed.join(", ")),
            ));
        }
        pairs.retain(|(name, _)| *name != k);
        pairs.push((k.into_owned(), v.into_owned()));
    }
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(encoded.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let name = e.path().to_string();
        let value = pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str());
        ApiError::bad_param(&name, format!("`{value}` is not valid: {}", e.inner()))
    })
}

/// `limit`: 1–1000, default 100.
pub fn limit(value: Option<i64>) -> ApiResult<i64> {
    match value {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_param("limit", "must be between 1 and 1000")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, IntoParams)]
    #[into_params(parameter_in = Query)]
    struct Q {
        limit: Option<i64>,
        enabled: Option<bool>,
        name: Option<String>,
    }

    #[test]
    fn typed_values_and_the_last_of_a_repeated_name() {
        let q: Q = parse_query("limit=5&enabled=true&name=a%20b&limit=7").unwrap();
        assert_eq!(q.limit, Some(7));
        assert_eq!(q.enabled, Some(true));
        assert_eq!(q.name.as_deref(), Some("a b"));
        let q: Q = parse_query("").unwrap();
        assert!(q.limit.is_none() && q.enabled.is_none() && q.name.is_none());
    }

    #[test]
    fn a_wrong_value_or_name_is_a_400_naming_it() {
        for (raw, field) in [
            ("limit=many", "limit"),
            ("limit=", "limit"),
            ("enabled=1", "enabled"),
            ("other=1", "other"),
        ] {
            let err = parse_query::<Q>(raw).unwrap_err();
            assert_eq!(
                err.status,
                actix_web::http::StatusCode::BAD_REQUEST,
                "{raw}"
            );
            assert_eq!(err.field.as_deref(), Some(field), "{raw}: {}", err.message);
        }
    }
}
