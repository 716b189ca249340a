//! `GET /metrics` end to end: the real binary in `--api-only` mode, the
//! exposition checked by `promtool check metrics`, and a real Prometheus server
//! (started and stopped here, on loopback, in a temp dir) that scrapes the
//! agent; a PromQL query through its HTTP API must match the agent's JSON API.
//!
//! promtool and prometheus come from the Debian `prometheus` package, which
//! `scripts/deps.sh test` installs; without them the tests fail and say so.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/samples.rs"]
mod samples;
#[path = "fixtures/tools.rs"]
mod tools;

use agent::{Agent, TempDir};

/// promtool and prometheus, which the tests run.
fn require_prometheus() {
    tools::require("promtool", "prometheus");
    tools::require("prometheus", "prometheus");
}

/// The agent under test: writes without a token (tests/auth_* cover the
/// token), its own state dir.
fn start() -> Agent {
    Agent::start_temp("prom", &["--auth", "none"])
}

fn get_text(url: &str, accept: Option<&str>) -> (String, String) {
    let mut req = ureq::get(url).timeout(Duration::from_secs(10));
    if let Some(a) = accept {
        req = req.set("Accept", a);
    }
    let resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let ct = resp.header("Content-Type").unwrap_or("").to_string();
    (ct, resp.into_string().unwrap())
}

fn get_json(url: &str) -> Value {
    ureq::get(url)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_json()
        .unwrap()
}

fn post_json(url: &str, body: Value) -> Value {
    ureq::post(url)
        .timeout(Duration::from_secs(10))
        .send_json(body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
        .into_json()
        .unwrap()
}

/// The documented report with `nr_kernel_dispatches` set to `kernel`.
fn report(kernel: u64) -> Value {
    let mut v = samples::metrics();
    v["nr_kernel_dispatches"] = json!(kernel);
    v
}

/// The value of the sample `name` (with exactly these labels, in text format).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn promtool_accepts_the_exposition_in_both_formats() {
    require_prometheus();
    let agent = start();
    post_json(&agent.url("/api/v1/metrics"), report(50));
    post_json(
        &agent.url("/api/v1/scheduling/strategies"),
        json!({"strategies": [
            {"priority": true, "execution_time": 20000000, "pid": std::process::id()},
            {"priority": false, "execution_time": 10000000, "selectors": [{"key": "nf", "value": "upf"}]}
        ]}),
    );
    // A 404 and a 405, so the request counters have more than one route.
    let _ = ureq::get(&agent.url("/nope")).call();
    let _ = ureq::delete(&agent.url("/metrics")).call();

    let (ct, text) = get_text(&agent.url("/metrics"), None);
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    // The agent's own process, under the client libraries' names.
    for series in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
        "scx_pilot_proc_scan_failures_total 0",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    let dir = TempDir::new("promtool");
    let path = dir.join("metrics.txt");
    std::fs::write(&path, &text).unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let lint = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && lint.trim().is_empty(),
        "promtool check metrics: {lint}\n--- exposition ---\n{text}"
    );

    // The values are the JSON API's.
    assert_eq!(
        sample(
            &text,
            "scx_pilot_kernel_dispatches_total{source=\"external\"}"
        ),
        Some(50.0)
    );
    assert_eq!(
        sample(&text, "scx_pilot_queued_tasks{source=\"external\"}"),
        Some(10.0)
    );
    assert_eq!(sample(&text, "scx_pilot_external_reporters"), Some(1.0));
    assert_eq!(
        sample(&text, "scx_pilot_strategies{target=\"pid\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "scx_pilot_strategies{target=\"selectors\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "scx_pilot_strategy_resolved_pids{priority=\"true\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "scx_pilot_scheduler_attached"), Some(0.0));
    assert_eq!(
        sample(&text, "scx_pilot_scheduler_info{mode=\"api-only\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "scx_pilot_http_requests_total{route=\"/api/v1/metrics\",method=\"POST\",status=\"200\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "scx_pilot_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "scx_pilot_http_requests_total{route=\"/metrics\",method=\"DELETE\",status=\"405\"}"
        ),
        Some(1.0)
    );
    assert!(text.contains("scx_pilot_build_info{version=\""), "{text}");
    assert!(text.contains("scx_pilot_pod_scan_success 1"), "{text}");
    // No PID anywhere in a label (the test's PID is a strategy target).
    let me = std::process::id().to_string();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(labels) = line.split_once('{').map(|(_, l)| l) {
            assert!(!labels.contains(&me), "a PID in a label: {line}");
        }
    }

    // OpenMetrics when asked for it.
    let (ct, om) = get_text(
        &agent.url("/metrics"),
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE scx_pilot_kernel_dispatches counter"));
    assert!(om.contains("# TYPE scx_pilot_scheduler info"));
}

/// A Prometheus server on loopback; killed (and its dir removed) on drop.
struct Prometheus {
    child: Child,
    base: String,
    dir: TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: scx_pilot\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    fn query(&self, promql: &str) -> Option<Value> {
        let resp = ureq::get(&format!("{}/api/v1/query", self.base))
            .query("query", promql)
            .timeout(Duration::from_secs(5))
            .call()
            .ok()?;
        let body: Value = resp.into_json().ok()?;
        assert_eq!(body["status"], json!("success"), "{body}");
        body["data"]["result"].as_array()?.first().cloned()
    }

    /// Wait until `promql` returns a sample; its value.
    fn wait_value(&self, promql: &str, want: Option<f64>) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(r) = self.query(promql) {
                let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
                if want.is_none_or(|w| w == v) {
                    return v;
                }
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
                panic!("no {want:?} for {promql} within 60 s; prometheus log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SIGTERM first, so the TSDB closes cleanly; SIGKILL if it lingers.
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_agent_and_promql_matches_the_json_api() {
    require_prometheus();
    let agent = start();
    post_json(&agent.url("/api/v1/metrics"), report(777));
    let prom = Prometheus::start(agent.addr());

    // The target is up, scraped in OpenMetrics (Prometheus asks for it first).
    prom.wait_value("up{job=\"scx_pilot\"}", Some(1.0));
    let targets: Value = get_json(&format!("{}/api/v1/targets", prom.base));
    let target = &targets["data"]["activeTargets"][0];
    assert_eq!(target["health"], json!("up"), "{target}");

    let json_value = |agent: &Agent| -> f64 {
        let m = get_json(&agent.url("/api/v1/metrics"));
        m["external"][0]["data"]["nr_kernel_dispatches"]
            .as_f64()
            .unwrap()
    };
    let q = "scx_pilot_kernel_dispatches_total{job=\"scx_pilot\",source=\"external\"}";
    assert_eq!(prom.wait_value(q, None), json_value(&agent));
    assert_eq!(json_value(&agent), 777.0);

    // A new report shows up in Prometheus at the next scrapes, still equal to the JSON API.
    post_json(&agent.url("/api/v1/metrics"), report(1500));
    assert_eq!(prom.wait_value(q, Some(1500.0)), json_value(&agent));

    // Gauges and state come through too.
    assert_eq!(
        prom.wait_value("scx_pilot_online_cpus{source=\"external\"}", None),
        8.0
    );
    assert_eq!(
        prom.wait_value("scx_pilot_scheduler_info{mode=\"api-only\"}", None),
        1.0
    );
    // Prometheus's own scrapes are counted by route and status.
    assert!(
        prom.wait_value(
            "scx_pilot_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"}",
            None
        ) >= 1.0
    );
    drop(prom);
    drop(agent);
}
