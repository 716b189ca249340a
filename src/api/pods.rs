//! `GET /api/v1/pods/pids`.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::{now, ApiState};
use crate::pods::PodInfo;

#[derive(Serialize, ToSchema)]
pub struct PodsResponse {
    pub success: bool,
    #[schema(example = "Pod-PID mappings retrieved successfully")]
    pub message: &'static str,
    pub timestamp: String,
    /// One entry per pod container with processes; `[]` when there are none.
    pub pods: Vec<PodInfo>,
}

#[utoipa::path(
    get,
    path = "/api/v1/pods/pids",
    tag = "pods",
    responses(
        (status = 200, description = "Pod-to-PID mappings", body = PodsResponse),
        (status = 405, description = "Wrong method", body = ErrorBody),
        (status = 500, description = "The proc filesystem could not be read", body = ErrorBody,
            example = json!({"success": false, "error": "Failed to get pod-pid mappings: No such file or directory (os error 2)"})),
    )
)]
pub async fn get_pods(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let st = state.clone();
    let pods = web::block(move || {
        st.pods
            .get()
            .map(|snap| snap.pods(st.pod_meta.directory().as_deref()))
    })
    .await
    .map_err(|e| ApiError::PodScan(e.to_string()))?
    .map_err(|e| ApiError::PodScan(e.to_string()))?;
    Ok(HttpResponse::Ok().json(PodsResponse {
        success: true,
        message: "Pod-PID mappings retrieved successfully",
        timestamp: now(),
        pods,
    }))
}
