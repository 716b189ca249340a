//! The OpenAPI 3 document, generated from the handlers' annotations and the
//! response types (utoipa), served at `GET /api/v1/openapi.json`.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::error::ErrorBody;
use super::{info, metrics, pods, strategies};

// Schema mirrors of types defined outside the API (src/metrics.rs), which do
// not derive ToSchema. A test checks each mirror against the real type's JSON.

/// The user's BssData: the scheduler's counters.
#[derive(Serialize, ToSchema)]
#[schema(as = BssData)]
#[allow(dead_code)]
pub struct BssDataDoc {
    /// PID of the userspace scheduler (scx_pilot itself for its own scheduler).
    #[schema(example = 1234)]
    pub usersched_pid: u32,
    /// Tasks waiting in the scheduler.
    pub nr_queued: u64,
    /// Tasks held by a user-space dispatcher.
    pub nr_scheduled: u64,
    /// Tasks running on a CPU under this scheduler.
    pub nr_running: u64,
    /// Online CPUs.
    pub nr_online_cpus: u64,
    /// Dispatches decided in user space.
    pub nr_user_dispatches: u64,
    /// Dispatches decided in BPF.
    pub nr_kernel_dispatches: u64,
    /// Cancelled dispatches.
    pub nr_cancel_dispatches: u64,
    /// Bounced dispatches.
    pub nr_bounce_dispatches: u64,
    /// Failed dispatches.
    pub nr_failed_dispatches: u64,
    /// Scheduler congestion occurrences.
    pub nr_sched_congested: u64,
}

/// Counters of scx_pilot's own policy.
#[derive(Serialize, ToSchema)]
#[schema(as = PolicyCounters)]
#[allow(dead_code)]
pub struct PolicyCountersDoc {
    /// Waking tasks put straight on an idle CPU.
    pub nr_direct_dispatches: u64,
    /// Enqueues of tasks with a priority strategy.
    pub nr_prio_dispatches: u64,
    /// Priority tasks that preempted a CPU running a normal task.
    pub nr_preemptions: u64,
    /// Times normal tasks were served first to prevent starvation.
    pub nr_starvation_guards: u64,
    /// Enqueues decided by any strategy.
    pub nr_strategy_hits: u64,
}

/// Per-second rates of the monotonic counters over one interval.
#[derive(Serialize, ToSchema)]
#[schema(as = Rates)]
#[allow(dead_code)]
pub struct RatesDoc {
    pub interval_s: f64,
    pub user_dispatches_per_s: f64,
    pub kernel_dispatches_per_s: f64,
    pub cancel_dispatches_per_s: f64,
    pub bounce_dispatches_per_s: f64,
    pub failed_dispatches_per_s: f64,
    pub sched_congested_per_s: f64,
    pub preemptions_per_s: f64,
    pub strategy_hits_per_s: f64,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "scx_pilot API",
        description = "The BSS Metrics API (the seed's contract) served by scx_pilot from its own \
            sched_ext scheduler. Every error has the body {\"success\": false, \"error\": \"...\"}: \
            400 for malformed JSON, wrong types or out-of-range values; 404 for an unknown route; \
            405 (with an Allow header) for a wrong method; 413 for a body over the limit \
            (64 KiB by default); 415 for a Content-Type other than application/json."
    ),
    paths(
        info::index,
        info::health,
        metrics::get_metrics,
        metrics::post_metrics,
        metrics::get_history,
        pods::get_pods,
        strategies::get_strategies,
        strategies::post_strategies,
        strategies::get_config,
        get_openapi,
    ),
    components(schemas(
        ErrorBody,
        BssDataDoc,
        PolicyCountersDoc,
        RatesDoc,
        crate::strategy::Strategy,
        crate::strategy::LabelSelector,
        crate::strategy::StrategyRequest,
        crate::strategy::ResolvedStrategy,
        crate::strategy::StrategyResolution,
        crate::pods::PodInfo,
        crate::pods::PodProcess,
    )),
    tags(
        (name = "metrics", description = "Scheduler counters"),
        (name = "pods", description = "Pod-to-PID mappings"),
        (name = "strategies", description = "Scheduling strategies"),
        (name = "info", description = "Health and API information"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
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
