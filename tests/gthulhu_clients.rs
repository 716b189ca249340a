//! The real Gthulhu clients against the real binary: each request goes on the
//! wire byte for byte as the client sends it (tests/fixtures/gthulhu_wire.rs),
//! and each answer is decoded as the client decodes it (Go's encoding/json
//! strictness, or the web UI's JavaScript truthiness). Auth is off here
//! (`--auth none`); the token exchange is tested with the auth endpoints.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/gthulhu_wire.rs"]
mod gthulhu_wire;

use agent::Agent;
use gthulhu_wire::*;

/// What a client holds when auth is off: the 2025-08 scheduler and the web UI
/// always send a bearer header; with `--auth none` it is not looked at.
const NO_TOKEN: &str = "unused";

/// A process for `pid` strategies, killed on drop.
struct Sleeper(Child);

impl Sleeper {
    fn new() -> Self {
        Sleeper(
            Command::new("sleep")
                .arg("300")
                .spawn()
                .expect("spawn sleep"),
        )
    }

    fn pid(&self) -> i64 {
        i64::from(self.0.id())
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Send `req` as its bytes (plus the Host, Content-Length and Connection
/// headers the HTTP library adds) and read the answer: status and JSON body.
fn replay(agent: &Agent, req: &WireRequest) -> (u16, Value) {
    let mut stream = TcpStream::connect(agent.addr()).expect("connect to the agent");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        req.method,
        req.path,
        agent.addr()
    );
    for (name, value) in &req.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = &req.body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut wire = head.into_bytes();
    wire.extend_from_slice(req.body.as_deref().unwrap_or_default());
    stream.write_all(&wire).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8(answer).expect("a UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, json)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// The web UI saves a strategy for `pid` the way Gthulhu's defaults make it
/// (`execution_time` 20000, `selectors: []`), and one by command.
fn save_strategies(agent: &Agent, pid: i64) {
    let req = web_ui_2025_08::strategies_post(
        NO_TOKEN,
        None,
        &[
            web_ui_2025_08::FormStrategy {
                priority: true,
                execution_time: 20_000,
                pid: Some(pid),
                command_regex: None,
                selectors: &[],
            },
            web_ui_2025_08::FormStrategy {
                priority: false,
                execution_time: 20_000_000,
                pid: None,
                command_regex: Some("^nothing-has-this$"),
                selectors: &[],
            },
        ],
    );
    let (status, body) = replay(agent, &req);
    assert_eq!(status, 200, "{body}");
    web_ui_2025_08::accept_strategies_post(&body).unwrap();
    assert!(
        body["warnings"][0]
            .as_str()
            .unwrap()
            .contains("20000 ns raised to 50000 ns"),
        "{body}"
    );
}

#[test]
fn clients_of_2025_the_web_ui_and_the_cli() {
    let agent = Agent::start_temp("gthulhu-2025", &["--auth", "none"]);
    let sleeper = Sleeper::new();

    // Before any report: the CLI decodes the answer (no metrics to show yet).
    let (_, body) = replay(&agent, &cli_2026_02::metrics_get(None));
    cli_2026_02::accept_metrics(&body).unwrap();

    save_strategies(&agent, sleeper.pid());

    // The scheduler of 2025-08 and the plugin of 2025-12: metrics POST (only
    // 200 counts), strategies poll with priority as a bool.
    let (status, _) = replay(
        &agent,
        &scheduler_2025_08::metrics_post(NO_TOKEN, SAMPLE_BSS),
    );
    accept_metrics_post(status).unwrap();
    let (_, body) = replay(&agent, &scheduler_2025_08::strategies_get(NO_TOKEN));
    assert_eq!(
        accept_strategies(scheduler_2025_08::STRATEGIES_ANSWER, &body),
        Ok(StrategiesOutcome::Replaced(1)),
        "{body}"
    );
    assert_eq!(body["scheduling"][0]["pid"], sleeper.pid());
    assert_eq!(body["scheduling"][0]["execution_time"], 50_000);

    let (status, _) = replay(&agent, &plugin_2025_12::metrics_post(None, SAMPLE_BSS));
    accept_metrics_post(status).unwrap();
    let (_, body) = replay(&agent, &plugin_2025_12::strategies_get(None));
    assert_eq!(
        accept_strategies(plugin_2025_12::STRATEGIES_ANSWER, &body),
        Ok(StrategiesOutcome::Replaced(1)),
        "{body}"
    );
    // Without --priority-wire int the plugin of 2026-02 cannot decode it.
    assert!(accept_strategies(plugin_2026_02::STRATEGIES_ANSWER, &body).is_err());

    // The web UI's metrics read needs `success && data`.
    let (_, body) = replay(&agent, &web_ui_2025_08::metrics_get(NO_TOKEN));
    web_ui_2025_08::accept_metrics(&body).unwrap();
    assert_eq!(body["data"]["usersched_last_run_at"], SAMPLE_BSS[0]);
    assert!(body["metrics_timestamp"].is_string(), "{body}");

    // The CLI's reads: metrics (`data` as BssData) and pods (`data.pods`).
    let (_, body) = replay(&agent, &cli_2026_02::metrics_get(None));
    assert_eq!(cli_2026_02::accept_metrics(&body), Ok(true), "{body}");
    assert_eq!(body["data"]["nr_sched_congested"], SAMPLE_BSS[10]);
    let (status, body) = replay(&agent, &cli_2026_02::pods_get(None));
    cli_2026_02::accept_pods(status, &body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(body["data"]["node_name"].is_string(), "{body}");

    // Both reporters sent no usersched_pid from one address: one reporter.
    let (_, body) = replay(&agent, &cli_2026_02::metrics_get(None));
    assert_eq!(body["external"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["external"][0]["reporter"], "address 127.0.0.1");
}

#[test]
fn plugin_2026_02_with_priority_as_an_int() {
    let agent = Agent::start_temp(
        "gthulhu-2026",
        &["--auth", "none", "--priority-wire", "int"],
    );
    let sleeper = Sleeper::new();
    save_strategies(&agent, sleeper.pid());

    let (status, _) = replay(&agent, &plugin_2026_02::metrics_post(None, SAMPLE_BSS));
    accept_metrics_post(status).unwrap();
    let (_, body) = replay(&agent, &plugin_2026_02::strategies_get(None));
    assert_eq!(
        accept_strategies(plugin_2026_02::STRATEGIES_ANSWER, &body),
        Ok(StrategiesOutcome::Replaced(1)),
        "{body}"
    );
    assert_eq!(body["scheduling"][0]["priority"], 1);
    // The clients of 2025 need the default.
    assert!(accept_strategies(plugin_2025_12::STRATEGIES_ANSWER, &body).is_err());
}

/// After the last strategy is deleted the answer is `[]`, never null: a Go
/// client keeps its old strategies on null.
#[test]
fn an_emptied_set_clears_the_clients_strategies() {
    let agent = Agent::start_temp("gthulhu-empty", &["--auth", "none"]);
    let sleeper = Sleeper::new();
    save_strategies(&agent, sleeper.pid());
    let (status, body) = agent.post(STRATEGIES_PATH, &serde_json::json!({"strategies": []}));
    assert_eq!(status, 200, "{body}");
    let (_, body) = replay(&agent, &plugin_2025_12::strategies_get(None));
    assert_eq!(
        accept_strategies(plugin_2025_12::STRATEGIES_ANSWER, &body),
        Ok(StrategiesOutcome::Replaced(0)),
        "{body}"
    );
}
