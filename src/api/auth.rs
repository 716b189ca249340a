//! Who may call what. Every write (a method other than GET, HEAD, OPTIONS)
//! passes, in order:
//!
//! 1. the Host check (403, [`HostCheck`]): against DNS rebinding;
//! 2. the Origin check (403, [`WriteOrigins`]): a browser write only from the
//!    agent's own origin or a `--cors-write-origin` one;
//! 3. a credential (401, `WWW-Authenticate: Bearer`): the static bearer token
//!    or a JWT we issued ([`super::credentials`]); not needed for the token
//!    endpoint, which checks the presented public key itself, nor with
//!    `--auth none`;
//! 4. the per-client write rate limit (429 with `Retry-After`). Rejected and
//!    accepted attempts of a client use separate buckets, so a local user
//!    flooding wrong tokens cannot lock the operator out.
//!
//! Reads are open unless `--auth-reads`: then reads of the data under
//! `/api/v1` need a credential too, as Gthulhu's server asks; the open paths
//! ([`OPEN_READS`]) and OPTIONS stay open.
//!
//! Every write, accepted or not, is logged with the client address, the
//! outcome and, for accepted ones, what changed (a [`WriteNote`] the handler
//! attaches to its response). No token is ever logged.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::future::{ready, Ready};
use std::rc::Rc;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{header, Method};
use actix_web::{web, HttpResponse, ResponseError};
use futures_util::future::{Either, LocalBoxFuture};
use futures_util::{future::MapOk, TryFutureExt};

use super::cors::{CrossOriginWrite, WriteOrigins};
use super::credentials::{Accepted, Credential};
use super::endpoints::wrong_method;
use super::error::ApiError;
use super::rate_limit::Buckets;
use super::token::TOKEN_PATH;
use crate::auth::Token;
use crate::jwt::JwtKeys;

pub use super::auth_doc::document_writes;
pub use super::host_check::HostCheck;

/// Reads that need no credential even with `--auth-reads`: what probes,
/// Prometheus and a browser opening the agent fetch first, and the API
/// description. Any other path (an unknown one included) needs one.
pub const OPEN_READS: &[&str] = &[
    "/",
    "/health",
    super::probes::LIVEZ_PATH,
    super::probes::READYZ_PATH,
    "/metrics",
    super::DASHBOARD_PATH,
    "/api/v1/openapi.json",
    TOKEN_PATH,
];

/// What a write handler changed, for the write log.
#[derive(Debug, Clone)]
pub struct WriteNote(pub String);

/// Attach what a write changed to its response (read by the write log).
pub fn note(res: &mut HttpResponse, what: impl Into<String>) {
    res.extensions_mut().insert(WriteNote(what.into()));
}

/// Longest description of a change kept in one log line.
pub const MAX_NOTE_CHARS: usize = 600;

/// `s` cut to [`MAX_NOTE_CHARS`] characters, marked when cut.
/// Control characters are escaped (`\u{1b}`): text from a request must not
/// drive the operator's terminal or forge log lines.
pub fn clip(s: &str) -> String {
    let cut = match s.char_indices().nth(MAX_NOTE_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    };
    let mut out = String::with_capacity(cut.len());
    for c in cut.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut.len() < s.len() {
        out.push_str(&format!("... ({} bytes)", s.len()));
    }
    out
}

/// Which requests are let through.
#[derive(Debug, Clone, Default)]
pub struct WritePolicy {
    /// The bearer token writes must carry; `None` lets any write through
    /// (`--auth none`, and the default of a bare [`super::ApiConfig`]).
    pub token: Option<Token>,
    /// The Host header check; `None` skips it.
    pub hosts: Option<HostCheck>,
    /// Writes per second per client address (also the burst); `None` for no limit.
    pub rate_per_s: Option<u32>,
    /// The key of the tokens the token endpoint issues and protected routes
    /// accept beside `token`; `None` with `--jwt off`.
    pub jwt: Option<Arc<JwtKeys>>,
    /// Reads outside [`OPEN_READS`] need a credential too (`--auth-reads`;
    /// only with a `token`).
    pub auth_reads: bool,
    /// Cross-origin pages that may write (`--cors-write-origin`).
    pub write_origins: WriteOrigins,
}

impl WritePolicy {
    /// What a protected request must show, when anything.
    fn accepted(&self) -> Option<Accepted<'_>> {
        self.token.as_ref().map(|token| Accepted {
            token,
            jwt: self.jwt.as_deref(),
        })
    }

    /// Whether a read of `path` needs a credential.
    fn read_needs_credential(&self, path: &str) -> bool {
        self.auth_reads && self.token.is_some() && !OPEN_READS.contains(&path)
    }
}

/// The policy with its rate-limit state, shared by every worker.
#[derive(Default)]
pub struct WriteGuard {
    pub policy: WritePolicy,
    buckets: Mutex<Buckets>,
}

impl std::fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A write let through: the credential it showed, and the cross-origin page
/// it came from when that page is allowed to read the answer.
struct Passed {
    credential: Option<Credential>,
    cross_origin: Option<header::HeaderValue>,
}

impl WriteGuard {
    pub fn new(policy: WritePolicy) -> Self {
        Self {
            policy,
            buckets: Mutex::default(),
        }
    }

    fn rate_check(&self, ip: Option<IpAddr>, accepted: bool) -> Result<(), ApiError> {
        let Some(rate) = self.policy.rate_per_s else {
            return Ok(());
        };
        let ip = ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        b.take((ip, accepted), rate, Instant::now())
            .map_err(|wait| ApiError::TooManyRequests {
                retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64,
                limit: rate,
            })
    }

    /// Check a write's headers: what let it through, or the error to answer.
    fn check(&self, req: &ServiceRequest) -> Result<Passed, ApiError> {
        if let Some(hosts) = &self.policy.hosts {
            let host = req
                .headers()
                .get(header::HOST)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            if !hosts.allows(host.as_deref()) {
                let shown = host.unwrap_or_default();
                return Err(ApiError::Forbidden(format!(
                    "Host '{}' is not an allowed name for writes (use the listen address or add --allowed-host)",
                    clip(&shown)
                )));
            }
        }
        let cross_origin = self.policy.write_origins.check(req.headers())?;
        let ip = req.peer_addr().map(|a| a.ip());
        let mut credential = None;
        if let Some(accepted) = self.policy.accepted() {
            // The token endpoint is how a client without a credential gets one.
            if req.path() != TOKEN_PATH {
                match accepted.check(req.headers(), "write") {
                    Ok(c) => credential = Some(c),
                    Err(e) => {
                        // Rejected attempts have their own bucket: past it, 429.
                        self.rate_check(ip, false)?;
                        return Err(e);
                    }
                }
            }
        }
        self.rate_check(ip, true)?;
        Ok(Passed {
            credential,
            cross_origin,
        })
    }
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn client(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "unknown client".into(), |a| a.to_string())
}

/// The middleware: checks and logs writes, and reads when `--auth-reads`.
///
/// A plain `Service` rather than `middleware::from_fn`: an open read then
/// costs a method check and no boxed future (from_fn boxes one per request),
/// which matters for the polled read endpoints; the rest take a boxed path.
pub struct Guard {
    /// Whether any read may need a credential (`--auth-reads` with a token).
    reads_checked: bool,
}

impl Guard {
    pub fn new(policy: &WritePolicy) -> Self {
        Self {
            reads_checked: policy.auth_reads && policy.token.is_some(),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Guard
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = actix_web::Error;
    type Transform = GuardService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GuardService {
            service: Rc::new(service),
            reads_checked: self.reads_checked,
        }))
    }
}

/// [`Guard`] around one worker's service.
pub struct GuardService<S> {
    service: Rc<S>,
    reads_checked: bool,
}

type LeftBody<B> = fn(ServiceResponse<B>) -> ServiceResponse<EitherBody<B, BoxBody>>;

impl<S, B> Service<ServiceRequest> for GuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = actix_web::Error;
    type Future = Either<
        MapOk<S::Future, LeftBody<B>>,
        LocalBoxFuture<'static, Result<Self::Response, Self::Error>>,
    >;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let method = req.method();
        let read = is_read(method);
        // A method its route does not serve gets the router's 405 and its Allow
        // list, not a 401 that sends the client after a token for a call that
        // cannot exist. An unknown path stays checked: fail closed.
        let served_write = !read && !wrong_method(method.as_str(), req.path());
        let checked = served_write || (read && self.reads_checked && *method != Method::OPTIONS);
        let guard = if checked {
            req.app_data::<web::Data<WriteGuard>>().cloned()
        } else {
            None
        };
        match guard {
            Some(guard) if read && guard.policy.read_needs_credential(req.path()) => {
                Either::Right(Box::pin(check_read(self.service.clone(), guard, req)))
            }
            Some(guard) if !read => {
                Either::Right(Box::pin(check_write(self.service.clone(), guard, req)))
            }
            _ => {
                let left: LeftBody<B> = ServiceResponse::map_into_left_body;
                Either::Left(self.service.call(req).map_ok(left))
            }
        }
    }
}

/// Check a read's credential (`--auth-reads`), pass it on when valid. Its
/// status is logged by the request log; refusals say why only to the client.
async fn check_read<S, B>(
    service: Rc<S>,
    guard: web::Data<WriteGuard>,
    req: ServiceRequest,
) -> Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    if let Some(accepted) = guard.policy.accepted() {
        if let Err(e) = accepted.check(req.headers(), "read") {
            let res = e.error_response();
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    Ok(service.call(req).await?.map_into_left_body())
}

/// Check a write, pass it on when allowed, and log the outcome.
async fn check_write<S, B>(
    service: Rc<S>,
    guard: web::Data<WriteGuard>,
    req: ServiceRequest,
) -> Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let method = req.method().clone();
    let path = req.path().to_string();
    let from = client(req.peer_addr());
    let passed = match guard.check(&req) {
        Ok(passed) => passed,
        Err(e) => {
            log::warn!(
                "write rejected: {method} {path} from {from}: {} {e}; nothing changed",
                e.status_code().as_u16()
            );
            let res = e.error_response();
            return Ok(req.into_response(res).map_into_right_body());
        }
    };
    let by = passed
        .credential
        .as_ref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let mut res = service.call(req).await?;
    if let Some(origin) = passed.cross_origin {
        res.response_mut().extensions_mut().insert(CrossOriginWrite);
        let headers = res.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    }
    let status = res.status();
    let what = res
        .response()
        .extensions()
        .get::<WriteNote>()
        .map(|n| n.0.clone());
    match what {
        Some(what) if status.is_success() => {
            log::info!(
                "write accepted: {method} {path} from {from}{by}: {} {what}",
                status.as_u16()
            )
        }
        _ => log::warn!(
            "write refused: {method} {path} from {from}{by}: {}{}; nothing changed",
            status.as_u16(),
            res.response()
                .error()
                .map(|e| format!(" {}", clip(&e.to_string())))
                .unwrap_or_default()
        ),
    }
    Ok(res.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_marks_cut_text() {
        assert_eq!(clip("abc"), "abc");
        let long = "x".repeat(MAX_NOTE_CHARS + 10);
        assert!(clip(&long).ends_with(&format!("... ({} bytes)", long.len())));
        // Control characters from input are escaped.
        assert_eq!(clip("a\u{1b}[31mb\nc"), "a\\u{1b}[31mb\\nc");
    }
}
