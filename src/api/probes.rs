//! `GET /livez` and `GET /readyz`: the answers an orchestrator acts on.
//!
//! Liveness and readiness differ on purpose from `/health`, which answers 503
//! for anything an operator should look at. Restarting the agent (liveness)
//! only helps when it no longer serves, so `/livez` answers whenever a worker
//! can run a handler. Readiness asks whether the agent does its job now: a
//! dispatcher fallback is degraded but still scheduling (ready, listed in
//! `degraded`); a scheduler not attached (loading, or
//! waiting to re-attach after an ejection) is not ready.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use crate::sched::SchedulerStatus;

/// Liveness route.
pub const LIVEZ_PATH: &str = "/livez";
/// Readiness route.
pub const READYZ_PATH: &str = "/readyz";

#[derive(Serialize, ToSchema)]
pub struct LivezResponse {
    /// Always "alive": an answer at all is the signal.
    #[schema(example = "alive")]
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ReadyzResponse {
    /// "ready" (200) or "not ready" (503).
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Why the agent is not ready; absent when ready.
    pub reason: Option<String>,
    /// What works in a reduced way while ready (see `/health` for details).
    pub degraded: Vec<String>,
}

/// Why a scheduler-mode agent is not scheduling, if it is not; `/health`
/// reports the same sentence among its problems.
pub fn not_attached(st: &SchedulerStatus) -> Option<String> {
    if !st.mode.runs_scheduler() || st.attached {
        return None;
    }
    Some(match &st.last_exit {
        Some(exit) => format!("scheduler is not attached (last exit: {exit})"),
        None => "scheduler is not attached".to_string(),
    })
}

#[utoipa::path(
    get,
    path = "/livez",
    tag = "info",
    responses(
        (status = 200, description = "The process serves HTTP (Kubernetes livenessProbe)", body = LivezResponse),
        (status = 405, description = "Wrong method", body = super::error::ErrorBody),
    )
)]
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(LivezResponse { status: "alive" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "info",
    responses(
        (status = 200, description = "Scheduling (possibly degraded, listed), or api-only (Kubernetes readinessProbe)", body = ReadyzResponse),
        (status = 503, description = "Scheduler mode and the scheduler is not attached; the reason says why", body = ReadyzResponse),
        (status = 405, description = "Wrong method", body = super::error::ErrorBody),
    )
)]
pub async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    let st = state.status.get();
    let mut degraded = Vec::new();
    if let Some(d) = st.dispatcher.as_ref().filter(|d| d.fallback_active) {
        degraded.push(format!(
            "dispatcher fallback: BPF dispatches directly ({} fallbacks since start)",
            d.fallbacks
        ));
    }
    match not_attached(&st) {
        Some(reason) => HttpResponse::ServiceUnavailable().json(ReadyzResponse {
            status: "not ready",
            reason: Some(reason),
            degraded,
        }),
        None => HttpResponse::Ok().json(ReadyzResponse {
            status: "ready",
            reason: None,
            degraded,
        }),
    }
}
