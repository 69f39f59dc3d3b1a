//! `GET /api/openapi.json`: the OpenAPI 3 description, built from the route table below and the
//! request/response types' `ToSchema` derives.

use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AllOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, KnownFormat, OpenApi as Spec, Ref, RefOr, Required, ResponseBuilder,
    ResponsesBuilder,
};
use utoipa::OpenApi;

use super::auth;
use super::error::ApiResult;
use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Beema Webhooks",
        description = "Webhook dispatcher: durable intake, signed, retried, rate-limited deliveries."
    ),
    components(schemas(
        crate::domain::WebhookView,
        crate::domain::RetryConfig,
        crate::domain::RateLimit,
        crate::domain::BreakerSettings,
        crate::domain::DeliveryView,
        crate::domain::AttemptView,
        crate::actors::status::HealthView,
        crate::actors::status::CircuitView,
        crate::actors::status::QueueView,
        crate::actors::status::StatsView,
        crate::actors::status::LatencyView,
        super::webhook_input::WebhookInput,
        super::webhook_input::RetryInput,
        super::webhook_input::RateLimitInput,
        super::webhook_input::BreakerInput,
        super::webhook_input::RotateInput,
        super::webhook_input::MatchInput,
        super::events::EventInput,
        super::deliveries::RecordInput,
        super::keys::KeyInput,
        super::keys::KeyView,
        super::console_api::WhoamiView,
        super::console_api::RecoverInput,
    ))
)]
struct Base;

/// One route: method, path, summary, request schema, success status, response schema.
type Route = (
    HttpMethod,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
);

const ROUTES: &[Route] = &[
    (
        HttpMethod::Get,
        "/api/webhooks",
        "List webhooks (filters event_type, enabled; paging limit, after)",
        None,
        "200",
        None,
    ),
    (
        HttpMethod::Post,
        "/api/webhooks",
        "Create a webhook",
        Some("WebhookCreate"),
        "201",
        Some("WebhookView"),
    ),
    (
        HttpMethod::Put,
        "/api/webhooks",
        "Update a webhook named by webhook_id in the body",
        Some("WebhookUpdate"),
        "200",
        Some("WebhookView"),
    ),
    (
        HttpMethod::Delete,
        "/api/webhooks",
        "Delete a webhook (?id=N)",
        None,
        "204",
        None,
    ),
    (
        HttpMethod::Post,
        "/api/webhooks/match",
        "Enabled webhooks an event would go to",
        Some("MatchRequest"),
        "200",
        None,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/{id}",
        "One webhook",
        None,
        "200",
        Some("WebhookView"),
    ),
    (
        HttpMethod::Put,
        "/api/webhooks/{id}",
        "Update a webhook",
        Some("WebhookInput"),
        "200",
        Some("WebhookView"),
    ),
    (
        HttpMethod::Patch,
        "/api/webhooks/{id}",
        "Update a webhook (partial)",
        Some("WebhookInput"),
        "200",
        Some("WebhookView"),
    ),
    (
        HttpMethod::Delete,
        "/api/webhooks/{id}",
        "Delete a webhook",
        None,
        "204",
        None,
    ),
    (
        HttpMethod::Post,
        "/api/webhooks/{id}/rotate-secret",
        "Rotate the signing secret with a grace",
        Some("RotateInput"),
        "200",
        Some("WebhookView"),
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/{id}/secret",
        "The full signing secret",
        None,
        "200",
        None,
    ),
    (
        HttpMethod::Post,
        "/api/webhooks/{id}/test",
        "Send a webhook/test event to this webhook",
        None,
        "202",
        None,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/{id}/health",
        "The webhook's actor health",
        None,
        "200",
        Some("HealthView"),
    ),
    (
        HttpMethod::Get,
        "/api/health/webhooks",
        "Health of the caller's webhooks",
        None,
        "200",
        None,
    ),
    (
        HttpMethod::Post,
        "/api/events",
        "Publish one event or a batch",
        Some("EventBatch"),
        "202",
        None,
    ),
    (
        HttpMethod::Post,
        "/api/inngest",
        "Publish (alias of /api/events)",
        Some("EventBatch"),
        "202",
        None,
    ),
    (
        HttpMethod::Post,
        "/e/{key}",
        "Publish, Inngest event API form",
        Some("EventBatch"),
        "200",
        None,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/deliveries",
        "List deliveries, newest first",
        None,
        "200",
        None,
    ),
    (
        HttpMethod::Post,
        "/api/webhooks/deliveries",
        "Record a delivery result from outside",
        Some("RecordRequest"),
        "201",
        Some("DeliveryView"),
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/deliveries/{delivery_id}",
        "One delivery with its attempts",
        None,
        "200",
        Some("DeliveryView"),
    ),
    (
        HttpMethod::Post,
        "/api/webhooks/deliveries/{delivery_id}/retry",
        "Send a finished delivery again",
        None,
        "202",
        None,
    ),
    (
        HttpMethod::Get,
        "/api/whoami",
        "Who the credentials belong to (console sign-in)",
        None,
        "200",
        Some("WhoamiView"),
    ),
    (
        HttpMethod::Get,
        "/api/stats",
        "Delivery and attempt statistics over a window, in 60 buckets",
        None,
        "200",
        None,
    ),
    (
        HttpMethod::Post,
        "/api/webhooks/{id}/recover",
        "Send every failed delivery of a window again (same delivery ids)",
        Some("RecoverRequest"),
        "202",
        None,
    ),
    (
        HttpMethod::Post,
        "/api/keys",
        "Create a tenant API key (global admin)",
        Some("KeyRequest"),
        "201",
        Some("KeyView"),
    ),
    (
        HttpMethod::Get,
        "/api/keys",
        "List tenant API keys (global admin)",
        None,
        "200",
        None,
    ),
    (
        HttpMethod::Delete,
        "/api/keys/{key_id}",
        "Revoke a tenant API key (global admin)",
        None,
        "204",
        None,
    ),
    (HttpMethod::Get, "/healthz", "Liveness", None, "200", None),
    (
        HttpMethod::Get,
        "/readyz",
        "Readiness (database and actors)",
        None,
        "200",
        None,
    ),
    (
        HttpMethod::Get,
        "/metrics",
        "Prometheus metrics",
        None,
        "200",
        None,
    ),
    (
        HttpMethod::Get,
        "/api/openapi.json",
        "This document",
        None,
        "200",
        None,
    ),
];

/// Query parameters: method, path, name, schema kind, required.
type QueryParam = (HttpMethod, &'static str, &'static str, Kind, bool);

/// What a parameter holds.
#[derive(Clone, Copy)]
enum Kind {
    /// A positive id.
    Id,
    /// Any integer.
    Int,
    /// `limit`: 1–1000.
    Limit,
    Bool,
    Str,
    /// A tenant id.
    Tenant,
    /// A delivery status.
    Status,
    /// A `/api/stats` window.
    Window,
    /// An RFC 3339 time.
    Time,
}

const QUERY: &[QueryParam] = &[
    (
        HttpMethod::Get,
        "/api/webhooks",
        "event_type",
        Kind::Str,
        false,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks",
        "enabled",
        Kind::Bool,
        false,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks",
        "limit",
        Kind::Limit,
        false,
    ),
    (HttpMethod::Get, "/api/webhooks", "after", Kind::Int, false),
    (
        HttpMethod::Get,
        "/api/webhooks",
        "tenant_id",
        Kind::Tenant,
        false,
    ),
    (HttpMethod::Delete, "/api/webhooks", "id", Kind::Int, true),
    (
        HttpMethod::Get,
        "/api/webhooks/deliveries",
        "webhook_id",
        Kind::Int,
        false,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/deliveries",
        "event_id",
        Kind::Str,
        false,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/deliveries",
        "status",
        Kind::Status,
        false,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/deliveries",
        "event_type",
        Kind::Str,
        false,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/deliveries",
        "limit",
        Kind::Limit,
        false,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/deliveries",
        "before",
        Kind::Str,
        false,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/deliveries",
        "tenant_id",
        Kind::Tenant,
        false,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/deliveries",
        "since",
        Kind::Time,
        false,
    ),
    (
        HttpMethod::Get,
        "/api/webhooks/deliveries",
        "until",
        Kind::Time,
        false,
    ),
    (HttpMethod::Get, "/api/stats", "window", Kind::Window, false),
    (
        HttpMethod::Get,
        "/api/stats",
        "tenant_id",
        Kind::Tenant,
        false,
    ),
    (
        HttpMethod::Get,
        "/api/stats",
        "webhook_id",
        Kind::Int,
        false,
    ),
    (
        HttpMethod::Get,
        "/api/stats",
        "event_type",
        Kind::Str,
        false,
    ),
];

const TENANT_PATTERN: &str = "^[A-Za-z0-9_.:-]{1,128}$";

fn kind_schema(kind: Kind) -> ObjectBuilder {
    let int = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
    };
    match kind {
        Kind::Id => int().minimum(Some(1)),
        Kind::Int => int(),
        Kind::Limit => int().minimum(Some(1)).maximum(Some(1000)),
        Kind::Bool => ObjectBuilder::new().schema_type(Type::Boolean),
        Kind::Str => ObjectBuilder::new().schema_type(Type::String),
        Kind::Tenant => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(TENANT_PATTERN)),
        Kind::Status => ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(crate::domain::ALL_STATUSES.iter().copied())),
        Kind::Window => ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(
                super::console_api::WINDOWS.iter().map(|(name, _)| *name),
            )),
        Kind::Time => ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
    }
}

/// `base` with `fields` required and not null: the request bodies whose shared input type
/// leaves every field optional (required ones are checked by hand).
fn requiring(base: &str, fields: &[(&str, Type)]) -> RefOr<Schema> {
    let mut extra = ObjectBuilder::new();
    for (name, ty) in fields {
        extra = extra
            .property(*name, ObjectBuilder::new().schema_type(ty.clone()))
            .required(*name);
    }
    RefOr::T(Schema::AllOf(
        AllOfBuilder::new()
            .item(Ref::from_schema_name(base))
            .item(extra)
            .build(),
    ))
}

/// The request bodies named in [`ROUTES`] beyond the `ToSchema` types.
fn request_schemas() -> Vec<(&'static str, RefOr<Schema>)> {
    let text = Type::String;
    let event = Schema::AllOf(
        AllOfBuilder::new()
            .item(Ref::from_schema_name("EventInput"))
            .item(
                ObjectBuilder::new()
                    .property("event", ObjectBuilder::new().schema_type(Type::String))
                    .required("event")
                    .property(
                        "data",
                        ObjectBuilder::new()
                            .schema_type(Type::Object)
                            .property(
                                "tenantId",
                                ObjectBuilder::new()
                                    .schema_type(Type::String)
                                    .pattern(Some(TENANT_PATTERN)),
                            )
                            .required("tenantId"),
                    )
                    .required("data"),
            )
            .build(),
    );
    let batch = OneOfBuilder::new()
        .item(Ref::from_schema_name("EventRequest"))
        .item(
            ArrayBuilder::new()
                .items(Ref::from_schema_name("EventRequest"))
                .min_items(Some(1))
                .max_items(Some(super::events::MAX_BATCH)),
        )
        .description(Some("One event, or a batch of up to 1000 (all or nothing)"))
        .build();
    vec![
        (
            "WebhookCreate",
            requiring(
                "WebhookInput",
                &[
                    ("webhook_name", text.clone()),
                    ("tenant_id", text.clone()),
                    ("event_type", text.clone()),
                    ("url", text.clone()),
                ],
            ),
        ),
        (
            "WebhookUpdate",
            requiring("WebhookInput", &[("webhook_id", Type::Integer)]),
        ),
        (
            "MatchRequest",
            requiring(
                "MatchInput",
                &[("event_type", text.clone()), ("tenant_id", text.clone())],
            ),
        ),
        (
            "RecordRequest",
            requiring(
                "RecordInput",
                &[
                    ("webhook_id", Type::Integer),
                    ("event_id", text.clone()),
                    ("event_type", text.clone()),
                    ("status", text.clone()),
                ],
            ),
        ),
        (
            "RecoverRequest",
            requiring("RecoverInput", &[("since", text.clone())]),
        ),
        (
            "KeyRequest",
            requiring("KeyInput", &[("tenant_id", text.clone()), ("role", text)]),
        ),
        ("EventRequest", RefOr::T(event)),
        ("EventBatch", RefOr::T(Schema::OneOf(batch))),
    ]
}

fn json_content(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

fn operation(route: &Route) -> utoipa::openapi::path::Operation {
    let (ref method, path, summary, request, status, response) = *route;
    let mut op = OperationBuilder::new().summary(Some(summary));
    for segment in path.split('/').filter(|s| s.starts_with('{')) {
        let name = segment.trim_matches(|c| c == '{' || c == '}');
        // Webhook ids are positive integers; key and delivery ids are strings.
        let kind = if name == "id" { Kind::Id } else { Kind::Str };
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(kind_schema(kind))),
        );
    }
    for (_, _, name, kind, required) in QUERY.iter().filter(|q| q.0 == *method && q.1 == path) {
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(if *required {
                    Required::True
                } else {
                    Required::False
                })
                .schema(Some(kind_schema(*kind))),
        );
    }
    if path.starts_with("/api/webhooks")
        || path.starts_with("/api/health")
        || path.starts_with("/api/stats")
        || path.starts_with("/api/whoami")
        || path.starts_with("/api/events")
        || path.starts_with("/api/inngest")
        || path.starts_with("/e/")
    {
        op = op.parameter(
            ParameterBuilder::new()
                .name("X-Tenant-ID")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some("The tenant the caller acts for"))
                .schema(Some(kind_schema(Kind::Tenant))),
        );
    }
    if let Some(schema) = request {
        // Only rotate-secret may be called without a body.
        let required = if path.ends_with("/rotate-secret") {
            Required::False
        } else {
            Required::True
        };
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_content(schema))
                .required(Some(required))
                .build(),
        ));
    }
    let mut ok = ResponseBuilder::new().description("success");
    if let Some(schema) = response {
        ok = ok.content("application/json", json_content(schema));
    }
    let responses = ResponsesBuilder::new()
        .response(status, ok.build())
        .response(
            "400",
            ResponseBuilder::new()
                .description("malformed JSON or parameters")
                .build(),
        )
        .response(
            "401",
            ResponseBuilder::new()
                .description("missing or wrong credentials")
                .build(),
        )
        .response(
            "403",
            ResponseBuilder::new()
                .description("another tenant's resource")
                .build(),
        )
        .response(
            "404",
            ResponseBuilder::new().description("unknown id").build(),
        )
        .response(
            "413",
            ResponseBuilder::new()
                .description("body over the limit")
                .build(),
        )
        .response(
            "415",
            ResponseBuilder::new().description("not JSON").build(),
        )
        .response(
            "422",
            ResponseBuilder::new()
                .description("well-formed but invalid")
                .build(),
        );
    let responses = match path {
        "/api/webhooks/deliveries/{delivery_id}/retry" => responses.response(
            "409",
            ResponseBuilder::new()
                .description("not finished yet, or its webhook was deleted")
                .build(),
        ),
        "/readyz" => responses.response(
            "503",
            ResponseBuilder::new()
                .description("database or actors not ready, or draining")
                .build(),
        ),
        _ => responses,
    };
    op.responses(responses).build()
}

/// The whole document.
pub fn spec() -> Spec {
    let mut doc = Base::openapi();
    for route in ROUTES {
        let item = PathItem::new(route.0.clone(), operation(route));
        match doc.paths.paths.get_mut(route.1) {
            Some(existing) => existing.merge_operations(item),
            None => {
                doc.paths.paths.insert(route.1.to_string(), item);
            }
        }
    }
    if let Some(components) = doc.components.as_mut() {
        for (name, schema) in request_schemas() {
            components.schemas.insert(name.to_string(), schema);
        }
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
    doc
}

/// Routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/openapi.json").route(web::get().to(document)));
}

async fn document(req: HttpRequest, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    auth::admin(&req, &st).await?;
    Ok(HttpResponse::Ok().json(spec()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_described() {
        let doc = serde_json::to_value(super::spec()).unwrap();
        assert!(doc["paths"]["/api/webhooks"]["post"].is_object());
        assert!(doc["paths"]["/api/webhooks/{id}"]["patch"].is_object());
        assert!(doc["components"]["schemas"]["WebhookView"].is_object());
        assert!(doc["paths"]["/api/stats"]["get"].is_object());
        assert!(doc["paths"]["/api/whoami"]["get"].is_object());
        assert!(doc["paths"]["/api/webhooks/{id}/recover"]["post"].is_object());
    }
}
