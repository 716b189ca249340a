//! `GET /api/v1/alerts`: what the alerts thread last published
//! ([`crate::alerts`]); the handler never waits for an evaluation.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::ApiState;
use crate::alerts::webhook::WebhookStatsView;
use crate::alerts::Alert;
use crate::timefmt::{now, rfc3339_ms};

#[derive(Serialize, ToSchema)]
pub struct AlertsData {
    /// Firing alerts, oldest first; `[]` when none fires.
    pub active: Vec<Alert>,
    /// Resolved alerts, most recently resolved first (bounded by the alerts
    /// file's `recent_max`, default 100); `[]` when none.
    pub recent: Vec<Alert>,
    /// When the rules were last evaluated (RFC3339, ms); null before the first evaluation.
    pub evaluated_at: Option<String>,
    /// Evaluations since start (one per sample interval).
    pub evaluations: u64,
    /// Delivery counters of `--alert-webhook`.
    pub webhook: WebhookStatsView,
}

#[derive(Serialize, ToSchema)]
pub struct AlertsResponse {
    pub success: bool,
    #[schema(example = "Alerts retrieved successfully")]
    pub message: &'static str,
    pub timestamp: String,
    pub data: AlertsData,
}

#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    responses(
        (status = 200, description = "Active alerts and recently resolved ones", body = AlertsResponse),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub async fn get_alerts(state: web::Data<ApiState>) -> HttpResponse {
    let p = state.alerts.get();
    HttpResponse::Ok().json(AlertsResponse {
        success: true,
        message: "Alerts retrieved successfully",
        timestamp: now(),
        data: AlertsData {
            active: p.active.clone(),
            recent: p.recent.clone(),
            evaluated_at: p.evaluated_at.map(rfc3339_ms),
            evaluations: p.evaluations,
            webhook: state.alerts.webhook.view(),
        },
    })
}
