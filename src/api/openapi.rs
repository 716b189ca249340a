//! The OpenAPI 3 document, generated from the handlers' annotations and the
//! response types (utoipa), served at `GET /api/v1/openapi.json`.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::OpenApi;

use super::error::ErrorBody;
use super::{alerts, info, metrics, pods, stats, strategies, token};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "scx_pilot API",
        description = "The BSS Metrics API (the original server's documented contract) served by scx_pilot from its own \
            sched_ext scheduler. Every error has the body {\"success\": false, \"error\": \"...\"}: \
            400 for malformed JSON, wrong types or out-of-range values; 404 for an unknown route; \
            405 (with an Allow header) for a wrong method; 413 for a body over the limit \
            (64 KiB by default); 415 for a Content-Type other than application/json. \
            Reads are open (unless the agent runs with --auth-reads); writes need \
            `Authorization: Bearer <token>` (401 without it) with the static token or a JWT \
            from POST /api/v1/auth/token, a Host header naming the listen address and, from a \
            browser, the agent's own origin or a --cors-write-origin one (403), and stay under \
            the per-client write rate (429). OPTIONS answers 204 on every route."
    ),
    paths(
        info::index,
        info::health,
        super::probes::livez,
        super::probes::readyz,
        token::post_token,
        metrics::get_metrics,
        metrics::post_metrics,
        metrics::post_metrics_batch,
        metrics::get_history,
        pods::get_pods,
        strategies::get_strategies,
        strategies::post_strategies,
        strategies::get_config,
        stats::get_pod_stats,
        stats::get_strategy_stats,
        alerts::get_alerts,
        get_openapi,
        super::prom::get_prometheus,
        super::dashboard::get_dashboard,
    ),
    components(schemas(
        ErrorBody,
        token::TokenRequest,
        token::TokenResponse,
        token::TokenData,
        crate::metrics::BssData,
        crate::metrics::PolicyCounters,
        crate::metrics::Rates,
        crate::strategy::Strategy,
        crate::strategy::LabelSelector,
        crate::strategy::StrategyRequest,
        crate::strategy::ResolvedStrategy,
        crate::strategy::StrategyResolution,
        crate::pods::PodInfo,
        crate::pods::PodProcess,
        crate::pods::ScanHealth,
        crate::pod_figures::PodStats,
        crate::pod_figures::HistoryPoint,
        crate::pod_figures::Figures,
        crate::pod_figures::SamplingInfo,
        stats::StrategyStats,
        crate::alerts::Alert,
        crate::alerts::AlertState,
        crate::alerts::Severity,
        crate::alerts::webhook::WebhookStatsView,
    )),
    tags(
        (name = "metrics", description = "Scheduler counters"),
        (name = "pods", description = "Pod-to-PID mappings"),
        (name = "strategies", description = "Scheduling strategies"),
        (name = "alerts", description = "Built-in alert rules: active and recent alerts"),
        (name = "info", description = "Health and API information"),
        (name = "auth", description = "Tokens for Gthulhu's clients (RS256 JWT)"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        super::auth::document_writes(&mut doc);
        doc.to_json().expect("the OpenAPI document serializes")
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "info",
    responses(
        (status = 200, description = "This document", content_type = "application/json"),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub async fn get_openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
