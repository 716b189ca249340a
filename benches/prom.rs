//! Cost of a `/metrics` answer's rendering for a busy node: 500 pods (with 4
//! processes each), 100 configured strategies, a scheduler sample, an external
//! report and 40 HTTP request series. Measures taking the snapshot from the
//! agent's state plus encoding it, in both formats (target: under 1 ms).
//! Run: `cargo bench --bench prom`.

use std::time::Duration;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use scx_pilot::api::prom::{Format, Snapshot};
use scx_pilot::api::ApiState;
use scx_pilot::metrics::{BssData, MetricsStore, PolicyCounters, Sample};
use scx_pilot::pods::{PodInfo, PodProcess};
use scx_pilot::sched::{Mode, StatusCell};
use scx_pilot::state::AgentState;
use scx_pilot::strategy::StrategyRequest;

fn pods(n: usize) -> Vec<PodInfo> {
    (0..n)
        .map(|i| PodInfo {
            pod_name: format!("pod-{i}"),
            namespace: "default".into(),
            pod_uid: format!("{i:08x}-0000-4000-8000-000000000000"),
            container_id: format!("{i:064x}"),
            processes: (0..4)
                .map(|j| PodProcess {
                    pid: 10_000 + (i * 4 + j) as u32,
                    command: "worker".into(),
                    ppid: 10_000,
                    container_id: format!("{i:064x}"),
                })
                .collect(),
        })
        .collect()
}

fn state() -> ApiState {
    let metrics = MetricsStore::new(16);
    for k in 0..2 {
        metrics.push(Sample {
            timestamp: Utc::now() + chrono::Duration::seconds(k),
            bss: BssData {
                usersched_pid: 42,
                nr_kernel_dispatches: 1_000_000 + k as u64,
                nr_online_cpus: 64,
                ..Default::default()
            },
            policy: PolicyCounters::default(),
        });
    }
    // 100 strategies: half by PID (this process, so one resolves), half by selectors.
    let me = std::process::id();
    let strategies: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            if i % 2 == 0 {
                serde_json::json!({"priority": i % 4 == 0, "execution_time": 1_000_000, "pid": me + i})
            } else {
                serde_json::json!({"priority": true, "execution_time": 2_000_000,
                    "selectors": [{"key": "app", "value": format!("app-{i}")}]})
            }
        })
        .collect();
    let req: StrategyRequest =
        serde_json::from_value(serde_json::json!({ "strategies": strategies })).unwrap();
    let state = ApiState::from(
        AgentState::new(metrics, StatusCell::new(Mode::Kernel)).with_strategies(req.strategies),
    );
    state.external.insert(
        scx_pilot::external::Reporter::Pid(7),
        Utc::now(),
        BssData {
            usersched_pid: 7,
            nr_queued: 3,
            ..Default::default()
        },
    );
    // 40 request series, as a scraped and polled agent has.
    let routes = [
        "/",
        "/health",
        "/api/v1/metrics",
        "/api/v1/pods/pids",
        "/metrics",
    ];
    for route in routes {
        for (method, statuses) in [
            ("GET", [200, 404, 405, 503]),
            ("POST", [200, 400, 413, 415]),
        ] {
            for status in statuses {
                state
                    .prom
                    .observe(Some(route), method, status, Duration::from_micros(80));
            }
        }
    }
    state
}

fn benches(c: &mut Criterion) {
    let state = state();
    let pods = pods(500);
    for (name, format) in [
        (
            "metrics_render_openmetrics_500_pods_100_strategies",
            Format::OpenMetrics,
        ),
        (
            "metrics_render_text_500_pods_100_strategies",
            Format::PrometheusText,
        ),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                let snap = Snapshot::collect(&state, Some(std::hint::black_box(&pods)));
                state.prom.render(&snap, format)
            })
        });
    }
    let snap = Snapshot::collect(&state, Some(&pods));
    let out = state.prom.render(&snap, Format::PrometheusText);
    eprintln!(
        "exposition: {} bytes, {} samples",
        out.len(),
        out.lines().filter(|l| !l.starts_with('#')).count()
    );
}

criterion_group!(prom, benches);
criterion_main!(prom);
