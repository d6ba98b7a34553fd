//! Access tokens and sharing: `POST /fault/token` (the seed operation), the public token feed
//! `GET /fault/token/{id}`, the token list and revocation, and the JWKS document. The page a
//! short link opens is in [`crate::dashboard`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use faultline_core::Permission;
use faultline_core::auth::CredentialKind;
use faultline_core::filter::ListRequest;
use faultline_core::ids::{IdKind, random_base62};
use faultline_core::scope::{MintRequest, TokenScope};
use faultline_core::time::{format_micros, now_micros};
use faultline_store::{AccessToken, FaultQuery, Written};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{JsonBody, QueryPairs};
use crate::faults::FaultView;
use crate::idempotency::{Begun, IdempotencyKey, KeyedRequest, render_json, replay};
use crate::jwt::TokenError;
use crate::state::AppState;

/// Routes that need an API key (`tokens:write`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(mint_token, list_tokens)).routes(routes!(revoke_token))
}

/// Public routes: the token feed and the JWKS document (short links: [`crate::dashboard`]).
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(token_feed)).routes(routes!(jwks))
}

/// The body of `POST /fault/token`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; the handler validates the JSON field by field
pub struct GenerateTokenRequest {
    /// The number of minutes from now that the token should expire.
    #[schema(minimum = 1, maximum = 43200, example = 60)]
    expire_after_minutes: i64,
    /// [ext] Only faults of these sites (any ancestry element or the resource id).
    #[schema(max_items = 100, min_length = 1, max_length = 255)]
    site_ids: Option<Vec<String>>,
    /// [ext] Only faults of these resources.
    #[schema(max_items = 100)]
    resource_ids: Option<Vec<String>>,
    /// [ext] Only these faults.
    #[schema(max_items = 100)]
    fault_ids: Option<Vec<String>>,
    /// [ext] Only faults of these severities.
    #[schema(max_items = 100)]
    severity: Option<Vec<faultline_core::fault::Severity>>,
    /// [ext] Only faults of these types.
    #[serde(rename = "type")]
    #[schema(max_items = 100)]
    types: Option<Vec<String>>,
    /// [ext] A label shown in the token list.
    #[schema(max_length = 200, example = "NOC wall screen")]
    label: Option<String>,
}

/// A temporary access token.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessTokenView {
    /// The JSON Web Token (EdDSA).
    pub token: String,
    /// Always `jwt`.
    #[serde(rename = "type")]
    #[schema(example = "jwt")]
    pub token_type: &'static str,
    #[schema(example = 60)]
    pub expires_in_minutes: i64,
    /// Equal to the JWT's `exp`.
    #[schema(example = "2025-10-21T13:00:00.000000Z")]
    pub expires_at: String,
    /// A URL that opens the shared dashboard without the JWT in any URL.
    #[schema(example = "https://faults.example.com/s/4Fq2x9LbT0aZr7Yw1cVnPq")]
    pub short_link: String,
    /// [ext] The token's id (`tok_…`), for listing and revocation.
    #[schema(example = "tok_31pkd1t8FvW7qZv0jG2a9kH5mB1")]
    pub id: String,
}

/// A minted token as listed: never the JWT.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub label: String,
    pub scope: TokenScope,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Uses counted so far (written within a few seconds of each use).
    pub use_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub data: Vec<TokenInfo>,
}

impl From<AccessToken> for TokenInfo {
    fn from(t: AccessToken) -> Self {
        let status = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at <= now_micros() {
            "expired"
        } else {
            "active"
        };
        TokenInfo {
            id: t.id,
            label: t.label,
            scope: t.scope,
            status,
            created_at: format_micros(t.created_at),
            expires_at: format_micros(t.expires_at),
            revoked_at: t.revoked_at.map(format_micros),
            last_used_at: t.last_used_at.map(format_micros),
            use_count: t.use_count,
        }
    }
}

/// Generate a temporary access token.
///
/// Generates a short-lived JSON Web Token (JWT) that can be used to provide temporary,
/// read-only access to specific fault data, typically for embedding in external dashboards.
#[utoipa::path(post, path = "/fault/token", tag = "Access Tokens", operation_id = "generateAccessToken",
    security(("bearer" = [])), request_body = GenerateTokenRequest,
    responses(
        (status = 200, description = "The generated access token and its metadata.", body = AccessTokenView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "An id in the scope is not the caller's", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 500, body = ErrorBody)))]
pub async fn mint_token(
    State(state): State<AppState>,
    auth: Auth,
    idempotency_key: IdempotencyKey,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let principal = auth.require(Permission::TokensWrite)?;
    let keyed = match idempotency_key.begin(&*state.store, principal, &body).await? {
        Begun::Run(keyed) => keyed,
        Begun::Replay(answer) => return Ok(answer),
    };
    let request = MintRequest::from_json(&body)?;
    match mint(&state, &principal.customer_id, principal.credential_id(), request, keyed.as_ref()).await {
        Ok(view) => Ok(Json(view).into_response()),
        Err(Minted::Replayed(answer)) => Ok(answer),
        Err(Minted::Failed(err)) => Err(err),
    }
}

/// Why [`mint`] returned no new token.
#[derive(Debug)]
pub enum Minted {
    /// Its `Idempotency-Key` was used before for this request: the first answer, replayed.
    Replayed(Response),
    Failed(ApiError),
}

impl From<ApiError> for Minted {
    fn from(err: ApiError) -> Self {
        Minted::Failed(err)
    }
}

impl From<faultline_store::StoreError> for Minted {
    fn from(err: faultline_store::StoreError) -> Self {
        Minted::Failed(err.into())
    }
}

/// Mint an access token for `customer_id`, on behalf of the credential `created_by`: check the
/// scope's ids, sign, and store the token with its short link (and `keyed`'s answer).
pub async fn mint(
    state: &AppState,
    customer_id: &str,
    created_by: &str,
    request: MintRequest,
    keyed: Option<&KeyedRequest>,
) -> Result<AccessTokenView, Minted> {
    if !request.scope.is_unrestricted() && !state.store.scope_ids_exist(customer_id, &request.scope).await? {
        return Err(Minted::Failed(ApiError::new(
            ErrorCode::ResourceNotFound,
            "A site, resource or fault named in the scope does not exist.",
        )));
    }
    let now = now_micros() / 1_000_000;
    let exp = now + request.expire_after_minutes * 60;
    let token = AccessToken {
        id: IdKind::AccessToken.new_id_at(now),
        customer_id: customer_id.to_owned(),
        kid: state.keys.active_kid().await?,
        label: request.label,
        scope: request.scope,
        created_by: created_by.to_owned(),
        created_at: now * 1_000_000,
        expires_at: exp * 1_000_000,
        revoked_at: None,
        last_used_at: None,
        use_count: 0,
    };
    let jwt = state
        .keys
        .token_jwt(&token)
        .await?
        .ok_or_else(|| ApiError::internal("the active signing key is unknown"))?;
    let code = random_base62(crate::dashboard::SHORT_CODE_LEN);
    let view = AccessTokenView {
        token: jwt,
        token_type: "jwt",
        expires_in_minutes: request.expire_after_minutes,
        expires_at: format_micros(token.expires_at),
        short_link: format!("{}/{code}", state.config.short_link_base()),
        id: token.id.clone(),
    };
    let rendered = render_json(&view);
    let record = keyed.map(|k| k.record(StatusCode::OK, move |_: &AccessToken| rendered.clone()));
    if let Written::Replayed(stored) = state.store.insert_access_token(&token, &code, record.as_ref()).await?
    {
        return Err(Minted::Replayed(replay(stored)));
    }
    tracing::info!(token_id = %token.id, customer_id = %token.customer_id, "access token minted");
    Ok(view)
}

/// [ext] The customer's minted tokens, newest first (never the JWT itself).
#[utoipa::path(get, path = "/fault/token", tag = "Access Tokens", operation_id = "listAccessTokens",
    security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Default 100")),
    responses((status = 200, body = TokenList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    auth: Auth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<TokenList>> {
    let principal = auth.require(Permission::TokensWrite)?;
    let mut limit = 100;
    if let Some((_, value)) = pairs.iter().find(|(k, _)| k == "limit") {
        limit = value
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n) && value.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| ApiError::invalid("limit", "must be an integer from 1 to 100"))?;
    }
    let tokens = state.store.list_access_tokens(&principal.customer_id, limit).await?;
    Ok(Json(TokenList { data: tokens.into_iter().map(TokenInfo::from).collect() }))
}

/// [ext] Revoke a token now: the JWT and its short link stop working at once.
#[utoipa::path(delete, path = "/fault/token/{id}", tag = "Access Tokens", operation_id = "revokeAccessToken",
    security(("bearer" = [])), params(("id" = String, Path, description = "The token id, tok_…")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth,
    Path(token_id): Path<String>,
) -> ApiResult<StatusCode> {
    let principal = auth.require(Permission::TokensWrite)?;
    if state.store.revoke_access_token(&principal.customer_id, &token_id, now_micros()).await? {
        state.keys.forget_token(&token_id);
        tracing::info!(token_id, "access token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

/// The shared health dashboard feed: the faults the token in the path may read.
///
/// The recent view (unresolved, or created in the last 24 hours) unless filters are given;
/// every `GET /fault` filter applies within the token's scope.
#[utoipa::path(get, path = "/fault/token/{id}", tag = "Access Tokens", operation_id = "getTokenFeed",
    params(("id" = String, Path, description = "The access token (JWT) itself"), crate::faults::ListParams),
    responses((status = 200, body = Vec<FaultView>),
        (status = 400, body = ErrorBody),
        (status = 404, description = "Invalid, expired or revoked token", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn token_feed(
    State(state): State<AppState>,
    Path(jwt): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    let (_, token) = state.keys.verify(&jwt).await.map_err(|e| match e {
        TokenError::Store(cause) => ApiError::internal(cause),
        _ => ApiError::not_found(),
    })?;
    crate::auth::check_rate(&state, &token.id, state.config.token_rate_limit)?;
    state.token_usage.record(&token.id);
    let mut request = ListRequest::from_pairs(&pairs)?;
    let filtering = pairs.iter().any(|(k, _)| !matches!(k.as_str(), "limit" | "cursor"));
    request.filter.recent = request.filter.recent || !filtering;
    request.filter.scope = Some(token.scope.clone());
    let query = FaultQuery { filter: &request.filter, after: None, limit: request.limit, now: now_micros() };
    let faults = state.store.list_faults(&token.customer_id, &query).await?;
    let views: Vec<FaultView> = faults.into_iter().map(FaultView::from).collect();
    Ok(Json(views).into_response())
}

/// The public keys that verify access tokens (RFC 7517), for verifying tokens offline.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "Access Tokens", operation_id = "getJwks",
    responses((status = 200, description = "JSON Web Key Set of Ed25519 (OKP) keys", content_type = "application/json")))]
pub async fn jwks(State(state): State<AppState>) -> ApiResult<Response> {
    let document = state.keys.jwks().await?;
    Ok(([(header::CACHE_CONTROL, "public, max-age=60")], Json(document)).into_response())
}

/// The principal of a verified access token: read-only, limited to its scope.
pub fn token_principal(state: &AppState, token: AccessToken) -> faultline_core::Principal {
    faultline_core::Principal {
        customer_id: token.customer_id,
        user_id: token.id.clone(),
        permissions: [Permission::FaultsRead].into_iter().collect(),
        rate_limit_per_minute: state.config.token_rate_limit,
        scope: Some(token.scope),
        credential: CredentialKind::AccessToken { token_id: token.id },
    }
}
