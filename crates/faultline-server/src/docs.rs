//! Human-readable pages, rendered on the server from what the code knows, with no script and
//! nothing fetched from elsewhere: the API reference at `/docs` (from the OpenAPI document),
//! one page per error code at `/docs/errors/{code}` (every `doc_url` resolves here), and their
//! index.

use std::fmt::Write;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(reference)).routes(routes!(error_index)).routes(routes!(error_page))
}

/// The API reference: every operation, parameter, body and schema with its limits.
#[utoipa::path(get, path = "/docs", tag = "Service",
    responses((status = 200, description = "HTML API reference, rendered from /openapi.json", content_type = "text/html")))]
pub async fn reference() -> Html<&'static str> {
    static PAGE: OnceLock<String> = OnceLock::new();
    Html(PAGE.get_or_init(|| {
        let doc: Value =
            serde_json::from_str(crate::openapi::document_json()).expect("the OpenAPI document is JSON");
        render_reference(&doc)
    }))
}

fn render_reference(doc: &Value) -> String {
    let mut body = String::new();
    let info = &doc["info"];
    let _ = write!(
        body,
        "<p>{} Version {}. Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>. Errors: <a href=\"/docs/errors\">/docs/errors</a>.</p>",
        escape(info["description"].as_str().unwrap_or("")),
        escape(info["version"].as_str().unwrap_or(""))
    );
    let empty = serde_json::Map::new();
    let paths = doc["paths"].as_object().unwrap_or(&empty);
    body.push_str("<nav aria-label=\"Operations\"><h2>Operations</h2><ul>");
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap_or(&empty) {
            let id = op["operationId"].as_str().unwrap_or(method);
            let _ = write!(
                body,
                "<li><a href=\"#{id}\"><code>{} {}</code></a> {}</li>",
                method.to_uppercase(),
                escape(path),
                escape(op["summary"].as_str().unwrap_or(""))
            );
        }
    }
    body.push_str("</ul></nav>");
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap_or(&empty) {
            let id = op["operationId"].as_str().unwrap_or(method);
            let _ = write!(
                body,
                "<section id=\"{id}\"><h2><code>{} {}</code></h2>",
                method.to_uppercase(),
                escape(path)
            );
            if let Some(text) = op["description"].as_str().or(op["summary"].as_str()) {
                let _ = write!(body, "<p>{}</p>", escape(text));
            }
            let public = op.get("security").is_none();
            let _ = write!(
                body,
                "<p>{}</p>",
                if public { "Public." } else { "Needs <code>Authorization: Bearer</code>." }
            );
            if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                body.push_str("<table><caption>Parameters</caption><tr><th>name</th><th>in</th><th>schema</th><th>meaning</th></tr>");
                for p in params {
                    let required = if p["required"] == true { " (required)" } else { "" };
                    let _ = write!(
                        body,
                        "<tr><td><code>{}</code>{required}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        escape(p["name"].as_str().unwrap_or("")),
                        escape(p["in"].as_str().unwrap_or("")),
                        schema_summary(&p["schema"]),
                        escape(p["description"].as_str().unwrap_or(""))
                    );
                }
                body.push_str("</table>");
            }
            if let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") {
                let _ = write!(body, "<p>Body: {}</p>", schema_summary(schema));
            }
            body.push_str(
                "<table><caption>Responses</caption><tr><th>status</th><th>meaning</th><th>body</th></tr>",
            );
            for (status, response) in op["responses"].as_object().unwrap_or(&empty) {
                let schema = response["content"]
                    .as_object()
                    .and_then(|c| c.values().next())
                    .map(|c| schema_summary(&c["schema"]));
                let _ = write!(
                    body,
                    "<tr><td>{status}</td><td>{}</td><td>{}</td></tr>",
                    escape(response["description"].as_str().unwrap_or("")),
                    schema.unwrap_or_default()
                );
            }
            body.push_str("</table></section>");
        }
    }
    body.push_str("<h2>Schemas</h2>");
    for (name, schema) in doc.pointer("/components/schemas").and_then(Value::as_object).unwrap_or(&empty) {
        let _ = write!(body, "<section id=\"schema-{0}\"><h3>{0}</h3>", escape(name));
        if let Some(text) = schema["description"].as_str() {
            let _ = write!(body, "<p>{}</p>", escape(text));
        }
        if let Some(props) = schema["properties"].as_object() {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            body.push_str("<table><tr><th>field</th><th>schema</th><th>meaning</th></tr>");
            for (field, prop) in props {
                let mark = if required.contains(&field.as_str()) { " (required)" } else { "" };
                let _ = write!(
                    body,
                    "<tr><td><code>{}</code>{mark}</td><td>{}</td><td>{}</td></tr>",
                    escape(field),
                    schema_summary(prop),
                    escape(prop["description"].as_str().unwrap_or(""))
                );
            }
            body.push_str("</table>");
        } else {
            let _ = write!(body, "<p>{}</p>", schema_summary(schema));
        }
        body.push_str("</section>");
    }
    page(info["title"].as_str().unwrap_or("API reference"), &body)
}

/// A schema in one line: its type or reference, and its limits.
fn schema_summary(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("<a href=\"#schema-{0}\">{0}</a>", escape(name));
    }
    if let Some(variants) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let parts: Vec<String> = variants.iter().map(schema_summary).collect();
        return parts.join(" or ");
    }
    let mut text = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(types) => types.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | "),
        _ => String::new(),
    };
    if text == "array" {
        text = format!("array of {}", schema_summary(&schema["items"]));
    }
    let mut limits = Vec::new();
    for key in ["format", "minimum", "maximum", "minLength", "maxLength", "pattern", "default"] {
        if let Some(v) = schema.get(key) {
            limits.push(format!("{key} {}", escape(&v.to_string())));
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        limits.push(format!(
            "one of {}",
            escape(&values.iter().map(Value::to_string).collect::<Vec<_>>().join(", "))
        ));
    }
    if limits.is_empty() { escape(&text) } else { format!("{} ({})", escape(&text), limits.join("; ")) }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Every error code with its status and meaning.
#[utoipa::path(get, path = "/docs/errors", tag = "Service",
    responses((status = 200, description = "HTML index of error codes", content_type = "text/html")))]
pub async fn error_index() -> Html<String> {
    let rows: String = ErrorCode::ALL
        .iter()
        .map(|c| {
            format!(
                "<tr><td><a href=\"/docs/errors/{0}\"><code>{0}</code></a></td><td>{1}</td><td><code>{2}</code></td></tr>",
                c.as_str(),
                c.status().as_u16(),
                c.error_type()
            )
        })
        .collect();
    Html(page(
        "Error codes",
        &format!(
            "<table><thead><tr><th>code</th><th>status</th><th>type</th></tr></thead><tbody>{rows}</tbody></table>"
        ),
    ))
}

/// What one error code means and how to fix it.
#[utoipa::path(get, path = "/docs/errors/{code}", tag = "Service",
    params(("code" = String, Path, description = "An error code, e.g. parameter_missing")),
    responses((status = 200, description = "HTML page", content_type = "text/html"),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn error_page(Path(code): Path<String>) -> Response {
    let Some(code) = ErrorCode::from_code(&code) else {
        return ApiError::not_found().into_response();
    };
    Html(page(
        code.as_str(),
        &format!(
            "<p>HTTP status <strong>{}</strong>, error type <code>{}</code>.</p><p>{}</p><p><a href=\"/docs/errors\">All error codes</a></p>",
            code.status().as_u16(),
            code.error_type(),
            code.explanation()
        ),
    ))
    .into_response()
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · faultline</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}}\
         code{{background:#f1f1f1;padding:0 .25em}}td,th{{padding:.25rem .75rem;text-align:left;vertical-align:top}}\
         table{{border-collapse:collapse;margin:.5rem 0}}tr{{border-bottom:1px solid #ddd}}caption{{text-align:left;font-weight:600}}</style></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>"
    )
}
