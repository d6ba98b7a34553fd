//! `/webhooks`: the customer's outbound webhook endpoints, their secrets, and the messages sent
//! to them (`docs/webhooks.md`). Every route needs `webhooks:write`. The messages themselves
//! are queued and sent by [`crate::webhook_delivery`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use faultline_core::cursor::Position;
use faultline_core::ids::IdKind;
use faultline_core::time::{format_micros, now_micros};
use faultline_core::webhooks::{
    EVENT_TYPES, EndpointFilter, TEST_EVENT, WebhookSecret, message_body, validate_description,
    validate_events, validate_filter, validate_url,
};
use faultline_core::{Permission, Principal};
use faultline_store::{NewWebhookMessage, Webhook, WebhookMessage, Written};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{JsonBody, QueryPairs};
use crate::faults::ListMeta;
use crate::idempotency::{Begun, IdempotencyKey, render_json, replay};
use crate::state::AppState;

/// After a rotation, the secret before it also signs for this long.
pub const PREVIOUS_SECRET_SIGNS_FOR_MICROS: i64 = 24 * 3_600 * 1_000_000;
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(send_test))
        .routes(routes!(list_messages))
        .routes(routes!(retry_message))
}

/// The events an endpoint may be sent.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // documents the values; the handlers validate the strings
pub enum WebhookEvent {
    #[serde(rename = "fault.created")]
    FaultCreated,
    #[serde(rename = "fault.resolved")]
    FaultResolved,
    #[serde(rename = "fault.commented")]
    FaultCommented,
    #[serde(rename = "fault.deleted")]
    FaultDeleted,
}

/// The body of `POST /webhooks`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; the handler validates the JSON field by field
pub struct CreateWebhook {
    /// Where messages are sent: an `http` or `https` URL the service's `webhook_allowed_hosts`
    /// allows.
    #[schema(example = "https://hooks.example.com/faultline", max_length = 2048)]
    url: String,
    /// The event types to send (default: all of them).
    #[schema(example = json!(["fault.created", "fault.resolved"]), min_items = 1)]
    events: Option<Vec<WebhookEvent>>,
    /// Send only the faults that match (empty lists match everything).
    filter: Option<EndpointFilter>,
    #[schema(max_length = 500)]
    description: Option<String>,
}

/// The body of `PATCH /webhooks/{webhookId}`: the fields to change.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UpdateWebhook {
    #[schema(max_length = 2048)]
    url: Option<String>,
    #[schema(min_items = 1)]
    events: Option<Vec<WebhookEvent>>,
    filter: Option<EndpointFilter>,
    #[schema(max_length = 500)]
    description: Option<String>,
    /// `true` enables an endpoint again (also one the service disabled), `false` stops sending.
    enabled: Option<bool>,
}

/// A webhook endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    #[schema(example = "whk_31pkd1t8FvW7qZv0jG2a9kH5mB1")]
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub filter: EndpointFilter,
    pub description: Option<String>,
    pub enabled: bool,
    /// `failing` when the service disabled it after 5 days of failed attempts; else null.
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// `whsec_…`: only in the answers of creation and rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookView {
    fn of(webhook: &Webhook, with_secret: bool) -> WebhookView {
        WebhookView {
            id: webhook.id.clone(),
            url: webhook.url.clone(),
            events: webhook.events.clone(),
            filter: serde_json::from_str(&webhook.filter).unwrap_or_default(),
            description: webhook.description.clone(),
            enabled: webhook.enabled,
            disabled_reason: webhook.disabled_reason.clone(),
            created_at: format_micros(webhook.created_at),
            updated_at: format_micros(webhook.updated_at),
            secret: with_secret.then(|| webhook.secret.clone()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub data: Vec<WebhookView>,
    pub meta: ListMeta,
}

/// The answer of a secret's rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new secret. The one before it keeps signing (beside it) for 24 hours.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

/// One attempt to deliver a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub at: String,
    /// The receiver's status code; null when it did not answer.
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    /// Why the attempt failed (`timeout`, `connection refused`, `status 500`...); null on success.
    pub error: Option<String>,
    /// The first KiB of the receiver's answer.
    pub response: Option<String>,
}

/// A message for an endpoint and its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// `msg_…`: the `webhook-id` header of every attempt.
    pub id: String,
    #[serde(rename = "type")]
    #[schema(example = "fault.created")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub created_at: String,
    /// When the next attempt is due, while it is pending.
    pub next_attempt_at: Option<String>,
    /// Oldest first.
    pub attempts: Vec<AttemptView>,
}

impl From<WebhookMessage> for MessageView {
    fn from(m: WebhookMessage) -> MessageView {
        MessageView {
            id: m.id,
            event_type: m.event_type,
            status: m.status,
            created_at: format_micros(m.created_at),
            next_attempt_at: m.next_attempt_at.map(format_micros),
            attempts: m
                .attempts
                .into_iter()
                .map(|a| AttemptView {
                    at: format_micros(a.at),
                    status_code: a.status_code,
                    duration_ms: a.duration_ms,
                    error: a.error,
                    response: a.response,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub data: Vec<MessageView>,
    pub meta: ListMeta,
}

/// What `POST /webhooks/{webhookId}/test` queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedMessage {
    /// `msg_…`
    pub id: String,
}

/// The fields of an endpoint the body sets; `require_url` for creation.
struct Fields {
    url: Option<String>,
    events: Option<Vec<String>>,
    filter: Option<EndpointFilter>,
    description: Option<Option<String>>,
    enabled: Option<bool>,
}

fn parse_fields(body: &Value, creating: bool) -> ApiResult<Fields> {
    let object = body.as_object().ok_or_else(|| {
        ApiError::new(ErrorCode::BodyInvalidJson, "The request body must be a JSON object.")
    })?;
    let known: &[&str] = if creating {
        &["url", "events", "filter", "description"]
    } else {
        &["url", "events", "filter", "description", "enabled"]
    };
    if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::invalid(unknown, "it is not a field of a webhook endpoint"));
    }
    let url = match object.get("url") {
        None | Some(Value::Null) if creating => return Err(ApiError::missing("url")),
        None | Some(Value::Null) => None,
        Some(Value::String(url)) => Some(validate_url(url)?.text),
        Some(_) => return Err(ApiError::invalid("url", "it must be a string")),
    };
    let events = match object.get("events") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let names: Option<Vec<String>> = items.iter().map(|v| v.as_str().map(str::to_owned)).collect();
            let names = names.ok_or_else(|| ApiError::invalid("events", "it must be an array of strings"))?;
            Some(validate_events(&names)?)
        }
        Some(_) => return Err(ApiError::invalid("events", "it must be an array of event types")),
    };
    let filter = match object.get("filter") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let filter: EndpointFilter = serde_json::from_value(value.clone()).map_err(|err| {
                ApiError::invalid(
                    "filter",
                    format!("it must be {{\"severity\": [..], \"site_id\": [..]}} ({err})"),
                )
            })?;
            Some(validate_filter(filter)?)
        }
    };
    let description = match object.get("description") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(text)) => {
            validate_description(text)?;
            Some(Some(text.clone()))
        }
        Some(_) => return Err(ApiError::invalid("description", "it must be a string")),
    };
    let enabled = match object.get("enabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(ApiError::invalid("enabled", "it must be true or false")),
    };
    Ok(Fields { url, events, filter, description, enabled })
}

/// 422 `webhook_url_not_allowed` unless the service may send to `url` now.
async fn check_target(state: &AppState, url: &str) -> ApiResult<()> {
    crate::webhook_delivery::check_target(&state.config.webhook_allowed_hosts, url).await.map_err(|why| {
        ApiError::new(ErrorCode::WebhookUrlNotAllowed, format!("The 'url' parameter is not allowed: {why}."))
    })
}

fn principal(auth: &Auth) -> ApiResult<&Principal> {
    auth.require(Permission::WebhooksWrite)
}

fn page_params(
    state: &AppState,
    principal: &Principal,
    pairs: &[(String, String)],
    filter: &str,
    allowed: &[&str],
) -> ApiResult<(u32, Option<(i64, String)>)> {
    let mut limit = DEFAULT_LIMIT;
    let mut after = None;
    for (name, value) in pairs {
        match name.as_str() {
            "limit" => {
                limit = value.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                    ApiError::invalid("limit", format!("it must be a whole number from 1 to {MAX_LIMIT}"))
                })?;
            }
            "cursor" => {
                let position = state.cursors.decode(&principal.customer_id, filter, value).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::CursorInvalid,
                        "The 'cursor' parameter is invalid: it was not issued for this list, or was altered.",
                    )
                })?;
                after = Some((position.created_at, position.id));
            }
            name if allowed.contains(&name) => {}
            _ => return Err(ApiError::invalid(name, "it is not a parameter of this list")),
        }
    }
    Ok((limit, after))
}

fn meta(
    state: &AppState,
    principal: &Principal,
    filter: &str,
    count: usize,
    more: Option<(i64, &str)>,
) -> ListMeta {
    ListMeta {
        count,
        cursor: more.map(|(created_at, id)| {
            state.cursors.encode(&principal.customer_id, filter, &Position { created_at, id: id.to_owned() })
        }),
        has_more: more.is_some(),
    }
}

/// [ext] Create a webhook endpoint.
///
/// The answer carries the endpoint's signing secret; it is shown again only by a rotation.
#[utoipa::path(post, path = "/webhooks", tag = "Webhooks", operation_id = "createWebhook",
    security(("bearer" = [])), request_body = CreateWebhook,
    responses(
        (status = 201, body = WebhookView, headers(("Location" = String, description = "/webhooks/{webhookId}"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "webhook_url_not_allowed"), (status = 429, body = ErrorBody)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    auth: Auth,
    idempotency_key: IdempotencyKey,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let principal = principal(&auth)?;
    let keyed = match idempotency_key.begin(&*state.store, principal, &body).await? {
        Begun::Run(keyed) => keyed,
        Begun::Replay(answer) => return Ok(answer),
    };
    let fields = parse_fields(&body, true)?;
    let url = fields.url.unwrap_or_default();
    check_target(&state, &url).await?;
    let now = now_micros();
    let webhook = Webhook {
        id: IdKind::Webhook.new_id(),
        customer_id: principal.customer_id.clone(),
        url,
        events: fields.events.unwrap_or_else(|| EVENT_TYPES.iter().map(|e| (*e).to_owned()).collect()),
        filter: serde_json::to_string(&fields.filter.unwrap_or_default()).map_err(ApiError::internal)?,
        description: fields.description.flatten(),
        enabled: true,
        disabled_reason: None,
        secret: WebhookSecret::generate().encode(),
        previous_secret: None,
        previous_secret_until: None,
        failing_since: None,
        from_seq: 0,
        created_at: now,
        updated_at: now,
    };
    let record = keyed
        .as_ref()
        .map(|k| k.record(StatusCode::CREATED, |w: &Webhook| render_json(&WebhookView::of(w, true))));
    let webhook = match state.store.create_webhook(&webhook, record.as_ref()).await? {
        Written::Done(webhook) => webhook,
        Written::Replayed(stored) => return Ok(replay(stored)),
    };
    state.webhooks.endpoints_changed();
    let location = HeaderValue::from_str(&format!("/webhooks/{}", webhook.id)).map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(WebhookView::of(&webhook, true)))
        .into_response())
}

/// [ext] List webhook endpoints, newest first.
#[utoipa::path(get, path = "/webhooks", tag = "Webhooks", operation_id = "listWebhooks",
    security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "1 to 100; default 50"),
        ("cursor" = Option<String>, Query, description = "meta.cursor of the page before")),
    responses((status = 200, body = WebhookList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    auth: Auth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<WebhookList>> {
    let principal = principal(&auth)?;
    let (limit, after) = page_params(&state, principal, &pairs, "webhooks", &[])?;
    let mut rows = state.store.list_webhooks(&principal.customer_id, after, limit + 1).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let last = rows.last().filter(|_| more).map(|w| (w.created_at, w.id.as_str()));
    let meta = meta(&state, principal, "webhooks", rows.len(), last);
    Ok(Json(WebhookList { data: rows.iter().map(|w| WebhookView::of(w, false)).collect(), meta }))
}

async fn own_webhook(state: &AppState, principal: &Principal, id: &str) -> ApiResult<Webhook> {
    state.store.get_webhook(&principal.customer_id, id).await?.ok_or_else(ApiError::not_found)
}

/// [ext] One webhook endpoint.
#[utoipa::path(get, path = "/webhooks/{webhookId}", tag = "Webhooks", operation_id = "getWebhook",
    security(("bearer" = [])), params(("webhookId" = String, Path, description = "whk_…")),
    responses((status = 200, body = WebhookView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn get_webhook(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    let principal = principal(&auth)?;
    Ok(Json(WebhookView::of(&own_webhook(&state, principal, &id).await?, false)))
}

/// [ext] Change a webhook endpoint.
///
/// Enabling an endpoint the service disabled clears `disabled_reason` and its record of
/// failures; the messages that failed meanwhile can be sent again one by one (retry).
#[utoipa::path(patch, path = "/webhooks/{webhookId}", tag = "Webhooks", operation_id = "updateWebhook",
    security(("bearer" = [])), params(("webhookId" = String, Path, description = "whk_…")),
    request_body = UpdateWebhook,
    responses((status = 200, body = WebhookView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "webhook_url_not_allowed"),
        (status = 429, body = ErrorBody)))]
pub async fn update_webhook(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<WebhookView>> {
    let principal = principal(&auth)?;
    let fields = parse_fields(&body, false)?;
    let mut webhook = own_webhook(&state, principal, &id).await?;
    if let Some(url) = fields.url {
        check_target(&state, &url).await?;
        webhook.url = url;
    }
    if let Some(events) = fields.events {
        webhook.events = events;
    }
    if let Some(filter) = fields.filter {
        webhook.filter = serde_json::to_string(&filter).map_err(ApiError::internal)?;
    }
    if let Some(description) = fields.description {
        webhook.description = description;
    }
    match fields.enabled {
        Some(true) if !webhook.enabled => {
            webhook.enabled = true;
            webhook.disabled_reason = None;
            webhook.failing_since = None;
        }
        Some(false) => webhook.enabled = false,
        _ => {}
    }
    webhook.updated_at = now_micros();
    let webhook = state.store.update_webhook(&webhook).await?.ok_or_else(ApiError::not_found)?;
    state.webhooks.endpoints_changed();
    Ok(Json(WebhookView::of(&webhook, false)))
}

/// [ext] Delete a webhook endpoint, with its messages.
#[utoipa::path(delete, path = "/webhooks/{webhookId}", tag = "Webhooks", operation_id = "deleteWebhook",
    security(("bearer" = [])), params(("webhookId" = String, Path, description = "whk_…")),
    responses((status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let principal = principal(&auth)?;
    if state.store.delete_webhook(&principal.customer_id, &id).await? {
        state.webhooks.endpoints_changed();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

/// [ext] Give a webhook endpoint a new secret.
///
/// For 24 hours each message carries two signatures, under the new secret and the one before
/// it, so that the receiver can switch without losing a message.
#[utoipa::path(post, path = "/webhooks/{webhookId}/rotate-secret", tag = "Webhooks", operation_id = "rotateWebhookSecret",
    security(("bearer" = [])), params(("webhookId" = String, Path, description = "whk_…")),
    responses((status = 200, body = RotatedSecret), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    auth: Auth,
    idempotency_key: IdempotencyKey,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let principal = principal(&auth)?;
    let keyed = match idempotency_key.begin(&*state.store, principal, &Value::Null).await? {
        Begun::Run(keyed) => keyed,
        Begun::Replay(answer) => return Ok(answer),
    };
    let now = now_micros();
    let secret = WebhookSecret::generate().encode();
    let render = |w: &Webhook| render_json(&RotatedSecret { secret: w.secret.clone() });
    let record = keyed.as_ref().map(|k| k.record(StatusCode::OK, render));
    let written = state
        .store
        .rotate_webhook_secret(
            &principal.customer_id,
            &id,
            &secret,
            now + PREVIOUS_SECRET_SIGNS_FOR_MICROS,
            now,
            record.as_ref(),
        )
        .await?;
    match written {
        Written::Done(Some(webhook)) => Ok(Json(RotatedSecret { secret: webhook.secret }).into_response()),
        Written::Done(None) => Err(ApiError::not_found()),
        Written::Replayed(stored) => Ok(replay(stored)),
    }
}

/// [ext] Send a `webhook.test` message to a webhook endpoint.
///
/// The message goes through the same queue, signing and retries as every other; its attempts
/// show in the endpoint's messages.
#[utoipa::path(post, path = "/webhooks/{webhookId}/test", tag = "Webhooks", operation_id = "testWebhook",
    security(("bearer" = [])), params(("webhookId" = String, Path, description = "whk_…")),
    responses((status = 202, body = QueuedMessage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn send_test(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<QueuedMessage>)> {
    let principal = principal(&auth)?;
    let webhook = own_webhook(&state, principal, &id).await?;
    let now = now_micros();
    let data = serde_json::json!({"webhook_id": webhook.id, "message": "A test message from faultline."});
    let message = NewWebhookMessage {
        id: IdKind::WebhookMessage.new_id(),
        webhook_id: webhook.id,
        customer_id: principal.customer_id.clone(),
        event_type: TEST_EVENT.to_owned(),
        body: message_body(TEST_EVENT, now, &data),
        created_at: now,
        due_at: now,
    };
    state.store.queue_webhook_message(&message).await?;
    state.webhooks.wake();
    Ok((StatusCode::ACCEPTED, Json(QueuedMessage { id: message.id })))
}

/// [ext] The messages of a webhook endpoint, newest first, each with its attempts.
#[utoipa::path(get, path = "/webhooks/{webhookId}/messages", tag = "Webhooks", operation_id = "listWebhookMessages",
    security(("bearer" = [])),
    params(("webhookId" = String, Path, description = "whk_…"),
        ("status" = Option<String>, Query, description = "pending, delivered or failed"),
        ("limit" = Option<u32>, Query, description = "1 to 100; default 50"),
        ("cursor" = Option<String>, Query, description = "meta.cursor of the page before")),
    responses((status = 200, body = MessageList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn list_messages(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<MessageList>> {
    let principal = principal(&auth)?;
    let status = match pairs.iter().find(|(name, _)| name == "status") {
        None => None,
        Some((_, value)) if ["pending", "delivered", "failed"].contains(&value.as_str()) => {
            Some(value.clone())
        }
        Some(_) => return Err(ApiError::invalid("status", "it must be pending, delivered or failed")),
    };
    let filter = format!("webhook_messages {id} {}", status.as_deref().unwrap_or(""));
    let (limit, after) = page_params(&state, principal, &pairs, &filter, &["status"])?;
    own_webhook(&state, principal, &id).await?;
    let mut rows = state
        .store
        .list_webhook_messages(&principal.customer_id, &id, status.as_deref(), after, limit + 1)
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let last = rows.last().filter(|_| more).map(|m| (m.created_at, m.id.clone()));
    let meta = meta(&state, principal, &filter, rows.len(), last.as_ref().map(|(at, id)| (*at, id.as_str())));
    Ok(Json(MessageList { data: rows.into_iter().map(MessageView::from).collect(), meta }))
}

/// [ext] Send a message again now, whatever its status.
#[utoipa::path(post, path = "/webhooks/{webhookId}/messages/{messageId}/retry", tag = "Webhooks",
    operation_id = "retryWebhookMessage", security(("bearer" = [])),
    params(("webhookId" = String, Path, description = "whk_…"), ("messageId" = String, Path, description = "msg_…")),
    responses((status = 202, body = QueuedMessage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn retry_message(
    State(state): State<AppState>,
    auth: Auth,
    Path((webhook_id, message_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<QueuedMessage>)> {
    let principal = principal(&auth)?;
    if !state
        .store
        .retry_webhook_message(&principal.customer_id, &webhook_id, &message_id, now_micros())
        .await?
    {
        return Err(ApiError::not_found());
    }
    state.webhooks.wake();
    Ok((StatusCode::ACCEPTED, Json(QueuedMessage { id: message_id })))
}
