//! A watch on the Kubernetes API in a thread of its own, on a current-thread
//! tokio runtime of its own, so that neither the HTTP server's runtime nor
//! the scheduler thread is involved, and that stops within a bound.

use std::future::Future;
use std::time::Duration;

use super::config::ConfigSource;

/// How long [`WatchThread::stop`] waits for the thread.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// A running watch; [`WatchThread::stop`] ends it.
pub(super) struct WatchThread {
    /// What this watch's log lines start with ("kubernetes", "cluster strategies").
    log_prefix: &'static str,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: crossbeam_channel::Receiver<()>,
}

impl WatchThread {
    /// Build the client from `source` (which may run a credential plugin)
    /// and run `watch(client)` in a thread named `thread_name` until
    /// [`WatchThread::stop`]. Also returns the API server's URL.
    pub(super) fn spawn<F, Fut>(
        log_prefix: &'static str,
        thread_name: &str,
        source: ConfigSource,
        watch: F,
    ) -> anyhow::Result<(Self, String)>
    where
        F: FnOnce(::kube::Client) -> Fut + Send + 'static,
        Fut: Future,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let from = source.describe();
        let config = rt.block_on(source.client_config())?;
        let endpoint = config.cluster_url.to_string();
        // The client's request buffer is a task of this runtime.
        let client = {
            let _guard = rt.enter();
            ::kube::Client::try_from(config).map_err(|e| anyhow::anyhow!("{from}: {e}"))?
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                rt.block_on(async {
                    let run = std::pin::pin!(watch(client));
                    futures_util::future::select(run, stop_rx).await;
                });
                // Nothing may hold the agent's shutdown (a DNS lookup in the
                // blocking pool, say).
                rt.shutdown_background();
                let _ = done_tx.send(());
            })?;
        let watch = Self {
            log_prefix,
            thread: Some(thread),
            stop: Some(stop_tx),
            done: done_rx,
        };
        Ok((watch, endpoint))
    }

    /// Stop watching; returns within [`STOP_TIMEOUT`] (the thread is left to
    /// end on its own if it does not finish in time).
    pub(super) fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.done.recv_timeout(STOP_TIMEOUT) {
            Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                log::warn!(
                    "{}: the watcher did not stop within {STOP_TIMEOUT:?}; leaving it",
                    self.log_prefix
                );
            }
        }
    }
}
