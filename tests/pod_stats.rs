//! Per-pod and per-strategy scheduling figures against the real kernel: two
//! pod-like cgroups on this host, a CPU-bound shell loop in one and a
//! sleeping process in the other; the real binary (`--api-only`, short
//! `--stats-interval-ms`) must show the busy pod using clearly more CPU than
//! the sleeper through `GET /api/v1/pods/stats`, `/metrics` (namespace and pod
//! labels, no PID or UID) and `GET /api/v1/scheduling/strategies/stats`
//! (a command_regex strategy on the busy process, a selector strategy on the
//! sleeper's pod). Only coarse ratios are asserted. Needs root.

#[path = "fixtures/agent.rs"]
mod agent;

use std::path::Path;
use std::time::Duration;

use agent::{hierarchies, ids, kubelet_path, wait_for, write_pods_file, Agent, PodCgroup, TempDir};
use serde_json::{json, Value};

fn pod<'a>(body: &'a Value, uid: &str) -> Option<&'a Value> {
    body["pods"].as_array()?.iter().find(|p| p["uid"] == uid)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn busy_pod_uses_more_cpu_than_sleeping_pod() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test creates cgroups and must run as root (make test does)"
    );
    let h = hierarchies()
        .into_iter()
        .next()
        .expect("a cgroup hierarchy");
    let state = TempDir::new("pod_stats");
    // A uniquely named shell for the command_regex strategy (comm is the file name).
    let busy_exe = state.path().join("pilotbusy");
    std::fs::copy("/bin/sh", &busy_exe).unwrap();

    let (busy_uid, busy_cid) = ids(91);
    let (sleep_uid, sleep_cid) = ids(92);
    let mut busy = PodCgroup::create(&h, "stats_busy", &kubelet_path(&h, &busy_uid, &busy_cid));
    let mut sleeper =
        PodCgroup::create(&h, "stats_sleep", &kubelet_path(&h, &sleep_uid, &sleep_cid));
    let busy_pid = busy.spawn(&busy_exe, &["-c", "while :; do :; done"]);
    let sleep_pid = sleeper.spawn(Path::new("sleep"), &["120"]);

    let file = state.path().join("pods.json");
    let app = format!("sleeper-{}", std::process::id());
    write_pods_file(
        &file,
        &[
            (&busy_uid, "busy-0", "stats-test", &[("app", "busy")]),
            (
                &sleep_uid,
                "sleeper-0",
                "stats-test",
                &[("app", app.as_str())],
            ),
        ],
    );
    let a = Agent::start(
        state.path(),
        &[
            "--pods-file",
            file.to_str().unwrap(),
            "--stats-interval-ms",
            "250",
            "--rescan-interval-ms",
            "250",
        ],
    );
    let (code, body) = a.post(
        "/api/v1/scheduling/strategies",
        &json!({"strategies": [
            {"priority": false, "execution_time": 5_000_000, "command_regex": "^pilotbusy$"},
            {"priority": false, "execution_time": 5_000_000, "selectors": [{"key": "app", "value": app}]},
        ]}),
    );
    assert_eq!(code, 200, "{body}");

    // Wait until both pods have at least 4 points of history (1 s of figures).
    let body = wait_for(Duration::from_secs(20), || {
        let b = a.get("/api/v1/pods/stats");
        let enough = |uid: &str| {
            pod(&b, uid).is_some_and(|p| p["history"].as_array().is_some_and(|h| h.len() >= 4))
        };
        (enough(&busy_uid) && enough(&sleep_uid)).then_some(b)
    })
    .unwrap_or_else(|| {
        panic!(
            "no history for the test pods: {}\n{}",
            a.get("/api/v1/pods/stats"),
            a.stderr_text()
        )
    });
    assert_eq!(body["success"], true);
    assert!(body["message"].as_str().unwrap().contains("retrieved"));
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
    let sampling = &body["sampling"];
    assert_eq!(sampling["enabled"], true, "{sampling}");
    assert_eq!(sampling["interval_ms"], 250);
    assert!(sampling["pids_read"].as_u64().unwrap() >= 2, "{sampling}");

    let b = pod(&body, &busy_uid).unwrap();
    let s = pod(&body, &sleep_uid).unwrap();
    eprintln!("busy pod: {b}\nsleeping pod: {s}\nsampling: {sampling}");
    assert_eq!(b["name"], "busy-0");
    assert_eq!(b["namespace"], "stats-test");
    assert_eq!(b["labels"], json!({"app": "busy"}));
    assert_eq!(b["processes"], 1);
    assert_eq!(s["name"], "sleeper-0");
    assert_eq!(s["processes"], 1);

    // Over the whole history: the loop takes a large share of a CPU (the
    // host has other work, so not all of one), the sleeper next to nothing.
    let hist = |p: &Value, key: &str| -> Vec<f64> {
        p["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| f(&h[key]))
            .collect()
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let busy_cpu = mean(&hist(b, "cpu_usage"));
    let sleep_cpu = mean(&hist(s, "cpu_usage"));
    assert!(busy_cpu > 0.3, "busy pod cpu_usage {busy_cpu}: {b}");
    assert!(sleep_cpu < 0.05, "sleeping pod cpu_usage {sleep_cpu}: {s}");
    assert!(busy_cpu > 10.0 * sleep_cpu);
    // utime + stime agree coarsely (tick granularity).
    let busy_ticks = mean(&hist(b, "cpu_usage_utime_stime"));
    assert!(busy_ticks > 0.15, "busy utime+stime {busy_ticks}: {b}");
    assert!(f(&b["cpu_usage"]) >= 0.0 && f(&s["cpu_usage"]) >= 0.0);

    // Wait figures: present, non-negative, consistent with each other.
    for p in [b, s] {
        for h in p["history"].as_array().unwrap() {
            let wait = f(&h["runqueue_wait_ms_per_s"]);
            let slices = f(&h["timeslices_per_s"]);
            assert!(wait >= 0.0 && slices >= 0.0, "{h}");
            assert!(f(&h["interval_ms"]) > 0.0, "{h}");
            match h["avg_wait_us_per_timeslice"].as_f64() {
                Some(avg) => {
                    assert!(slices > 0.0, "{h}");
                    // avg = wait / slices, in µs.
                    let expect = wait * 1e3 / slices;
                    assert!((avg - expect).abs() <= 1e-6 * expect.max(1.0) + 1e-3, "{h}");
                }
                None => assert_eq!(slices, 0.0, "{h}"),
            }
        }
    }
    // The loop is switched in again and again: timeslices grow.
    let busy_slices: f64 = hist(b, "timeslices_per_s").iter().sum();
    assert!(busy_slices > 0.0, "no timeslice for the busy loop: {b}");
    assert!(b.get("runqueue_wait_ms_per_s").is_some_and(Value::is_f64));

    // ?points bounds the history.
    let one = a.get("/api/v1/pods/stats?points=1");
    assert_eq!(
        pod(&one, &busy_uid).unwrap()["history"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Prometheus: per-pod gauges with namespace and pod labels only.
    let text = ureq::get(&format!("{}/metrics", a.base))
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let series = |name: &str, pod: &str| -> f64 {
        let prefix = format!("{name}{{namespace=\"stats-test\",pod=\"{pod}\"}} ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"));
        line[prefix.len()..].trim().parse().unwrap()
    };
    assert!(series("scx_pilot_pod_cpu_usage_ratio", "busy-0") > 0.1);
    assert!(series("scx_pilot_pod_cpu_usage_ratio", "sleeper-0") < 0.05);
    assert!(series("scx_pilot_pod_runqueue_wait_seconds_per_second", "busy-0") >= 0.0);
    assert!(series("scx_pilot_pod_timeslices_per_second", "busy-0") >= 0.0);
    for l in text.lines().filter(|l| l.starts_with("scx_pilot_pod_")) {
        assert!(!l.contains("pid"), "{l}");
        assert!(!l.contains(&busy_uid) && !l.contains(&sleep_uid), "{l}");
    }
    assert!(text.contains("# TYPE scx_pilot_pod_cpu_usage_ratio gauge"));
    // The same as counters in base units, for rate(): a busy loop's CPU
    // seconds grow between two scrapes.
    assert!(text.contains("# TYPE scx_pilot_pod_cpu_seconds_total counter"));
    assert!(text.contains("# TYPE scx_pilot_pod_runqueue_wait_seconds_total counter"));
    assert!(text.contains("# TYPE scx_pilot_pod_timeslices_total counter"));
    let cpu_before = series("scx_pilot_pod_cpu_seconds_total", "busy-0");
    assert!(cpu_before > 0.0);
    assert!(series("scx_pilot_pod_timeslices_total", "busy-0") >= 1.0);
    let cpu_after = wait_for(Duration::from_secs(10), || {
        let t = ureq::get(&format!("{}/metrics", a.base))
            .call()
            .ok()?
            .into_string()
            .ok()?;
        let prefix = "scx_pilot_pod_cpu_seconds_total{namespace=\"stats-test\",pod=\"busy-0\"} ";
        let v: f64 = t
            .lines()
            .find_map(|l| l.strip_prefix(prefix))?
            .trim()
            .parse()
            .ok()?;
        (v > cpu_before).then_some(v)
    });
    assert!(cpu_after.is_some(), "the pod's CPU seconds counter grows");

    // Strategies: the regex covers the loop, the selector the sleeper's pod.
    let st = wait_for(Duration::from_secs(20), || {
        let st = a.get("/api/v1/scheduling/strategies/stats");
        let ok = st["strategies"][0]["pids"] == json!([busy_pid])
            && st["strategies"][1]["pids"] == json!([sleep_pid])
            && st["strategies"][0]["pids_measured"] == 1
            && st["strategies"][1]["pids_measured"] == 1
            && st["strategies"][0]["cpu_usage"]
                .as_f64()
                .is_some_and(|c| c > 0.3);
        ok.then_some(st)
    })
    .unwrap_or_else(|| {
        panic!(
            "strategies/stats never covered the pods: {}",
            a.get("/api/v1/scheduling/strategies/stats")
        )
    });
    eprintln!("strategies/stats: {st}");
    assert_eq!(st["success"], true);
    assert!(chrono::DateTime::parse_from_rfc3339(st["timestamp"].as_str().unwrap()).is_ok());
    let s0 = &st["strategies"][0];
    let s1 = &st["strategies"][1];
    assert_eq!(s0["index"], 0);
    assert_eq!(s0["strategy"]["command_regex"], "^pilotbusy$");
    assert_eq!(s1["index"], 1);
    assert_eq!(s1["strategy"]["selectors"][0]["value"], app.as_str());
    assert!(f(&s1["cpu_usage"]) < 0.05, "{s1}");
    assert!(f(&s0["runqueue_wait_ms_per_s"]) >= 0.0);
    assert!(f(&s0["timeslices_per_s"]) >= 0.0);

    // No strategies: an empty list, not null.
    let (code, _) = a.post("/api/v1/scheduling/strategies", &json!({"strategies": []}));
    assert_eq!(code, 200);
    let st = a.get("/api/v1/scheduling/strategies/stats");
    assert_eq!(st["strategies"], json!([]));

    busy.kill(busy_pid);
    sleeper.kill(sleep_pid);
    drop(a);
}

#[test]
fn zero_interval_disables_sampling() {
    let state = TempDir::new("pod_stats_off");
    let a = Agent::start(state.path(), &["--stats-interval-ms", "0"]);
    std::thread::sleep(Duration::from_millis(300));
    let body = a.get("/api/v1/pods/stats");
    assert_eq!(body["success"], true);
    assert_eq!(body["sampling"]["enabled"], false);
    assert_eq!(body["sampling"]["rounds"], 0);
    assert_eq!(body["pods"], json!([]));
    let st = a.get("/api/v1/scheduling/strategies/stats");
    assert_eq!(st["strategies"], json!([]));
}

/// A strategy posted while the sampler backs off on a node without pods is
/// measured from the next interval, not after the backed-off one (10 x 1 s
/// here). Run alone (other tests in this file create pods, which end the
/// back-off by themselves): cargo test --test pod_stats strategy_ends
#[test]
fn strategy_ends_idle_back_off_at_once() {
    let state = TempDir::new("pod_stats_backoff");
    let a = Agent::start(state.path(), &["--stats-interval-ms", "1000"]);
    // Let the sampler find nothing to measure and back off.
    std::thread::sleep(Duration::from_millis(1500));
    let mut hog = std::process::Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let body =
        json!({"strategies": [{"priority": false, "execution_time": 5000000, "pid": hog.id()}]});
    let (code, resp) = a.post("/api/v1/scheduling/strategies", &body);
    // Two rounds one interval apart give the first figures; the backed-off
    // round would come about 10 s after the idle one.
    let measured = (code == 200).then(|| {
        wait_for(Duration::from_secs(6), || {
            let st = a.get("/api/v1/scheduling/strategies/stats");
            (st["strategies"][0]["pids_measured"] == 1).then_some(st)
        })
    });
    let _ = hog.kill();
    let _ = hog.wait();
    assert_eq!(code, 200, "{resp}");
    let st = measured
        .flatten()
        .expect("no figures for the strategy within 6 s of the POST");
    assert!(f(&st["strategies"][0]["cpu_usage"]) > 0.0, "{st}");
}
