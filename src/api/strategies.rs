//! `GET|POST /api/v1/scheduling/strategies` and `GET .../strategies/config`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody, JsonBody};
use super::ApiState;
use crate::strategy::cluster::{ClusterResolution, ClusterStrategyView};
use crate::strategy::{
    self, PriorityWire, ResolvedStrategy, Strategy, StrategyRequest, StrategyResolution,
    ValidationContext,
};
use crate::timefmt::{now, rfc3339};

/// How a PID matched by several strategies is resolved.
const PRECEDENCE: &str = "pid > command_regex > selectors; first wins among equals; \
cluster strategies only on PIDs no api strategy covers: commandRegex > podSelector; \
first by namespace/name wins among equals";

#[derive(Serialize, ToSchema)]
pub struct StrategiesResponse {
    pub success: bool,
    #[schema(example = "Scheduling strategies retrieved successfully")]
    pub message: &'static str,
    pub timestamp: String,
    /// The strategies as resolved to PIDs, sorted by PID; `[]` when none.
    pub scheduling: Vec<WireStrategy>,
}

/// One resolved entry as listed: `priority` a bool or 0/1 (`--priority-wire`,
/// `?priority=`).
#[derive(Serialize, ToSchema)]
pub struct WireStrategy {
    pub priority: WirePriority,
    pub execution_time: u64,
    pub pid: u32,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum WirePriority {
    Bool(bool),
    Int(u8),
}

impl WireStrategy {
    fn new(s: &ResolvedStrategy, wire: PriorityWire) -> Self {
        Self {
            priority: match wire {
                PriorityWire::Bool => WirePriority::Bool(s.priority),
                PriorityWire::Int => WirePriority::Int(u8::from(s.priority)),
            },
            execution_time: s.execution_time,
            pid: s.pid,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StrategiesQuery {
    /// `bool` or `int`: how to write `priority` (default: `--priority-wire`).
    #[param(value_type = Option<String>, example = "int")]
    pub priority: Option<String>,
}

/// The answer to a POST: the original's body, plus what was adjusted.
#[derive(Serialize, ToSchema)]
pub struct StrategiesSaved {
    pub success: bool,
    #[schema(example = "Scheduling strategies saved successfully")]
    pub message: &'static str,
    pub timestamp: String,
    /// What was accepted other than as posted, one line per strategy field:
    /// a slice raised to the floor, a PID without a process; left out when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["strategies[0].execution_time: 20000 ns raised to 50000 ns, the shortest slice the scheduler honours"]))]
    pub warnings: Vec<String>,
}

/// A stored strategy with what it resolved to.
#[derive(Serialize, ToSchema)]
pub struct ConfiguredStrategy {
    /// "api": posted to this agent (or `--strategy` flags).
    #[schema(example = "api")]
    pub source: &'static str,
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
    /// What validation adjusted when the set was posted (see the POST
    /// answer); `[]` for a set loaded at start.
    pub warnings: Vec<String>,
    /// The strategies as posted, in order, then the cluster strategies this
    /// node applies (`source` "namespace/name"), by namespace and name.
    pub strategies: Vec<ConfiguredEntry>,
}

/// A local strategy, or a SchedulingStrategy resource.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ConfiguredEntry {
    Api(ConfiguredStrategy),
    Cluster(ConfiguredClusterStrategy),
}

/// A cluster strategy with what it resolved to on this node.
#[derive(Serialize, ToSchema)]
pub struct ConfiguredClusterStrategy {
    #[serde(flatten)]
    pub strategy: ClusterStrategyView,
    pub resolution: ClusterResolution,
}

#[utoipa::path(
    get,
    path = "/api/v1/scheduling/strategies",
    tag = "strategies",
    params(StrategiesQuery),
    responses(
        (status = 200, description = "Resolved strategies", body = StrategiesResponse),
        (status = 400, description = "priority is neither bool nor int", body = ErrorBody),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub async fn get_strategies(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<StrategiesQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let wire = match query.priority.as_deref() {
        None => state.priority_wire,
        Some("bool") => PriorityWire::Bool,
        Some("int") => PriorityWire::Int,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "priority must be bool or int, got {other:?}"
            )))
        }
    };
    let scheduling = state
        .lock_strategies()
        .resolved
        .list
        .iter()
        .map(|s| WireStrategy::new(s, wire))
        .collect();
    Ok(HttpResponse::Ok().json(StrategiesResponse {
        success: true,
        message: "Scheduling strategies retrieved successfully",
        timestamp: now(),
        scheduling,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/scheduling/strategies",
    tag = "strategies",
    request_body(content = StrategyRequest, content_type = "application/json",
        description = "The whole new set (it replaces the current one). Unknown fields are rejected. `priority` is a bool or 0/1; `selectors: []` means none; a slice below 50000 ns is raised to it (0: the default slice); a PID without a process is accepted and covers nothing; each adjustment is listed in `warnings`."),
    responses(
        (status = 200, description = "Saved and sent to the scheduler", body = StrategiesSaved,
            example = json!({"success": true, "message": "Scheduling strategies saved successfully", "timestamp": "2025-06-19T10:30:00Z", "warnings": []})),
        (status = 400, description = "Malformed JSON, unknown field, wrong type, or a strategy that fails validation (the error names its index and field); nothing is changed", body = ErrorBody,
            example = json!({"success": false, "error": "Invalid scheduling strategies: strategies[1].execution_time: 2000000000 ns is out of range 50000..=1000000000 ns (0: the default slice)"})),
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
    // Compiling regexes and reading /proc are work for the blocking pool, not
    // for the HTTP workers that also answer /health.
    let st = state.clone();
    let set = web::block(move || {
        strategy::validate(
            &req,
            &ValidationContext {
                agent_pid: st.agent_pid,
                proc_root: &st.proc_root,
                check_processes: true,
            },
        )
    })
    .await
    .map_err(|e| ApiError::Other {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("Failed to check scheduling strategies: {e}"),
    })??;
    // For the write log: the whole new set.
    let posted = serde_json::to_string(&set.strategies).unwrap_or_default();
    let warnings = set.warnings.clone();
    let st = state.clone();
    let replaced = web::block(move || strategy::replace(&st, set))
        .await
        .map_err(|e| ApiError::Other {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("Failed to save scheduling strategies: {e}"),
        })??;
    let (before, after) = (replaced.before, replaced.after);
    log::info!(
        "strategies: accepted {} strategies resolving to {} PIDs",
        after.strategies,
        after.pids
    );
    for w in &warnings {
        log::info!("strategies: {w}");
    }
    let mut res = HttpResponse::Ok().json(StrategiesSaved {
        success: true,
        message: "Scheduling strategies saved successfully",
        timestamp: rfc3339(replaced.updated_at),
        warnings,
    });
    super::auth::note(
        &mut res,
        format!(
            "strategies replaced: {} strategies on {} PIDs -> {} strategies on {} PIDs: {}",
            before.strategies,
            before.pids,
            after.strategies,
            after.pids,
            super::auth::clip(&posted)
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
    let mut strategies: Vec<ConfiguredEntry> = current
        .strategies
        .into_iter()
        .zip(current.resolved.per_strategy)
        .map(|(strategy, resolution)| {
            ConfiguredEntry::Api(ConfiguredStrategy {
                source: "api",
                strategy,
                resolution,
            })
        })
        .collect();
    let cluster = state.cluster.set();
    strategies.extend(cluster.strategies.iter().map(|s| {
        let source = s.source();
        let resolution = current
            .resolved
            .cluster
            .iter()
            .find(|r| r.source == source)
            .cloned()
            .unwrap_or_else(|| ClusterResolution {
                source,
                note: Some("not resolved yet".into()),
                ..Default::default()
            });
        ConfiguredEntry::Cluster(ConfiguredClusterStrategy {
            strategy: s.into(),
            resolution,
        })
    }));
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
        precedence: PRECEDENCE,
        warnings: current.set.warnings,
        strategies,
    })
}
