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
use clap::{Args, Subcommand};

use crate::cli::duration::{at_least, Unit};

pub(crate) mod http;
pub(crate) mod replies;
mod status;
mod strategies;

use http::ApiClient;

/// What every client command takes: where the agent is, how to trust and
/// authenticate to it, how to print. Global, so `strategies get --json` works.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the agent's HTTP API.
    #[arg(
        long,
        global = true,
        env = "SCX_PILOT_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,

    /// The agent's state directory, where its token is by default [default:
    /// the agent's: /var/lib/scx_pilot as root, else the user's state dir].
    #[arg(long, global = true, default_value_os_t = crate::cli::state_dir::default_state_dir(), hide_default_value = true, value_name = "DIR")]
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

    /// How long to wait for the agent: a duration (`500ms`, `10s`); a bare
    /// number is seconds.
    #[arg(long, global = true, default_value = "10", value_parser = at_least(Unit::Secs, 0), value_name = "DURATION")]
    pub timeout: Duration,
}

/// `scx_pilot strategies [OPTIONS] get|set`.
#[derive(Debug, Args)]
pub struct StrategiesArgs {
    #[command(flatten)]
    pub client: ClientArgs,

    #[command(subcommand)]
    pub command: StrategiesCommand,
}

/// A client command, as the command line chose it.
#[derive(Debug)]
pub enum ClientCommand<'a> {
    Status,
    Strategies(&'a StrategiesCommand),
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

/// Run a client command against the agent `args` names.
pub fn run(args: &ClientArgs, command: ClientCommand) -> Result<()> {
    // Zero would make every request time out at once.
    let timeout = args.timeout.max(Duration::from_millis(1));
    let client = ApiClient::new(&args.url, timeout, args.ca_cert.as_deref())?;
    match command {
        ClientCommand::Status => status::run(&client, args.json),
        ClientCommand::Strategies(StrategiesCommand::Get) => strategies::get(&client, args.json),
        ClientCommand::Strategies(StrategiesCommand::Set { file }) => {
            strategies::set(client, args, file)
        }
    }
}
