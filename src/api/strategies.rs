//! `GET|POST /api/v1/scheduling/strategies` and `GET .../strategies/config`.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, JsonBody};
use super::metrics::SuccessResponse;
use super::ApiState;
use crate::timefmt::{now, rfc3339};
use std::time::Duration;

use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};

use crate::strategy::{
    self, ResolveInput, ResolvedStrategy, Strategy, StrategyRequest, StrategyResolution,
    StrategySet, StrategyState, ValidationContext,
};

#[derive(Serialize, ToSchema)]
pub struct StrategiesResponse {
    pub success: bool,
    #[schema(example = "Scheduling strategies retrieved successfully")]
    pub message: &'static str,
    pub timestamp: String,
    /// The strategies as resolved to PIDs, sorted by PID; `[]` when none.
    pub scheduling: Vec<ResolvedStrategy>,
}

/// A stored strategy with what it resolved to.
#[derive(Serialize, ToSchema)]
pub struct ConfiguredStrategy {
    #[serde(flatten)]
    pub strategy: Strategy,
    pub resolution: StrategyResolution,
}

#[derive(Serialize, ToSchema)]
pub struct StrategyConfigResponse {
    pub success: bool,
    #[schema(example = "Scheduling strategy configuration retrieved successfully")]
    pub message: &'static str,
    pub timestamp: String,
    /// When the set was last replaced (or loaded at start).
    pub updated_at: String,
    /// Whether a scheduler receives the resolved set (false in api-only mode).
    pub applied_to_scheduler: bool,
    /// Whether label selectors can match pods (pod labels come from Kubernetes or `--pods-file`).
    pub selectors_supported: bool,
    /// When the set was last resolved to PIDs (it is re-resolved continuously).
    pub resolved_at: String,
    /// The file the set is saved in (null: not persisted).
    pub state_file: Option<String>,
    /// How a PID matched by several strategies is resolved.
    #[schema(example = "pid > command_regex > selectors; first wins among equals")]
    pub precedence: &'static str,
    /// The strategies as posted, in order.
    pub strategies: Vec<ConfiguredStrategy>,
}

#[utoipa::path(
    get,
    path = "/api/v1/scheduling/strategies",
    tag = "strategies",
    responses(
        (status = 200, description = "Resolved strategies", body = StrategiesResponse),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub async fn get_strategies(state: web::Data<ApiState>) -> HttpResponse {
    let scheduling = state.lock_strategies().resolved.list.clone();
    HttpResponse::Ok().json(StrategiesResponse {
        success: true,
        message: "Scheduling strategies retrieved successfully",
        timestamp: now(),
        scheduling,
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/scheduling/strategies",
    tag = "strategies",
    request_body(content = StrategyRequest, content_type = "application/json",
        description = "The whole new set (it replaces the current one). Unknown fields are rejected."),
    responses(
        (status = 200, description = "Saved and sent to the scheduler", body = SuccessResponse,
            example = json!({"success": true, "message": "Scheduling strategies saved successfully", "timestamp": "2025-06-19T10:30:00Z"})),
        (status = 400, description = "Malformed JSON, unknown field, wrong type, or a strategy that fails validation (the error names its index and field); nothing is changed", body = ErrorBody,
            example = json!({"success": false, "error": "Invalid scheduling strategies: strategies[1].execution_time: 10 ns is out of range 50000..=1000000000 ns"})),
        (status = 405, description = "Wrong method", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
    )
)]
pub async fn post_strategies(
    state: web::Data<ApiState>,
    body: JsonBody<StrategyRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    strategy::validate(
        &req,
        &ValidationContext {
            agent_pid: state.agent_pid,
            proc_root: &state.proc_root,
            check_processes: true,
        },
    )
    .map_err(|e| ApiError::InvalidStrategy(e.to_string()))?;
    let st = state.clone();
    let (next, before) = web::block(move || replace_set(&st, req.strategies))
        .await
        .map_err(|e| ApiError::Other {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("Failed to save scheduling strategies: {e}"),
        })??;
    let count = next.0;
    let pids = next.1;
    let timestamp = rfc3339(next.2);
    let posted = next.3;
    log::info!("strategies: accepted {count} strategies resolving to {pids} PIDs");
    let mut res = HttpResponse::Ok().json(SuccessResponse {
        success: true,
        message: "Scheduling strategies saved successfully",
        timestamp,
    });
    super::auth::note(
        &mut res,
        format!(
            "strategies replaced: {} strategies on {} PIDs -> {count} strategies on {pids} PIDs: {}",
            before.0,
            before.1,
            super::auth::clip(&posted)
        ),
    );
    Ok(res)
}

/// Resolve, persist, store and send a validated set, in that order; nothing is
/// changed when it cannot be saved. Returns (strategies, PIDs, time, the set
/// as JSON for the write log) and the size of the set replaced.
#[allow(clippy::type_complexity)]
fn replace_set(
    state: &ApiState,
    strategies: Vec<Strategy>,
) -> Result<((usize, usize, DateTime<Utc>, String), (usize, usize)), ApiError> {
    let set = StrategySet::pinned(strategies, &state.proc_root);
    let snapshot = if set.needs_scan() {
        // A fresh scan: the poster expects the processes it sees now.
        Some(
            state
                .pods
                .get_within(Duration::ZERO)
                .map_err(|e| ApiError::PodScan(e.to_string()))?,
        )
    } else {
        None
    };
    let dir = state.pod_meta.directory();
    let resolved = strategy::resolve(
        &set,
        &ResolveInput {
            proc_root: &state.proc_root,
            snapshot: snapshot.as_deref(),
            pods: dir.as_deref(),
            agent_pid: state.agent_pid,
        },
    );
    // For the write log: the whole new set.
    let posted = serde_json::to_string(&set.strategies).unwrap_or_default();
    // Held across save and send so the file and the scheduler see sets in the
    // order they are stored.
    let mut current = state.lock_strategies();
    if let Some(store) = &state.state_store {
        store.save(&set).map_err(|e| ApiError::Other {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!(
                "Failed to save scheduling strategies to {}: {e}",
                store.path().display()
            ),
        })?;
    }
    let before = (current.strategies.len(), current.resolved.desired.len());
    let next = StrategyState::with_resolved(set, resolved, current.generation + 1);
    let sent = state.send_desired(next.resolved.desired.clone());
    if state.has_scheduler() && !sent {
        log::warn!("strategies: the scheduler thread is not taking new sets");
    }
    let summary = (
        next.strategies.len(),
        next.resolved.desired.len(),
        next.updated_at,
        posted,
    );
    *current = next;
    Ok((summary, before))
}

#[utoipa::path(
    get,
    path = "/api/v1/scheduling/strategies/config",
    tag = "strategies",
    responses(
        (status = 200, description = "Strategies as posted, with their resolution", body = StrategyConfigResponse),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub async fn get_config(state: web::Data<ApiState>) -> HttpResponse {
    let current = state.strategies_snapshot();
    let strategies = current
        .strategies
        .into_iter()
        .zip(current.resolved.per_strategy)
        .map(|(strategy, resolution)| ConfiguredStrategy {
            strategy,
            resolution,
        })
        .collect();
    HttpResponse::Ok().json(StrategyConfigResponse {
        success: true,
        message: "Scheduling strategy configuration retrieved successfully",
        timestamp: now(),
        updated_at: rfc3339(current.updated_at),
        applied_to_scheduler: state.has_scheduler(),
        selectors_supported: state.pod_meta.directory().is_some(),
        resolved_at: rfc3339(current.resolved_at),
        state_file: state
            .state_store
            .as_ref()
            .map(|s| s.path().display().to_string()),
        precedence: "pid > command_regex > selectors; first wins among equals",
        strategies,
    })
}
