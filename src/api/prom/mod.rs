//! `GET /metrics`: the agent's state in the Prometheus exposition format,
//! rendered with the official `prometheus-client` crate.
//!
//! Two encodings from one registry, chosen by the `Accept` header: OpenMetrics
//! 1.0 when the client asks for it (a Prometheus server does), the classic
//! Prometheus text format 0.0.4 otherwise (curl, `promtool check metrics`).
//!
//! What is exported, and why so:
//! - The scheduler's `BssData` counters, named in `crate::counters`: the
//!   monotonic ones as counters (`scx_pilot_*_total`), the instantaneous ones
//!   as gauges, with a `source` label: `scheduler` (this agent's BPF
//!   scheduler, read from its .bss) or `external` (the newest
//!   `POST /api/v1/metrics` report, from a scheduler outside the agent).
//!   `usersched_pid` is not exported: a PID is not a measurement and as a label
//!   it would make a new series on every restart.
//! - scx_pilot's policy counters, the scheduler state (attached, restarts, an
//!   info metric with mode and ops name, another with the last exit reason),
//!   strategies (configured by target kind, resolved PIDs by priority, PIDs in
//!   the BPF map), pods seen, Kubernetes connection, HTTP requests by route,
//!   method and status, and build info.
//! - No label carries a PID, a pod UID or a raw request path: every label has a
//!   small fixed set of values, so the series count does not grow with the node.
//!
//! Snapshot metrics are encoded from a [`Snapshot`] taken at scrape time (a
//! `Collector`, in `encode`); only the HTTP counters (`http`) live in the
//! registry between scrapes; `negotiate` picks the encoding.

mod encode;
mod http;
mod negotiate;
mod process;
mod snapshot;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

pub use http::{route_index, PromMetrics};
pub use negotiate::{Format, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
pub use snapshot::{AlertsSnapshot, PodCounts, Snapshot};

use super::ApiState;
use crate::pods::PodInfo;

/// The pods for `/metrics`, from the shared scan cache (the same `/proc`
/// walk that `GET /api/v1/pods/pids` and the resolver use).
async fn scan_pods(state: &web::Data<ApiState>) -> Option<Vec<PodInfo>> {
    let st = state.clone();
    web::block(move || {
        st.pods
            .get()
            .map(|snap| snap.pods(st.pod_meta.directory().as_deref()))
    })
    .await
    .ok()
    .and_then(Result::ok)
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    responses(
        (status = 200, description = "Prometheus exposition: OpenMetrics 1.0 when the Accept header asks for application/openmetrics-text, the Prometheus text format 0.0.4 otherwise",
            content_type = "text/plain", body = String),
        (status = 405, description = "Wrong method", body = super::error::ErrorBody),
    )
)]
pub async fn get_prometheus(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    let format = Format::negotiate(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let pods = scan_pods(&state).await;
    let snapshot = Snapshot::collect(&state, pods.as_deref());
    HttpResponse::Ok()
        .content_type(format.content_type())
        .body(state.prom.render(&snapshot, format))
}
