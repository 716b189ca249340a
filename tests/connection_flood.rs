//! Resource exhaustion through the API port: the agent started under a low
//! soft open-file limit (systemd's default, 1024) raises it, caps its
//! connections, drops idle ones, and keeps answering /health and resolving
//! strategies while 2,000 idle TCP connections are open.

#[path = "fixtures/agent.rs"]
mod agent;

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use agent::{wait_for, Agent, TempDir};
use serde_json::json;

/// Soft and hard open-file limit of the test process raised for its own
/// connections; the agent's soft limit is set low in `pre_exec`.
fn raise_own_nofile() {
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    rlimit::Resource::NOFILE.set(hard, hard).unwrap();
}

fn soft_nofile_of(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// Seconds `GET url` took, or None when it failed or took over 10 s.
fn timed_get(url: &str) -> Option<f64> {
    let t = Instant::now();
    let r = ureq::get(url).timeout(Duration::from_secs(10)).call();
    r.ok().map(|_| t.elapsed().as_secs_f64())
}

#[test]
fn idle_connections_do_not_starve_the_api_or_the_scans() {
    raise_own_nofile();
    let state = TempDir::new("flood");
    let a = Agent::start_with("127.0.0.1:0", state.path(), &["--auth", "none"], |cmd| {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(|| {
                rlimit::Resource::NOFILE.set(1024, 4096)?;
                Ok(())
            });
        }
    });
    assert_eq!(
        soft_nofile_of(a.child.id()),
        4096,
        "the agent raises its soft limit to the hard one"
    );
    let mut sleepers: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new("sleep")
                .arg("120")
                .spawn()
                .unwrap()
        })
        .collect();
    let pids: Vec<u32> = sleepers.iter().map(|s| s.id()).collect();
    let (code, body) = a.post(
        "/api/v1/scheduling/strategies",
        &json!({"strategies": [
            {"priority": true, "execution_time": 2_000_000, "pid": pids[0]},
            {"priority": true, "execution_time": 2_000_000, "command_regex": "^sleep$"},
        ]}),
    );
    assert_eq!(code, 200, "{body}");
    let resolved = || {
        a.get("/api/v1/scheduling/strategies")["scheduling"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| pids.contains(&(s["pid"].as_u64().unwrap() as u32)))
            .count()
    };
    assert_eq!(resolved(), 2);

    // 2,000 idle connections that never send a request.
    let addr = a.addr().to_string();
    let idle: Vec<TcpStream> = (0..2000)
        .filter_map(|_| {
            TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).ok()
        })
        .collect();
    assert!(idle.len() > 1500, "only {} connections", idle.len());
    let health = a.url("/health");
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = timed_get(&health).expect("/health answers while the connections are open");
        times.push(t);
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("/health under 2,000 idle connections: {times:.3?} s");
    assert!(times.iter().all(|t| *t < 6.0), "{times:?}");
    // The resolver kept scanning /proc: still both processes, no scan failure.
    assert_eq!(resolved(), 2);
    let scan = a.get("/health")["components"]["proc_scan"].clone();
    assert_eq!(scan["failures_total"], 0, "{scan}");
    drop(idle);
    wait_for(Duration::from_secs(10), || {
        timed_get(&health).filter(|t| *t < 1.0)
    })
    .expect("fast again once the connections are gone");
    for s in &mut sleepers {
        let _ = s.kill();
        let _ = s.wait();
    }
}
