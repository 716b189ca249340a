//! The embedded HTTP API (actix-web): the BSS Metrics API contract served from the
//! agent's live data, plus health, API information and an OpenAPI document.
//!
//! One file per resource; errors map to status codes in [`error`]; the route
//! table [`ENDPOINTS`] feeds `GET /`, the `Allow` header of 405 answers and a
//! test that checks the router and the OpenAPI document against each other.

pub mod access_policy;
mod alerts;
pub mod auth;
mod auth_doc;
pub mod cors;
mod credentials;
mod dashboard;
mod endpoints;
mod error;
mod finish;
mod host_check;
mod info;
mod metrics;
pub mod openapi;
mod pods;
pub mod probes;
pub mod prom;
mod rate_limit;
mod server;
mod stats;
mod strategies;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{web, App, HttpRequest, HttpResponse};

use crate::state::AgentState;
use finish::Finish;

pub use endpoints::{allowed_methods, Endpoint, DASHBOARD_PATH, ENDPOINTS};
pub use error::{ApiError, BodyLimit, ErrorBody, DEFAULT_BODY_LIMIT};
pub use metrics::{MetricsBody, MAX_BATCH_REPORTS};
pub use server::{start, ApiServer};

/// The original BSS Metrics API server's service name, kept for clients that check it.
pub const SERVICE_NAME: &str = "BSS Metrics API Server";

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
        .service(resource(probes::LIVEZ_PATH).route(web::get().to(probes::livez)))
        .service(resource(probes::READYZ_PATH).route(web::get().to(probes::readyz)))
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
        .service(resource(DASHBOARD_PATH).route(web::get().to(dashboard::get_dashboard)));
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        method: req.method().to_string(),
        path: req.path().to_string(),
    })
}

/// The whole application: routes, 404, CORS, JSON errors, request log,
/// repeated slashes in paths merged.
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
        // Gthulhu's clients join a configured base URL and a path without
        // trimming: a base ending in '/' asks for `//api/v1/...`, which the
        // original server answered (by a redirect). Runs first, so every layer
        // sees the merged path; a trailing slash still names no route.
        .wrap(actix_web::middleware::NormalizePath::new(
            actix_web::middleware::TrailingSlash::MergeOnly,
        ))
}
