//! The files the service's pages load — the shared dashboard's and the console's script and
//! stylesheet — embedded in the binary and served at `GET /assets/<stem>-<hash>.<ext>`: a name
//! that changes with the content, so each can be cached for good. Public, and not API (absent
//! from the OpenAPI document).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

/// A file embedded in the binary, under a name that changes with its content.
pub struct Asset {
    name: String,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, extension: &str, body: &'static str) -> Asset {
        let content_type = match extension {
            "js" => "text/javascript; charset=utf-8",
            _ => "text/css; charset=utf-8",
        };
        let digest = Sha256::digest(body.as_bytes());
        Asset { name: format!("{stem}-{}.{extension}", &hex::encode(digest)[..12]), content_type, body }
    }

    /// Where it is served.
    pub fn path(&self) -> String {
        format!("/assets/{}", self.name)
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

macro_rules! asset {
    ($name:ident, $stem:literal, $ext:literal, $file:literal) => {
        pub static $name: LazyLock<Asset> = LazyLock::new(|| Asset::new($stem, $ext, include_str!($file)));
    };
}

asset!(DASHBOARD_SCRIPT, "dashboard", "js", "../assets/dashboard/dashboard.js");
asset!(DASHBOARD_STYLE, "dashboard", "css", "../assets/dashboard/dashboard.css");
asset!(CONSOLE_SCRIPT, "console", "js", "../assets/console/console.js");
asset!(CONSOLE_STYLE, "console", "css", "../assets/console/console.css");

fn all() -> [&'static Asset; 4] {
    [&DASHBOARD_SCRIPT, &DASHBOARD_STYLE, &CONSOLE_SCRIPT, &CONSOLE_STYLE]
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().route("/assets/{file}", get(serve))
}

async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = all().into_iter().find(|a| a.name == file) else {
        return ApiError::not_found().into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response()
}
