//! `GET /whoami`: what the presented credential resolves to, so an operator can check a key.

use axum::Json;
use faultline_core::auth::CredentialKind;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(whoami))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    #[schema(example = "cus_31pkd1t8FvW7qZv0jG2a9kH5mB1")]
    pub customer_id: String,
    #[schema(example = "usr_31pkd1t8FvW7qZv0jG2a9kH5mB1")]
    pub user_id: String,
    /// `api_key` or `access_token`.
    pub credential_type: &'static str,
    /// The credential's id (`key_…` or `tok_…`), never its secret.
    pub credential_id: String,
    #[schema(example = json!(["faults:read"]))]
    pub permissions: Vec<&'static str>,
    /// Requests per minute allowed for this credential.
    pub rate_limit_per_minute: u32,
}

/// Describe the calling credential.
#[utoipa::path(get, path = "/whoami", tag = "Service", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = crate::error::ErrorBody)))]
pub async fn whoami(Auth(principal): Auth) -> Json<WhoAmI> {
    Json(WhoAmI {
        credential_type: match principal.credential {
            CredentialKind::ApiKey { .. } => "api_key",
            CredentialKind::AccessToken { .. } => "access_token",
        },
        credential_id: principal.credential_id().to_owned(),
        permissions: principal.permissions.iter().map(|p| p.as_str()).collect(),
        rate_limit_per_minute: principal.rate_limit_per_minute,
        customer_id: principal.customer_id,
        user_id: principal.user_id,
    })
}
