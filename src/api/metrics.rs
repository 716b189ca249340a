//! `GET|POST /api/v1/metrics` and `GET /api/v1/metrics/history`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody, JsonBody};
use super::{now, rfc3339, rfc3339_ms, ApiState};
use crate::metrics::{BssData, Latest, PolicyCounters, Rates, Sample};

/// Most external reporters (distinct `usersched_pid`s) kept; the one that
/// reported least recently is dropped first.
pub const MAX_EXTERNAL_REPORTERS: usize = 64;

/// Latest BssData reported by each external scheduler.
#[derive(Default)]
pub struct ExternalReports {
    reports: Mutex<HashMap<u32, (DateTime<Utc>, BssData)>>,
    /// Bumped on every insert, so readers can tell whether the list changed.
    version: AtomicU64,
}

impl ExternalReports {
    pub fn insert(&self, at: DateTime<Utc>, data: BssData) {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        self.version.fetch_add(1, Ordering::Release);
        if !reports.contains_key(&data.usersched_pid) && reports.len() >= MAX_EXTERNAL_REPORTERS {
            if let Some(oldest) = reports
                .iter()
                .min_by_key(|(pid, (t, _))| (*t, **pid))
                .map(|(pid, _)| *pid)
            {
                reports.remove(&oldest);
            }
        }
        reports.insert(data.usersched_pid, (at, data));
    }

    /// Every report, most recent first.
    pub fn list(&self) -> Vec<(DateTime<Utc>, BssData)> {
        let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = reports.values().copied().collect();
        list.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(a.1.usersched_pid.cmp(&b.1.usersched_pid))
        });
        list
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.reports.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
    /// "kernel" (scx_pilot's scheduler) or "api-only".
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
pub async fn get_metrics(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.metrics_body.get(&state))
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
        let latest = state.metrics.latest();
        let external_version = state.external.version();
        let now = Utc::now();
        let second = now.timestamp();
        if let Some(c) = self.cached.load().as_deref() {
            let same_sample = match (&c.latest, &latest) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if same_sample && c.external_version == external_version && c.second == second {
                return c.body.clone();
            }
        }
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
    if data.usersched_pid == 0 {
        return Err(ApiError::InvalidMetrics(
            "usersched_pid must be greater than 0".into(),
        ));
    }
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
