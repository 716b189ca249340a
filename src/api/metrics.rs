//! `GET|POST /api/v1/metrics` and `GET /api/v1/metrics/history`.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody, JsonBody};
use super::ApiState;
use crate::metrics::{BssData, Latest, PolicyCounters, Rates, Sample};
use crate::timefmt::{now, rfc3339, rfc3339_ms};

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
    /// Latest report per external `usersched_pid`, most recent first.
    pub external: Vec<ExternalMetrics>,
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
        let external = state
            .external
            .list()
            .into_iter()
            .map(|(at, data)| ExternalMetrics {
                source: "external",
                received_at: rfc3339_ms(at),
                data,
            })
            .collect();
        let response = MetricsResponse {
            success: true,
            message: "Metrics retrieved successfully",
            timestamp: rfc3339(DateTime::from_timestamp(second, 0).unwrap_or(now)),
            mode: state.status.get().mode,
            metrics,
            external,
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
        description = "BssData; unknown fields are ignored, every BssData field is required"),
    responses(
        (status = 200, description = "Stored as the latest report of its usersched_pid", body = SuccessResponse),
        (status = 400, description = "Malformed JSON, wrong or missing field, out-of-range value", body = ErrorBody),
        (status = 405, description = "Wrong method", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
    )
)]
pub async fn post_metrics(
    state: web::Data<ApiState>,
    body: JsonBody<BssData>,
) -> Result<HttpResponse, ApiError> {
    let data = body.0;
    check_report(&data).map_err(ApiError::InvalidMetrics)?;
    let at = Utc::now();
    state.external.insert(at, data);
    log::debug!("external metrics from usersched_pid {}", data.usersched_pid);
    let mut res = HttpResponse::Ok().json(SuccessResponse {
        success: true,
        message: "Metrics received successfully",
        timestamp: rfc3339(at),
    });
    super::auth::note(
        &mut res,
        format!(
            "external metrics of usersched_pid {} stored",
            data.usersched_pid
        ),
    );
    Ok(res)
}

/// What every reported BssData must satisfy beyond its types.
fn check_report(data: &BssData) -> Result<(), String> {
    if data.usersched_pid == 0 {
        return Err("usersched_pid must be greater than 0".into());
    }
    Ok(())
}

/// Most reports one batch may carry.
pub const MAX_BATCH_REPORTS: usize = 1000;

/// How far in the future a report's timestamp may be (clock skew).
const MAX_FUTURE_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// One report of a batch: a `BssData` (unknown fields ignored, as in the
/// single POST) with, optionally, when it was taken.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // the OpenAPI shape of an element; parsing goes through serde_json::Value
pub struct BatchReport {
    /// When the report was taken (RFC3339); default: when the batch arrived.
    #[schema(example = "2025-06-19T10:29:58Z")]
    timestamp: Option<String>,
    #[serde(flatten)]
    data: BssData,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    pub success: bool,
    #[schema(example = "Metrics batch received successfully")]
    pub message: &'static str,
    pub timestamp: String,
    /// Reports in the batch.
    pub received: usize,
    /// Reports that became their reporter's latest (an older report than the
    /// one kept for its usersched_pid is accepted but not shown).
    pub stored: usize,
}

/// Parse and check a whole batch; the first bad report is named by index and
/// nothing is stored.
fn parse_batch(
    items: Vec<serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, BssData)>, ApiError> {
    if items.is_empty() || items.len() > MAX_BATCH_REPORTS {
        return Err(ApiError::InvalidMetrics(format!(
            "a batch holds 1..={MAX_BATCH_REPORTS} reports, got {}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, mut item)| {
            let bad = |msg: String| ApiError::InvalidMetrics(format!("[{i}].{msg}"));
            let Some(obj) = item.as_object_mut() else {
                return Err(ApiError::InvalidJson(format!(
                    "[{i}]: expected a BssData object"
                )));
            };
            let at = match obj.remove("timestamp") {
                None | Some(serde_json::Value::Null) => now,
                Some(serde_json::Value::String(t)) => {
                    let at = DateTime::parse_from_rfc3339(&t)
                        .map_err(|e| bad(format!("timestamp: {t:?} is not RFC3339: {e}")))?
                        .with_timezone(&Utc);
                    if at > now + MAX_FUTURE_SKEW {
                        return Err(bad(format!("timestamp: {t} is in the future")));
                    }
                    at
                }
                Some(other) => {
                    return Err(ApiError::InvalidJson(format!(
                        "[{i}].timestamp: expected an RFC3339 string, got {other}"
                    )))
                }
            };
            let data: BssData = serde_path_to_error::deserialize(item).map_err(|e| {
                let path = e.path().to_string();
                let at = if path == "." {
                    format!("[{i}]")
                } else {
                    format!("[{i}].{path}")
                };
                ApiError::InvalidJson(format!("{at}: {}", e.inner()))
            })?;
            check_report(&data).map_err(bad)?;
            Ok((at, data))
        })
        .collect()
}

#[utoipa::path(
    post,
    path = "/api/v1/metrics/batch",
    tag = "metrics",
    request_body(content = Vec<BatchReport>, content_type = "application/json",
        description = "1..=1000 BssData reports, each with an optional RFC3339 timestamp; validated as a whole (bounded by --max-body-bytes)"),
    responses(
        (status = 200, description = "Every report accepted; each reporter keeps its newest", body = BatchResponse),
        (status = 400, description = "A report is malformed or out of range (the error names its index); nothing is stored", body = ErrorBody,
            example = json!({"success": false, "error": "Invalid metrics data: [2].nr_queued: invalid type: string \"x\", expected u64"})),
        (status = 405, description = "Wrong method", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
    )
)]
pub async fn post_metrics_batch(
    state: web::Data<ApiState>,
    body: JsonBody<Vec<serde_json::Value>>,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let mut reports = parse_batch(body.0, now)?;
    let received = reports.len();
    // Oldest first, so each reporter ends with its newest report.
    reports.sort_by_key(|(at, _)| *at);
    let mut stored = std::collections::HashSet::new();
    for (at, data) in reports {
        if state.external.insert_if_newer(at, data) {
            stored.insert(data.usersched_pid);
        }
    }
    let mut res = HttpResponse::Ok().json(BatchResponse {
        success: true,
        message: "Metrics batch received successfully",
        timestamp: rfc3339(now),
        received,
        stored: stored.len(),
    });
    super::auth::note(
        &mut res,
        format!(
            "metrics batch of {received} reports stored for {} usersched_pids",
            stored.len()
        ),
    );
    Ok(res)
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
