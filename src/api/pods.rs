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

/// The answer's shape (built by hand in [`get_pods`] around cached lists).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct PodsResponse {
    pub success: bool,
    #[schema(example = "Pod-PID mappings retrieved successfully")]
    pub message: &'static str,
    pub timestamp: String,
    /// One entry per pod with processes; `[]` when there are none.
    pub pods: Vec<PodInfo>,
    /// The same pods in the shape Gthulhu's CLI and decision maker read.
    pub data: PodsData,
}

/// `data` of the pods answer: each process carries its container's ID.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct PodsData {
    /// `[]` when there are none.
    pub pods: Vec<NodePod>,
    pub timestamp: String,
    /// The Kubernetes node whose pods are watched, else the host name.
    pub node_name: String,
    /// Same as `node_name`: a node has one name in a cluster.
    pub node_id: String,
}

/// One pod, as in `data.pods`.
#[derive(Serialize, ToSchema)]
pub struct NodePod {
    /// The pod's name (empty when unknown).
    pub pod_id: String,
    pub pod_uid: String,
    pub pod_name: String,
    pub namespace: String,
    pub processes: Vec<NodeProcess>,
}

#[derive(Serialize, ToSchema)]
pub struct NodeProcess {
    pub pid: u32,
    pub ppid: u32,
    pub command: String,
    /// Container ID (64 hex digits), empty for processes in the pod's own cgroup.
    pub container_id: String,
}

fn node_pods(pods: Vec<PodInfo>) -> Vec<NodePod> {
    pods.into_iter()
        .map(|p| NodePod {
            pod_id: p.pod_name.clone(),
            processes: p
                .processes
                .into_iter()
                .map(|q| NodeProcess {
                    pid: q.pid,
                    ppid: q.ppid,
                    command: q.command,
                    container_id: q.container_id,
                })
                .collect(),
            pod_uid: p.pod_uid,
            pod_name: p.pod_name,
            namespace: p.namespace,
        })
        .collect()
}

/// The node's name: the one the pod watcher uses, else the host name.
fn node_name(state: &ApiState) -> String {
    state
        .pod_meta
        .status()
        .node_name
        .or_else(crate::host_name::get)
        .unwrap_or_default()
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
    let (pods, data_pods) = state.pods_body.get(&snapshot, dir);
    let timestamp = now();
    let node = serde_json::to_string(&node_name(&state)).expect("a string serializes");
    // PodsResponse, with the lists serialized once per scan.
    let mut body = Vec::with_capacity(pods.len() + data_pods.len() + 256);
    body.extend_from_slice(
        br#"{"success":true,"message":"Pod-PID mappings retrieved successfully","timestamp":""#,
    );
    body.extend_from_slice(timestamp.as_bytes());
    body.extend_from_slice(br#"","pods":"#);
    body.extend_from_slice(&pods);
    body.extend_from_slice(br#","data":{"pods":"#);
    body.extend_from_slice(&data_pods);
    body.extend_from_slice(br#","timestamp":""#);
    body.extend_from_slice(timestamp.as_bytes());
    body.extend_from_slice(br#"","node_name":"#);
    body.extend_from_slice(node.as_bytes());
    body.extend_from_slice(br#","node_id":"#);
    body.extend_from_slice(node.as_bytes());
    body.extend_from_slice(b"}}");
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// The `pods` and `data.pods` lists of the last answer, kept while the scan and the pod
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
    data_json: web::Bytes,
}

impl PodsBodyCache {
    pub fn get(
        &self,
        snapshot: &Arc<ProcSnapshot>,
        dir: Option<Arc<PodDirectory>>,
    ) -> (web::Bytes, web::Bytes) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = last.as_ref() {
            let same_dir = match (&c.dir, &dir) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if Arc::ptr_eq(&c.snapshot, snapshot) && same_dir {
                return (c.json.clone(), c.data_json.clone());
            }
        }
        let pods = snapshot.pods(dir.as_deref());
        let json = web::Bytes::from(serde_json::to_vec(&pods).expect("pods serialize"));
        let data_json =
            web::Bytes::from(serde_json::to_vec(&node_pods(pods)).expect("pods serialize"));
        *last = Some(CachedPods {
            snapshot: snapshot.clone(),
            dir,
            json: json.clone(),
            data_json: data_json.clone(),
        });
        (json, data_json)
    }
}
