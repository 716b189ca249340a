//! Regex-heavy strategy sets cost bounded memory: the compiled regexes of a
//! set share a budget (over it: 400 naming the limit), they are compiled off
//! the HTTP workers (/health keeps answering), and the memory of a replaced
//! set goes back to the system. Measured on the real binary's RSS.

#[path = "fixtures/agent.rs"]
mod agent;

use std::time::{Duration, Instant};

use agent::Agent;
use serde_json::{json, Value};

fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 256 strategies whose regexes are heavy when compiled (Unicode classes
/// repeated), each a little different.
fn heavy_set(tag: usize) -> Value {
    let strategies: Vec<Value> = (0..256)
        .map(|i| {
            json!({"priority": true, "execution_time": 1_000_000,
                   "command_regex": format!("^{tag}x{i}\\w{{60}}(\\d|\\pL){{20}}$")})
        })
        .collect();
    json!({ "strategies": strategies })
}

/// 256 light regexes, well within the budget.
fn light_set(tag: usize) -> Value {
    let strategies: Vec<Value> = (0..256)
        .map(|i| {
            json!({"priority": false, "execution_time": 1_000_000,
                   "command_regex": format!("^worker-{tag}-{i}-[a-z]+$")})
        })
        .collect();
    json!({ "strategies": strategies })
}

#[test]
fn regex_heavy_posts_are_bounded() {
    let a = Agent::start_temp("regex-budget", &["--auth", "none"]);
    let pid = a.child.id();
    let rss_start = status_kb(pid, "VmRSS:");

    // One heavy set: refused with the limit named, nothing changes.
    let (code, body) = a.post("/api/v1/scheduling/strategies", &heavy_set(0));
    assert_eq!(code, 400, "{body}");
    let e = body["error"].as_str().unwrap();
    assert!(e.contains("MiB together"), "{e}");

    // Eight at once, heavy and light mixed, while /health is polled.
    let base = a.base.clone();
    let posters: Vec<_> = (0..8)
        .map(|k| {
            let base = base.clone();
            std::thread::spawn(move || {
                let body = if k % 2 == 0 {
                    heavy_set(k)
                } else {
                    light_set(k)
                };
                match ureq::post(&format!("{base}/api/v1/scheduling/strategies"))
                    .timeout(Duration::from_secs(60))
                    .set("Content-Type", "application/json")
                    .send_string(&body.to_string())
                {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(c, _)) => c,
                    Err(e) => panic!("POST: {e}"),
                }
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    while posters.iter().any(|p| !p.is_finished()) {
        let t = Instant::now();
        ureq::get(&a.url("/health"))
            .timeout(Duration::from_secs(10))
            .call()
            .expect("/health answers during the POSTs");
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let codes: Vec<u16> = posters.into_iter().map(|p| p.join().unwrap()).collect();
    assert_eq!(codes, [400, 200, 400, 200, 400, 200, 400, 200]);
    let peak = status_kb(pid, "VmHWM:");
    eprintln!(
        "regex budget: RSS at start {rss_start} kB, peak {peak} kB over 8 concurrent 256-regex \
         POSTs; slowest /health {slowest:?}"
    );
    assert!(peak < rss_start + 100 * 1024, "peak RSS {peak} kB");
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");

    // An empty set returns the regexes' memory.
    let before_empty = status_kb(pid, "VmRSS:");
    let (code, body) = a.post("/api/v1/scheduling/strategies", &json!({"strategies": []}));
    assert_eq!(code, 200, "{body}");
    let after_empty = status_kb(pid, "VmRSS:");
    eprintln!(
        "regex budget: RSS {before_empty} kB with a set, {after_empty} kB after an empty set"
    );
    assert!(
        after_empty <= before_empty,
        "{before_empty} -> {after_empty} kB"
    );
}
