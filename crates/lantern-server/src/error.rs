//! The server's one error type and the single place where errors become HTTP statuses and
//! OpenAI error envelopes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lantern_api::ErrorResponse;
use lantern_engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, has wrong types, or out-of-range values.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
        code: Option<String>,
    },
    #[error("The model `{model}` does not exist or you do not have access to it. Available models: {}.", available.join(", "))]
    ModelNotFound {
        model: String,
        available: Vec<String>,
    },
    /// 404 for an id that names nothing (a stored response).
    #[error("{message}")]
    NotFound {
        message: String,
        param: Option<String>,
    },
    #[error("Unknown request URL: {method} {path}. Please check the URL for typos; this server implements /v1/chat/completions, /v1/completions, /v1/responses, /v1/messages, /v1/embeddings, /v1/models, /tokenize and /detokenize.")]
    RouteNotFound { method: String, path: String },
    #[error("Method {method} is not allowed for {path}.")]
    MethodNotAllowed { method: String, path: String },
    #[error("The request body is larger than the {limit}-byte limit (--max-body-bytes).")]
    PayloadTooLarge { limit: usize },
    #[error("The model `{0}` is still loading; retry shortly.")]
    ModelLoading(String),
    #[error("The model `{model}` could not be loaded: {reason}")]
    ModelLoadFailed { model: String, reason: String },
    /// 401: no API key, or a wrong one.
    #[error("{0}")]
    Unauthorized(String),
    #[error("The server is shutting down; retry on another replica or after it restarts.")]
    ShuttingDown,
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param,
            code: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::ModelNotFound { .. }
            | ApiError::RouteNotFound { .. }
            | ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ModelLoading(_)
            | ApiError::ModelLoadFailed { .. }
            | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Engine(e) => match e {
                EngineError::InvalidRequest { .. } | EngineError::ContextLengthExceeded { .. } => {
                    StatusCode::BAD_REQUEST
                }
                EngineError::WorkerGone => StatusCode::SERVICE_UNAVAILABLE,
                EngineError::AdapterExists { .. } | EngineError::AdapterInUse { .. } => {
                    StatusCode::CONFLICT
                }
                EngineError::AdapterNotFound { .. } => StatusCode::NOT_FOUND,
                EngineError::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI envelope for this error.
    pub fn envelope(&self) -> ErrorResponse {
        let (kind, param, code): (&str, Option<String>, Option<String>) = match self {
            ApiError::InvalidRequest { param, code, .. } => {
                ("invalid_request_error", param.clone(), code.clone())
            }
            ApiError::ModelNotFound { .. } => (
                "invalid_request_error",
                Some("model".into()),
                Some("model_not_found".into()),
            ),
            ApiError::RouteNotFound { .. } => {
                ("invalid_request_error", None, Some("unknown_url".into()))
            }
            ApiError::NotFound { param, .. } => (
                "invalid_request_error",
                param.clone(),
                Some("not_found".into()),
            ),
            ApiError::MethodNotAllowed { .. } => (
                "invalid_request_error",
                None,
                Some("method_not_allowed".into()),
            ),
            ApiError::PayloadTooLarge { .. } => (
                "invalid_request_error",
                None,
                Some("request_too_large".into()),
            ),
            ApiError::ModelLoading(_) => ("server_error", None, Some("model_loading".into())),
            ApiError::Unauthorized(_) => {
                ("authentication_error", None, Some("invalid_api_key".into()))
            }
            ApiError::ShuttingDown => ("server_error", None, Some("server_shutting_down".into())),
            ApiError::ModelLoadFailed { .. } => {
                ("server_error", None, Some("model_load_failed".into()))
            }
            ApiError::Engine(e) => match e {
                EngineError::InvalidRequest { param, .. } => {
                    ("invalid_request_error", param.clone(), None)
                }
                EngineError::ContextLengthExceeded { param, .. } => (
                    "invalid_request_error",
                    Some((*param).into()),
                    Some("context_length_exceeded".into()),
                ),
                EngineError::WorkerGone => {
                    ("server_error", None, Some("engine_unavailable".into()))
                }
                EngineError::AdapterExists { .. } => (
                    "invalid_request_error",
                    Some("name".into()),
                    Some("lora_adapter_exists".into()),
                ),
                EngineError::AdapterInUse { .. } => (
                    "invalid_request_error",
                    Some("name".into()),
                    Some("lora_adapter_in_use".into()),
                ),
                EngineError::AdapterNotFound { .. } => (
                    "invalid_request_error",
                    Some("name".into()),
                    Some("not_found".into()),
                ),
                EngineError::QueueFull { .. } => {
                    ("rate_limit_error", None, Some("rate_limit_exceeded".into()))
                }
                EngineError::Grammar(_) => (
                    "server_error",
                    None,
                    Some("structured_output_failed".into()),
                ),
                _ => ("server_error", None, None),
            },
            ApiError::Internal(_) => ("server_error", None, None),
        };
        ErrorResponse::new(self.to_string(), kind, param, code)
    }
}

impl ApiError {
    /// For an endpoint whose request was translated into a chat request: the error's `param`
    /// in the client's own names (the first `(chat, own)` prefix that matches is replaced).
    pub fn rename_param(self, renames: &[(&str, &str)]) -> Self {
        let rename = |p: &str| {
            renames.iter().find_map(|(from, to)| {
                let rest = p.strip_prefix(from)?;
                (rest.is_empty() || rest.starts_with(['.', '['])).then(|| format!("{to}{rest}"))
            })
        };
        match self {
            ApiError::InvalidRequest {
                message,
                param: Some(p),
                code,
            } => ApiError::InvalidRequest {
                param: Some(rename(&p).unwrap_or(p)),
                message,
                code,
            },
            ApiError::Engine(EngineError::InvalidRequest {
                message,
                param: Some(p),
            }) => ApiError::Engine(EngineError::InvalidRequest {
                param: Some(rename(&p).unwrap_or(p)),
                message,
            }),
            ApiError::Engine(e @ EngineError::ContextLengthExceeded { param, .. })
                if rename(param).is_some() =>
            {
                ApiError::InvalidRequest {
                    message: e.to_string(),
                    param: rename(param),
                    code: Some("context_length_exceeded".into()),
                }
            }
            other => other,
        }
    }
}

impl From<lantern_api::InvalidParam> for ApiError {
    fn from(e: lantern_api::InvalidParam) -> Self {
        ApiError::invalid(e.message, Some(e.param))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry = status == StatusCode::TOO_MANY_REQUESTS;
        let envelope = self.envelope();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request rejected");
        }
        crate::metrics::rejected(
            envelope
                .error
                .code
                .as_deref()
                .unwrap_or(&envelope.error.kind),
        );
        let mut response = (status, Json(envelope)).into_response();
        if retry {
            // Slots free up within seconds at this scale; tell clients (the OpenAI SDK honours
            // it) when to come back.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}
