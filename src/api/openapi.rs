//! Routes and `GET /api/openapi.json`, both from the handlers: each handler's `#[utoipa::path]`
//! names its method(s) and path, [`op`] registers it under exactly those, and [`spec`] collects
//! the same operations into the OpenAPI 3 document, so a route cannot exist undocumented.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder};
use utoipa::openapi::path::{HttpMethod, Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{
    AllOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Spec, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use super::auth::Admin;
use super::error::ApiResult;

/// One operation: the route of its handler and its description, from the handler's
/// `#[utoipa::path]`.
pub struct Op {
    methods: Vec<HttpMethod>,
    path: String,
    /// The actix pattern of `path` (the same unless [`Op::rest_of_path`]).
    pattern: String,
    operation: Operation,
    route: Box<dyn Fn() -> actix_web::Route>,
}

/// The operation of `handler`, described by `doc` (the `__path_<handler>` type that
/// `#[utoipa::path]` generates beside it).
pub fn op<P, F, Args>(_doc: P, handler: F) -> Op
where
    P: utoipa::Path,
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Op {
        methods: P::methods(),
        path: P::path(),
        pattern: P::path(),
        operation: P::operation(),
        route: Box::new(move || web::route().to(handler.clone())),
    }
}

impl Op {
    /// The path's last parameter takes the rest of the path, `/` included (`{name}` routes as
    /// `{name:.*}`): event-type names hold slashes.
    pub fn rest_of_path(mut self) -> Self {
        if let Some(open) = self.pattern.rfind('{') {
            if self.pattern.ends_with('}') && !self.pattern[open..].contains(':') {
                self.pattern.truncate(self.pattern.len() - 1);
                self.pattern.push_str(":.*}");
            }
        }
        self
    }
}

fn method(m: &HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// Registers `ops` in their order, one resource per path (so that a known path called with
/// another method is a 405, not a 404). actix tries resources in registration order.
pub fn register(cfg: &mut web::ServiceConfig, ops: Vec<Op>) {
    let mut resources: Vec<(String, actix_web::Resource)> = Vec::new();
    for op in ops {
        let at = match resources.iter().position(|(p, _)| *p == op.pattern) {
            Some(i) => i,
            None => {
                resources.push((op.pattern.clone(), web::resource(op.pattern.as_str())));
                resources.len() - 1
            }
        };
        let (path, mut resource) = resources.remove(at);
        for m in &op.methods {
            resource = resource.route((op.route)().method(method(m)));
        }
        resources.insert(at, (path, resource));
    }
    for (_, resource) in resources {
        cfg.service(resource);
    }
}

/// Every (method, path) that [`register`] gives actix for `ops`.
pub fn route_table(ops: &[Op]) -> Vec<(Method, String)> {
    ops.iter()
        .flat_map(|op| op.methods.iter().map(|m| (method(m), op.path.clone())))
        .collect()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Beema Webhooks",
        description = "Webhook dispatcher: durable intake, signed, retried, rate-limited deliveries."
    ),
    components(schemas(
        super::views::WebhookView,
        crate::domain::RetryConfig,
        crate::domain::RateLimit,
        crate::domain::BreakerSettings,
        crate::domain::BatchSettings,
        crate::domain::DeliveryStatus,
        super::views::DeliveryView,
        super::views::AttemptView,
        crate::actors::status::HealthView,
        crate::actors::status::CircuitView,
        crate::actors::status::QueueView,
        crate::actors::status::StatsView,
        crate::actors::status::LatencyView,
        crate::cluster::ClusterView,
        crate::cluster::NodeView,
        super::webhook_input::WebhookInput,
        super::webhook_input::RetryInput,
        super::webhook_input::RateLimitInput,
        super::webhook_input::BreakerInput,
        super::webhook_input::BatchInput,
        super::webhook_input::RotateInput,
        super::replay::ReplayInput,
        super::webhook_input::MatchInput,
        super::events::EventInput,
        super::deliveries::RecordInput,
        super::keys::KeyInput,
        super::keys::KeyView,
        super::event_types::EventTypeView,
        super::event_types::EventTypeInput,
        WebhookCreate,
        WebhookUpdate,
        MatchRequest,
        RecordRequest,
        KeyRequest,
        EventRequest,
        EventBatch,
        super::console_api::WhoamiView,
        super::console_api::RecoverInput,
    ))
)]
struct Base;

const TENANT_PATTERN: &str = "^[A-Za-z0-9_.:-]{1,128}$";

/// `base` with `fields` required and not null: request bodies whose input type leaves every
/// field optional (so that `null` and absence are one case, checked by hand).
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

/// Request bodies described by composing the input types; their names are what the handlers'
/// `request_body` refers to.
macro_rules! composed_schema {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }
        impl ToSchema for $name {}
    };
}

composed_schema!(
    /// Body of create: `WebhookInput` with its required fields.
    WebhookCreate => requiring(
        "WebhookInput",
        &[
            ("webhook_name", Type::String),
            ("tenant_id", Type::String),
            ("event_type", Type::String),
            ("url", Type::String),
        ],
    )
);
composed_schema!(
    /// Body of `PUT /api/webhooks`: `WebhookInput` naming the webhook.
    WebhookUpdate => requiring("WebhookInput", &[("webhook_id", Type::Integer)])
);
composed_schema!(
    /// Body of match.
    MatchRequest => requiring(
        "MatchInput",
        &[("event_type", Type::String), ("tenant_id", Type::String)],
    )
);
composed_schema!(
    /// Body of `POST /api/webhooks/deliveries`.
    RecordRequest => requiring(
        "RecordInput",
        &[
            ("webhook_id", Type::Integer),
            ("event_id", Type::String),
            ("event_type", Type::String),
            ("status", Type::String),
        ],
    )
);
composed_schema!(
    /// Body of `POST /api/keys`.
    KeyRequest => requiring("KeyInput", &[("tenant_id", Type::String), ("role", Type::String)])
);
composed_schema!(
    /// One event with its name and tenant.
    EventRequest => RefOr::T(Schema::AllOf(
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
    ))
);
composed_schema!(
    /// Body of publishing: one event, or a batch of up to 1000 (all or nothing).
    EventBatch => RefOr::T(Schema::OneOf(
        OneOfBuilder::new()
            .item(Ref::from_schema_name("EventRequest"))
            .item(
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("EventRequest"))
                    .min_items(Some(1))
                    .max_items(Some(super::events::MAX_BATCH)),
            )
            .description(Some("One event, or a batch of up to 1000 (all or nothing)"))
            .build(),
    ))
);

/// Answers every operation may give besides its own.
const COMMON_RESPONSES: &[(&str, &str)] = &[
    ("400", "malformed JSON or parameters"),
    ("401", "missing or wrong credentials"),
    ("403", "another tenant's resource"),
    ("404", "unknown id"),
    ("413", "body over the limit"),
    ("415", "not JSON"),
    ("422", "well-formed but invalid"),
];

/// Adds what every operation shares: the error answers and, on tenant-scoped paths, the
/// `X-Tenant-ID` header.
fn complete(path: &str, mut op: Operation) -> Operation {
    for (status, description) in COMMON_RESPONSES {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(*description)
                    .build()
                    .into()
            });
    }
    let tenant_scoped = [
        "/api/webhooks",
        "/api/health",
        "/api/events",
        "/api/event-types",
        "/api/inngest",
        "/e/",
    ]
    .iter()
    .any(|p| path.starts_with(p));
    if tenant_scoped {
        op.parameters.get_or_insert_with(Vec::new).push(
            ParameterBuilder::new()
                .name("X-Tenant-ID")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some("The tenant the caller acts for"))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(TENANT_PATTERN)),
                ))
                .build(),
        );
    }
    op
}

/// The document describing `ops`.
pub fn spec_of(ops: &[Op]) -> Spec {
    let mut doc = Base::openapi();
    for op in ops {
        for m in &op.methods {
            let item = PathItem::new(m.clone(), complete(&op.path, op.operation.clone()));
            match doc.paths.paths.get_mut(&op.path) {
                Some(existing) => existing.merge_operations(item),
                None => {
                    doc.paths.paths.insert(op.path.clone(), item);
                }
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

/// The whole API's document.
pub fn spec() -> Spec {
    spec_of(&super::operations())
}

/// Operations of this resource.
pub fn operations() -> Vec<Op> {
    vec![op(__path_document, document)]
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", responses((status = 200, description = "The OpenAPI 3 document")))]
async fn document(_: Admin) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(spec()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn operations_carry_their_handlers_descriptions() {
        let doc = serde_json::to_value(super::spec()).unwrap();
        assert!(doc["paths"]["/api/webhooks"]["post"].is_object());
        assert!(doc["paths"]["/api/webhooks/{id}"]["patch"].is_object());
        assert!(doc["components"]["schemas"]["WebhookView"].is_object());
        assert!(doc["paths"]["/api/webhooks"]["get"]["responses"]["401"].is_object());
    }
}
