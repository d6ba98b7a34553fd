//! Human-readable pages: one per error code at `/docs/errors/{code}` (every `doc_url`
//! resolves here), and their index.

use axum::extract::Path;
use axum::response::{Html, IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(error_index)).routes(routes!(error_page))
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
         <title>{title} · faultline</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}}\
         code{{background:#f1f1f1;padding:0 .25em}}td,th{{padding:.25rem .75rem;text-align:left}}</style></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>"
    )
}
