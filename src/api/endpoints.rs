//! The route table: every route the API serves, for `GET /`, the `Allow`
//! header of 405 answers, the request counters and a test that checks the
//! router and the OpenAPI document against it.

/// The dashboard page: where `GET /` sends a browser and the startup log points.
pub const DASHBOARD_PATH: &str = "/dashboard";

/// One route of the API.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub description: &'static str,
}

/// Every route the API serves.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "GET",
        path: "/",
        description: "API information: service, version and every endpoint (a browser asking for HTML is redirected to /dashboard)",
    },
    Endpoint {
        method: "GET",
        path: "/health",
        description: "Health of the agent: scheduler, sampler and Kubernetes status (503 when unhealthy)",
    },
    Endpoint {
        method: "GET",
        path: super::probes::LIVEZ_PATH,
        description: "Liveness: 200 whenever the process serves HTTP",
    },
    Endpoint {
        method: "GET",
        path: super::probes::READYZ_PATH,
        description: "Readiness: 200 when scheduling (degraded modes listed) or api-only, 503 with the reason when the scheduler is not attached",
    },
    Endpoint {
        method: "POST",
        path: "/api/v1/auth/token",
        description: "A JWT for a client that presents this agent's public key (Gthulhu's clients); open",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/metrics",
        description: "Latest scheduler counters (BssData) with rates and policy counters, plus externally reported metrics",
    },
    Endpoint {
        method: "POST",
        path: "/api/v1/metrics",
        description: "Report BssData from an external scheduler (kept per usersched_pid, shown as external)",
    },
    Endpoint {
        method: "POST",
        path: "/api/v1/metrics/batch",
        description: "Report many BssData at once (each with an optional timestamp); validated as a whole",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/metrics/history",
        description: "Recent samples of the scheduler counters (?seconds=N)",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/pods/pids",
        description: "Pod-to-PID mappings found in /proc",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/pods/stats",
        description: "Per-pod CPU usage, run-queue wait and timeslices from schedstat, with recent history (?points=N)",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/scheduling/strategies",
        description: "Scheduling strategies resolved to PIDs (what the scheduler applies)",
    },
    Endpoint {
        method: "POST",
        path: "/api/v1/scheduling/strategies",
        description: "Replace the whole set of scheduling strategies",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/scheduling/strategies/config",
        description: "Scheduling strategies as posted, with what each one resolved to",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/scheduling/strategies/stats",
        description: "Per-strategy CPU usage, run-queue wait and timeslices summed over the PIDs each one covers",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/alerts",
        description: "Active alerts and recently resolved ones, with webhook delivery counters",
    },
    Endpoint {
        method: "GET",
        path: "/api/v1/openapi.json",
        description: "OpenAPI 3 description of this API",
    },
    Endpoint {
        method: "GET",
        path: "/metrics",
        description: "Prometheus metrics (OpenMetrics when asked for in Accept, else text format 0.0.4)",
    },
    Endpoint {
        method: "GET",
        path: DASHBOARD_PATH,
        description: "Live dashboard page (self-contained HTML polling this API)",
    },
];

/// Whether `path` is a route of the API that `method` is not served on: the
/// router answers 405 whatever the request carries, and nothing runs.
pub fn wrong_method(method: &str, path: &str) -> bool {
    let mut on_path = ENDPOINTS.iter().filter(|e| e.path == path).peekable();
    on_path.peek().is_some() && on_path.all(|e| e.method != method)
}

/// Methods served on `path`, as an `Allow` header value (405 answers and
/// preflights): its routes' methods, then OPTIONS, which every path answers.
pub fn allowed_methods(path: &str) -> String {
    ENDPOINTS
        .iter()
        .filter(|e| e.path == path)
        .map(|e| e.method)
        .chain(["OPTIONS"])
        .collect::<Vec<_>>()
        .join(", ")
}
