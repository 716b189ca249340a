//! `GET /api/v1/pods/pids`.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use std::sync::{Arc, Mutex};

use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::podmeta::PodDirectory;
use crate::pods::{PodInfo, ProcSnapshot};
use crate::timefmt::now;

/// The answer's shape (built by hand in [`get_pods`] around a cached list).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
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
    let (snapshot, dir) =
        web::block(move || st.pods.get().map(|snap| (snap, st.pod_meta.directory())))
            .await
            .map_err(|e| ApiError::PodScan(e.to_string()))?
            .map_err(|e| ApiError::PodScan(e.to_string()))?;
    let pods = state.pods_body.get(&snapshot, dir);
    // PodsResponse, with the list serialized once per scan.
    let mut body = Vec::with_capacity(pods.len() + 128);
    body.extend_from_slice(
        br#"{"success":true,"message":"Pod-PID mappings retrieved successfully","timestamp":""#,
    );
    body.extend_from_slice(now().as_bytes());
    body.extend_from_slice(br#"","pods":"#);
    body.extend_from_slice(&pods);
    body.push(b'}');
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// The `pods` list of the last answer, kept while the scan and the pod
/// metadata it was made from are the same: dashboards polling every second
/// then cost one serialization per scan, not one per request.
#[derive(Default)]
pub struct PodsBodyCache {
    last: Mutex<Option<CachedPods>>,
}

struct CachedPods {
    snapshot: Arc<ProcSnapshot>,
    dir: Option<Arc<PodDirectory>>,
    json: web::Bytes,
}

impl PodsBodyCache {
    pub fn get(&self, snapshot: &Arc<ProcSnapshot>, dir: Option<Arc<PodDirectory>>) -> web::Bytes {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = last.as_ref() {
            let same_dir = match (&c.dir, &dir) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if Arc::ptr_eq(&c.snapshot, snapshot) && same_dir {
                return c.json.clone();
            }
        }
        let json = web::Bytes::from(
            serde_json::to_vec(&snapshot.pods(dir.as_deref())).expect("pods serialize"),
        );
        *last = Some(CachedPods {
            snapshot: snapshot.clone(),
            dir,
            json: json.clone(),
        });
        json
    }
}
