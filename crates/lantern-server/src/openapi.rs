//! The OpenAPI document, generated from the handlers and wire types. `openapi.yaml` at the
//! repository root is this document, written by `lantern openapi` (`make openapi`).

use utoipa::OpenApi;

use crate::routes::{
    chat, completions, embeddings, health, lora, messages, models, responses, tokenize,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lantern",
        description = "OpenAI-compatible inference server for GGUF models (llama.cpp).",
        license(name = "Apache-2.0")
    ),
    paths(
        chat::chat_completions,
        completions::completions,
        responses::create,
        responses::retrieve,
        responses::delete,
        responses::input_items,
        messages::create,
        messages::count_tokens,
        embeddings::embeddings,
        tokenize::tokenize,
        tokenize::detokenize,
        models::list,
        models::retrieve,
        lora::list,
        lora::load,
        lora::unload,
        health::health,
        crate::metrics::scrape,
    ),
    components(schemas(
        lantern_api::chat::ChatCompletionChunk,
        lantern_api::ErrorResponse,
    )),
    tags(
        (name = "chat", description = "Chat completions"),
        (name = "completions", description = "Legacy text completions"),
        (name = "responses", description = "The OpenAI Responses API, with stored conversations"),
        (name = "anthropic", description = "Anthropic's Messages API"),
        (name = "embeddings", description = "Embeddings"),
        (name = "tokens", description = "Tokenization with the model's vocabulary"),
        (name = "models", description = "Served models"),
        (name = "lora", description = "LoRA adapters, each served as the model id BASE:NAME"),
        (name = "health", description = "Readiness and metrics"),
    )
)]
struct ApiDoc;

pub fn spec() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{
        ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
    };
    use utoipa::openapi::SecurityRequirement;
    let mut spec = ApiDoc::openapi();
    // With API keys configured, every route but /health, /metrics and this document needs one,
    // as a bearer token (OpenAI SDKs) or in x-api-key (Anthropic SDKs).
    let components = spec.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "x-api-key",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
    );
    spec.security = Some(vec![
        SecurityRequirement::default(),
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("x-api-key", Vec::<String>::new()),
    ]);
    // Keep the generated file stable across releases of the workspace.
    spec.info.version = env!("CARGO_PKG_VERSION").to_string();
    spec
}

pub fn yaml() -> String {
    spec()
        .to_yaml()
        .expect("the OpenAPI document serializes to YAML")
}
