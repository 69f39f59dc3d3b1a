//! `/api/event-types`: the event-type catalog (README, Event-type catalog). Declared types (the
//! kernel's and the dispatcher's from `migrate` on, and those set here by the global admin) with a
//! description and a JSON Schema of their `data`, beside every type seen in a stored event, with
//! count, first and last seen in the caller's scope.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::{GlobalAdmin, JsonValue};
use super::openapi::{op, Op};
use super::AppState;
use crate::catalog::{self, MAX_DESCRIPTION_CHARS};
use crate::db::models::EventTypeRow;
use crate::db::store::event_types::{self as store, EventTypeChange, TypeFigures};
use crate::domain::utc;
use crate::routing::pattern;

/// Operations of this resource.
pub fn operations() -> Vec<Op> {
    vec![
        op(__path_list, list),
        op(__path_get, get).rest_of_path(),
        op(__path_put, put).rest_of_path(),
    ]
}

/// An event type as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventTypeView {
    /// The exact type.
    pub name: String,
    /// `null` for a type only seen in events.
    pub description: Option<String>,
    /// JSON Schema (draft 2020-12) of the events' `data`; `null`: not checked.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    /// First stored event of this type in the caller's scope.
    pub first_seen: Option<DateTime<Utc>>,
    /// Last one.
    pub last_seen: Option<DateTime<Utc>>,
    /// Stored events of this type in the caller's scope (test sends aside).
    pub count: i64,
    /// Last change of the declaration; `null` for a type only seen.
    pub updated_at: Option<DateTime<Utc>>,
}

impl EventTypeView {
    fn new(name: String, declared: Option<&EventTypeRow>, figures: Option<&TypeFigures>) -> Self {
        Self {
            name,
            description: declared.and_then(|d| d.description.clone()),
            schema: declared
                .and_then(|d| d.schema.as_ref())
                .and_then(|s| s.parse().ok()),
            first_seen: figures.and_then(|f| f.first_seen).map(utc),
            last_seen: figures.and_then(|f| f.last_seen).map(utc),
            count: figures.map_or(0, |f| f.count),
            updated_at: declared.map(|d| utc(d.updated_at)),
        }
    }
}

/// The `{name}` of an event-type path.
#[derive(IntoParams)]
#[into_params(names("name"), parameter_in = Path)]
#[allow(dead_code)] // describes the path for the document; the handlers read it themselves
struct EventTypeName(
    /// The exact type; its `/` as is (`claim/opened`) or as `%2F`.
    String,
);

/// The name in the path, `%2F` read as `/`.
fn path_name(raw: &str) -> String {
    raw.replace("%2F", "/").replace("%2f", "/")
}

/// List the catalog: declared types and every type seen, in byte order of name.
#[utoipa::path(get, path = "/api/event-types",
    responses((status = 200, description = "`{\"event_types\": [...]}`", body = Vec<EventTypeView>)))]
async fn list(admin: Admin, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = st.db.read().await?;
    let declared = store::list_declared(&mut conn).await?;
    let figures = store::figures(&mut conn, admin.tenant.as_deref(), None).await?;
    drop(conn);
    // Byte order of names: a BTreeMap of Strings, not the database's collation.
    let mut all: BTreeMap<String, (Option<&EventTypeRow>, Option<&TypeFigures>)> = BTreeMap::new();
    for d in &declared {
        all.entry(d.name.clone()).or_default().0 = Some(d);
    }
    for f in &figures {
        all.entry(f.event_type.clone()).or_default().1 = Some(f);
    }
    let views: Vec<EventTypeView> = all
        .into_iter()
        .map(|(name, (d, f))| EventTypeView::new(name, d, f))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "event_types": views })))
}

/// One event type; 404 when neither declared nor seen in the caller's scope.
#[utoipa::path(get, path = "/api/event-types/{name}", params(EventTypeName),
    responses((status = 200, description = "The event type", body = EventTypeView)))]
async fn get(
    admin: Admin,
    name: web::Path<String>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let name = path_name(&name);
    let mut conn = st.db.read().await?;
    let declared = store::find_declared(&mut conn, &name).await?;
    let figures = store::figures(&mut conn, admin.tenant.as_deref(), Some(&name)).await?;
    drop(conn);
    if declared.is_none() && figures.is_empty() {
        return Err(ApiError::not_found(format!("event type {name} not found")));
    }
    Ok(HttpResponse::Ok().json(EventTypeView::new(name, declared.as_ref(), figures.first())))
}

/// Body of create/update; omitted fields stay, `schema: null` removes the schema.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the body for the document; the handler reads it by hand
pub struct EventTypeInput {
    /// At most 1000 characters.
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// A JSON Schema (draft 2020-12) of the events' `data`, at most 64 KiB, only local `$ref`s.
    #[schema(value_type = Option<Object>)]
    schema: Option<Value>,
}

/// Declare or change an event type (global admin only): 201 when created, 200 when updated.
#[utoipa::path(method(post, put), path = "/api/event-types/{name}", params(EventTypeName),
    request_body = EventTypeInput,
    responses((status = 200, description = "Updated", body = EventTypeView),
              (status = 201, description = "Created", body = EventTypeView)))]
async fn put(
    GlobalAdmin(admin): GlobalAdmin,
    name: web::Path<String>,
    JsonValue(body): JsonValue,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let name = path_name(&name);
    check_name(&name)?;
    let (change, validator) = parse_change(body)?;
    let mut conn = st.db.write().await?;
    let (row, created) = store::upsert_declared(
        &mut conn,
        &admin.actor(),
        &name,
        change.clone(),
        crate::db::store::now(),
    )
    .await?;
    let figures = store::figures(&mut conn, admin.tenant.as_deref(), Some(&name)).await?;
    drop(conn);
    // Only a changed schema is recompiled; the cache then serves every later publish.
    if change.schema.is_some() {
        st.schemas.set(&name, validator);
        st.schemas.invalidate();
    }
    let view = EventTypeView::new(name, Some(&row), figures.first());
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

/// Brings the schema cache in line with the database when a recheck is due (at most once per
/// [`catalog::RECHECK_EVERY`]; a change made through this process is in the cache already). A
/// database error leaves the cache as it is: publishing does not depend on this read.
pub async fn refresh_schemas(st: &AppState) {
    if !st.schemas.recheck_due() {
        return;
    }
    if let Err(e) = reload_if_changed(st).await {
        tracing::warn!(error = %e, "event-type schemas not rechecked");
    }
}

async fn reload_if_changed(st: &AppState) -> ApiResult<()> {
    let mut conn = st.db.read().await?;
    let version = store::version(&mut conn).await?;
    if st.schemas.is_current(version) {
        return Ok(());
    }
    let rows = store::list_declared(&mut conn).await?;
    drop(conn);
    st.schemas.load(
        rows.into_iter()
            .filter_map(|r| Some((r.name, r.schema?.parse().ok()?)))
            .collect(),
    );
    st.schemas.loaded(version);
    Ok(())
}

fn check_name(name: &str) -> ApiResult<()> {
    pattern::exact(name).map_err(|m| ApiError::validation("name", m))?;
    if name.starts_with(pattern::OPS_PREFIX) {
        return Err(ApiError::validation(
            "name",
            "`beema/` types are the dispatcher's own and read-only",
        ));
    }
    Ok(())
}

/// The change a body asks for, and the compiled schema when it sets one.
fn parse_change(body: Value) -> ApiResult<(EventTypeChange, Option<jsonschema::Validator>)> {
    let Value::Object(mut m) = body else {
        return Err(ApiError::validation("body", "must be an object"));
    };
    let description = match m.remove("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if d.chars().count() <= MAX_DESCRIPTION_CHARS => Some(Some(d)),
        Some(Value::String(_)) => {
            return Err(ApiError::validation(
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
            ))
        }
        Some(_) => return Err(ApiError::validation("description", "must be a string")),
    };
    let (schema, validator) = match m.remove("schema") {
        None => (None, None),
        Some(Value::Null) => (Some(None), None),
        Some(s) => {
            let v = catalog::compile(&s).map_err(|e| ApiError::validation("schema", e))?;
            (Some(Some(s)), Some(v))
        }
    };
    Ok((
        EventTypeChange {
            description,
            schema,
        },
        validator,
    ))
}
