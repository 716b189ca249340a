//! `POST /api/v1/metrics/batch`: many reports at once, validated as a whole.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::parse_report;
use crate::api::error::{ApiError, ErrorBody, JsonBody};
use crate::api::ApiState;
use crate::external::Reporter;
use crate::metrics::BssData;
use crate::timefmt::rfc3339;

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
    /// Reporters whose latest report this batch replaced (an older report
    /// than the one kept for its reporter is accepted but not shown).
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
            let data = parse_report(item, &format!("[{i}]"))?;
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
    req: HttpRequest,
    body: JsonBody<Vec<serde_json::Value>>,
) -> Result<HttpResponse, ApiError> {
    let peer = req.peer_addr().map(|a| a.ip());
    let now = Utc::now();
    let mut reports = parse_batch(body.0, now)?;
    let received = reports.len();
    // Oldest first, so each reporter ends with its newest report.
    reports.sort_by_key(|(at, _)| *at);
    let mut stored = std::collections::HashSet::new();
    for (at, data) in reports {
        let reporter = Reporter::of(&data, peer);
        if state.external.insert_if_newer(reporter, at, data) {
            stored.insert(reporter);
        }
    }
    let mut res = HttpResponse::Ok().json(BatchResponse {
        success: true,
        message: "Metrics batch received successfully",
        timestamp: rfc3339(now),
        received,
        stored: stored.len(),
    });
    crate::api::auth::note(
        &mut res,
        format!(
            "metrics batch of {received} reports stored for {} reporters",
            stored.len()
        ),
    );
    Ok(res)
}
