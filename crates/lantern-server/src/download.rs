//! Model sources on the Hugging Face Hub (`source = "hf:owner/repo/file.gguf"`), fetched with the
//! `hf-hub` crate into Lantern's cache directory. `HF_ENDPOINT` selects a mirror and `HF_TOKEN`
//! authenticates; progress is logged; the finished file's size is checked against the Hub's.

use std::path::{Path, PathBuf};

use hf_hub::api::tokio::{ApiBuilder, Progress};

/// A file in a Hub model repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfSource {
    pub repo: String,
    pub file: String,
}

impl HfSource {
    /// Parses `hf:owner/repo/path/in/repo.gguf`.
    pub fn parse(source: &str) -> Result<Self, String> {
        let rest = source.strip_prefix("hf:").ok_or_else(|| {
            format!("'{source}' is not a model source; expected hf:owner/repo/file.gguf")
        })?;
        let mut parts = rest.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(owner), Some(repo), Some(file))
                if !owner.is_empty() && !repo.is_empty() && !file.is_empty() =>
            {
                Ok(HfSource {
                    repo: format!("{owner}/{repo}"),
                    file: file.to_string(),
                })
            }
            _ => Err(format!(
                "'{source}' is not a model source; expected hf:owner/repo/file.gguf"
            )),
        }
    }

    /// The file's name without directories, for the default model id.
    pub fn file_name(&self) -> &Path {
        Path::new(self.file.rsplit('/').next().unwrap_or(&self.file))
    }
}

/// The default cache directory: `~/.cache/lantern`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".cache")
        .join("lantern")
}

/// Logs download progress in 10% steps, remembers the announced size, and counts the bytes
/// received (for the stall check).
#[derive(Clone)]
struct LogProgress {
    name: String,
    total: usize,
    done: usize,
    next_report: usize,
    announced: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    received: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Progress for LogProgress {
    async fn init(&mut self, size: usize, _filename: &str) {
        self.total = size;
        self.announced
            .store(size, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(file = %self.name, bytes = size, "downloading model: 0%");
        self.next_report = size / 10;
    }

    async fn update(&mut self, size: usize) {
        self.done += size;
        self.received
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        if self.total > 0 && self.done >= self.next_report && self.done < self.total {
            tracing::info!(file = %self.name, "downloading model: {}%", self.done * 100 / self.total);
            self.next_report = self.done + self.total / 10;
        }
    }

    async fn finish(&mut self) {
        tracing::info!(file = %self.name, "downloading model: 100%");
    }
}

/// Returns the local path of `source`, downloading it into `cache_dir` unless it is there. A
/// download that receives nothing for `stall` fails; a later attempt starts it again.
pub async fn fetch(
    source: &HfSource,
    cache_dir: &Path,
    stall: std::time::Duration,
) -> Result<PathBuf, String> {
    let what = format!("hf:{}/{}", source.repo, source.file);
    let api = ApiBuilder::from_env()
        .with_cache_dir(cache_dir.to_path_buf())
        .with_token(std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()))
        .with_progress(false)
        .build()
        .map_err(|e| format!("cannot set up the Hugging Face client for {what}: {e}"))?;
    let repo = api.model(source.repo.clone());
    let announced = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = LogProgress {
        name: what.clone(),
        total: 0,
        done: 0,
        next_report: 0,
        announced: announced.clone(),
        received: received.clone(),
    };
    let cached = hf_hub::Cache::new(cache_dir.to_path_buf())
        .model(source.repo.clone())
        .get(&source.file);
    let path = match cached {
        Some(path) => {
            tracing::info!(file = %what, path = %path.display(), "model found in the download cache");
            path
        }
        None => {
            let download = repo.download_with_progress(&source.file, progress);
            tokio::select! {
                done = download => done.map_err(|e| format!("downloading {what} failed: {e}"))?,
                () = stalled(&received, stall) => {
                    return Err(format!(
                        "downloading {what} failed: nothing received for {}s (download_stall_secs); the next request retries",
                        stall.as_secs()
                    ))
                }
            }
        }
    };
    let expected = announced.load(std::sync::atomic::Ordering::Relaxed);
    let actual = std::fs::metadata(&path)
        .map_err(|e| format!("downloaded {what} but cannot read {}: {e}", path.display()))?
        .len() as usize;
    if expected > 0 && actual != expected {
        return Err(format!(
            "downloaded {what} is {actual} bytes but the Hub announced {expected}; delete {} and retry",
            path.display()
        ));
    }
    Ok(path)
}

/// Resolves once `received` has not grown for `stall`.
async fn stalled(received: &std::sync::atomic::AtomicUsize, stall: std::time::Duration) {
    let mut last = received.load(std::sync::atomic::Ordering::Relaxed);
    let mut since = tokio::time::Instant::now();
    let tick = (stall / 4).max(std::time::Duration::from_millis(50));
    loop {
        tokio::time::sleep(tick).await;
        let now = received.load(std::sync::atomic::Ordering::Relaxed);
        if now != last {
            (last, since) = (now, tokio::time::Instant::now());
        } else if since.elapsed() >= stall {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        let s = HfSource::parse("hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/q4/model.Q4_1.gguf")
            .unwrap();
        assert_eq!(s.repo, "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF");
        assert_eq!(s.file, "q4/model.Q4_1.gguf");
        assert_eq!(s.file_name(), Path::new("model.Q4_1.gguf"));
        for bad in [
            "HuggingFaceTB/x/y.gguf",
            "hf:owner/repo",
            "hf://x",
            "hf:a//b",
        ] {
            assert!(HfSource::parse(bad).is_err(), "{bad}");
        }
    }
}
