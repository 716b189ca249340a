//! What the flags mean for each part: the configs built from [`Opts`] (all
//! but the HTTP layer's, which `cli.rs` builds) and the `--strategy` parser.

use std::path::PathBuf;
use std::time::Duration;

use super::duration::{count_in, Unit};
use super::{Dispatch, Opts};
use crate::sched::preflight::{self, PreflightError};
use crate::sched::SchedConfig;
use crate::strategy::{DesiredStrategies, PidStrategy, MAX_SLICE_NS, MIN_SLICE_NS};

impl Opts {
    pub fn sched_config(&self) -> SchedConfig {
        SchedConfig {
            slice_us: self.slice_us,
            starvation_ms: self.starvation_ms,
            sample_interval: self.sample_interval(),
            user_dispatch: self.dispatch == Dispatch::User,
            user_stall_ms: self.user_stall_ms,
            user_queue_depth: self.user_queue_depth,
            exit_dump_len: self.exit_dump_len,
            test_hooks: self.dispatcher_test_hooks,
        }
    }

    /// Scheduler mode's checks (privilege first, then the kernel), made
    /// before anything is created on disk: a run without root ends with one
    /// sentence, not with an error about the state directory.
    pub fn preflight(&self) -> anyhow::Result<()> {
        if self.api_only {
            return Ok(());
        }
        if !preflight::has_cap_sys_admin() {
            return Err(PreflightError::NotPrivileged.into());
        }
        Ok(preflight::check()?)
    }

    pub fn pods_cache(&self) -> Duration {
        Duration::from_millis(self.pods_cache_ms)
    }

    pub fn rescan_interval(&self) -> Duration {
        Duration::from_millis(self.rescan_interval_ms)
    }

    pub fn stats_interval(&self) -> Duration {
        Duration::from_millis(self.stats_interval_ms)
    }

    pub fn sample_interval(&self) -> Duration {
        Duration::from_millis(self.sample_interval_ms)
    }

    /// Samples kept in the history ring; more than its hard cap is an error
    /// (the flags could otherwise ask for gigabytes).
    pub fn history_capacity(&self) -> anyhow::Result<usize> {
        use crate::metrics::{MAX_HISTORY_BYTES, MAX_HISTORY_SAMPLES};
        let samples = (self.history_seconds * 1000).div_ceil(self.sample_interval_ms) as usize;
        anyhow::ensure!(
            samples <= MAX_HISTORY_SAMPLES,
            "--history-seconds {} at --sample-interval-ms {} keeps {samples} samples; at most \
             {MAX_HISTORY_SAMPLES} ({} MiB) are kept: lower --history-seconds or raise \
             --sample-interval-ms",
            self.history_seconds,
            self.sample_interval_ms,
            MAX_HISTORY_BYTES >> 20
        );
        Ok(samples)
    }

    pub fn kube_config(&self) -> crate::kube::KubeConfig {
        crate::kube::KubeConfig {
            pods_file: self.pods_file.clone(),
            kubeconfig: self.kubeconfig.clone(),
            in_cluster: self.in_cluster,
            node_name: self.node_name.clone(),
        }
    }

    /// The write token file: --token-file, or <state-dir>/token.
    pub fn token_file(&self) -> PathBuf {
        self.token_file
            .clone()
            .unwrap_or_else(|| crate::auth::default_token_file(&self.state_dir))
    }

    /// The JWT signing key: --jwt-key, or <state-dir>/jwt_private.pem.
    pub fn jwt_key(&self) -> PathBuf {
        self.jwt_key
            .clone()
            .unwrap_or_else(|| self.state_dir.join("jwt_private.pem"))
    }

    /// Where its public half goes: --jwt-public-key, or <state-dir>/jwt_public.pem.
    pub fn jwt_public_key(&self) -> PathBuf {
        self.jwt_public_key
            .clone()
            .unwrap_or_else(|| self.state_dir.join("jwt_public.pem"))
    }

    /// The webhook's settings, when --alert-webhook is set.
    pub fn webhook_config(&self) -> Option<crate::alerts::webhook::WebhookConfig> {
        self.alert_webhook
            .as_ref()
            .map(|url| crate::alerts::webhook::WebhookConfig {
                url: url.clone(),
                timeout: Duration::from_millis(self.alert_webhook_timeout_ms),
                retries: self.alert_webhook_retries,
                ca_cert: self.alert_webhook_ca_cert.clone(),
            })
    }

    pub fn static_strategies(&self) -> DesiredStrategies {
        self.strategies.iter().copied().collect()
    }
}

/// `PID:SLICE[:prio]` of a `--strategy` flag; SLICE a duration, a bare
/// number nanoseconds (as `execution_time` in the API).
pub(super) fn parse_strategy(s: &str) -> Result<(u32, PidStrategy), String> {
    let mut parts = s.split(':');
    let (Some(pid), Some(slice)) = (parts.next(), parts.next()) else {
        return Err("expected PID:SLICE[:prio]".into());
    };
    let pid: u32 = pid
        .parse()
        .map_err(|_| format!("PID '{pid}' is not a number"))?;
    if pid <= 1 {
        return Err(format!("PID {pid} cannot carry a strategy"));
    }
    let slice_ns = count_in(Unit::Nanos, MIN_SLICE_NS, MAX_SLICE_NS)(slice)
        .map_err(|e| format!("SLICE: {e}"))?;
    let priority = match parts.next() {
        None => false,
        Some("prio") => true,
        Some(other) => return Err(format!("unknown flag '{other}' (only 'prio')")),
    };
    if parts.next().is_some() {
        return Err("expected PID:SLICE[:prio]".into());
    }
    Ok((pid, PidStrategy { slice_ns, priority }))
}
