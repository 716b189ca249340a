//! `GET /health` and `GET /` (a browser is sent on to the dashboard).

use actix_web::http::header::{self, Accept, Header};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiState, Endpoint, DASHBOARD_PATH, ENDPOINTS, SERVICE_NAME};
use crate::sched::{CgroupCpu, DispatcherStatus, Mode};
use crate::timefmt::{now, rfc3339, rfc3339_ms};

#[derive(Serialize, ToSchema)]
pub struct SchedulerHealth {
    /// "ok", "down" or "disabled" (api-only mode).
    #[schema(example = "ok")]
    pub status: &'static str,
    pub attached: bool,
    /// The kernel's name for the attached ops.
    pub ops_name: Option<String>,
    pub attached_at: Option<String>,
    /// Restarts the kernel asked for since the agent started.
    pub restarts: u64,
    /// Ejections the agent recovered from by attaching again (after a backoff).
    pub reattaches: u64,
    /// Why the scheduler last left the kernel, if it did.
    pub last_exit: Option<String>,
    /// The kernel's debug dump of that exit (`--exit-dump-len`), when it wrote one.
    pub last_exit_dump: Option<String>,
    /// PIDs currently in the BPF strategy map.
    pub strategy_pids: usize,
    /// The user-space dispatcher (--dispatch user only).
    pub dispatcher: Option<DispatcherStatus>,
    /// The cgroup CPU controls the scheduler honours (pod CPU limits are not
    /// enforced while it runs); absent in api-only mode, where the kernel's
    /// own scheduler applies them all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_cpu: Option<CgroupCpu>,
}

#[derive(Serialize, ToSchema)]
pub struct SamplerHealth {
    /// "ok", "stale", "waiting" (no sample yet) or "disabled" (api-only mode).
    #[schema(example = "ok")]
    pub status: &'static str,
    pub last_sample_at: Option<String>,
    /// Seconds since the last sample.
    pub age_seconds: Option<f64>,
    pub interval_ms: u64,
    /// Older samples than this make the agent unhealthy.
    pub stale_after_ms: u64,
}

/// The pod metadata source (Kubernetes API or `--pods-file`). Its errors do
/// not make the agent unhealthy: it keeps serving the last known pods.
pub type KubernetesHealth = crate::podmeta::KubeStatus;

#[derive(Serialize, ToSchema)]
pub struct Components {
    pub scheduler: SchedulerHealth,
    pub sampler: SamplerHealth,
    pub kubernetes: KubernetesHealth,
    /// The `/proc` scans behind strategy resolution and the pods API. A failed
    /// scan does not make the agent unhealthy: the last good resolution stays.
    pub proc_scan: crate::pods::ScanHealth,
    /// The watch of SchedulingStrategy resources; while it is disconnected
    /// the last known cluster strategies stay applied (not unhealthy either).
    pub cluster_strategies: crate::strategy::ClusterStatus,
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    /// "healthy" (200) or "unhealthy" (503).
    #[schema(example = "healthy")]
    pub status: &'static str,
    pub timestamp: String,
    #[schema(example = "BSS Metrics API Server")]
    pub service: &'static str,
    pub version: &'static str,
    /// "kernel", "user" (--dispatch user) or "api-only".
    #[schema(value_type = String, example = "kernel")]
    pub mode: Mode,
    pub uptime_seconds: i64,
    /// Why the agent is unhealthy; empty when healthy.
    pub problems: Vec<String>,
    pub components: Components,
}

/// How old the last sample may be before the agent counts as stuck: three
/// intervals, and never less than 3 s.
fn stale_after(interval: std::time::Duration) -> chrono::Duration {
    let ms = (interval.as_millis() as i64).saturating_mul(3).max(3000);
    chrono::Duration::milliseconds(ms)
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "info",
    responses(
        (status = 200, description = "The agent is doing its job", body = HealthResponse),
        (status = 503, description = "Scheduler mode but not attached, or samples are stale", body = HealthResponse),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub async fn health(state: web::Data<ApiState>) -> HttpResponse {
    let st = state.status.get();
    let now_t = Utc::now();
    let stale = stale_after(state.sample_interval);
    let mut problems = Vec::new();

    let runs = st.mode.runs_scheduler();
    let scheduler_status = match (runs, super::probes::not_attached(&st)) {
        (false, _) => "disabled",
        (true, None) => "ok",
        (true, Some(problem)) => {
            problems.push(problem);
            "down"
        }
    };
    if let Some(d) = st.dispatcher.as_ref().filter(|d| d.fallback_active) {
        problems.push(format!(
            "the dispatcher thread is not answering: BPF dispatches directly (fallback {} since start)",
            d.fallbacks
        ));
    }
    let age = st.last_sample_at.map(|t| now_t - t);
    let sampler_status = match (runs, age) {
        (false, _) => "disabled",
        (true, None) => {
            problems.push("no sample of the scheduler's counters yet".into());
            "waiting"
        }
        (true, Some(a)) if a > stale => {
            problems.push(format!(
                "last sample is {:.1} s old (limit {:.1} s)",
                a.num_milliseconds() as f64 / 1e3,
                stale.num_milliseconds() as f64 / 1e3
            ));
            "stale"
        }
        (true, Some(_)) => "ok",
    };
    let healthy = problems.is_empty();
    let body = HealthResponse {
        status: if healthy { "healthy" } else { "unhealthy" },
        timestamp: now(),
        service: SERVICE_NAME,
        version: env!("CARGO_PKG_VERSION"),
        mode: st.mode,
        uptime_seconds: (now_t - state.started_at).num_seconds(),
        problems,
        components: Components {
            scheduler: SchedulerHealth {
                status: scheduler_status,
                attached: st.attached,
                ops_name: st.ops_name.clone(),
                attached_at: st.attached_at.map(rfc3339),
                restarts: st.restarts,
                reattaches: st.reattaches,
                last_exit: st.last_exit.clone(),
                last_exit_dump: st.last_exit_dump.clone(),
                strategy_pids: st.strategy_pids,
                dispatcher: st.dispatcher.clone(),
                cgroup_cpu: st.mode.runs_scheduler().then(|| st.cgroup_cpu.clone()),
            },
            sampler: SamplerHealth {
                status: sampler_status,
                last_sample_at: st.last_sample_at.map(rfc3339_ms),
                age_seconds: age.map(|a| a.num_milliseconds() as f64 / 1e3),
                interval_ms: state.sample_interval.as_millis() as u64,
                stale_after_ms: stale.num_milliseconds() as u64,
            },
            kubernetes: state.pod_meta.status(),
            proc_scan: state.pods.health(),
            cluster_strategies: state.cluster.status(),
        },
    };
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(code).json(body)
}

#[derive(Serialize, ToSchema)]
pub struct IndexResponse {
    #[schema(example = "BSS Metrics API Server")]
    pub service: &'static str,
    #[schema(example = "scx_pilot")]
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
    /// "kernel", "user" (--dispatch user) or "api-only".
    #[schema(value_type = String, example = "kernel")]
    pub mode: Mode,
    pub timestamp: String,
    pub openapi: &'static str,
    pub endpoints: Vec<Endpoint>,
}

#[utoipa::path(
    get,
    path = "/",
    tag = "info",
    responses(
        (status = 200, description = "Service, version and every endpoint", body = IndexResponse),
        (status = 303, description = "A browser (Accept preferring text/html) is sent to /dashboard"),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub async fn index(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if prefers_html(&req) {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, DASHBOARD_PATH))
            .finish();
    }
    HttpResponse::Ok().json(IndexResponse {
        service: SERVICE_NAME,
        name: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        description: env!("CARGO_PKG_DESCRIPTION"),
        mode: state.status.get().mode,
        timestamp: now(),
        openapi: "/api/v1/openapi.json",
        endpoints: ENDPOINTS.to_vec(),
    })
}

/// Whether the client ranks HTML first, as a browser opening the listen URL
/// does; `*/*` (curl), JSON and no Accept header get the index.
fn prefers_html(req: &HttpRequest) -> bool {
    Accept::parse(req).is_ok_and(|a| {
        a.ranked()
            .first()
            .is_some_and(|m| m.essence_str() == "text/html")
    })
}
