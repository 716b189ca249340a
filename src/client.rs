//! Client subcommands for operators on the node, over the agent's HTTP API:
//!
//! - `scx_pilot status`: the agent's health, scheduler and counters;
//! - `scx_pilot strategies get`: the strategies as posted, with what each resolved to;
//! - `scx_pilot strategies set -f FILE` (`-` for stdin): replace the whole set.
//!   The bearer token is read from the token file, as the agent reads it.
//!
//! Readable output by default, `--json` for the API's own JSON; any error
//! (unreachable agent, HTTP error, bad file) exits non-zero with one line.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::Value;

/// The first word of a client command line, as `main` dispatches on it.
pub const COMMANDS: &[&str] = &["status", "strategies"];

#[derive(Debug, Parser)]
#[command(
    name = "scx_pilot",
    version,
    about = "Client of a running scx_pilot agent"
)]
pub struct ClientOpts {
    /// Base URL of the agent's HTTP API.
    #[arg(
        long,
        global = true,
        env = "SCX_PILOT_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,

    /// The agent's state directory (where its token is by default).
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/scx_pilot",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,

    /// The write token file [default: <state-dir>/token].
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Trust this PEM certificate (the agent's --tls-cert, or its CA) for an
    /// https:// --url [default: the system's public roots].
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Print the API's JSON instead of the readable summary.
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for the agent.
    #[arg(long, global = true, default_value_t = 10)]
    pub timeout: u64,

    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Health, scheduler state and counters of the agent.
    Status,
    /// Read or replace the scheduling strategies.
    #[command(subcommand)]
    Strategies(StrategiesCommand),
}

#[derive(Debug, Subcommand)]
pub enum StrategiesCommand {
    /// The strategies as posted, with what each resolved to.
    Get,
    /// Replace the whole set with the one in FILE: `{"strategies": [...]}`
    /// as POST /api/v1/scheduling/strategies takes it, or a bare list.
    Set {
        /// JSON file with the new set; `-` reads standard input.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
}

struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(opts: &ClientOpts) -> Result<Self> {
        Ok(Self {
            agent: crate::tls::http_agent(
                Duration::from_secs(opts.timeout.max(1)),
                opts.ca_cert.as_deref(),
            )?,
            base: opts.url.trim_end_matches('/').to_string(),
        })
    }

    /// Send, and return the JSON body of a 2xx answer; any other outcome is an
    /// error naming the status and the API's error message.
    fn call(&self, req: ureq::Request, body: Option<&str>) -> Result<Value> {
        let url = req.url().to_string();
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(b),
            None => req.call(),
        };
        match result {
            Ok(r) => r
                .into_json::<Value>()
                .with_context(|| format!("{url}: the answer is not JSON")),
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                let msg = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or(text);
                bail!("{url}: HTTP {code}: {msg}")
            }
            // A transport error names the URL itself.
            Err(e) => Err(anyhow!("{e}")),
        }
    }

    fn get(&self, path: &str) -> Result<Value> {
        self.call(self.agent.get(&format!("{}{path}", self.base)), None)
    }

    /// `GET /health` answers 503 with a body when unhealthy: keep the body.
    fn health(&self) -> Result<Value> {
        let url = format!("{}/health", self.base);
        match self.agent.get(&url).call() {
            Ok(r) => Ok(r.into_json()?),
            Err(ureq::Error::Status(503, r)) => Ok(r.into_json()?),
            Err(ureq::Error::Status(code, _)) => bail!("{url}: HTTP {code}"),
            Err(e) => Err(anyhow!("{e}")),
        }
    }
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn status(c: &Client, json: bool) -> Result<()> {
    let health = c.health()?;
    let metrics = c.get("/api/v1/metrics")?;
    if json {
        return print_json(&serde_json::json!({"health": health, "metrics": metrics}));
    }
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    println!("status     {}", s(&health["status"]));
    println!("mode       {}", s(&health["mode"]));
    if let Some(components) = health["components"].as_object() {
        for (name, c) in components {
            let detail = c
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}={}", s(v)))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_else(|| s(c));
            println!("{:<10} {detail}", name);
        }
    }
    let m = &metrics["metrics"];
    if m.is_null() {
        println!("counters   none yet");
    } else {
        println!("sampled    {}", s(&m["timestamp"]));
        if let Some(data) = m["data"].as_object() {
            for (k, v) in data {
                println!("  {k:<22} {}", s(v));
            }
        }
    }
    let unhealthy = health["status"].as_str() != Some("healthy");
    if unhealthy {
        bail!("the agent is not healthy");
    }
    Ok(())
}

fn strategies_get(c: &Client, json: bool) -> Result<()> {
    let v = c.get("/api/v1/scheduling/strategies/config")?;
    if json {
        return print_json(&v);
    }
    let list = v["strategies"].as_array().cloned().unwrap_or_default();
    println!(
        "{} strategies, updated {}",
        list.len(),
        v["updated_at"].as_str().unwrap_or("-")
    );
    for (i, st) in list.iter().enumerate() {
        let mut target = st.clone();
        let resolution = target
            .as_object_mut()
            .and_then(|o| o.remove("resolution"))
            .unwrap_or(Value::Null);
        println!("  [{i}] {target}");
        if !resolution.is_null() {
            println!("      -> {resolution}");
        }
    }
    Ok(())
}

fn strategies_set(c: &Client, opts: &ClientOpts, file: &PathBuf) -> Result<()> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", file.display()))?;
    // A bare list is the set itself.
    let body = match value {
        Value::Array(_) => serde_json::json!({ "strategies": value }),
        other => other,
    };
    let token_file = opts
        .token_file
        .clone()
        .unwrap_or_else(|| crate::auth::default_token_file(&opts.state_dir));
    let token = crate::auth::read(&token_file)
        .with_context(|| format!("reading the write token {}", token_file.display()))?;
    let req = c
        .agent
        .post(&format!("{}/api/v1/scheduling/strategies", c.base))
        .set("Authorization", &format!("Bearer {}", token.expose()));
    let v = c.call(req, Some(&body.to_string()))?;
    if opts.json {
        return print_json(&v);
    }
    let n = body["strategies"].as_array().map_or(0, Vec::len);
    println!(
        "{} ({n} strategies, {})",
        v["message"].as_str().unwrap_or("saved"),
        v["timestamp"].as_str().unwrap_or("-")
    );
    Ok(())
}

/// Run a client command line (`args` starts with the program name).
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<()> {
    let opts = ClientOpts::parse_from(args);
    let c = Client::new(&opts)?;
    match &opts.command {
        ClientCommand::Status => status(&c, opts.json),
        ClientCommand::Strategies(StrategiesCommand::Get) => strategies_get(&c, opts.json),
        ClientCommand::Strategies(StrategiesCommand::Set { file }) => {
            strategies_set(&c, &opts, file)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        ClientOpts::command().debug_assert();
    }

    #[test]
    fn parses_the_three_commands() {
        let o = ClientOpts::parse_from(["scx_pilot", "status"]);
        assert!(matches!(o.command, ClientCommand::Status));
        let o = ClientOpts::parse_from(["scx_pilot", "strategies", "get", "--json"]);
        assert!(o.json);
        let o = ClientOpts::parse_from(["scx_pilot", "strategies", "set", "-f", "x.json"]);
        match o.command {
            ClientCommand::Strategies(StrategiesCommand::Set { file }) => {
                assert_eq!(file, PathBuf::from("x.json"))
            }
            other => panic!("{other:?}"),
        }
        assert!(ClientOpts::try_parse_from(["scx_pilot", "strategies", "set"]).is_err());
    }
}
