//! Who may write. Reads (GET, HEAD, OPTIONS) are open; every other method is a
//! write and passes, in order:
//!
//! 1. the Host check (403): the Host header must name the listen address or a
//!    configured name, so a web page whose DNS name was rebound to this node
//!    cannot write through a browser;
//! 2. the bearer token (401, `WWW-Authenticate: Bearer`), compared in
//!    constant time;
//! 3. the per-client write rate limit (429 with `Retry-After`). Rejected and
//!    accepted attempts of a client use separate buckets, so a local user
//!    flooding wrong tokens cannot lock the operator out.
//!
//! Every write, accepted or not, is logged with the client address, the
//! outcome and, for accepted ones, what changed (a [`WriteNote`] the handler
//! attaches to its response).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::future::{ready, Ready};
use std::rc::Rc;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{header, Method};
use actix_web::{web, HttpResponse, ResponseError};
use futures_util::future::{Either, LocalBoxFuture};
use futures_util::{future::MapOk, TryFutureExt};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::auth::Token;

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

/// Which writes are let through.
#[derive(Debug, Clone, Default)]
pub struct WritePolicy {
    /// The bearer token writes must carry; `None` lets any write through
    /// (`--auth none`, and the default of a bare [`super::ApiConfig`]).
    pub token: Option<Token>,
    /// The Host header check; `None` skips it.
    pub hosts: Option<HostCheck>,
    /// Writes per second per client address (also the burst); `None` for no limit.
    pub rate_per_s: Option<u32>,
}

/// Names a write's Host header may carry.
#[derive(Debug, Clone)]
pub struct HostCheck {
    /// The address the server listens on.
    pub listen: IpAddr,
    /// Extra names (lowercase, no port), e.g. from `--allowed-host`.
    pub names: Vec<String>,
}

impl HostCheck {
    /// The check for a server on `listen`: its own address; `localhost` when it
    /// listens on loopback or every address; this machine's host name when it
    /// listens beyond loopback; plus `names`.
    pub fn for_listen(listen: IpAddr, names: &[String]) -> Self {
        let mut all: Vec<String> = names.iter().map(|n| normalize(n)).collect();
        if listen.is_loopback() || listen.is_unspecified() {
            all.push("localhost".into());
        }
        if !listen.is_loopback() {
            if let Some(h) = hostname() {
                all.push(normalize(&h));
            }
        }
        all.sort();
        all.dedup();
        all.retain(|n| !n.is_empty());
        Self { listen, names: all }
    }

    /// Whether a write with this Host header value may go on. A request
    /// without a Host header is not from a browser (browsers always send one)
    /// and passes.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        let name = strip_port(host.trim());
        if let Ok(ip) = name.parse::<IpAddr>() {
            // An IP literal cannot be rebound: only its own address matters.
            return self.listen.is_unspecified()
                || ip == self.listen
                || (ip.is_loopback() && self.listen.is_loopback());
        }
        let name = normalize(name);
        self.names.contains(&name)
    }
}

fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The host part of a Host header value: `[v6]:port`, `v4:port`, `name:port`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length are valid; gethostname NUL-terminates
    // within it when the name fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&buf[..end]).ok().map(str::to_string)
}

/// Token buckets per (client address, accepted-or-rejected).
#[derive(Default)]
struct Buckets {
    map: HashMap<(IpAddr, bool), (f64, Instant)>,
}

/// Most clients tracked before idle ones are forgotten.
const MAX_TRACKED_CLIENTS: usize = 4096;

impl Buckets {
    /// Take one token; `Err(wait)` when empty.
    fn take(&mut self, key: (IpAddr, bool), rate: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(rate.max(1));
        if self.map.len() >= MAX_TRACKED_CLIENTS && !self.map.contains_key(&key) {
            // Forget clients whose bucket has refilled: they lose nothing.
            self.map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < rate
            });
            if self.map.len() >= MAX_TRACKED_CLIENTS {
                return Err(Duration::from_secs(1));
            }
        }
        let (tokens, at) = self.map.entry(key).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
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

impl WriteGuard {
    pub fn new(policy: WritePolicy) -> Self {
        Self {
            policy,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
            }),
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

    /// Check a write's headers: Ok to let it through, or the error to answer.
    fn check(&self, req: &ServiceRequest) -> Result<(), ApiError> {
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
        let ip = req.peer_addr().map(|a| a.ip());
        if let Some(token) = &self.policy.token {
            if let Err(e) = bearer_matches(req, token) {
                // Rejected attempts have their own bucket: past it, 429.
                self.rate_check(ip, false)?;
                return Err(e);
            }
        }
        self.rate_check(ip, true)
    }
}

/// Ok when the request's `Authorization: Bearer` token equals `token`.
fn bearer_matches(req: &ServiceRequest, token: &Token) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(
            "this write needs an Authorization: Bearer <token> header".into(),
        ));
    };
    let value = value.as_bytes();
    let presented = match value.split_first_chunk::<7>() {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
        _ => {
            return Err(ApiError::Unauthorized(
                "the Authorization header must use the Bearer scheme".into(),
            ))
        }
    };
    if bool::from(presented.ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "the bearer token is not valid".into(),
        ))
    }
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn client(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "unknown client".into(), |a| a.to_string())
}

/// The middleware: lets reads through untouched, checks and logs writes.
///
/// A plain `Service` rather than `middleware::from_fn`: a read then costs a
/// method check and no boxed future (from_fn boxes one per request), which
/// matters for the polled read endpoints; writes take the boxed path below.
pub struct Guard;

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
        }))
    }
}

/// [`Guard`] around one worker's service.
pub struct GuardService<S> {
    service: Rc<S>,
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
        let guard = if is_read(req.method()) {
            None
        } else {
            req.app_data::<web::Data<WriteGuard>>().cloned()
        };
        match guard {
            Some(guard) => Either::Right(Box::pin(check_write(self.service.clone(), guard, req))),
            None => {
                let left: LeftBody<B> = ServiceResponse::map_into_left_body;
                Either::Left(self.service.call(req).map_ok(left))
            }
        }
    }
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
    if let Err(e) = guard.check(&req) {
        log::warn!(
            "write rejected: {method} {path} from {from}: {} {e}; nothing changed",
            e.status_code().as_u16()
        );
        let res = e.error_response();
        return Ok(req.into_response(res).map_into_right_body());
    }
    let res = service.call(req).await?;
    let status = res.status();
    let what = res
        .response()
        .extensions()
        .get::<WriteNote>()
        .map(|n| n.0.clone());
    match what {
        Some(what) if status.is_success() => {
            log::info!(
                "write accepted: {method} {path} from {from}: {} {what}",
                status.as_u16()
            )
        }
        _ => log::warn!(
            "write refused: {method} {path} from {from}: {}{}; nothing changed",
            status.as_u16(),
            res.response()
                .error()
                .map(|e| format!(" {}", clip(&e.to_string())))
                .unwrap_or_default()
        ),
    }
    Ok(res.map_into_left_body())
}

/// Mark every write operation of the OpenAPI document: the bearer security
/// scheme and the 401, 403 and 429 answers of [`guard`].
pub fn document_writes(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The token in the agent's --token-file (default /var/lib/scx_pilot/token). \
                     Needed on every write unless the agent runs with --auth none.",
                ))
                .build(),
        ),
    );
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            op.security = Some(vec![SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
            let r = &mut op.responses.responses;
            r.insert(
                "401".into(),
                error("No or wrong bearer token (WWW-Authenticate: Bearer); nothing is changed")
                    .into(),
            );
            r.insert(
                "403".into(),
                error("The Host header is not the listen address or an --allowed-host name (DNS rebinding guard)").into(),
            );
            r.insert(
                "429".into(),
                error("Over the per-client write rate (--write-rate-limit); Retry-After says when to retry").into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_check() {
        let lo = HostCheck::for_listen("127.0.0.1".parse().unwrap(), &["Node-1.Example.".into()]);
        for ok in [
            None,
            Some("127.0.0.1:8080"),
            Some("127.0.0.2"),
            Some("localhost:8080"),
            Some("LOCALHOST"),
            Some("node-1.example:80"),
            Some("[::1]:8080"),
        ] {
            assert!(lo.allows(ok), "{ok:?} refused");
        }
        for bad in [
            Some("evil.example:8080"),
            Some("10.0.0.1:8080"),
            Some(""),
            Some("localhost.evil.example"),
        ] {
            assert!(!lo.allows(bad), "{bad:?} allowed");
        }
        let any = HostCheck::for_listen("0.0.0.0".parse().unwrap(), &[]);
        assert!(any.allows(Some("10.1.2.3:8080")));
        assert!(any.allows(Some("localhost")));
        assert!(!any.allows(Some("rebound.example")));
        let one = HostCheck::for_listen("10.0.0.5".parse().unwrap(), &[]);
        assert!(one.allows(Some("10.0.0.5:8080")));
        assert!(!one.allows(Some("10.0.0.6:8080")));
        assert!(!one.allows(Some("localhost:8080")));
    }

    #[test]
    fn buckets_refill_and_separate_clients() {
        let mut b = Buckets {
            map: HashMap::new(),
        };
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let c: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            b.take((a, true), 3, t0).unwrap();
        }
        let wait = b.take((a, true), 3, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(334), "{wait:?}");
        b.take((c, true), 3, t0).unwrap();
        b.take((a, false), 3, t0).unwrap();
        b.take((a, true), 3, t0 + Duration::from_millis(340))
            .unwrap();
    }

    #[test]
    fn clip_marks_cut_text() {
        assert_eq!(clip("abc"), "abc");
        let long = "x".repeat(MAX_NOTE_CHARS + 10);
        assert!(clip(&long).ends_with(&format!("... ({} bytes)", long.len())));
        // Control characters from input are escaped.
        assert_eq!(clip("a\u{1b}[31mb\nc"), "a\\u{1b}[31mb\\nc");
    }
}
