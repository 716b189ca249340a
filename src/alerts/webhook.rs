//! `--alert-webhook URL`: every fire and resolve event POSTed as one JSON
//! document, from a thread of its own.
//!
//! The evaluator only appends to a bounded queue ([`QUEUE_EVENTS`]; when it is
//! full the oldest event is dropped and counted), so a receiver that is slow,
//! hangs or refuses connections costs the agent one thread and a few KB,
//! never a late evaluation or a slow API answer. Each event gets
//! `1 + retries` attempts of at most `--alert-webhook-timeout-ms` each, with
//! a doubling backoff between them (0.5 s up to 10 s); connection errors,
//! timeouts, 408, 429 and 5xx are retried, other answers than 2xx are not
//! (the receiver refused the document; sending it again would not help).
//! At shutdown the queued events get one attempt each within 2 s.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;
use utoipa::ToSchema;

/// Events waiting for delivery at most; older ones are dropped first.
pub const QUEUE_EVENTS: usize = 256;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long stop() lets queued events go out (one attempt each, no retry)
/// and waits for an attempt in flight.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Delivery counters, for `GET /api/v1/alerts` and `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub configured: AtomicBool,
    /// Events the receiver accepted (2xx).
    pub delivered: AtomicU64,
    /// Events given up on after every attempt failed (or a non-retryable answer).
    pub failed: AtomicU64,
    /// Single attempts that failed (each retry counts).
    pub attempt_failures: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Events waiting now.
    pub queued: AtomicU64,
}

/// The counters as JSON.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookStatsView {
    /// Whether --alert-webhook is set (the URL itself is not shown: it may carry a secret).
    pub configured: bool,
    pub delivered: u64,
    pub failed: u64,
    pub attempt_failures: u64,
    pub dropped: u64,
    pub queued: u64,
}

impl WebhookStats {
    pub fn view(&self) -> WebhookStatsView {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WebhookStatsView {
            configured: self.configured.load(Ordering::Relaxed),
            delivered: l(&self.delivered),
            failed: l(&self.failed),
            attempt_failures: l(&self.attempt_failures),
            dropped: l(&self.dropped),
            queued: l(&self.queued),
        }
    }
}

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub timeout: Duration,
    pub retries: u32,
    /// Trust this CA (PEM) for an https:// URL instead of the system roots.
    pub ca_cert: Option<PathBuf>,
}

struct Shared {
    queue: Mutex<VecDeque<String>>,
    cond: Condvar,
    /// Closing: deliver what is queued (one attempt each) until `deadline`.
    stop: AtomicBool,
    deadline: std::sync::OnceLock<std::time::Instant>,
    stats: Arc<WebhookStats>,
}

/// Where the evaluator puts events; cheap to clone.
#[derive(Clone)]
pub struct WebhookQueue(Arc<Shared>);

impl WebhookQueue {
    /// Queue one JSON document; never blocks beyond a short lock.
    pub fn push(&self, doc: String) {
        let sh = &self.0;
        let mut q = sh.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= QUEUE_EVENTS {
            q.pop_front();
            sh.stats.dropped.fetch_add(1, Ordering::Relaxed);
            log::warn!("alert webhook: queue full ({QUEUE_EVENTS} events); dropped the oldest");
        }
        q.push_back(doc);
        sh.stats.queued.store(q.len() as u64, Ordering::Relaxed);
        sh.cond.notify_one();
    }
}

/// The delivery thread.
pub struct Webhook {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    done: crossbeam_channel::Receiver<()>,
}

enum Outcome {
    Delivered,
    Retry(String),
    GiveUp(String),
}

fn attempt(agent: &ureq::Agent, url: &str, doc: &str) -> Outcome {
    match agent
        .post(url)
        .set("Content-Type", "application/json")
        .set(
            "User-Agent",
            concat!("scx_pilot/", env!("CARGO_PKG_VERSION")),
        )
        .send_string(doc)
    {
        Ok(_) => Outcome::Delivered,
        Err(ureq::Error::Status(code, _)) if code == 408 || code == 429 || code >= 500 => {
            Outcome::Retry(format!("HTTP {code}"))
        }
        Err(ureq::Error::Status(code, _)) => Outcome::GiveUp(format!("HTTP {code}")),
        Err(e) => Outcome::Retry(e.to_string()),
    }
}

impl Webhook {
    /// Check the URL and start the thread.
    pub fn spawn(config: WebhookConfig, stats: Arc<WebhookStats>) -> anyhow::Result<Self> {
        let scheme = config.url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("http" | "https")) {
            bail!(
                "--alert-webhook {:?}: the URL must start with http:// or https://",
                config.url
            );
        }
        let agent = crate::tls::http_agent(config.timeout, config.ca_cert.as_deref())
            .context("--alert-webhook-ca-cert")?;
        stats.configured.store(true, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            cond: Condvar::new(),
            stop: AtomicBool::new(false),
            deadline: std::sync::OnceLock::new(),
            stats,
        });
        let sh = shared.clone();
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("alert-webhook".into())
            .spawn(move || {
                Self::deliver_loop(&sh, &agent, &config);
                let _ = done_tx.send(());
            })
            .context("starting the alert webhook thread")?;
        Ok(Self {
            shared,
            thread: Some(thread),
            done,
        })
    }

    pub fn queue(&self) -> WebhookQueue {
        WebhookQueue(self.shared.clone())
    }

    /// Wait up to `d` unless stopping; false when stopping.
    fn pause(sh: &Shared, d: Duration) -> bool {
        let q = sh.queue.lock().unwrap_or_else(|e| e.into_inner());
        if sh.stop.load(Ordering::Relaxed) {
            return false;
        }
        let _ = sh.cond.wait_timeout(q, d);
        !sh.stop.load(Ordering::Relaxed)
    }

    fn deliver_loop(sh: &Shared, agent: &ureq::Agent, config: &WebhookConfig) {
        loop {
            let doc = {
                let mut q = sh.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    let closing = sh.stop.load(Ordering::Relaxed);
                    let late = closing
                        && sh
                            .deadline
                            .get()
                            .is_some_and(|d| std::time::Instant::now() >= *d);
                    if closing && (q.is_empty() || late) {
                        if !q.is_empty() {
                            log::info!(
                                "alert webhook: {} queued events not delivered at exit",
                                q.len()
                            );
                        }
                        return;
                    }
                    if let Some(d) = q.pop_front() {
                        sh.stats.queued.store(q.len() as u64, Ordering::Relaxed);
                        break d;
                    }
                    q = sh.cond.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            let mut backoff = FIRST_BACKOFF;
            let mut tries = 0;
            loop {
                tries += 1;
                let why = match attempt(agent, &config.url, &doc) {
                    Outcome::Delivered => {
                        sh.stats.delivered.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Outcome::GiveUp(why) => {
                        sh.stats.attempt_failures.fetch_add(1, Ordering::Relaxed);
                        sh.stats.failed.fetch_add(1, Ordering::Relaxed);
                        log::warn!(
                            "alert webhook: the receiver refused an event ({why}); not retried"
                        );
                        break;
                    }
                    Outcome::Retry(why) => why,
                };
                sh.stats.attempt_failures.fetch_add(1, Ordering::Relaxed);
                if tries > config.retries {
                    sh.stats.failed.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "alert webhook: giving up on an event after {tries} attempts ({why})"
                    );
                    break;
                }
                log::debug!(
                    "alert webhook: attempt {tries} failed ({why}); retrying in {backoff:?}"
                );
                if !Self::pause(sh, backoff) {
                    // Closing: no retries; the next queued event gets its attempt.
                    sh.stats.failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// Stop: events still queued get one attempt each (so an alert that fired
    /// as the agent stops, such as the scheduler being unloaded, still goes
    /// out) for at most [`STOP_TIMEOUT`]; the rest are dropped and said so. A
    /// hung attempt is left behind after that time.
    pub fn stop(mut self) {
        {
            let _q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            let _ = self
                .shared
                .deadline
                .set(std::time::Instant::now() + STOP_TIMEOUT);
            self.shared.stop.store(true, Ordering::Relaxed);
            self.shared.cond.notify_all();
        }
        match self
            .done
            .recv_timeout(STOP_TIMEOUT + Duration::from_millis(200))
        {
            Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                log::warn!("alert webhook: an attempt is still in flight at exit; leaving it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    /// A receiver that answers `codes` in turn (then 200) and returns the bodies.
    fn receiver(codes: Vec<u16>) -> (String, crossbeam_channel::Receiver<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            let mut codes = codes.into_iter();
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let code = codes.next().unwrap_or(200);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = tx.send(String::from_utf8(body).unwrap());
            }
        });
        (url, rx)
    }

    /// The next body the receiver got is `want` (waiting up to `within`).
    #[track_caller]
    fn expect_body(rx: &crossbeam_channel::Receiver<String>, want: &str, within: Duration) {
        assert_eq!(rx.recv_timeout(within).unwrap(), want);
    }

    fn config(url: String, retries: u32) -> WebhookConfig {
        WebhookConfig {
            url,
            timeout: Duration::from_secs(5),
            retries,
            ca_cert: None,
        }
    }

    #[test]
    fn retries_server_errors_and_gives_up_on_refusals() {
        let (url, rx) = receiver(vec![503, 200, 400]);
        let stats = Arc::new(WebhookStats::default());
        let w = Webhook::spawn(config(url, 3), stats.clone()).unwrap();
        w.queue().push(r#"{"n":1}"#.into());
        expect_body(&rx, r#"{"n":1}"#, Duration::from_secs(10));
        expect_body(&rx, r#"{"n":1}"#, Duration::from_secs(10));
        w.queue().push(r#"{"n":2}"#.into());
        expect_body(&rx, r#"{"n":2}"#, Duration::from_secs(10));
        // 400: not retried.
        assert!(rx.recv_timeout(Duration::from_millis(1500)).is_err());
        let v = stats.view();
        assert_eq!((v.delivered, v.failed, v.attempt_failures), (1, 1, 2));
        w.stop();
    }

    #[test]
    fn stopping_delivers_what_is_queued() {
        let (url, rx) = receiver(vec![]);
        let stats = Arc::new(WebhookStats::default());
        let w = Webhook::spawn(config(url, 3), stats.clone()).unwrap();
        w.queue().push(r#"{"last":1}"#.into());
        w.queue().push(r#"{"last":2}"#.into());
        w.stop();
        expect_body(&rx, r#"{"last":1}"#, Duration::from_secs(5));
        expect_body(&rx, r#"{"last":2}"#, Duration::from_secs(5));
        assert_eq!(stats.view().delivered, 2);
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        // Nothing listens: every attempt is refused, and the first event is
        // retried while the others queue up.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        drop(l);
        let stats = Arc::new(WebhookStats::default());
        let w = Webhook::spawn(config(url, 10), stats.clone()).unwrap();
        for i in 0..QUEUE_EVENTS + 20 {
            w.queue().push(format!("{i}"));
        }
        let v = stats.view();
        assert!(v.dropped >= 19, "{v:?}");
        assert!(v.queued <= QUEUE_EVENTS as u64);
        w.stop();
        assert!(Webhook::spawn(config("ftp://x/".into(), 1), stats).is_err());
    }
}
