//! `GET|POST /api/v1/metrics` and `GET /api/v1/metrics/history`.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody, JsonBody};
use super::ApiState;
use crate::external::Reporter;
use crate::metrics::{BssData, Latest, PolicyCounters, Rates, Sample};
use crate::timefmt::{now, rfc3339, rfc3339_ms};

mod batch;
pub use batch::*;

/// The latest reading of scx_pilot's own scheduler.
#[derive(Serialize, ToSchema)]
pub struct SchedulerMetrics {
    /// Always "scheduler": read from the BPF scheduler's .bss in this process.
    #[schema(example = "scheduler")]
    pub source: &'static str,
    /// When the counters were read (RFC3339, UTC).
    pub timestamp: String,
    pub data: BssData,
    pub policy: PolicyCounters,
    /// Per-second rates over the last sample interval (null after the first sample).
    pub rates: Option<Rates>,
}

/// BssData reported by an external scheduler through `POST /api/v1/metrics`.
#[derive(Serialize, ToSchema)]
pub struct ExternalMetrics {
    /// Always "external".
    #[schema(example = "external")]
    pub source: &'static str,
    /// Who sent it: `usersched_pid N` when the report carries one, else
    /// `address IP` (the client's address).
    #[schema(example = "address 10.0.0.7")]
    pub reporter: String,
    /// When the report was received (RFC3339, UTC).
    pub received_at: String,
    pub data: BssData,
}

#[derive(Serialize, ToSchema)]
pub struct MetricsResponse {
    pub success: bool,
    #[schema(example = "Metrics retrieved successfully")]
    pub message: &'static str,
    pub timestamp: String,
    /// "kernel" or "user" (scx_pilot's scheduler, --dispatch) or "api-only".
    #[schema(value_type = String, example = "kernel")]
    pub mode: crate::sched::Mode,
    /// Null until the first sample (always null in api-only mode).
    pub metrics: Option<SchedulerMetrics>,
    /// Latest report per external reporter, most recent first.
    pub external: Vec<ExternalMetrics>,
    /// The original server's field, which Gthulhu's web UI and CLI read: the
    /// latest BssData, this agent's own scheduler's sample when it runs one,
    /// else the newest external report; null when there is neither.
    pub data: Option<BssData>,
    /// When `data` was read or received (RFC3339, UTC); null with `data`.
    #[schema(example = "2025-06-19T10:29:58.123Z")]
    pub metrics_timestamp: Option<String>,
}

/// The seed's success body for writes.
#[derive(Serialize, ToSchema)]
pub struct SuccessResponse {
    pub success: bool,
    #[schema(example = "Metrics received successfully")]
    pub message: &'static str,
    pub timestamp: String,
}

#[derive(Serialize, ToSchema)]
pub struct HistorySample {
    pub timestamp: String,
    pub data: BssData,
    pub policy: PolicyCounters,
    /// Rates since the previous sample in this list (null for the first).
    pub rates: Option<Rates>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryResponse {
    pub success: bool,
    #[schema(example = "Metrics history retrieved successfully")]
    pub message: &'static str,
    pub timestamp: String,
    /// The window asked for.
    pub seconds: u64,
    /// Time between samples.
    pub interval_ms: u64,
    /// Samples no older than `seconds` before the newest, oldest first.
    pub samples: Vec<HistorySample>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Window in seconds, 1..=the history kept (`--history-seconds`). Default 300.
    pub seconds: Option<u64>,
}

pub const DEFAULT_HISTORY_SECONDS: u64 = 300;

#[utoipa::path(
    get,
    path = "/api/v1/metrics",
    tag = "metrics",
    responses(
        (status = 200, description = "Latest metrics", body = MetricsResponse),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub async fn get_metrics(req: HttpRequest) -> HttpResponse {
    // The state by reference: extracting `web::Data` would clone its `Arc`.
    let Some(state) = req.app_data::<web::Data<ApiState>>() else {
        return ApiError::Other {
            status: actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            message: "the API state is missing".into(),
        }
        .error_response();
    };
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.metrics_body.get(state))
}

/// The serialized `GET /api/v1/metrics` body, rebuilt only when its inputs
/// change: a new sample, a new external report, or the next second (the
/// envelope's timestamp has seconds). Dashboards and scrapers polling hard
/// then cost a pointer comparison, not a serialization.
#[derive(Default)]
pub struct MetricsBody {
    cached: ArcSwapOption<CachedBody>,
}

struct CachedBody {
    latest: Option<Arc<Latest>>,
    external_version: u64,
    second: i64,
    body: web::Bytes,
}

impl MetricsBody {
    fn get(&self, state: &ApiState) -> web::Bytes {
        let external_version = state.external.version();
        let now = Utc::now();
        let second = now.timestamp();
        {
            let latest = state.metrics.latest_guard();
            if let Some(c) = self.cached.load().as_deref() {
                let same_sample = match (&c.latest, &*latest) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                };
                if same_sample && c.external_version == external_version && c.second == second {
                    return c.body.clone();
                }
            }
        }
        let latest = state.metrics.latest();
        let metrics = latest.as_ref().map(|l| SchedulerMetrics {
            source: "scheduler",
            timestamp: rfc3339_ms(l.sample.timestamp),
            data: l.sample.bss,
            policy: l.sample.policy,
            rates: l.rates,
        });
        let reports = state.external.reports();
        let (data, metrics_timestamp) = match (&latest, reports.first()) {
            (Some(l), _) => (Some(l.sample.bss), Some(rfc3339_ms(l.sample.timestamp))),
            (None, Some(r)) => (Some(r.data), Some(rfc3339_ms(r.received_at))),
            (None, None) => (None, None),
        };
        let external = reports
            .into_iter()
            .map(|r| ExternalMetrics {
                source: "external",
                reporter: r.reporter.to_string(),
                received_at: rfc3339_ms(r.received_at),
                data: r.data,
            })
            .collect();
        let response = MetricsResponse {
            success: true,
            message: "Metrics retrieved successfully",
            timestamp: rfc3339(DateTime::from_timestamp(second, 0).unwrap_or(now)),
            mode: state.status.get().mode,
            metrics,
            external,
            data,
            metrics_timestamp,
        };
        let body = web::Bytes::from(
            serde_json::to_vec(&response).expect("the metrics response serializes"),
        );
        self.cached.store(Some(Arc::new(CachedBody {
            latest,
            external_version,
            second,
            body: body.clone(),
        })));
        body
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/metrics",
    tag = "metrics",
    request_body(content = crate::metrics::BssData, content_type = "application/json",
        description = "BssData; unknown fields are ignored. `usersched_pid` and `usersched_last_run_at` may be left out (Gthulhu's scheduler sends no `usersched_pid`); every nr_* field is required"),
    responses(
        (status = 200, description = "Stored as the latest report of its reporter: its usersched_pid, or the client's address when it gives none", body = SuccessResponse),
        (status = 400, description = "Malformed JSON, wrong or missing field, out-of-range value", body = ErrorBody),
        (status = 405, description = "Wrong method", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
    )
)]
pub async fn post_metrics(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let data = parse_report(body.0, "")?;
    let at = Utc::now();
    let reporter = Reporter::of(&data, req.peer_addr().map(|a| a.ip()));
    state.external.insert(reporter, at, data);
    log::debug!("external metrics from {reporter}");
    let mut res = HttpResponse::Ok().json(SuccessResponse {
        success: true,
        message: "Metrics received successfully",
        timestamp: rfc3339(at),
    });
    super::auth::note(&mut res, format!("external metrics of {reporter} stored"));
    Ok(res)
}

/// One report as BssData. `usersched_pid` may be left out (then the
/// client's address tells reporters apart) but, when given, names a process:
/// 0 is refused. `at` prefixes errors (a batch index; empty for one report).
fn parse_report(value: serde_json::Value, at: &str) -> Result<BssData, ApiError> {
    let pid_given = value.get("usersched_pid").is_some_and(|v| !v.is_null());
    let data: BssData = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let whe = match (at.is_empty(), path == ".") {
            (true, true) => String::new(),
            (true, false) => format!("{path}: "),
            (false, true) => format!("{at}: "),
            (false, false) => format!("{at}.{path}: "),
        };
        ApiError::InvalidJson(format!("{whe}{}", e.inner()))
    })?;
    if pid_given && data.usersched_pid == 0 {
        let field = if at.is_empty() {
            "usersched_pid".to_string()
        } else {
            format!("{at}.usersched_pid")
        };
        return Err(ApiError::InvalidMetrics(format!(
            "{field} must be greater than 0 (or left out)"
        )));
    }
    Ok(data)
}

#[utoipa::path(
    get,
    path = "/api/v1/metrics/history",
    tag = "metrics",
    params(HistoryQuery),
    responses(
        (status = 200, description = "Recent samples", body = HistoryResponse),
        (status = 400, description = "seconds is not a number or out of range", body = ErrorBody),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub async fn get_history(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<HistoryQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("seconds: {e}")))?;
    let max = state.history_seconds;
    let seconds = query.seconds.unwrap_or(DEFAULT_HISTORY_SECONDS.min(max));
    if !(1..=max).contains(&seconds) {
        return Err(ApiError::BadRequest(format!(
            "seconds must be within 1..={max} (the history kept), got {seconds}"
        )));
    }
    let history = state.metrics.history(seconds);
    let mut prev: Option<&Sample> = None;
    let samples = history
        .iter()
        .map(|s| {
            let rates = prev.and_then(|p| Rates::between(p, s));
            prev = Some(s);
            HistorySample {
                timestamp: rfc3339_ms(s.timestamp),
                data: s.bss,
                policy: s.policy,
                rates,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(HistoryResponse {
        success: true,
        message: "Metrics history retrieved successfully",
        timestamp: now(),
        seconds,
        interval_ms: state.sample_interval.as_millis() as u64,
        samples,
    }))
}
