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

use anyhow::{Context, Result};
use clap::Parser;

mod counters;
mod fetch;
mod rates;
mod render;
mod replies;
mod snapshot;
mod terminal;

use crate::cli::duration::{count_in, Unit};
use crate::client::http::ApiClient;
use fetch::fetch;
use rates::Previous;
use render::render;
use snapshot::Snapshot;

/// Short, so an unreachable agent shows within a refresh or two.
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the streaming loop looks for SIGINT/SIGTERM while it waits.
const STOP_CHECK: Duration = Duration::from_millis(20);

/// Watch a running scx_pilot agent: counters with rates, scheduler state,
/// firing alerts, strategies, and pods with their CPU and run-queue wait.
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

    /// Refresh interval. A duration (`500ms`, `2s`); a bare number is
    /// milliseconds, as it was for --interval-ms.
    #[arg(long = "interval", visible_alias = "interval-ms", default_value_t = 1000, value_parser = count_in(Unit::Millis, 100, 60_000), value_name = "DURATION")]
    pub interval_ms: u64,

    /// Print one snapshot and exit.
    #[arg(long)]
    pub once: bool,

    /// Machine-readable output: one JSON object per snapshot.
    #[arg(long)]
    pub json: bool,

    /// Rows of alerts, of strategies and of pods shown; the rest are
    /// counted ("+N more").
    #[arg(long, default_value_t = 8)]
    pub rows: usize,
}

/// Run `scx_pilot top` with the arguments after `top`.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<()> {
    let opts = TopOpts::parse_from(args);
    let client = ApiClient::new(&opts.url, HTTP_TIMEOUT, opts.ca_cert.as_deref())?;
    if opts.once {
        return print(&opts, &fetch(&client, opts.rows, &mut Previous::default())?);
    }
    if !opts.json && std::io::stdout().is_terminal() {
        return terminal::live(&client, &opts);
    }
    stream(&client, &opts)
}

/// Print snapshots (JSON lines, or text to a pipe) until SIGINT/SIGTERM.
fn stream(client: &ApiClient, opts: &TopOpts) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the SIGINT handler")?;
    let mut prev = Previous::default();
    while !stop.load(Ordering::SeqCst) {
        match fetch(client, opts.rows, &mut prev) {
            Ok(s) => print(opts, &s)?,
            Err(e) => eprintln!("scx_pilot top: {e:#}"),
        }
        let deadline = Instant::now() + Duration::from_millis(opts.interval_ms);
        while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(STOP_CHECK);
        }
    }
    Ok(())
}

/// One snapshot on standard output: a JSON line, or the text view.
fn print(opts: &TopOpts, s: &Snapshot) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if opts.json {
        serde_json::to_writer(&mut out, s)?;
        writeln!(out)?;
    } else {
        for l in render(s, terminal::text_width()) {
            writeln!(out, "{l}")?;
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(args: &[&str]) -> Result<u64, clap::Error> {
        TopOpts::try_parse_from(["top"].iter().chain(args)).map(|o| o.interval_ms)
    }

    #[test]
    fn the_interval_takes_units_and_the_old_flag_still_works() {
        assert_eq!(interval(&[]).unwrap(), 1000);
        assert_eq!(interval(&["--interval", "500ms"]).unwrap(), 500);
        assert_eq!(interval(&["--interval", "2s"]).unwrap(), 2000);
        assert_eq!(interval(&["--interval-ms", "200"]).unwrap(), 200);
        assert_eq!(interval(&["--interval-ms=1500ms"]).unwrap(), 1500);
        let e = interval(&["--interval", "50ms"]).unwrap_err().to_string();
        assert!(e.contains("100ms..=1m"), "{e}");
        assert!(interval(&["--interval", "1500us"]).is_err());
    }
}
