//! The command line: the agent's flags ([`Opts`], when no subcommand is
//! given) and the operator subcommands, each with its own `--help`.

use clap::{Parser, Subcommand};

use crate::api;

mod configs;
pub mod duration;
mod opts;
pub mod state_dir;

pub use opts::Opts;

use crate::client::{ClientArgs, StrategiesArgs};

/// Where normal tasks are decided (--dispatch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dispatch {
    Kernel,
    User,
}

/// `scx_pilot [FLAGS]` runs the agent; `scx_pilot COMMAND` runs a command.
#[derive(Debug, Parser)]
#[command(
    name = "scx_pilot",
    version,
    about = "A sched_ext CPU scheduler with per-PID strategies and an HTTP API",
    long_about = "A sched_ext CPU scheduler with per-PID strategies and an HTTP API.\n\n\
        Without a command: run the agent (as root; --api-only serves the API alone, as any \
        user). Durations take units (20ms, 500us, 2s); a bare number keeps the unit the \
        flag names.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(flatten)]
    pub agent: Opts,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The operator commands: clients of a running agent, and the CRD.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Health, scheduler state and counters of a running agent.
    Status(ClientArgs),
    /// Read or replace a running agent's scheduling strategies.
    Strategies(StrategiesArgs),
    /// Watch a running agent in the terminal: counters with rates, scheduler
    /// state, strategies, pods and alerts.
    Top(crate::top::TopOpts),
    /// Print the SchedulingStrategy CRD (YAML), for `kubectl apply -f -`.
    Crd,
}

/// Whether Gthulhu-compatible JWTs are issued and accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JwtMode {
    On,
    Off,
}

/// How writes are authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// A bearer token on every write.
    Token,
    /// No authorization: anyone who reaches the port may write.
    None,
}

/// The HTTP layer's settings from the flags: the one place below main.rs
/// where the command line meets `api`.
impl Opts {
    /// Who may call what, as the command line asks: see [`api::access_policy`].
    pub fn write_policy(&self) -> anyhow::Result<api::auth::WritePolicy> {
        api::access_policy::from_opts(self)
    }

    pub fn api_config(&self) -> api::ApiConfig {
        api::ApiConfig {
            listen: self.listen,
            workers: self.api_workers as usize,
            cors_origin: self.cors_origin.clone(),
            body_limit: self.max_body_bytes as usize,
            writes: Default::default(),
            tls: None,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::configs::parse_strategy;
    use super::*;
    use crate::client::StrategiesCommand;
    use crate::strategy::PidStrategy;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("scx_pilot").chain(args.iter().copied()))
    }

    fn opts(args: &[&str]) -> Opts {
        let cli = parse(args).unwrap();
        assert!(cli.command.is_none());
        cli.agent
    }

    #[test]
    fn history_over_its_hard_cap_is_refused() {
        assert_eq!(opts(&[]).history_capacity().unwrap(), 3600);
        let e = opts(&["--history-seconds", "604800", "--sample-interval-ms", "10"])
            .history_capacity()
            .unwrap_err()
            .to_string();
        assert!(e.contains("60480000 samples"), "{e}");
        assert!(e.contains("--sample-interval-ms"), "{e}");
    }

    #[test]
    fn duration_flags_take_units_and_bare_numbers_keep_their_unit() {
        let o = opts(&[]);
        assert_eq!((o.slice_us, o.sample_interval_ms), (2000, 1000));
        assert_eq!(o.jwt_token_hours, 24);
        let o = opts(&[
            "--slice-us=20ms",
            "--starvation-ms=1s",
            "--user-stall-ms=500",
            "--sample-interval-ms=2s",
            "--history-seconds=1h",
            "--jwt-token-hours=2d",
            "--pods-cache-ms=0",
            "--rescan-interval-ms=250ms",
            "--stats-interval-ms=1500ms",
            "--alert-webhook-timeout-ms=3s",
        ]);
        assert_eq!(
            (o.slice_us, o.starvation_ms, o.user_stall_ms),
            (20_000, 1000, 500)
        );
        assert_eq!((o.sample_interval_ms, o.history_seconds), (2000, 3600));
        assert_eq!((o.jwt_token_hours, o.pods_cache_ms), (48, 0));
        assert_eq!((o.rescan_interval_ms, o.stats_interval_ms), (250, 1500));
        assert_eq!(o.alert_webhook_timeout_ms, 3000);
        assert_eq!(opts(&["--slice-us", "500us"]).slice_us, 500);
        for bad in [
            ["--slice-us", "2s"],
            ["--slice-us", "10us"],
            ["--sample-interval-ms", "1500us"],
            ["--starvation-ms", "soon"],
        ] {
            let e = parse(&bad).unwrap_err().to_string();
            assert!(e.contains(bad[1]), "{bad:?}: {e}");
        }
    }

    #[test]
    fn parses_strategies() {
        let prio = |slice_ns| PidStrategy {
            slice_ns,
            priority: true,
        };
        assert_eq!(
            parse_strategy("1234:20000000:prio"),
            Ok((1234, prio(20_000_000)))
        );
        assert_eq!(
            parse_strategy("1234:20ms:prio"),
            Ok((1234, prio(20_000_000)))
        );
        let plain = PidStrategy {
            slice_ns: 50_000,
            priority: false,
        };
        assert_eq!(parse_strategy("99:50000"), Ok((99, plain)));
        assert_eq!(parse_strategy("99:50us"), Ok((99, plain)));
        for bad in [
            "",
            "12",
            "x:100000",
            "1:100000",
            "5:10",
            "5:2000000000",
            "5:2s",
            "5:100000:fast",
            "5:100000:prio:x",
        ] {
            assert!(parse_strategy(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn subcommands_take_their_own_flags_and_not_the_agents() {
        match parse(&["status", "--json", "--timeout", "1500ms"])
            .unwrap()
            .command
        {
            Some(Command::Status(c)) => {
                assert!(c.json);
                assert_eq!(c.timeout, std::time::Duration::from_millis(1500));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["status", "--timeout", "3"]).unwrap().command {
            Some(Command::Status(c)) => assert_eq!(c.timeout.as_secs(), 3),
            other => panic!("{other:?}"),
        }
        // Client flags after the nested command too (they are global).
        match parse(&["strategies", "set", "-f", "x.json", "--url", "http://h:1"])
            .unwrap()
            .command
        {
            Some(Command::Strategies(s)) => {
                assert_eq!(s.client.url, "http://h:1");
                match s.command {
                    StrategiesCommand::Set { file } => assert_eq!(file.to_str(), Some("x.json")),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["strategies", "set"]).is_err());
        assert!(matches!(
            parse(&["crd"]).unwrap().command,
            Some(Command::Crd)
        ));
        assert!(matches!(
            parse(&["top", "--once"]).unwrap().command,
            Some(Command::Top(_))
        ));
        // An agent flag with a command is refused, not silently ignored.
        assert!(parse(&["--api-only", "status"]).is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
