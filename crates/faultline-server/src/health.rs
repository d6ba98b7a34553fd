//! Liveness and readiness probes.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(crate::observability::metrics_text))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` when the process is up, `ready` when it can reach its database.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// `sqlite` or `postgres` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<&'static str>,
}

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "Service", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", database: None })
}

/// The database answers within two seconds.
#[utoipa::path(get, path = "/readyz", tag = "Service",
    responses((status = 200, body = Health), (status = 503, body = crate::error::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    let unavailable = || ApiError::new(ErrorCode::DatabaseUnavailable, "The database is not reachable.");
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(Health { status: "ready", database: Some(state.store.backend().name()) })),
        Ok(Err(err)) => {
            // An outage is logged once by the store, not at every probe.
            faultline_store::outage::warn_unless_outage(&err, "readiness check failed");
            Err(unavailable())
        }
        Err(_) => Err(unavailable()),
    }
}
