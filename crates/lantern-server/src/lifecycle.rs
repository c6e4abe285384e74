//! The server's phase, shared by the accept loop and the handlers: serving, draining after
//! SIGTERM (health 503, new work refused), and the cut at the grace deadline that ends the
//! streams still running with an error event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

#[derive(Clone)]
pub struct Lifecycle {
    draining: Arc<AtomicBool>,
    cut: Arc<watch::Sender<bool>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            draining: Arc::default(),
            cut: Arc::new(watch::channel(false).0),
        }
    }
}

impl Lifecycle {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The grace period is over: streams still running end now.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Resolves once [`Lifecycle::cut`] was called (at once if it already was), else never.
    pub fn cut_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.cut.subscribe();
        async move {
            // The sender gone (the server state dropped) is not a cut.
            if rx.wait_for(|cut| *cut).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn cut_signal_fires_on_cut_only() {
        let life = Lifecycle::default();
        let early = life.cut_signal();
        assert!(
            tokio::time::timeout(Duration::from_millis(20), life.cut_signal())
                .await
                .is_err()
        );
        life.start_draining();
        assert!(life.is_draining());
        life.cut();
        tokio::time::timeout(Duration::from_secs(1), early)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), life.cut_signal())
            .await
            .unwrap();
        let dropped = Lifecycle::default();
        let signal = dropped.cut_signal();
        drop(dropped);
        assert!(tokio::time::timeout(Duration::from_millis(20), signal)
            .await
            .is_err());
    }
}
