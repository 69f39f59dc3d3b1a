//! `GET /api/openapi.json`: the OpenAPI 3 description, built from the route table below and the
//! request/response types' `ToSchema` derives.

use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi as Spec, Ref, Required, ResponseBuilder, ResponsesBuilder,
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
        super::webhooks::WebhookInput,
        super::webhooks::RetryInput,
        super::webhooks::RateLimitInput,
        super::webhooks::BreakerInput,
        super::webhooks::RotateInput,
        super::webhooks::MatchInput,
        super::events::EventInput,
        super::deliveries::RecordInput,
        super::keys::KeyInput,
        super::keys::KeyView,
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
        Some("WebhookInput"),
        "201",
        Some("WebhookView"),
    ),
    (
        HttpMethod::Put,
        "/api/webhooks",
        "Update a webhook named by webhook_id in the body",
        Some("WebhookInput"),
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
        Some("MatchInput"),
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
        Some("EventInput"),
        "202",
        None,
    ),
    (
        HttpMethod::Post,
        "/api/inngest",
        "Publish (alias of /api/events)",
        Some("EventInput"),
        "202",
        None,
    ),
    (
        HttpMethod::Post,
        "/e/{key}",
        "Publish, Inngest event API form",
        Some("EventInput"),
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
        Some("RecordInput"),
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
        HttpMethod::Post,
        "/api/keys",
        "Create a tenant API key (global admin)",
        Some("KeyInput"),
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

fn json_content(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

fn operation(route: &Route) -> utoipa::openapi::path::Operation {
    let (_, path, summary, request, status, response) = *route;
    let mut op = OperationBuilder::new().summary(Some(summary));
    for segment in path.split('/').filter(|s| s.starts_with('{')) {
        let name = segment.trim_matches(|c| c == '{' || c == '}');
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    if let Some(schema) = request {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_content(schema))
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
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
    doc
}

/// Routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/openapi.json", web::get().to(document));
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
    }
}
