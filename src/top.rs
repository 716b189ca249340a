//! `scx_pilot top`: a terminal view of a running agent, read over its HTTP API.
//!
//! Live mode (a terminal): the alternate screen, refreshed every interval,
//! q / Esc / Ctrl-C to quit. `--once` prints one snapshot and exits; `--json`
//! prints the same snapshot as JSON (one object per line when live, so it can
//! be piped). Only reads are made, so no token is needed.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use serde::Serialize;
use serde_json::Value;

/// Watch a running scx_pilot agent: counters with rates, scheduler state,
/// strategies and pods.
#[derive(Debug, Clone, Parser)]
#[command(name = "scx_pilot top", version)]
pub struct TopOpts {
    /// Base URL of the agent's HTTP API.
    #[arg(long, env = "SCX_PILOT_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// Trust this PEM certificate (the agent's --tls-cert, or its CA) for an
    /// https:// --url [default: the system's public roots].
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,

    /// Refresh interval in milliseconds (live mode).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub interval_ms: u64,

    /// Print one snapshot and exit.
    #[arg(long)]
    pub once: bool,

    /// Machine-readable output: one JSON object per snapshot.
    #[arg(long)]
    pub json: bool,

    /// Rows of strategies and of pods shown.
    #[arg(long, default_value_t = 8)]
    pub rows: usize,
}

/// One counter with its value and per-second rate (when known).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CounterRow {
    pub name: &'static str,
    pub value: u64,
    /// Per second, over the agent's last sample interval or between two polls.
    pub rate_per_s: Option<f64>,
    /// Monotonic counter (true) or instantaneous gauge (false).
    pub counter: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StrategyRow {
    /// "pid 1234", "selectors nf=upf", or the strategy's JSON for other kinds.
    pub target: String,
    pub priority: bool,
    pub execution_time_ns: u64,
    /// PIDs it covers now.
    pub pids: usize,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PodRow {
    /// Namespace/name when known, else the pod UID.
    pub pod: String,
    pub containers: usize,
    pub processes: usize,
    /// Of those, processes with a resolved strategy.
    pub with_strategy: usize,
}

/// Everything one refresh shows.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub url: String,
    pub timestamp: String,
    pub health: String,
    pub mode: String,
    pub attached: bool,
    pub ops_name: Option<String>,
    pub restarts: u64,
    pub last_exit: Option<String>,
    /// "scheduler" (the agent's own), "external" (newest POSTed report) or "none".
    pub source: String,
    /// When the counters were read or received.
    pub counters_at: Option<String>,
    pub counters: Vec<CounterRow>,
    pub strategies_configured: usize,
    pub resolved_pids: usize,
    pub strategies: Vec<StrategyRow>,
    pub pods_total: usize,
    pub pod_processes: usize,
    pub pods: Vec<PodRow>,
    /// Problems the agent reports (from /health) or met while polling.
    pub problems: Vec<String>,
}

/// BssData and policy counter fields, in display order: (JSON field, counter?).
const FIELDS: &[(&str, bool)] = &[
    ("nr_queued", false),
    ("nr_scheduled", false),
    ("nr_running", false),
    ("nr_online_cpus", false),
    ("nr_user_dispatches", true),
    ("nr_kernel_dispatches", true),
    ("nr_cancel_dispatches", true),
    ("nr_bounce_dispatches", true),
    ("nr_failed_dispatches", true),
    ("nr_sched_congested", true),
];
const POLICY_FIELDS: &[&str] = &[
    "nr_direct_dispatches",
    "nr_prio_dispatches",
    "nr_preemptions",
    "nr_starvation_guards",
    "nr_strategy_hits",
];
/// Policy fields of --dispatch user, shown once the dispatcher got work: (field, counter?).
const USER_FIELDS: &[(&str, bool)] = &[
    ("nr_user_enqueues", true),
    ("nr_user_fallbacks", true),
    ("nr_user_recovered", true),
    ("nr_user_withdrawn", true),
    ("nr_user_outstanding", false),
];

/// The agent's own rate field for a counter, when it computes one.
fn server_rate_field(name: &str) -> Option<&'static str> {
    Some(match name {
        "nr_user_dispatches" => "user_dispatches_per_s",
        "nr_kernel_dispatches" => "kernel_dispatches_per_s",
        "nr_cancel_dispatches" => "cancel_dispatches_per_s",
        "nr_bounce_dispatches" => "bounce_dispatches_per_s",
        "nr_failed_dispatches" => "failed_dispatches_per_s",
        "nr_sched_congested" => "sched_congested_per_s",
        "nr_preemptions" => "preemptions_per_s",
        "nr_strategy_hits" => "strategy_hits_per_s",
        _ => return None,
    })
}

struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(url: &str, ca_cert: Option<&std::path::Path>) -> Result<Self> {
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            agent: crate::tls::http_agent(Duration::from_secs(3), ca_cert)?,
        })
    }

    /// GET a JSON document; error and 5xx bodies are JSON too (e.g. /health's 503).
    fn get(&self, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let resp = match self.agent.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(anyhow!("GET {url}: {e}")),
        };
        resp.into_json()
            .with_context(|| format!("GET {url}: not JSON"))
    }
}

fn str_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Previous counter readings, for rates between polls.
#[derive(Default)]
struct Previous {
    at: Option<(String, Instant)>,
    values: Vec<(&'static str, u64)>,
}

fn fetch(client: &Client, opts: &TopOpts, prev: &mut Previous) -> Result<Snapshot> {
    let metrics = client.get("/api/v1/metrics")?;
    let mut problems = Vec::new();
    let health = client.get("/health").unwrap_or_else(|e| {
        problems.push(e.to_string());
        Value::Null
    });
    let config = client
        .get("/api/v1/scheduling/strategies/config")
        .unwrap_or_else(|e| {
            problems.push(e.to_string());
            Value::Null
        });
    let pods = client.get("/api/v1/pods/pids").unwrap_or_else(|e| {
        problems.push(e.to_string());
        Value::Null
    });
    if let Some(p) = health["problems"].as_array() {
        problems.extend(p.iter().filter_map(str_of));
    }

    // Counters: the agent's own scheduler first, else the newest external report.
    let (source, data, policy, rates, at) = if !metrics["metrics"].is_null() {
        let m = &metrics["metrics"];
        (
            "scheduler",
            &m["data"],
            Some(&m["policy"]),
            Some(&m["rates"]),
            str_of(&m["timestamp"]),
        )
    } else if let Some(ext) = metrics["external"].as_array().and_then(|a| a.first()) {
        (
            "external",
            &ext["data"],
            None,
            None,
            str_of(&ext["received_at"]),
        )
    } else {
        ("none", &Value::Null, None, None, None)
    };
    let mut counters = Vec::new();
    let now = Instant::now();
    let elapsed = prev
        .at
        .as_ref()
        .filter(|(t, _)| Some(t) != at.as_ref())
        .map(|(_, i)| now.duration_since(*i).as_secs_f64());
    let mut row = |name: &'static str, value: u64, counter: bool| {
        let server = server_rate_field(name).and_then(|f| rates.and_then(|r| r[f].as_f64()));
        let client_side = || {
            let (_, before) = prev.values.iter().find(|(n, _)| *n == name)?;
            let dt = elapsed?;
            (dt > 0.0).then(|| value.saturating_sub(*before) as f64 / dt)
        };
        let rate_per_s = if counter {
            server.or_else(client_side)
        } else {
            None
        };
        counters.push(CounterRow {
            name,
            value,
            rate_per_s,
            counter,
        });
    };
    if !data.is_null() {
        for (name, counter) in FIELDS {
            row(name, data[name].as_u64().unwrap_or(0), *counter);
        }
        if let Some(policy) = policy {
            for name in POLICY_FIELDS {
                row(name, policy[name].as_u64().unwrap_or(0), true);
            }
            if policy["nr_user_enqueues"].as_u64().unwrap_or(0) > 0 {
                for (name, counter) in USER_FIELDS {
                    row(name, policy[name].as_u64().unwrap_or(0), *counter);
                }
            }
        }
    }
    // Client-side rates only when the counters changed time (a new reading).
    if at.is_some() && prev.at.as_ref().map(|(t, _)| t) != at.as_ref() {
        prev.at = at.clone().map(|t| (t, now));
        prev.values = counters.iter().map(|c| (c.name, c.value)).collect();
    }

    // Strategies, the ones covering most PIDs first.
    let configured = config["strategies"].as_array().cloned().unwrap_or_default();
    let mut strategies: Vec<StrategyRow> = configured
        .iter()
        .map(|s| {
            let target = if let Some(pid) = s["pid"].as_u64() {
                format!("pid {pid}")
            } else if let Some(sel) = s["selectors"].as_array() {
                let sel: Vec<String> = sel
                    .iter()
                    .map(|l| {
                        format!(
                            "{}={}",
                            l["key"].as_str().unwrap_or(""),
                            l["value"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                format!("selectors {}", sel.join(","))
            } else if let Some(re) = s["command_regex"].as_str() {
                format!("command /{re}/")
            } else {
                "?".to_string()
            };
            StrategyRow {
                target,
                priority: s["priority"].as_bool().unwrap_or(false),
                execution_time_ns: s["execution_time"].as_u64().unwrap_or(0),
                pids: s["resolution"]["pids"].as_array().map_or(0, Vec::len),
                note: str_of(&s["resolution"]["note"]),
            }
        })
        .collect();
    let strategy_pids: std::collections::HashSet<u64> = configured
        .iter()
        .flat_map(|s| {
            s["resolution"]["pids"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|p| p.as_u64())
        .collect();
    strategies.sort_by_key(|s| std::cmp::Reverse(s.pids));
    let strategies_configured = strategies.len();
    strategies.truncate(opts.rows);

    // Pods, grouped by UID (one entry per container in the API), largest first.
    let mut by_pod: Vec<PodRow> = Vec::new();
    let mut pod_processes = 0;
    for c in pods["pods"].as_array().into_iter().flatten() {
        let uid = c["pod_uid"].as_str().unwrap_or("");
        let name = c["pod_name"].as_str().unwrap_or("");
        let ns = c["namespace"].as_str().unwrap_or("");
        let label = if name.is_empty() {
            uid.to_string()
        } else if ns.is_empty() {
            name.to_string()
        } else {
            format!("{ns}/{name}")
        };
        let procs = c["processes"].as_array().cloned().unwrap_or_default();
        let with = procs
            .iter()
            .filter(|p| {
                p["pid"]
                    .as_u64()
                    .is_some_and(|pid| strategy_pids.contains(&pid))
            })
            .count();
        pod_processes += procs.len();
        match by_pod.iter_mut().find(|p| p.pod == label) {
            Some(p) => {
                p.containers += 1;
                p.processes += procs.len();
                p.with_strategy += with;
            }
            None => by_pod.push(PodRow {
                pod: label,
                containers: 1,
                processes: procs.len(),
                with_strategy: with,
            }),
        }
    }
    by_pod.sort_by(|a, b| {
        (b.with_strategy, b.processes)
            .cmp(&(a.with_strategy, a.processes))
            .then(a.pod.cmp(&b.pod))
    });
    let pods_total = by_pod.len();
    by_pod.truncate(opts.rows);

    let sched = &health["components"]["scheduler"];
    Ok(Snapshot {
        url: client.base.clone(),
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        health: str_of(&health["status"]).unwrap_or_else(|| "unknown".into()),
        mode: str_of(&metrics["mode"]).unwrap_or_else(|| "unknown".into()),
        attached: sched["attached"].as_bool().unwrap_or(false),
        ops_name: str_of(&sched["ops_name"]),
        restarts: sched["restarts"].as_u64().unwrap_or(0),
        last_exit: str_of(&sched["last_exit"]),
        source: source.into(),
        counters_at: at,
        counters,
        strategies_configured,
        resolved_pids: strategy_pids.len(),
        strategies,
        pods_total,
        pod_processes,
        pods: by_pod,
        problems,
    })
}

fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The text view, `width` columns wide at most.
pub fn render(s: &Snapshot, width: usize) -> Vec<String> {
    let w = width.max(40);
    let mut out = Vec::new();
    out.push(cut(
        &format!(
            "scx_pilot top  {}  {}  health {}  mode {}",
            s.url, s.timestamp, s.health, s.mode
        ),
        w,
    ));
    let attached = if s.attached {
        format!("attached ({})", s.ops_name.as_deref().unwrap_or("?"))
    } else {
        "not attached".into()
    };
    let mut line = format!("scheduler {attached}  restarts {}", s.restarts);
    if let Some(e) = &s.last_exit {
        line.push_str(&format!("  last exit: {e}"));
    }
    out.push(cut(&line, w));
    for p in &s.problems {
        out.push(cut(&format!("! {p}"), w));
    }
    out.push(String::new());
    out.push(cut(
        &format!(
            "COUNTERS ({}{})",
            s.source,
            s.counters_at
                .as_deref()
                .map(|t| format!(", at {t}"))
                .unwrap_or_default()
        ),
        w,
    ));
    if s.counters.is_empty() {
        out.push("  no counters yet (no sample, no report)".into());
    }
    // Two columns when wide enough.
    let cells: Vec<String> = s
        .counters
        .iter()
        .map(|c| {
            let rate = match (c.counter, c.rate_per_s) {
                (true, Some(r)) => format!("{:>9}/s", human(r)),
                (true, None) => format!("{:>11}", "-"),
                (false, _) => format!("{:>11}", ""),
            };
            format!(
                "  {:<22}{:>12}{rate}",
                c.name.trim_start_matches("nr_"),
                human(c.value as f64)
            )
        })
        .collect();
    let cell_w = 47;
    if w >= cell_w * 2 {
        for pair in cells.chunks(2) {
            out.push(
                pair.iter()
                    .map(|c| format!("{c:<cell_w$}"))
                    .collect::<String>()
                    .trim_end()
                    .to_string(),
            );
        }
    } else {
        out.extend(cells.into_iter().map(|c| cut(&c, w)));
    }
    out.push(String::new());
    out.push(cut(
        &format!(
            "STRATEGIES  {} configured, {} PIDs resolved",
            s.strategies_configured, s.resolved_pids
        ),
        w,
    ));
    if !s.strategies.is_empty() {
        out.push(cut(
            &format!("  {:>5} {:>4} {:>10}  TARGET", "PIDS", "PRIO", "SLICE"),
            w,
        ));
    }
    for st in &s.strategies {
        let mut line = format!(
            "  {:>5} {:>4} {:>8}us  {}",
            st.pids,
            if st.priority { "yes" } else { "no" },
            st.execution_time_ns / 1000,
            st.target
        );
        if let Some(n) = &st.note {
            line.push_str(&format!("  ({n})"));
        }
        out.push(cut(&line, w));
    }
    out.push(String::new());
    out.push(cut(
        &format!("PODS  {} pods, {} processes", s.pods_total, s.pod_processes),
        w,
    ));
    if !s.pods.is_empty() {
        out.push(cut(
            &format!("  {:>5} {:>5} {:>5}  POD", "CONT", "PROCS", "STRAT"),
            w,
        ));
    }
    for p in &s.pods {
        out.push(cut(
            &format!(
                "  {:>5} {:>5} {:>5}  {}",
                p.containers, p.processes, p.with_strategy, p.pod
            ),
            w,
        ));
    }
    out
}

/// Restores the terminal however the live view ends.
struct TermGuard;

impl TermGuard {
    fn enter() -> Result<Self> {
        use crossterm::{cursor, terminal, ExecutableCommand};
        terminal::enable_raw_mode().context("raw mode")?;
        let mut out = std::io::stdout();
        out.execute(terminal::EnterAlternateScreen)?;
        out.execute(cursor::Hide)?;
        Ok(TermGuard)
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        use crossterm::{cursor, terminal, ExecutableCommand};
        let mut out = std::io::stdout();
        let _ = out.execute(cursor::Show);
        let _ = out.execute(terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

fn live(client: &Client, opts: &TopOpts) -> Result<()> {
    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    use crossterm::{cursor, queue, terminal};
    let _guard = TermGuard::enter()?;
    let mut prev = Previous::default();
    let interval = Duration::from_millis(opts.interval_ms);
    loop {
        // A pseudo-terminal may report 0x0 (nobody set its size).
        let (cols, rows) = match terminal::size() {
            Ok((c, r)) if c > 0 && r > 0 => (c, r),
            _ => (100, 40),
        };
        let lines = match fetch(client, opts, &mut prev) {
            Ok(s) => render(&s, cols as usize),
            Err(e) => vec![
                format!("scx_pilot top  {}", client.base),
                String::new(),
                cut(&format!("cannot reach the agent: {e:#}"), cols as usize),
                "retrying; q to quit".into(),
            ],
        };
        let mut out = std::io::stdout().lock();
        queue!(
            out,
            cursor::MoveTo(0, 0),
            terminal::Clear(terminal::ClearType::All)
        )?;
        for (i, l) in lines
            .iter()
            .take(rows.saturating_sub(1) as usize)
            .enumerate()
        {
            queue!(out, cursor::MoveTo(0, i as u16))?;
            out.write_all(l.as_bytes())?;
        }
        queue!(out, cursor::MoveTo(0, rows.saturating_sub(1)))?;
        out.write_all(b"q: quit")?;
        out.flush()?;
        drop(out);
        let deadline = Instant::now() + interval;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if !event::poll(left)? {
                break;
            }
            match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    let ctrl_c =
                        k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                        return Ok(());
                    }
                }
                Event::Resize(..) => break,
                _ => {}
            }
        }
    }
}

/// Run `scx_pilot top` with the arguments after `top`.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<()> {
    let opts = TopOpts::parse_from(args);
    let client = Client::new(&opts.url, opts.ca_cert.as_deref())?;
    let mut prev = Previous::default();
    let print = |s: &Snapshot| -> Result<()> {
        let mut out = std::io::stdout().lock();
        if opts.json {
            serde_json::to_writer(&mut out, s)?;
            writeln!(out)?;
        } else {
            // A pipe or file gets long lines; a terminal its own width.
            let width = if std::io::stdout().is_terminal() {
                crossterm::terminal::size()
                    .ok()
                    .filter(|(c, _)| *c > 0)
                    .map_or(100, |(c, _)| c as usize)
            } else {
                200
            };
            for l in render(s, width) {
                writeln!(out, "{l}")?;
            }
        }
        out.flush()?;
        Ok(())
    };
    if opts.once {
        return print(&fetch(&client, &opts, &mut prev)?);
    }
    if !opts.json && std::io::stdout().is_terminal() {
        return live(&client, &opts);
    }
    // Streaming (JSON lines, or text to a pipe) until SIGINT/SIGTERM.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the SIGINT handler")?;
    while !stop.load(Ordering::SeqCst) {
        match fetch(&client, &opts, &mut prev) {
            Ok(s) => print(&s)?,
            Err(e) => eprintln!("scx_pilot top: {e:#}"),
        }
        let deadline = Instant::now() + Duration::from_millis(opts.interval_ms);
        while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fits_the_width_and_shows_rates() {
        let s = Snapshot {
            url: "http://127.0.0.1:8080".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            health: "healthy".into(),
            mode: "kernel".into(),
            attached: true,
            ops_name: Some("scx_pilot".into()),
            restarts: 0,
            last_exit: None,
            source: "scheduler".into(),
            counters_at: None,
            counters: vec![CounterRow {
                name: "nr_kernel_dispatches",
                value: 123_456,
                rate_per_s: Some(2500.0),
                counter: true,
            }],
            strategies_configured: 0,
            resolved_pids: 0,
            strategies: vec![],
            pods_total: 0,
            pod_processes: 0,
            pods: vec![],
            problems: vec![],
        };
        for w in [40, 80, 200] {
            for l in render(&s, w) {
                assert!(l.chars().count() <= w, "{w}: {l}");
            }
        }
        let text = render(&s, 120).join("\n");
        assert!(text.contains("kernel_dispatches"), "{text}");
        assert!(text.contains("123.5k"), "{text}");
        assert!(text.contains("2500/s"), "{text}");
    }
}
