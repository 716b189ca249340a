//! The embedded HTTP API (actix-web): the BSS Metrics API contract served from the
//! agent's live data, plus health, API information and an OpenAPI document.
//!
//! One file per resource; errors map to status codes in [`error`]; the route
//! table [`ENDPOINTS`] feeds `GET /`, the `Allow` header of 405 answers and a
//! test that checks the router and the OpenAPI document against each other.

mod alerts;
pub mod auth;
mod auth_doc;
pub mod cors;
mod credentials;
mod dashboard;
mod error;
mod host_check;
mod info;
mod metrics;
pub mod openapi;
mod pods;
pub mod prom;
mod server;
mod stats;
mod strategies;
pub mod token;

use std::future::{ready, Future, Ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{header, Method};
use actix_web::{web, App, HttpRequest, HttpResponse, ResponseError};

use crate::state::AgentState;

pub use error::{ApiError, BodyLimit, ErrorBody, DEFAULT_BODY_LIMIT};
pub use metrics::{MetricsBody, MAX_BATCH_REPORTS};
pub use server::{start, ApiServer};

/// The original BSS Metrics API server's service name, kept for clients that check it.
pub const SERVICE_NAME: &str = "BSS Metrics API Server";

/// One route of the API.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub description: &'static str,
}

/// Every route the API serves.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "GET",
        path: "/",
        description: "API information: service, version and every endpoint",
    },
    Endpoint {
        method: "GET",
        path: "/health",
        description: "Health of the agent: scheduler, sampler and Kubernetes status (503 when unhealthy)",
    },
    Endpoint {
        method: "POST",
        path: "/api/v1/auth/token",
        description: "A JWT for a client that presents this agent's public key (Gthulhu's clients); open",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/metrics",
        description: "Latest scheduler counters (BssData) with rates and policy counters, plus externally reported metrics",
    },
    Endpoint {
        method: "POST",
        path: "/api/v1/metrics",
        description: "Report BssData from an external scheduler (kept per usersched_pid, shown as external)",
    },
    Endpoint {
        method: "POST",
        path: "/api/v1/metrics/batch",
        description: "Report many BssData at once (each with an optional timestamp); validated as a whole",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/metrics/history",
        description: "Recent samples of the scheduler counters (?seconds=N)",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/pods/pids",
        description: "Pod-to-PID mappings found in /proc",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/pods/stats",
        description: "Per-pod CPU usage, run-queue wait and timeslices from schedstat, with recent history (?points=N)",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/scheduling/strategies",
        description: "Scheduling strategies resolved to PIDs (what the scheduler applies)",
    },
    Endpoint {
        method: "POST",
        path: "/api/v1/scheduling/strategies",
        description: "Replace the whole set of scheduling strategies",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/scheduling/strategies/config",
        description: "Scheduling strategies as posted, with what each one resolved to",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/scheduling/strategies/stats",
        description: "Per-strategy CPU usage, run-queue wait and timeslices summed over the PIDs each one covers",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/alerts",
        description: "Active alerts and recently resolved ones, with webhook delivery counters",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/openapi.json",
        description: "OpenAPI 3 description of this API",
    },
    Endpoint {
        method: "GET",
        path: "/metrics",
        description: "Prometheus metrics (OpenMetrics when asked for in Accept, else text format 0.0.4)",
    },
    Endpoint {
        method: "GET",
        path: "/dashboard",
        description: "Live dashboard page (self-contained HTML polling this API)",
    },
];

/// Methods served on `path`, as an `Allow` header value.
pub fn allowed_methods(path: &str) -> String {
    ENDPOINTS
        .iter()
        .filter(|e| e.path == path)
        .map(|e| e.method)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the HTTP server runs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    /// Origins whose pages may read: `*`, a comma-separated list of origins,
    /// or empty for no CORS headers (writes: [`auth::WritePolicy`]).
    pub cors_origin: String,
    pub body_limit: usize,
    /// Who may write (token, Host check, rate limit), shared by every worker.
    /// The default lets every write through: the CLI always sets it.
    pub writes: Arc<auth::WriteGuard>,
    /// Serve HTTPS with this configuration instead of plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections each worker holds at most; more wait in the listen backlog.
    pub max_connections_per_worker: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 2,
            cors_origin: "*".into(),
            body_limit: DEFAULT_BODY_LIMIT,
            writes: Arc::default(),
            tls: None,
            max_connections_per_worker: 25_000,
        }
    }
}

/// What the handlers read: the agent's state, plus what only the HTTP layer
/// keeps (serialized-body caches, request counters).
pub struct ApiState {
    agent: Arc<AgentState>,
    metrics_body: MetricsBody,
    /// The pods API's serialized list for the current scan and pod metadata.
    pub pods_body: pods::PodsBodyCache,
    /// HTTP request counters and the `/metrics` registry.
    pub prom: prom::PromMetrics,
}

impl ApiState {
    pub fn new(agent: Arc<AgentState>) -> Self {
        Self {
            agent,
            metrics_body: MetricsBody::default(),
            pods_body: Default::default(),
            prom: prom::PromMetrics::new(),
        }
    }
}

impl From<AgentState> for ApiState {
    fn from(agent: AgentState) -> Self {
        Self::new(Arc::new(agent))
    }
}

/// Handlers read the agent's state through the API state.
impl std::ops::Deref for ApiState {
    type Target = AgentState;

    fn deref(&self) -> &AgentState {
        &self.agent
    }
}

fn resource(path: &'static str) -> actix_web::Resource {
    web::resource(path)
        .route(web::route().method(Method::OPTIONS).to(cors::preflight))
        .default_service(web::to(move |req: HttpRequest| async move {
            Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
                method: req.method().to_string(),
                path: path.to_string(),
                allow: allowed_methods(path),
            })
        }))
}

/// Register every route of [`ENDPOINTS`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/").route(web::get().to(info::index)))
        .service(resource("/health").route(web::get().to(info::health)))
        .service(resource(token::TOKEN_PATH).route(web::post().to(token::post_token)))
        .service(
            resource("/api/v1/metrics")
                .route(web::get().to(metrics::get_metrics))
                .route(web::post().to(metrics::post_metrics)),
        )
        .service(
            resource("/api/v1/metrics/batch").route(web::post().to(metrics::post_metrics_batch)),
        )
        .service(resource("/api/v1/metrics/history").route(web::get().to(metrics::get_history)))
        .service(resource("/api/v1/pods/pids").route(web::get().to(pods::get_pods)))
        .service(resource("/api/v1/pods/stats").route(web::get().to(stats::get_pod_stats)))
        .service(
            resource("/api/v1/scheduling/strategies")
                .route(web::get().to(strategies::get_strategies))
                .route(web::post().to(strategies::post_strategies)),
        )
        .service(
            resource("/api/v1/scheduling/strategies/config")
                .route(web::get().to(strategies::get_config)),
        )
        .service(
            resource("/api/v1/scheduling/strategies/stats")
                .route(web::get().to(stats::get_strategy_stats)),
        )
        .service(resource("/api/v1/alerts").route(web::get().to(alerts::get_alerts)))
        .service(resource("/api/v1/openapi.json").route(web::get().to(openapi::get_openapi)))
        .service(resource("/metrics").route(web::get().to(prom::get_prometheus)))
        .service(resource("/dashboard").route(web::get().to(dashboard::get_dashboard)));
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        method: req.method().to_string(),
        path: req.path().to_string(),
    })
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Outermost middleware: turns any error that is not already JSON (from
/// actix or a middleware) into the API's error body, keeps CORS headers off
/// writes, counts each request and logs it with its status and duration.
///
/// A plain `Service` rather than `middleware::from_fn`, because it wraps every
/// request: its future sits inline in the dispatcher's instead of in a new box,
/// and it holds the state (per worker, behind an `Rc`) instead of looking it up
/// in the app data and cloning its `Arc` (an atomic both workers contend on).
struct Finish {
    state: web::Data<ApiState>,
}

impl<S, B> Transform<S, ServiceRequest> for Finish
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = actix_web::Error;
    type Transform = FinishService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(FinishService {
            service,
            state: Rc::new(self.state.clone()),
        }))
    }
}

struct FinishService<S> {
    service: S,
    state: Rc<web::Data<ApiState>>,
}

impl<S, B> Service<ServiceRequest> for FinishService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = actix_web::Error;
    type Future = FinishFuture<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let ctx = FinishCtx {
            start: Instant::now(),
            method: req.method().clone(),
            // Cheap (reference-counted) copy, for the log line of a failed call.
            uri: req.uri().clone(),
            state: self.state.clone(),
        };
        FinishFuture {
            inner: self.service.call(req),
            ctx: Some(ctx),
        }
    }
}

/// What [`finish`] needs once the inner service has answered.
struct FinishCtx {
    start: Instant,
    method: Method,
    uri: actix_web::http::Uri,
    state: Rc<web::Data<ApiState>>,
}

/// The inner service's future, then [`finish`] on its output.
struct FinishFuture<F> {
    inner: F,
    ctx: Option<FinishCtx>,
}

impl<F, B> Future for FinishFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned: it is only ever polled in
        // place through this pin and dropped with the struct, never moved out
        // or swapped; FinishFuture has no Drop impl, and it is Unpin only when
        // F is (the auto trait). `ctx` is not pinned and is moved out freely.
        let this = unsafe { self.get_unchecked_mut() };
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let out = std::task::ready!(inner.poll(cx));
        let ctx = this
            .ctx
            .take()
            .expect("FinishFuture polled after completion");
        Poll::Ready(finish(out, ctx))
    }
}

/// The route a request matched, as an index into [`ENDPOINTS`], for the
/// request counters. Every route is a static path, so a raw path equal to one
/// matched it; this avoids `match_pattern()`, which walks the resource map and
/// allocates a String per request. Only a path with percent-escapes (which the
/// router decodes before matching) can match a route it does not spell out:
/// the router is asked then.
fn route_of(req: &HttpRequest) -> Option<usize> {
    let path = req.path();
    if let Some(i) = prom::route_index(path) {
        return Some(i);
    }
    if !path.contains('%') {
        return None;
    }
    prom::route_index(&req.match_pattern()?)
}

fn finish<B: MessageBody>(
    out: Result<ServiceResponse<B>, actix_web::Error>,
    ctx: FinishCtx,
) -> Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error> {
    let FinishCtx {
        start,
        method,
        uri,
        state,
    } = ctx;
    let mut res = match out {
        Ok(res) => {
            let is_json = res
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if res.status().as_u16() >= 400 && !is_json {
                let status = res.status();
                let message = match res.response().error() {
                    Some(e) => e.to_string(),
                    None => status.canonical_reason().unwrap_or("error").to_string(),
                };
                let (req, _) = res.into_parts();
                let body = ApiError::Other { status, message }.error_response();
                ServiceResponse::new(req, body).map_into_right_body()
            } else {
                res.map_into_left_body()
            }
        }
        Err(e) => {
            // No request left to build a response with: hand actix an error
            // whose own response is the JSON body.
            let status = e.as_response_error().status_code();
            let elapsed = start.elapsed();
            state
                .prom
                .observe(None, method.as_str(), status.as_u16(), elapsed);
            log::info!(
                "{method} {} {} {:.3}ms",
                uri.path(),
                status.as_u16(),
                elapsed.as_secs_f64() * 1e3
            );
            return Err(ApiError::Other {
                status,
                message: e.to_string(),
            }
            .into());
        }
    };
    // A write's answer is for the page that made it only when that page is a
    // --cors-write-origin one (marked by the guard).
    let cross_origin_write = res
        .response()
        .extensions()
        .contains::<cors::CrossOriginWrite>();
    if !is_read(&method) && !cross_origin_write {
        let headers = res.headers_mut();
        let cors: Vec<_> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for k in cors {
            headers.remove(k);
        }
    }
    let status = res.status();
    let elapsed = start.elapsed();
    state.prom.observe_route(
        route_of(res.request()),
        method.as_str(),
        status.as_u16(),
        elapsed,
    );
    // Successful GETs log at debug: `log` checks the level before formatting
    // anything, so at the default (info) they cost one atomic load.
    let path = res.request().path();
    if method == Method::GET && status.is_success() {
        log::debug!(
            "{method} {path} {} {:.3}ms",
            status.as_u16(),
            elapsed.as_secs_f64() * 1e3
        );
    } else {
        log::info!(
            "{method} {path} {} {:.3}ms",
            status.as_u16(),
            elapsed.as_secs_f64() * 1e3
        );
    }
    Ok(res)
}

/// The whole application: routes, 404, CORS, JSON errors, request log.
pub fn app(
    state: web::Data<ApiState>,
    config: &ApiConfig,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let cors_origin = config.cors_origin.trim().to_string();
    App::new()
        .app_data(state.clone())
        .app_data(web::Data::new(BodyLimit(config.body_limit)))
        .app_data(web::Data::from(config.writes.clone()))
        .configure(routes)
        .default_service(web::to(not_found))
        .wrap(auth::Guard::new(&config.writes.policy))
        .wrap(actix_web::middleware::Condition::new(
            !cors_origin.is_empty(),
            cors::read_layer(&cors_origin),
        ))
        .wrap(Finish { state })
}
