//! Running the HTTP server on its own thread with its own actix System, so the
//! agent's main thread keeps the only signal handler and decides when to stop.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, HttpServer};
use anyhow::{anyhow, Context, Result};

use super::{app, ApiConfig, ApiState};

/// How long a graceful stop waits for in-flight requests.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new connection may take to send its request headers: idle and
/// trickling connections lose their slot quickly.
pub const REQUEST_HEADERS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a kept-alive connection may sit idle between requests.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// How long a TLS handshake may take: half-open handshakes free their slot.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// TLS handshakes in progress per worker.
pub const TLS_HANDSHAKES_PER_WORKER: usize = 1024;

/// A running HTTP server.
pub struct ApiServer {
    handle: ServerHandle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    addrs: Vec<SocketAddr>,
}

/// Bind the listen address and start serving. Returns once the socket is
/// bound, so a port in use is an error here, not later.
pub fn start(state: web::Data<ApiState>, config: ApiConfig) -> Result<ApiServer> {
    let (tx, rx) = std::sync::mpsc::channel();
    let listen = config.listen;
    let thread = std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let workers = config.workers.max(1);
                let cfg = config.clone();
                let server = HttpServer::new(move || app(state.clone(), &cfg))
                    .workers(workers)
                    .max_connections(config.max_connections_per_worker)
                    .max_connection_rate(TLS_HANDSHAKES_PER_WORKER)
                    .client_request_timeout(REQUEST_HEADERS_TIMEOUT)
                    .keep_alive(KEEP_ALIVE)
                    .tls_handshake_timeout(TLS_HANDSHAKE_TIMEOUT)
                    .disable_signals()
                    .shutdown_timeout(SHUTDOWN_TIMEOUT.as_secs());
                let bound = match &config.tls {
                    Some(tls) => server.bind_rustls_0_23(config.listen, (**tls).clone()),
                    None => server.bind(config.listen),
                };
                let server = match bound {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return Ok(());
                    }
                };
                let addrs = server.addrs();
                let server = server.run();
                let _ = tx.send(Ok((server.handle(), addrs)));
                server.await
            })
        })
        .context("starting the HTTP server thread")?;
    let (handle, addrs) = match rx.recv() {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(anyhow!("cannot listen on {listen}: {e}"));
        }
        Err(_) => {
            let outcome = thread.join();
            return Err(anyhow!(
                "the HTTP server thread ended before listening: {outcome:?}"
            ));
        }
    };
    Ok(ApiServer {
        handle,
        thread: Some(thread),
        addrs,
    })
}

impl ApiServer {
    /// The addresses the server listens on (the real port when 0 was asked).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stop accepting, let in-flight requests finish (up to
    /// [`SHUTDOWN_TIMEOUT`]), and wait for the server thread.
    pub fn stop(mut self) -> Result<()> {
        // The stop command is sent when `stop` is called; the returned future
        // only reports completion, which joining the thread also waits for.
        drop(self.handle.stop(true));
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        match thread.join() {
            Ok(r) => r.context("HTTP server"),
            Err(_) => Err(anyhow!("the HTTP server thread panicked")),
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            drop(self.handle.stop(false));
            let _ = self.join();
        }
    }
}
