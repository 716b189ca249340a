//! `GET /api/v1/pods/stats` and `GET /api/v1/scheduling/strategies/stats`:
//! per-pod and per-strategy scheduling figures from the pod-stats sampler
//! ([`crate::pod_figures`]). Both only read what the sampler's last round stored.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::pod_figures::{self, PodStats, SamplingInfo};
use crate::strategy::Strategy;
use crate::timefmt::now;

/// Default number of history points per pod in a response.
const DEFAULT_POINTS: usize = 60;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// History points per pod, newest last (default 60, at most 300; 0 for none).
    points: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct PodStatsResponse {
    pub success: bool,
    #[schema(example = "Pod scheduling statistics retrieved successfully")]
    pub message: &'static str,
    pub timestamp: String,
    pub sampling: SamplingInfo,
    /// One entry per pod with processes; `[]` when there are none.
    pub pods: Vec<PodStats>,
}

/// One configured strategy with the figures of the PIDs it covers.
#[derive(Serialize, ToSchema)]
pub struct StrategyStats {
    /// Position in the posted set.
    pub index: usize,
    /// The strategy as posted.
    pub strategy: Strategy,
    /// PIDs it covers now (sorted).
    pub pids: Vec<u32>,
    /// Of those, PIDs the last round measured (a PID needs two rounds).
    pub pids_measured: usize,
    /// Summed over the measured PIDs; null before two rounds.
    pub cpu_usage: Option<f64>,
    pub cpu_usage_utime_stime: Option<f64>,
    pub runqueue_wait_ms_per_s: Option<f64>,
    pub avg_wait_us_per_timeslice: Option<f64>,
    pub timeslices_per_s: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct StrategyStatsResponse {
    pub success: bool,
    #[schema(example = "Strategy scheduling statistics retrieved successfully")]
    pub message: &'static str,
    pub timestamp: String,
    pub sampling: SamplingInfo,
    /// In posted order; `[]` when there are none.
    pub strategies: Vec<StrategyStats>,
}

#[utoipa::path(
    get,
    path = "/api/v1/pods/stats",
    tag = "pods",
    params(StatsQuery),
    responses(
        (status = 200, description = "Per-pod CPU usage, run-queue wait and timeslices over the last sampling interval, with recent history", body = PodStatsResponse),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub async fn get_pod_stats(
    state: web::Data<ApiState>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let points = query
        .points
        .unwrap_or(DEFAULT_POINTS)
        .min(pod_figures::HISTORY_POINTS);
    let store = &state.pod_figures;
    let pods = store.pods(state.pod_meta.directory().as_deref(), points);
    Ok(HttpResponse::Ok().json(PodStatsResponse {
        success: true,
        message: "Pod scheduling statistics retrieved successfully",
        timestamp: now(),
        sampling: store.info(),
        pods,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/scheduling/strategies/stats",
    tag = "strategies",
    responses(
        (status = 200, description = "Per-strategy figures summed over the PIDs each strategy resolves to", body = StrategyStatsResponse),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub async fn get_strategy_stats(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let (list, per) = {
        let s = state.lock_strategies();
        (s.strategies.clone(), s.resolved.per_strategy.clone())
    };
    let store = &state.pod_figures;
    let strategies = list
        .into_iter()
        .enumerate()
        .map(|(index, strategy)| {
            let pids = per.get(index).map(|r| r.pids.clone()).unwrap_or_default();
            let f = store.pids_figures(&pids);
            let fig = f.figures;
            StrategyStats {
                index,
                strategy,
                pids,
                pids_measured: f.measured,
                cpu_usage: fig.map(|f| f.cpu_usage),
                cpu_usage_utime_stime: fig.map(|f| f.cpu_usage_utime_stime),
                runqueue_wait_ms_per_s: fig.map(|f| f.runqueue_wait_ms_per_s),
                avg_wait_us_per_timeslice: fig.and_then(|f| f.avg_wait_us_per_timeslice),
                timeslices_per_s: fig.map(|f| f.timeslices_per_s),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(StrategyStatsResponse {
        success: true,
        message: "Strategy scheduling statistics retrieved successfully",
        timestamp: now(),
        sampling: store.info(),
        strategies,
    }))
}
