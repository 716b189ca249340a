//! The agent's flags, grouped under the headings `--help` shows. Every flag
//! says what it trades off; flags of a duration take units (`20ms`, `2s`) and
//! read a bare number in the unit their name ends with.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::duration::{count_in, Unit};
use super::{configs, state_dir, AuthMode, Dispatch, JwtMode};
use crate::sched::bpf_intf::{
    pilot_consts_DEFAULT_SLICE_NS, pilot_consts_DEFAULT_STARVATION_NS,
    pilot_consts_DEFAULT_USER_STALL_NS, pilot_consts_USER_RING_TASKS,
};
use crate::strategy::{PidStrategy, PriorityWire};

// The scheduler's defaults are the BPF side's (bpf/intf.h), in the flags' units.
const DEFAULT_SLICE_US: u64 = pilot_consts_DEFAULT_SLICE_NS as u64 / 1_000;
const DEFAULT_STARVATION_MS: u64 = pilot_consts_DEFAULT_STARVATION_NS as u64 / 1_000_000;
const DEFAULT_USER_STALL_MS: u64 = pilot_consts_DEFAULT_USER_STALL_NS as u64 / 1_000_000;
const USER_RING_TASKS: u64 = pilot_consts_USER_RING_TASKS as u64;

const SCHEDULER: &str = "Scheduler";
const API: &str = "API";
const SECURITY: &str = "Security";
const KUBERNETES: &str = "Kubernetes";
const ALERTS: &str = "Alerts";
const OBSERVABILITY: &str = "Observability";

/// The agent's flags (the command line without a subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Longest time slice of tasks without a strategy; it is shared among
    /// the tasks that wait (never below a quarter millisecond or an eighth of
    /// it). It also bounds the credit a sleeper wakes with and the CPU time a
    /// deadline counts. Shorter slices let waiting tasks run sooner when a
    /// waker cannot preempt, at the cost of more switches between CPU hogs;
    /// longer ones let woken tasks cut in more often, which costs message
    /// passers (hackbench at 5 ms: twice EEVDF's context switches; at the
    /// default 2 ms, EEVDF's count). It is also how far a CPU may go past the
    /// first waiting task's deadline to take back a task that last ran on it:
    /// longer keeps CPU hogs on their CPU, shorter keeps deadline order tighter.
    /// A duration (`20ms`, `2s`); a bare number is microseconds.
    #[arg(help_heading = SCHEDULER, long, default_value_t = DEFAULT_SLICE_US, value_parser = count_in(Unit::Micros, 50, 1_000_000), value_name = "DURATION")]
    pub slice_us: u64,

    /// Most CPU time priority tasks may use on a CPU while a normal task that
    /// may run there waits; then normal tasks go first there for a quarter of
    /// it. Lower protects normal tasks (and keeps far away from the sched_ext
    /// watchdog); higher gives priority tasks a stronger guarantee.
    /// A duration (`20ms`, `2s`); a bare number is milliseconds.
    #[arg(help_heading = SCHEDULER, long, default_value_t = DEFAULT_STARVATION_MS, value_parser = count_in(Unit::Millis, 1, 5000), value_name = "DURATION")]
    pub starvation_ms: u64,

    /// Where tasks without a priority strategy are decided: `kernel` (in BPF,
    /// the fastest path) or `user` (the agent's dispatcher thread orders them
    /// with a policy written in Rust; each queued task round-trips through user
    /// space, which costs some throughput and latency). Priority-strategy
    /// tasks, per-CPU kthreads and waking tasks that find an idle CPU stay in
    /// BPF either way.
    #[arg(help_heading = SCHEDULER, long, value_enum, default_value_t = Dispatch::Kernel)]
    pub dispatch: Dispatch,

    /// In --dispatch user: how long the dispatcher may hold tasks without
    /// answering before BPF takes them back and dispatches them itself.
    /// Lower recovers sooner from a stuck dispatcher; higher
    /// tolerates longer pauses of the agent (e.g. under memory pressure)
    /// without bypassing it. Always far below the sched_ext watchdog (30 s).
    /// A duration (`20ms`, `2s`); a bare number is milliseconds.
    #[arg(help_heading = SCHEDULER, long, default_value_t = DEFAULT_USER_STALL_MS, value_parser = count_in(Unit::Millis, 20, 10_000), value_name = "DURATION")]
    pub user_stall_ms: u64,

    /// In --dispatch user: most tasks the dispatcher may hold at once; tasks
    /// beyond are dispatched by BPF directly (counted in nr_sched_congested).
    /// Higher lets the Rust policy order more of the load; lower bounds how
    /// long a task can wait behind the dispatcher.
    #[arg(help_heading = SCHEDULER, long, default_value_t = USER_RING_TASKS, value_parser = clap::value_parser!(u64).range(1..=USER_RING_TASKS))]
    pub user_queue_depth: u64,

    /// Bytes of the kernel's debug dump to keep when the scheduler is
    /// ejected (logged and shown in /health as last_exit_dump); 0 takes the
    /// kernel's default. Longer dumps say more about what each CPU was doing,
    /// at the cost of locked kernel memory while the scheduler runs.
    #[arg(help_heading = SCHEDULER, long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1 << 20))]
    pub exit_dump_len: u32,

    /// Testing only: SIGUSR1 pauses and resumes the dispatcher thread, to
    /// check that BPF's fallback keeps the machine running.
    #[arg(help_heading = SCHEDULER, long, hide = true)]
    pub dispatcher_test_hooks: bool,

    /// A static strategy, PID:SLICE[:prio] (repeatable), applied at start;
    /// SLICE is a duration (`20ms`, `500us`), a bare number nanoseconds.
    /// Meant for testing and bare-metal use; strategies posted over HTTP replace it.
    #[arg(help_heading = SCHEDULER, long = "strategy", value_name = "PID:SLICE[:prio]", value_parser = configs::parse_strategy)]
    pub strategies: Vec<(u32, PidStrategy)>,

    /// How often strategies are re-resolved against a new `/proc` scan.
    /// A new process in a matching pod (or matching a
    /// command_regex) is covered within about this time plus one scan; shorter
    /// costs one scan of /proc per interval.
    /// A duration (`20ms`, `2s`); a bare number is milliseconds.
    #[arg(help_heading = SCHEDULER, long, default_value_t = 1000, value_parser = count_in(Unit::Millis, 100, 60_000), value_name = "DURATION")]
    pub rescan_interval_ms: u64,

    /// Serve the HTTP API without loading the scheduler: for kernels without
    /// sched_ext, or to receive metrics from an external scheduler as the
    /// original server did. Nothing is scheduled: strategies are stored and
    /// resolved but not applied.
    #[arg(help_heading = SCHEDULER, long)]
    pub api_only: bool,

    /// Address and port of the HTTP API (port 0 picks a free one, logged at start).
    /// The default, loopback, keeps the API (which can change how every process
    /// is scheduled) off the network; a public address lets dashboards and other
    /// hosts reach it, and anyone who can reach it can post strategies.
    #[arg(help_heading = API, long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,

    /// HTTP worker threads. More workers serve more concurrent clients; each one
    /// is a thread that competes for CPU with the workloads the agent schedules.
    #[arg(help_heading = API, long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub api_workers: u16,

    /// Origins whose web pages may read the API (CORS; writes never
    /// get CORS headers unless from a --cors-write-origin page): `*` for any, a
    /// comma-separated list, or "" for none.
    /// `*` lets a dashboard be hosted anywhere, and lets any page a user opens
    /// read the metrics; a list or "" narrows that.
    #[arg(help_heading = API, long, default_value = "*", value_name = "ORIGINS")]
    pub cors_origin: String,

    /// Largest HTTP request body accepted, in bytes (larger gets 413). Larger
    /// allows bigger strategy sets in one request; smaller bounds the memory a
    /// client can make the agent hold per request.
    #[arg(help_heading = API, long, default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1024..=16 * 1024 * 1024))]
    pub max_body_bytes: u64,

    /// How `GET /api/v1/scheduling/strategies` writes each `priority`: `bool`
    /// (the original contract; Gthulhu's scheduler 2025-08 and plugin up to
    /// 2025-12) or `int` (0/1: Gthulhu plugin releases since 2026-01-24, i.e.
    /// 2026-02 on, and Gthulhu main, which fail on a bool). A request can
    /// override it with `?priority=bool|int`. POST takes either form.
    #[arg(help_heading = API, long, value_enum, default_value_t = PriorityWire::Bool, value_name = "FORM")]
    pub priority_wire: PriorityWire,

    /// Serve the API over HTTPS with this PEM certificate chain (leaf first);
    /// needs --tls-key. Protects the token and the data on the wire when the
    /// API is reached over a network, at the cost of a handshake per
    /// connection (dashboards keep connections alive).
    #[arg(help_heading = API, long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1); keep it
    /// readable by root only.
    #[arg(help_heading = API, long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// How long a `/proc` scan is reused by `GET /api/v1/pods/pids`
    /// (0: scan on every request). Longer spares CPU when many
    /// dashboards poll; shorter shows new processes sooner.
    /// A duration (`20ms`, `2s`); a bare number is milliseconds.
    #[arg(help_heading = API, long, default_value_t = 1000, value_parser = count_in(Unit::Millis, 0, 60_000), value_name = "DURATION")]
    pub pods_cache_ms: u64,

    /// Directory of the agent's state (the write token, by default), created
    /// (mode 0700) when missing [default: /var/lib/scx_pilot as root (systemd's
    /// StateDirectory=), else $XDG_STATE_HOME/scx_pilot or
    /// ~/.local/state/scx_pilot, so --api-only runs as any user].
    #[arg(help_heading = SECURITY, long, default_value_os_t = state_dir::default_state_dir(), hide_default_value = true, value_name = "DIR")]
    pub state_dir: PathBuf,

    /// Who may write (POST strategies, POST metrics): `token` needs the bearer
    /// token of --token-file on every write; `none` lets anyone who can reach
    /// the port change how every process is scheduled (a warning is logged).
    /// Reads stay open unless --auth-reads.
    #[arg(help_heading = SECURITY, long, value_enum, default_value_t = AuthMode::Token)]
    pub auth: AuthMode,

    /// File holding the write token [default: <state-dir>/token]. Created with a
    /// random token, mode 0600, at first start when missing; a file that group
    /// or others may read is refused. The client subcommands read it too.
    #[arg(help_heading = SECURITY, long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// A host name writes may carry in their Host header besides the listen
    /// address (repeatable). Writes with any other name are refused (403), so a
    /// web page cannot reach the API through DNS rebinding.
    #[arg(help_heading = SECURITY, long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,

    /// Reads under /api/v1 need a token too (the static one or a JWT), as
    /// Gthulhu's server asks. Off (the default), reads stay open as in the
    /// original contract: whoever reaches the port sees metrics, pods and
    /// strategies. /, /health, /metrics, /dashboard, the OpenAPI document, the
    /// token endpoint and OPTIONS stay open either way; the built-in dashboard
    /// cannot read the API with it. Needs --auth token.
    #[arg(help_heading = SECURITY, long)]
    pub auth_reads: bool,

    /// Gthulhu-compatible tokens: `on` serves POST /api/v1/auth/token, which
    /// gives an RS256 JWT to a client presenting the public key of --jwt-key,
    /// and accepts such JWTs wherever the static token is accepted; `off`
    /// serves neither, so Gthulhu's clients get no token (the static token
    /// keeps working).
    #[arg(help_heading = SECURITY, long, value_enum, default_value_t = JwtMode::On)]
    pub jwt: JwtMode,

    /// RSA private key that signs the JWTs [default: <state-dir>/jwt_private.pem].
    /// Generated (2048 bits, mode 0600) at first start when missing; a file
    /// group or others may read is refused. One key file can move between
    /// scx_pilot and Gthulhu's own API server (PKCS#1 or PKCS#8 PEM).
    #[arg(help_heading = SECURITY, long, value_name = "FILE")]
    pub jwt_key: Option<PathBuf>,

    /// Where the public half of --jwt-key is written, for Gthulhu's
    /// `public_key_path` [default: <state-dir>/jwt_public.pem], mode 0600:
    /// whoever can read it can get a token that writes, so hand it out like
    /// the token file (Gthulhu's scheduler runs as root and reads it).
    #[arg(help_heading = SECURITY, long, value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,

    /// How long a JWT stays valid. Shorter limits what a leaked
    /// token can do, but below 24 Gthulhu's 2025 clients (scheduler 2025-08,
    /// plugin 2025-12) break: they reuse a token for 23 h whatever its expiry
    /// and do not ask again after a 401.
    /// A duration (`20ms`, `2s`); a bare number is hours.
    #[arg(help_heading = SECURITY, long, default_value_t = 24, value_parser = count_in(Unit::Hours, 1, 8760), value_name = "DURATION")]
    pub jwt_token_hours: u64,

    /// An origin (http(s)://host[:port]) whose web pages may write, besides
    /// the agent's own (repeatable). Any other page's write is refused (403),
    /// even when --cors-origin lets it read: otherwise any page a user opens
    /// could post strategies through their browser.
    #[arg(help_heading = SECURITY, long = "cors-write-origin", value_name = "URL")]
    pub cors_write_origins: Vec<String>,

    /// Writes per second each client address may make (also the burst); 0 for
    /// no limit. Over it a write gets 429. Bounds how fast one client can churn
    /// the strategy map and the log.
    #[arg(help_heading = SECURITY, long, default_value_t = 10, value_name = "N")]
    pub write_rate_limit: u32,

    /// Where the proc filesystem to scan for pods and PIDs is mounted. The
    /// default suits a host or a hostPID pod; another mount of the host's /proc
    /// sees its processes without sharing its PID namespace, but the PIDs shown
    /// and targeted are then the host's, not the agent's own namespace's.
    #[arg(help_heading = KUBERNETES, long, default_value = "/proc", value_name = "DIR")]
    pub proc_root: PathBuf,

    /// Pod metadata (uid, name, namespace, labels) from a JSON file instead of
    /// the Kubernetes API: `{"pods":[{"uid":..,"name":..,"namespace":..,"labels":{..}}]}`
    /// or the output of `kubectl get pods -o json`. Re-read when it changes.
    #[arg(help_heading = KUBERNETES, long, value_name = "FILE", conflicts_with_all = ["kubeconfig", "in_cluster"])]
    pub pods_file: Option<PathBuf>,

    /// Kubeconfig to reach the Kubernetes API [default: $KUBECONFIG, then
    /// ~/.kube/config, then the in-cluster service account if present; with
    /// none, pods have no labels and selectors match nothing].
    #[arg(help_heading = KUBERNETES, long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Use the pod's service account ($KUBERNETES_SERVICE_HOST and the mounted
    /// token) to reach the Kubernetes API (DaemonSet); needs get/list/watch
    /// on pods.
    #[arg(help_heading = KUBERNETES, long, conflicts_with = "kubeconfig")]
    pub in_cluster: bool,

    /// This node's name: only its pods are watched (fieldSelector
    /// spec.nodeName) [default: the host name, said in the log].
    #[arg(help_heading = KUBERNETES, long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,

    /// Thresholds of the built-in alert rules, a JSON file (format in the
    /// README; every field optional, unknown fields and out-of-range values
    /// stop the agent at start with the field named). Without it the
    /// defaults apply. Rules are evaluated once per --sample-interval-ms.
    #[arg(help_heading = ALERTS, long, value_name = "FILE")]
    pub alerts_file: Option<PathBuf>,

    /// POST each alert fire and resolve event as JSON to this http:// or
    /// https:// URL. Delivery runs on its own thread with a bounded queue
    /// (256 events, the oldest dropped and counted when full), so a slow or
    /// dead receiver delays only other deliveries, never the scheduler or the
    /// API; the price is that events can be lost when the receiver is down
    /// longer than the retries last.
    #[arg(help_heading = ALERTS, long, value_name = "URL")]
    pub alert_webhook: Option<String>,

    /// Longest time one webhook attempt may take (connect,
    /// send and answer). Shorter gives up on a hung receiver sooner (and
    /// frees the queue); longer tolerates slow receivers.
    /// A duration (`20ms`, `2s`); a bare number is milliseconds.
    #[arg(help_heading = ALERTS, long, default_value_t = 5000, value_parser = count_in(Unit::Millis, 100, 60_000), value_name = "DURATION")]
    pub alert_webhook_timeout_ms: u64,

    /// Extra attempts for an event whose delivery failed (connection error,
    /// timeout, 408, 429 or 5xx), 0.5 s apart doubling up to 10 s. More
    /// retries ride out longer receiver outages; while one event is retried
    /// the others wait in the queue.
    #[arg(help_heading = ALERTS, long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub alert_webhook_retries: u32,

    /// Trust this PEM CA certificate for an https:// --alert-webhook instead
    /// of the system's public roots (a private receiver's own CA).
    #[arg(help_heading = ALERTS, long, value_name = "FILE", requires = "alert_webhook")]
    pub alert_webhook_ca_cert: Option<PathBuf>,

    /// How often the scheduler's counters are sampled. Shorter
    /// gives finer rates and history at a little more CPU use by the agent.
    /// A duration (`20ms`, `2s`); a bare number is milliseconds.
    #[arg(help_heading = OBSERVABILITY, long, default_value_t = 1000, value_parser = count_in(Unit::Millis, 10, 60_000), value_name = "DURATION")]
    pub sample_interval_ms: u64,

    /// How much sample history is kept in memory. More history costs
    /// about 200 bytes per sample; at most 64 MiB of samples are kept (longer
    /// is refused at start).
    /// A duration (`20ms`, `2s`); a bare number is seconds.
    #[arg(help_heading = OBSERVABILITY, long, default_value_t = 3600, value_parser = count_in(Unit::Secs, 1, 7 * 24 * 3600), value_name = "DURATION")]
    pub history_seconds: u64,

    /// How often per-pod and per-strategy scheduling figures (CPU usage,
    /// run-queue wait, timeslices from /proc/PID/task/*/schedstat) are read;
    /// 0 disables them. Each round reads every pod process
    /// and strategy PID (and their threads) and shares the /proc scan; shorter
    /// gives finer figures for more CPU. On a node without pods or strategies
    /// rounds back off to 10 intervals (at most 30 s).
    /// A duration (`20ms`, `2s`); a bare number is milliseconds.
    #[arg(help_heading = OBSERVABILITY, long, default_value_t = 1000, value_parser = count_in(Unit::Millis, 0, 60_000), value_name = "DURATION")]
    pub stats_interval_ms: u64,

    /// More log output: -v for debug, -vv for trace.
    #[arg(help_heading = OBSERVABILITY, short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}
