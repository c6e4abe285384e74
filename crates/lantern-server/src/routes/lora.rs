//! `/v1/lora-adapters`: list, load and unload LoRA adapters on served models at runtime.
//! Each adapter is served as the model id `BASE:NAME`.

use axum::extract::{Path, State};
use axum::Json;
use lantern_api::models::{LoadLoraAdapterRequest, LoraAdapter, LoraAdapterList};
use lantern_api::ErrorResponse;
use lantern_engine::{AdapterInfo, LoraSpec};

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::{AdapterEntry, AppState, ModelEntry};

fn to_wire(entry: &ModelEntry, a: &AdapterEntry, live: Option<&AdapterInfo>) -> LoraAdapter {
    LoraAdapter {
        id: format!("{}:{}", entry.id, a.spec.name),
        object: "lora_adapter".into(),
        model: entry.id.clone(),
        name: a.spec.name.clone(),
        path: a.spec.path.display().to_string(),
        scale: f64::from(a.spec.scale),
        aliases: a.aliases.clone(),
        status: entry.status().to_string(),
        running: live.map_or(0, |l| l.running as u64),
        waiting: live.map_or(0, |l| l.waiting as u64),
        requests: live.map_or(0, |l| l.requests),
    }
}

fn adapters_of(entry: &ModelEntry) -> Vec<LoraAdapter> {
    let live = entry.loaded().map(|b| b.adapters()).unwrap_or_default();
    let served = entry.adapters.lock().expect("adapters lock").clone();
    served
        .iter()
        .map(|a| {
            let info = live.iter().find(|l| l.spec.name == a.spec.name);
            to_wire(entry, a, info)
        })
        .collect()
}

/// Lists every model's LoRA adapters.
#[utoipa::path(get, path = "/v1/lora-adapters", tag = "lora",
    responses(
        (status = 200, description = "The adapters", body = LoraAdapterList),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
    ))]
pub async fn list(State(state): State<AppState>) -> Json<LoraAdapterList> {
    Json(LoraAdapterList {
        object: "list".into(),
        data: state.models.iter().flat_map(adapters_of).collect(),
    })
}

fn check_name(name: &str) -> Result<(), ApiError> {
    crate::state::check_adapter_name(name).map_err(|e| ApiError::invalid(e, Some("name".into())))
}

/// Loads a GGUF LoRA adapter onto a model (loading the model first if it is not loaded).
#[utoipa::path(post, path = "/v1/lora-adapters", tag = "lora",
    request_body = LoadLoraAdapterRequest,
    responses(
        (status = 200, description = "Loaded; served as the model id `MODEL:NAME`", body = LoraAdapter),
        (status = 400, description = "Bad name, scale or file, or an adapter made for another model", body = ErrorResponse),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
        (status = 404, description = "Unknown model", body = ErrorResponse),
        (status = 409, description = "An adapter of that name is already loaded", body = ErrorResponse),
    ))]
pub async fn load(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<LoadLoraAdapterRequest>,
) -> Result<Json<LoraAdapter>, ApiError> {
    check_name(&req.name)?;
    let scale = req.scale.unwrap_or(1.0);
    if !scale.is_finite() || scale.abs() > 1000.0 {
        return Err(ApiError::invalid(
            "'scale' must be a number between -1000 and 1000.",
            Some("scale".into()),
        ));
    }
    let entry = state.entry(&req.model)?;
    let spec = LoraSpec {
        name: req.name.clone(),
        path: req.path.clone().into(),
        scale: scale as f32,
    };
    if entry
        .adapter_named(&format!("{}:{}", entry.id, spec.name))
        .is_some()
    {
        return Err(lantern_engine::EngineError::AdapterExists { name: spec.name }.into());
    }
    let _hold = entry.hold();
    let backend = state.backend(entry).await?;
    let info = backend.load_adapter(spec.clone()).await?;
    let added = AdapterEntry {
        spec,
        aliases: Vec::new(),
    };
    entry
        .adapters
        .lock()
        .expect("adapters lock")
        .push(added.clone());
    Ok(Json(to_wire(entry, &added, Some(&info))))
}

/// Unloads an adapter; refused with 409 while requests use it.
#[utoipa::path(delete, path = "/v1/lora-adapters/{model}/{name}", tag = "lora",
    params(
        ("model" = String, Path, description = "The base model's id"),
        ("name" = String, Path, description = "The adapter's name"),
    ),
    responses(
        (status = 200, description = "Unloaded", body = LoraAdapter),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
        (status = 404, description = "Unknown model or adapter", body = ErrorResponse),
        (status = 409, description = "Requests are using it", body = ErrorResponse),
    ))]
pub async fn unload(
    State(state): State<AppState>,
    Path((model, name)): Path<(String, String)>,
) -> Result<Json<LoraAdapter>, ApiError> {
    let entry = state.entry(&model)?;
    let served = entry
        .adapters
        .lock()
        .expect("adapters lock")
        .iter()
        .find(|a| a.spec.name == name)
        .cloned()
        .ok_or_else(|| lantern_engine::EngineError::AdapterNotFound { name: name.clone() })?;
    let wire = to_wire(entry, &served, None);
    if let Some(backend) = entry.loaded() {
        backend.unload_adapter(&name)?;
    }
    entry
        .adapters
        .lock()
        .expect("adapters lock")
        .retain(|a| a.spec.name != name);
    Ok(Json(wire))
}
