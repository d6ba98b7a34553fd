//! The OpenAPI document: generated from the handlers' annotations, served at
//! `GET /openapi.json`, and committed as `openapi.json` (a test fails when they differ).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "faultline Faults API",
        description = "Query, resolve, comment on, analyse and share fault data of managed network sites. \
                       Every non-2xx answer is {type, code, message, doc_url}; see /docs/errors.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "Faults", description = "Manage and retrieve fault records."),
        (name = "Comments", description = "Add comments to existing faults."),
        (name = "Analytics", description = "Views over many faults: the recent view and the most faulty resources."),
        (name = "Access Tokens", description = "Generate temporary access tokens and share fault views."),
        (name = "Integrations", description = "Faults in from other tools: Prometheus Alertmanager's webhook and the PagerDuty Events API v2."),
        (name = "Webhooks", description = "Faults out to other tools: signed callbacks (Standard Webhooks) of every change, retried on a schedule, with a log of every attempt. Needs `webhooks:write`."),
        (name = "Sites", description = "The customer's sites: their names (shown wherever a site appears), heartbeat status and open faults."),
        (name = "Console", description = "The operators' web console and its sign-in: sessions by cookie, one-time sign-in links."),
        (name = "Service", description = "Health, metrics and documentation of the service itself."),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (flk_…) or an access token (a JWT from POST /fault/token).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document's fixed parts, onto which every feature router adds its paths.
pub fn base() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// Every POST takes an `Idempotency-Key` header and may answer 409 `idempotency_key_reused`
/// (see [`crate::idempotency`]); said once here rather than on each handler.
pub fn document_idempotency(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, RefOr, ResponseBuilder, Type};
    for item in doc.paths.paths.values_mut() {
        let Some(post) = item.post.as_mut() else { continue };
        let key = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .description(Some(
                "Retrying with the same key and body within 24 hours replays the first answer \
                 (marked Idempotent-Replayed: true) without doing the work again.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(crate::idempotency::MAX_KEY_LEN))
                    .pattern(Some("^[!-~]([ -~]*[!-~])?$")),
            ))
            .build();
        post.parameters.get_or_insert_with(Vec::new).push(key);
        let conflict = ResponseBuilder::new()
            .description("The Idempotency-Key was used with a different request")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody"))))
                    .build(),
            )
            .build();
        post.responses.responses.insert("409".to_owned(), RefOr::T(conflict));
    }
}

/// The document as pretty JSON with a trailing newline, exactly as committed.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut text = crate::openapi_document().to_pretty_json().expect("OpenAPI serialises");
        text.push('\n');
        text
    })
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "Service",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document_json())
}
