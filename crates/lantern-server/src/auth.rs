//! Who may call the server: API keys (flags, `LANTERN_API_KEYS`, a key file re-read on
//! SIGHUP), checked in constant time on every route but the public ones, and the CORS policy
//! for browsers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::error::ApiError;

/// `[auth]` in the config file; the flags of the same names override it.
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthArgs {
    /// API key clients must send (`Authorization: Bearer KEY` or `x-api-key: KEY`); repeat
    /// for several. Also from LANTERN_API_KEYS (comma-separated) [default: none, open]
    #[arg(long = "api-key", value_name = "KEY")]
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// File with one API key per line (`#` comments), re-read on SIGHUP
    #[arg(long, value_name = "FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Require a key for GET /metrics too [default: false, public like /health]
    #[arg(long)]
    #[serde(default)]
    pub metrics_require_key: bool,
    /// Web origin allowed to call the API from a browser (CORS), e.g. https://app.example;
    /// `*` allows any; repeat for several [default: none]
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
}

impl AuthArgs {
    /// Flags win where set; lists from both are joined.
    pub fn merge(self, file: AuthArgs) -> AuthArgs {
        let join = |a: Vec<String>, b: Vec<String>| if a.is_empty() { b } else { a };
        AuthArgs {
            api_keys: join(self.api_keys, file.api_keys),
            api_keys_file: self.api_keys_file.or(file.api_keys_file),
            metrics_require_key: self.metrics_require_key || file.metrics_require_key,
            cors_allowed_origins: join(self.cors_allowed_origins, file.cors_allowed_origins),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("API keys file {}: {reason}", path.display())]
pub struct KeyFileError {
    path: PathBuf,
    reason: String,
}

/// One snapshot of the accepted keys, as bytes.
type KeySet = Arc<Vec<Box<[u8]>>>;

/// The accepted keys. Cheap to clone; a reload replaces the set for every clone at once.
#[derive(Clone, Default)]
pub struct ApiKeys {
    /// From flags and the environment: fixed for the process's life.
    fixed: Arc<Vec<String>>,
    file: Option<PathBuf>,
    current: Arc<RwLock<KeySet>>,
    pub metrics_require_key: bool,
}

impl ApiKeys {
    /// `env` is LANTERN_API_KEYS's value, if set.
    pub fn new(args: &AuthArgs, env: Option<&str>) -> Result<Self, KeyFileError> {
        let mut fixed: Vec<String> = args.api_keys.clone();
        fixed.extend(
            env.unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from),
        );
        let keys = ApiKeys {
            fixed: Arc::new(fixed),
            file: args.api_keys_file.clone(),
            current: Arc::default(),
            metrics_require_key: args.metrics_require_key,
        };
        keys.reload()?;
        Ok(keys)
    }

    /// Re-reads the key file; on error the previous keys stay in force.
    pub fn reload(&self) -> Result<usize, KeyFileError> {
        let mut keys: Vec<Box<[u8]>> = self.fixed.iter().map(|k| k.as_bytes().into()).collect();
        if let Some(path) = &self.file {
            keys.extend(read_key_file(path)?);
        }
        let n = keys.len();
        *self.current.write().expect("api keys lock") = Arc::new(keys);
        Ok(n)
    }

    pub fn is_open(&self) -> bool {
        self.current.read().expect("api keys lock").is_empty()
    }

    /// Whether `presented` is one of the keys. Every key is compared, each in constant time,
    /// so the time taken says nothing about which key came close.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let keys = self.current.read().expect("api keys lock").clone();
        let mut ok = subtle::Choice::from(0);
        for k in keys.iter() {
            ok |= k.as_ref().ct_eq(presented);
        }
        ok.into()
    }
}

fn read_key_file(path: &Path) -> Result<Vec<Box<[u8]>>, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyFileError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.as_bytes().into())
        .collect())
}

/// Paths anyone may call: probes, the API description and its Swagger UI (whose calls then
/// need a key), and (unless keyed) the metrics.
fn is_public(path: &str, keys: &ApiKeys) -> bool {
    // The playground's page and assets: the page asks for the key and sends it on API calls.
    matches!(
        path,
        "/health" | "/openapi.json" | "/docs" | "/" | "/playground"
    ) || path.starts_with("/docs/")
        || path.starts_with("/playground/")
        || (path == "/metrics" && !keys.metrics_require_key)
}

/// The key a request presents: `Authorization: Bearer KEY` (as the OpenAI SDKs send it) or
/// `x-api-key: KEY` (as the Anthropic SDKs do).
fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.as_bytes();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ") {
            return Some(v[7..].trim_ascii());
        }
    }
    headers.get("x-api-key").map(|v| v.as_bytes().trim_ascii())
}

/// Middleware: 401 in OpenAI's envelope unless the request carries an accepted key.
pub async fn require_key(State(keys): State<ApiKeys>, request: Request, next: Next) -> Response {
    if keys.is_open()
        || request.method() == Method::OPTIONS
        || is_public(request.uri().path(), &keys)
    {
        return next.run(request).await;
    }
    let error = match presented_key(request.headers()) {
        Some(k) if keys.accepts(k) => return next.run(request).await,
        Some(_) => ApiError::Unauthorized("Incorrect API key provided.".into()),
        None => ApiError::Unauthorized(
            "You didn't provide an API key. Send it as `Authorization: Bearer KEY` (or `x-api-key: KEY`)."
                .into(),
        ),
    };
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The CORS layer for `origins` (`*` for any); `None` when no origin is allowed, so browsers
/// get no CORS headers at all.
pub fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let parsed = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim_end_matches('/'))
                    .map_err(|_| format!("invalid CORS origin `{o}`"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(parsed)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            // The SDKs send their own headers (x-stainless-*, anthropic-version, ...).
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers([
                header::HeaderName::from_static("x-lantern-cache"),
                header::HeaderName::from_static("x-request-id"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str], env: Option<&str>) -> ApiKeys {
        let args = AuthArgs {
            api_keys: list.iter().map(|s| s.to_string()).collect(),
            ..AuthArgs::default()
        };
        ApiKeys::new(&args, env).unwrap()
    }

    #[test]
    fn accepts_only_configured_keys() {
        let k = keys(&["sk-one"], Some("sk-two, sk-three,"));
        assert!(!k.is_open());
        for good in ["sk-one", "sk-two", "sk-three"] {
            assert!(k.accepts(good.as_bytes()), "{good}");
        }
        for bad in ["", "sk-on", "sk-one2", "SK-ONE", "sk-two,"] {
            assert!(!k.accepts(bad.as_bytes()), "{bad}");
        }
        assert!(keys(&[], None).is_open());
    }

    #[test]
    fn key_file_is_reloaded_and_a_bad_reload_keeps_the_old_keys() {
        let dir = std::env::temp_dir().join(format!("lantern-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        std::fs::write(&path, "# team keys\nsk-a\n\n  sk-b  \n").unwrap();
        let args = AuthArgs {
            api_keys_file: Some(path.clone()),
            ..AuthArgs::default()
        };
        let k = ApiKeys::new(&args, None).unwrap();
        assert!(k.accepts(b"sk-a") && k.accepts(b"sk-b") && !k.accepts(b"# team keys"));
        std::fs::write(&path, "sk-c\n").unwrap();
        assert_eq!(k.reload().unwrap(), 1);
        assert!(k.accepts(b"sk-c") && !k.accepts(b"sk-a"));
        std::fs::remove_file(&path).unwrap();
        assert!(k.reload().is_err());
        assert!(
            k.accepts(b"sk-c"),
            "a failed reload keeps the keys in force"
        );
    }

    #[test]
    fn bearer_and_x_api_key_are_read() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", HeaderValue::from_static("sk-x"));
        assert_eq!(presented_key(&h), Some(&b"sk-x"[..]));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  sk-b"),
        );
        assert_eq!(presented_key(&h), Some(&b"sk-b"[..]));
    }

    #[test]
    fn cors_origins_are_checked() {
        assert!(cors_layer(&[]).unwrap().is_none());
        assert!(cors_layer(&["*".into()]).unwrap().is_some());
        assert!(cors_layer(&["https://app.example/".into()])
            .unwrap()
            .is_some());
        assert!(cors_layer(&["bad\norigin".into()]).is_err());
    }
}
