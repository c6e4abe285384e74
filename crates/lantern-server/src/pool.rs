//! Several replicas of one model behind one [`Backend`]: each request goes to the least
//! loaded replica (fewest requests running or queued).

use std::sync::Arc;

use async_trait::async_trait;
use lantern_engine::{Backend, EngineError, EventStream, GenerateRequest, ModelInfo};

pub struct ReplicaSet {
    replicas: Vec<Arc<dyn Backend>>,
}

impl ReplicaSet {
    /// `replicas` must not be empty.
    pub fn new(replicas: Vec<Arc<dyn Backend>>) -> Self {
        assert!(!replicas.is_empty(), "a replica set needs a replica");
        ReplicaSet { replicas }
    }

    fn least_loaded(&self) -> &Arc<dyn Backend> {
        self.replicas
            .iter()
            .min_by_key(|r| r.load())
            .expect("a replica set is never empty")
    }
}

#[async_trait]
impl Backend for ReplicaSet {
    fn info(&self) -> &ModelInfo {
        self.replicas[0].info()
    }

    fn load(&self) -> usize {
        self.replicas.iter().map(|r| r.load()).sum()
    }

    async fn schedule(&self, request: GenerateRequest) -> Result<EventStream, EngineError> {
        self.least_loaded().schedule(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        info: ModelInfo,
        load: AtomicUsize,
        scheduled: AtomicUsize,
    }

    #[async_trait]
    impl Backend for Counting {
        fn info(&self) -> &ModelInfo {
            &self.info
        }
        fn load(&self) -> usize {
            self.load.load(Ordering::Relaxed)
        }
        async fn schedule(&self, _: GenerateRequest) -> Result<EventStream, EngineError> {
            self.scheduled.fetch_add(1, Ordering::Relaxed);
            self.load.fetch_add(1, Ordering::Relaxed);
            Ok(tokio::sync::mpsc::unbounded_channel().1)
        }
    }

    #[tokio::test]
    async fn spreads_requests_over_replicas() {
        let make = || {
            Arc::new(Counting {
                info: ModelInfo {
                    path: PathBuf::new(),
                    n_ctx_per_seq: 1,
                    parallel: 1,
                    n_ctx_train: 1,
                    created: 0,
                },
                load: AtomicUsize::new(0),
                scheduled: AtomicUsize::new(0),
            })
        };
        let (a, b) = (make(), make());
        let set = ReplicaSet::new(vec![a.clone(), b.clone()]);
        let request = GenerateRequest {
            prompt: lantern_engine::Prompt::Text("x".into()),
            sampling: Default::default(),
            max_tokens: None,
            stop: vec![],
            ignore_eos: false,
        };
        for _ in 0..6 {
            set.schedule(request.clone()).await.unwrap();
        }
        assert_eq!(a.scheduled.load(Ordering::Relaxed), 3);
        assert_eq!(b.scheduled.load(Ordering::Relaxed), 3);
        assert_eq!(set.load(), 6);
    }
}
