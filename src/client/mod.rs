//! Client subcommands for operators on the node, over the agent's HTTP API:
//!
//! - `scx_pilot status`: the agent's health, scheduler and counters;
//! - `scx_pilot strategies get`: the strategies as posted, with what each resolved to;
//! - `scx_pilot strategies set -f FILE` (`-` for stdin): replace the whole set.
//!   The bearer token is read from the token file, as the agent reads it.
//!
//! Readable output by default, `--json` for the API's own JSON; any error
//! (unreachable agent, HTTP error, bad file) exits non-zero with one line.
//!
//! [`http`] is the one HTTP client of the agent's API and [`replies`] the
//! shapes of its answers; `scx_pilot top` uses both too.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub(crate) mod http;
pub(crate) mod replies;
mod status;
mod strategies;

use http::ApiClient;

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
    #[arg(
        long = "timeout",
        global = true,
        default_value_t = 10,
        value_name = "TIMEOUT"
    )]
    pub timeout_s: u64,

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

fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Run a client command line (`args` starts with the program name).
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<()> {
    let opts = ClientOpts::parse_from(args);
    let client = ApiClient::new(
        &opts.url,
        Duration::from_secs(opts.timeout_s.max(1)),
        opts.ca_cert.as_deref(),
    )?;
    match &opts.command {
        ClientCommand::Status => status::run(&client, opts.json),
        ClientCommand::Strategies(StrategiesCommand::Get) => strategies::get(&client, opts.json),
        ClientCommand::Strategies(StrategiesCommand::Set { file }) => {
            strategies::set(client, &opts, file)
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
