//! A JSON body extractor whose every failure is an OpenAI error envelope naming the field.
//! The body is parsed as JSON whatever its Content-Type, as llama-server and vLLM do, so
//! `curl -d` without a header works.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use lantern_api::chat::ChatCompletionRequest;
use lantern_api::completions::CompletionRequest;
use lantern_api::embeddings::EmbeddingRequest;
use lantern_api::fields::{
    check_fields, FieldClass, CHAT_FIELDS, COMPLETION_FIELDS, COUNT_TOKENS_FIELDS,
    EMBEDDING_FIELDS, MESSAGES_FIELDS, RESPONSES_FIELDS,
};
use lantern_api::messages::{CountTokensRequest, MessagesRequest};
use lantern_api::responses::CreateResponseRequest;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

pub struct JsonBody<T>(pub T);

/// An OpenAI request whose top-level fields are checked against its endpoint's field list
/// (unknown or refused fields are a 400), with the raw body kept for the cache key.
pub struct Checked<T> {
    pub req: T,
    pub raw: Value,
}

/// A request type and its endpoint's field classes.
pub trait Endpoint: DeserializeOwned {
    const FIELDS: &'static [(&'static str, FieldClass)];
}

impl Endpoint for ChatCompletionRequest {
    const FIELDS: &'static [(&'static str, FieldClass)] = CHAT_FIELDS;
}

impl Endpoint for CompletionRequest {
    const FIELDS: &'static [(&'static str, FieldClass)] = COMPLETION_FIELDS;
}

impl Endpoint for EmbeddingRequest {
    const FIELDS: &'static [(&'static str, FieldClass)] = EMBEDDING_FIELDS;
}

impl Endpoint for CreateResponseRequest {
    const FIELDS: &'static [(&'static str, FieldClass)] = RESPONSES_FIELDS;
}

impl Endpoint for MessagesRequest {
    const FIELDS: &'static [(&'static str, FieldClass)] = MESSAGES_FIELDS;
}

impl Endpoint for CountTokensRequest {
    const FIELDS: &'static [(&'static str, FieldClass)] = COUNT_TOKENS_FIELDS;
}

impl<T: Endpoint> FromRequest<AppState> for Checked<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let JsonBody(raw) = JsonBody::<Value>::from_request(req, state).await?;
        let Value::Object(map) = &raw else {
            return Err(ApiError::invalid(
                "The request body must be a JSON object.",
                None,
            ));
        };
        check_fields(map, T::FIELDS)?;
        let req = from_value(raw.clone())?;
        Ok(Checked { req, raw })
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: state.max_body_bytes,
                }
            } else {
                ApiError::invalid(
                    format!("Could not read the request body: {rejection}"),
                    None,
                )
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses `bytes`, reporting the failing field as `param`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "The request body is empty; a JSON object is expected.",
            None,
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid(
                format!("We could not parse the JSON body of your request: {inner}. The API expects a JSON object."),
                None,
            );
        }
        field_error(&path, inner.to_string())
    })
}

/// Deserializes a parsed body, reporting the failing field as `param`.
fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        field_error(&path, err.into_inner().to_string())
    })
}

fn field_error(path: &str, message: String) -> ApiError {
    // serde reports a missing field at its parent's path; name the field itself.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let param = match (missing, path) {
        (Some(field), "." | "") => Some(field.to_string()),
        (Some(field), parent) => Some(format!("{parent}.{field}")),
        (None, "." | "") => None,
        (None, p) => Some(p.to_string()),
    };
    let message = match &param {
        Some(p) => format!("Invalid value for '{p}': {message}"),
        None => format!("Invalid request body: {message}"),
    };
    ApiError::invalid(message, param)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lantern_api::chat::ChatCompletionRequest;

    fn param_of(body: &str) -> Option<String> {
        match parse_json::<ChatCompletionRequest>(body.as_bytes()) {
            Err(ApiError::InvalidRequest { param, .. }) => param,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn names_the_failing_field() {
        assert_eq!(param_of(r#"{"model":"m"}"#), Some("messages".into()));
        assert_eq!(
            param_of(r#"{"model":"m","messages":[],"temperature":"hot"}"#),
            Some("temperature".into())
        );
        assert_eq!(
            param_of(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#),
            Some("messages[0].role".into())
        );
        assert_eq!(
            param_of(r#"{"model":"m","messages":[{"role":"user"}]}"#),
            Some("messages[0].content".into())
        );
        assert_eq!(param_of("{not json"), None);
        assert_eq!(param_of(""), None);
    }
}
