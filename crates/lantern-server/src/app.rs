//! The axum router: routes, API keys, CORS, refusal while draining, body limit, panic
//! catching, request tracing, and OpenAI-style envelopes for unknown URLs and wrong methods.

use std::any::Any;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{from_fn_with_state, map_response, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::{Level, Span};
use utoipa_swagger_ui::SwaggerUi;

use crate::auth;
use crate::error::ApiError;
use crate::openapi;
use crate::routes::{
    self, chat, completions, embeddings, health, lora, messages, models, playground, responses,
    tokenize,
};
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let cors = state.cors.clone();
    let generation = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/responses", post(responses::create))
        .route("/v1/messages", post(messages::create))
        .route_layer(map_response(routes::default_cache_header));
    let app = Router::new()
        .merge(generation)
        .route(
            "/v1/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(responses::input_items),
        )
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/tokenize", post(tokenize::tokenize))
        .route("/detokenize", post(tokenize::detokenize))
        .route("/v1/tokenize", post(tokenize::tokenize))
        .route("/v1/detokenize", post(tokenize::detokenize))
        .route("/v1/lora-adapters", get(lora::list).post(lora::load))
        .route(
            "/v1/lora-adapters/{model}/{name}",
            axum::routing::delete(lora::unload),
        )
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::retrieve))
        .route("/health", get(health::health))
        .route("/", get(playground::index))
        .route("/playground", get(playground::index))
        .route("/playground/{name}", get(playground::asset))
        .route("/metrics", get(crate::metrics::scrape))
        // Swagger UI at /docs (assets compiled in), reading the document at /openapi.json.
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::spec()))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), refuse_when_draining))
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(from_fn_with_state(state.keys.clone(), auth::require_key))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        // Outermost of the API's own layers: every error of /v1/messages, the key check's
        // included, in Anthropic's envelope.
        .layer(axum::middleware::from_fn(messages::anthropic_errors));
    // Outside the key check: a browser's preflight carries no key.
    let app = match cors {
        Some(cors) => app.layer(cors),
        None => app,
    };
    // The request id (the client's x-request-id, else a new UUID) is on every log line of the
    // request, the engine's included, and echoed in the response.
    app.layer(
        TraceLayer::new_for_http()
            .make_span_with(request_span)
            .on_response(DefaultOnResponse::new().level(Level::INFO))
            .on_failure(log_failure),
    )
    .layer(PropagateRequestIdLayer::x_request_id())
    .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
    .with_state(state)
}

fn request_span(request: &axum::http::Request<axum::body::Body>) -> Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        uri = %request.uri(),
    )
}

/// A 503 is the server saying "not now": a model still loading, or a load that failed, whose
/// error response logs the reason itself. Health probes during a load would otherwise fill the
/// log with errors; the response line still records each 503.
fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &Span) {
    if !matches!(
        class,
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE)
    ) {
        tracing::error!(classification = %class, latency_ms = latency.as_millis() as u64, "response failed");
    }
}

/// After SIGTERM only the health probe is answered (503 `draining`); requests already
/// running finish.
async fn refuse_when_draining(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.lifecycle.is_draining() && request.uri().path() != "/health" {
        return ApiError::ShuttingDown.into_response();
    }
    next.run(request).await
}

async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::RouteNotFound {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

/// A handler panic becomes a 500 envelope instead of a dropped connection.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::Internal(format!("Internal server error: {detail}")).into_response()
}
