//! Publishing: `POST /api/events`, `/api/inngest` and the Inngest event API form `/e/{key}` (README, API).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Publisher;
use super::body::{from_value, whole};
use super::error::{ApiError, ApiResult};
use super::extract::{JsonValue, TenantHeader};
use super::openapi::{op, EventBatch, Op};
use super::{validate, AppState};
use crate::catalog::SchemaCache;
use crate::domain::ops::{is_ops_type, OPS_PREFIX, OPS_TENANT};
use crate::intake::NewEvent;

/// Most events in one request.
pub const MAX_BATCH: usize = 1000;

/// Operations of this resource.
pub fn operations() -> Vec<Op> {
    vec![
        op(__path_publish_api, publish_api),
        op(__path_publish_alias, publish_api),
        op(__path_publish_inngest, publish_inngest),
    ]
}

/// One event as published (the Inngest `name` is accepted for `event`).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct EventInput {
    #[schema(pattern = r"^[A-Za-z0-9_.:/-]{1,256}$")]
    pub event: Option<String>,
    #[schema(pattern = r"^[A-Za-z0-9_.:/-]{1,256}$")]
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub user: Option<Value>,
    /// Idempotency key: the same tenant and id within 24 h is delivered once.
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^\x00]*$")]
    pub id: Option<String>,
    /// Milliseconds since the epoch.
    #[schema(minimum = -62_135_596_800_000_i64, maximum = 253_402_300_799_999_i64)]
    #[serde(default, deserialize_with = "whole")]
    pub ts: Option<i64>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
}

/// What receivers get, in this field order.
#[derive(Serialize)]
struct Payload<'a> {
    id: &'a str,
    event: &'a str,
    data: &'a Value,
    user: &'a Value,
    timestamp: String,
}

/// Builds an event and its exact payload.
pub fn build_event(
    event_type: &str,
    tenant_id: &str,
    data: &Value,
    user: &Value,
    idempotency_key: Option<String>,
    at: DateTime<Utc>,
    only_webhook: Option<i64>,
) -> NewEvent {
    let event_id = Uuid::now_v7().to_string();
    let payload = serde_json::to_string(&Payload {
        id: &event_id,
        event: event_type,
        data,
        user,
        timestamp: at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    })
    .unwrap_or_default();
    NewEvent {
        event_id,
        tenant_id: tenant_id.to_string(),
        event_type: event_type.to_string(),
        idempotency_key,
        payload,
        accepted_at: Utc::now(),
        only_webhook,
        targets: None,
    }
}

/// Validates one event; `at` prefixes field names in a batch. With `schemas`, its `data` must
/// fit its type's schema in the catalog.
fn parse_one(
    raw: Value,
    at: &str,
    header_tenant: Option<&str>,
    publisher: &Publisher,
    schemas: Option<&SchemaCache>,
) -> ApiResult<NewEvent> {
    if !raw.is_object() {
        let field = if at.is_empty() {
            "body"
        } else {
            at.trim_end_matches('.')
        };
        return Err(ApiError::validation(field, "must be an event object"));
    }
    let input: EventInput = from_value(raw, at.trim_end_matches('.'))?;
    let f = |name: &str| format!("{at}{name}");
    let name = input
        .event
        .or(input.name)
        .ok_or_else(|| ApiError::validation(f("event"), "is required"))?;
    validate::event_name(&name).map_err(|m| ApiError::validation(f("event"), m))?;
    if is_ops_type(&name) {
        return Err(ApiError::validation(
            f("event"),
            format!(
                "`{OPS_PREFIX}` event types are reserved for the dispatcher's operational events"
            ),
        ));
    }
    let data = input.data.unwrap_or_else(|| json!({}));
    if !data.is_object() {
        return Err(ApiError::validation(f("data"), "must be an object"));
    }
    // The field the tenant came from names a reserved tenant.
    let (tenant, source) = match data.get("tenantId") {
        Some(Value::String(t)) => (t.clone(), f("data.tenantId")),
        Some(Value::Null) | None => match (header_tenant, &publisher.tenant) {
            (Some(h), _) => (h.to_string(), "X-Tenant-ID".to_string()),
            (None, Some(k)) => (k.clone(), f("data.tenantId")),
            (None, None) => {
                return Err(ApiError::validation(
                    f("data.tenantId"),
                    "is required (or send X-Tenant-ID)",
                ))
            }
        },
        Some(_) => return Err(ApiError::validation(f("data.tenantId"), "must be a string")),
    };
    validate::tenant_id(&tenant).map_err(|m| ApiError::validation(f("data.tenantId"), m))?;
    if tenant == OPS_TENANT {
        return Err(ApiError::validation(
            source,
            format!("tenant `{OPS_TENANT}` is reserved for operational events"),
        ));
    }
    if publisher.tenant.as_deref().is_some_and(|t| t != tenant) {
        return Err(ApiError::forbidden(format!(
            "this key cannot publish for tenant {tenant}"
        )));
    }
    let user = input.user.unwrap_or_else(|| json!({}));
    if !(user.is_object() || user.is_null()) {
        return Err(ApiError::validation(f("user"), "must be an object"));
    }
    if let Some(id) = &input.id {
        // NUL cannot be stored in PostgreSQL text (it would fail the commit with a 503).
        if id.is_empty() || id.chars().count() > 256 || id.contains('\0') {
            return Err(ApiError::validation(
                f("id"),
                "must be 1–256 characters without NUL",
            ));
        }
    }
    let at_time = event_time(input.ts, input.timestamp.as_deref(), &f)?;
    if let Some(schemas) = schemas {
        check_schema(schemas, &name, &data, at)?;
    }
    Ok(build_event(
        &name, &tenant, &data, &user, input.id, at_time, None,
    ))
}

/// 422 `schema_validation_failed` naming the first failing path (`[i].data.premium` in a batch,
/// whose caller prefixes the message with `event i: `; `event 0: ` here for a single event).
fn check_schema(schemas: &SchemaCache, name: &str, data: &Value, at: &str) -> ApiResult<()> {
    schemas.check(name, data).map_err(|failure| {
        let field = format!("{at}{}", failure.path);
        let index = if at.is_empty() { "event 0: " } else { "" };
        ApiError {
            status: actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "schema_validation_failed",
            message: format!("{index}{field}: {}", failure.message),
            field: Some(field),
        }
    })
}

fn event_time(
    ts: Option<i64>,
    timestamp: Option<&str>,
    f: &dyn Fn(&str) -> String,
) -> ApiResult<DateTime<Utc>> {
    if let Some(s) = timestamp {
        return DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::validation(f("timestamp"), "must be an RFC 3339 date-time"));
    }
    if let Some(ms) = ts {
        return Utc
            .timestamp_millis_opt(ms)
            .single()
            .ok_or_else(|| ApiError::validation(f("ts"), "must be milliseconds since the epoch"));
    }
    Ok(Utc::now())
}

/// Validates a request body: one event or an array of up to [`MAX_BATCH`], all or nothing.
fn parse_events(
    body: Value,
    header_tenant: Option<&str>,
    publisher: &Publisher,
    schemas: Option<&SchemaCache>,
) -> ApiResult<Vec<NewEvent>> {
    match body {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::validation("body", "expected at least one event"));
            }
            if items.len() > MAX_BATCH {
                return Err(ApiError::validation(
                    "body",
                    format!("at most {MAX_BATCH} events per request"),
                ));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    parse_one(e, &format!("[{i}]."), header_tenant, publisher, schemas).map_err(
                        |mut err| {
                            err.message = format!("event {i}: {}", err.message);
                            err
                        },
                    )
                })
                .collect()
        }
        other => Ok(vec![parse_one(
            other,
            "",
            header_tenant,
            publisher,
            schemas,
        )?]),
    }
}

/// Stores a validated request; the publisher and the body were checked by the extractors.
async fn accept(
    st: &AppState,
    publisher: &Publisher,
    header_tenant: Option<String>,
    body: Value,
) -> ApiResult<crate::intake::Accepted> {
    if st.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::unavailable(
            "shutting down; publish again to another node or later",
        ));
    }
    if st.config.validate_events {
        super::event_types::refresh_schemas(st).await;
    }
    let schemas = st.config.validate_events.then_some(&*st.schemas);
    let events = parse_events(body, header_tenant.as_deref(), publisher, schemas)?;
    st.intake
        .publish(events)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))
}

/// Publish one event or a batch of up to 1000, all or nothing.
#[utoipa::path(post, path = "/api/events", request_body = EventBatch,
    responses((status = 202, description = "`{\"ids\": [...], \"deliveries\": n}` once durable")))]
async fn publish_api(
    publisher: Publisher,
    TenantHeader(header_tenant): TenantHeader,
    JsonValue(body): JsonValue,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let a = accept(&st, &publisher, header_tenant, body).await?;
    Ok(HttpResponse::Accepted().json(json!({ "ids": a.ids, "deliveries": a.delivery_ids.len() })))
}

/// Publish (the seed's alias of `/api/events`); served by `publish_api`.
#[utoipa::path(post, path = "/api/inngest", request_body = EventBatch,
    responses((status = 202, description = "`{\"ids\": [...], \"deliveries\": n}` once durable")))]
#[allow(dead_code)] // only its description is used
fn publish_alias() {}

/// Publish, Inngest event API form: HTTP 200 with `"status": 200` (the JS SDK checks for it).
#[utoipa::path(post, path = "/e/{key}", params(("key" = String, Path, description = "The event key")),
    request_body = EventBatch,
    responses((status = 200, description = "`{\"ids\": [...], \"status\": 200}` once durable")))]
async fn publish_inngest(
    publisher: Publisher,
    TenantHeader(header_tenant): TenantHeader,
    JsonValue(body): JsonValue,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let a = accept(&st, &publisher, header_tenant, body).await?;
    Ok(HttpResponse::Ok().json(json!({ "ids": a.ids, "status": 200 })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Publisher {
        Publisher { tenant: None }
    }

    #[test]
    fn payload_has_the_contract_shape() {
        let e = build_event(
            "claim/opened",
            "t1",
            &json!({"a": 1}),
            &json!({}),
            None,
            Utc.timestamp_opt(1_760_000_000, 0).unwrap(),
            None,
        );
        let v: Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(v["event"], "claim/opened");
        assert_eq!(v["id"], e.event_id);
        assert_eq!(v["timestamp"], "2025-10-09T08:53:20Z");
        assert!(e.payload.starts_with("{\"id\":"));
    }

    #[test]
    fn tenant_comes_from_data_then_header() {
        let ev = parse_events(
            json!({"name": "a/b", "data": {"tenantId": "t1"}}),
            Some("t2"),
            &open(),
            None,
        )
        .unwrap();
        assert_eq!(ev[0].tenant_id, "t1");
        let ev = parse_events(json!({"event": "a/b"}), Some("t2"), &open(), None).unwrap();
        assert_eq!(ev[0].tenant_id, "t2");
        let err = parse_events(json!({"event": "a/b"}), None, &open(), None).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("data.tenantId"));
    }

    #[test]
    fn a_batch_names_the_bad_index() {
        let err = parse_events(
            json!([{"event": "a", "data": {"tenantId": "t"}}, {"data": {"tenantId": "t"}}]),
            None,
            &open(),
            None,
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("[1].event"));
        assert!(err.message.contains("event 1"));
    }

    #[test]
    fn reserved_types_and_tenant_are_refused_naming_their_field() {
        let err = parse_events(
            json!([{"event": "a", "data": {"tenantId": "t"}}, {"event": "beema/circuit.opened", "data": {"tenantId": "t"}}]),
            None,
            &open(),
            None,
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("[1].event"));
        let err = parse_events(
            json!([{"event": "a", "data": {"tenantId": "_ops"}}]),
            None,
            &open(),
            None,
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("[0].data.tenantId"));
        let err = parse_events(json!({"event": "a"}), Some("_ops"), &open(), None).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("X-Tenant-ID"));
        assert_eq!(
            err.status,
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn schema_failures_name_the_index_and_path() {
        let schemas = SchemaCache::default();
        let schema =
            json!({"type": "object", "properties": {"premium": {"type": "number", "minimum": 0}}});
        schemas.set(
            "policy/bound",
            Some(crate::catalog::compile(&schema).unwrap()),
        );
        let ok = json!({"event": "policy/bound", "data": {"tenantId": "t", "premium": 5}});
        let bad = json!({"event": "policy/bound", "data": {"tenantId": "t", "premium": -5}});
        let err = parse_events(
            json!([ok.clone(), ok.clone(), bad.clone()]),
            None,
            &open(),
            Some(&schemas),
        )
        .unwrap_err();
        assert_eq!(err.code, "schema_validation_failed");
        assert_eq!(err.field.as_deref(), Some("[2].data.premium"));
        assert_eq!(
            err.message,
            "event 2: [2].data.premium: -5 is less than the minimum of 0"
        );
        let err = parse_events(bad.clone(), None, &open(), Some(&schemas)).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("data.premium"));
        assert!(
            err.message.starts_with("event 0: data.premium: "),
            "{}",
            err.message
        );
        assert!(
            parse_events(bad, None, &open(), None).is_ok(),
            "checking off"
        );
    }

    #[test]
    fn bound_keys_cannot_publish_for_others() {
        let p = Publisher {
            tenant: Some("t1".into()),
        };
        let err = parse_events(
            json!({"event": "a", "data": {"tenantId": "t2"}}),
            None,
            &p,
            None,
        )
        .unwrap_err();
        assert_eq!(err.status, actix_web::http::StatusCode::FORBIDDEN);
    }
}
