//! `GET|POST /api/v1/scheduling/strategies` and `GET .../strategies/config`.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, JsonBody};
use super::metrics::SuccessResponse;
use super::{now, rfc3339, ApiState};
use crate::strategy::{
    self, ResolvedStrategy, Strategy, StrategyRequest, StrategyResolution, StrategyState,
    ValidationContext,
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
    /// Whether label selectors can match pods (false until Kubernetes labels are available).
    pub selectors_supported: bool,
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
    let scheduling = state
        .strategies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .resolved
        .list
        .clone();
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
        },
    )
    .map_err(|e| ApiError::InvalidStrategy(e.to_string()))?;
    let next = StrategyState::new(req.strategies, &state.proc_root);
    let count = next.strategies.len();
    let pids = next.resolved.desired.len();
    let timestamp = rfc3339(next.updated_at);
    {
        // Held across the send so sets reach the scheduler in the order stored.
        let mut current = state.strategies.lock().unwrap_or_else(|e| e.into_inner());
        let sent = state.send_desired(next.resolved.desired.clone());
        if state.has_scheduler() && !sent {
            log::warn!("strategies: the scheduler thread is not taking new sets");
        }
        *current = next;
    }
    log::info!("strategies: accepted {count} strategies resolving to {pids} PIDs");
    let mut res = HttpResponse::Ok().json(SuccessResponse {
        success: true,
        message: "Scheduling strategies saved successfully",
        timestamp,
    });
    super::auth::note(
        &mut res,
        format!(
            "strategies replaced: {count} strategies on {pids} PIDs: {}",
            serde_json::to_string(&state.strategies_snapshot().strategies).unwrap_or_default()
        ),
    );
    Ok(res)
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
        selectors_supported: false,
        strategies,
    })
}
