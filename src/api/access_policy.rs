//! Who may call what, as the command line asks: the static token loaded or
//! created (unless `--auth none`), the JWT keys (unless `--jwt off`), the
//! Host and Origin checks, the rate limit, whether reads need a token.
//! Logs the warnings an operator must see; never a token.

use std::time::Duration;

use anyhow::bail;

use super::auth::{HostCheck, WritePolicy};
use super::cors::WriteOrigins;
use crate::auth::{load_or_create, TokenOrigin};
use crate::cli::{AuthMode, JwtMode, Opts};

pub fn from_opts(opts: &Opts) -> anyhow::Result<WritePolicy> {
    let listen = opts.listen.ip();
    let token = match opts.auth {
        AuthMode::None => {
            if opts.auth_reads {
                bail!("--auth-reads needs --auth token: with --auth none nothing checks a token");
            }
            log::warn!(
                "--auth none: anyone who can reach {} may change how every process is scheduled",
                opts.listen
            );
            if !listen.is_loopback() {
                log::warn!(
                    "writes are open on a non-loopback address ({listen}) without a token: \
                     any host on the network may post strategies"
                );
            }
            None
        }
        AuthMode::Token => {
            let path = opts.token_file();
            let (token, origin) = load_or_create(&path)?;
            match origin {
                TokenOrigin::Created => log::info!(
                    "writes need the bearer token in {} (created now, mode 0600)",
                    path.display()
                ),
                TokenOrigin::Existing => {
                    log::info!("writes need the bearer token in {}", path.display())
                }
            }
            if opts.auth_reads {
                log::info!("--auth-reads: reads under /api/v1 need a token too");
            }
            Some(token)
        }
    };
    // With --auth none the endpoint still answers: Gthulhu's scheduler of
    // 2025-08 cannot turn auth off and asks for a token before anything else.
    let jwt = match opts.jwt {
        JwtMode::Off => None,
        JwtMode::On => Some(crate::jwt_files::load(
            &opts.jwt_key(),
            &opts.jwt_public_key(),
            Duration::from_secs(opts.jwt_token_hours * 3600),
        )?),
    };
    let write_origins = WriteOrigins::new(&opts.cors_write_origins).map_err(anyhow::Error::msg)?;
    Ok(WritePolicy {
        token,
        hosts: Some(HostCheck::for_listen(listen, &opts.allowed_hosts)),
        rate_per_s: (opts.write_rate_limit > 0).then_some(opts.write_rate_limit),
        jwt,
        auth_reads: opts.auth_reads,
        write_origins,
    })
}
