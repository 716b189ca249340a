//! The scheduler's counters, each named once: [`counter_table!`] lists every
//! field of the BPF program's .bss that the agent reads (and `nr_running`,
//! which the reader derives from the CPUs' states there), with its kind, the
//! dispatch modes that update it, its Prometheus name, its per-second rate and
//! its descriptions. The types (`BssData`, `PolicyCounters`, `Sample`,
//! `Rates`), the rate computation, the [`BSS`] and [`POLICY`] lists that
//! `/metrics`, `top` and the README read, and the .bss reader in
//! `sched::bss` are all generated from it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a field measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic: only grows while the scheduler stays loaded.
    Counter,
    /// Instantaneous.
    Gauge,
    /// Names the scheduler rather than measuring it (not exported to Prometheus).
    Id,
    /// A moment, in nanoseconds since the Unix epoch (0: unknown). Not in the
    /// BPF program: for scx_pilot's own scheduler the .bss reader fills it
    /// with the time of the sample. Exported as a gauge in seconds.
    Timestamp,
}

/// The dispatch modes in which the scheduler updates a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modes {
    Every,
    /// Only `--dispatch user`: readers may leave the field out in kernel mode.
    /// The `BssData` fields are all `Every`: they are the user's contract and
    /// shown in each mode, even where a mode keeps one at 0.
    UserDispatch,
}

/// One field of a counter struct, for readers that list them.
#[derive(Debug, Clone, Copy)]
pub struct Def<T> {
    /// The field's name in JSON and in the BPF program's .bss (but for
    /// `nr_running`: see `sched::bss`).
    pub name: &'static str,
    pub kind: Kind,
    pub modes: Modes,
    /// One line: the field's doc comment and, with the name, its Prometheus HELP.
    pub help: &'static str,
    /// `help` followed by the struct and field name (`...; BssData nr_queued`).
    pub prom_help: &'static str,
    /// Prometheus metric family (an exporter appends `_total` to counters);
    /// None when not exported.
    pub prom: Option<&'static str>,
    /// The field of [`Rates`] with its per-second rate, if the agent computes one.
    pub rate: Option<&'static str>,
    /// Meaning in kernel dispatch mode (README).
    pub kernel_mode: &'static str,
    /// Meaning in user dispatch mode (README).
    pub user_mode: &'static str,
    pub get: fn(&T) -> u64,
}

impl<T> Def<T> {
    pub fn is_counter(&self) -> bool {
        self.kind == Kind::Counter
    }
}

/// The table. It hands its rows to the macro named by `$then` (with `$args`
/// first, in brackets), so that code in other modules (the .bss reader) can
/// generate per-field code from the same rows.
macro_rules! counter_table {
    ($then:ident $(, $args:tt)*) => {
        $then! { [$($args)*]
            /// The user's BssData: field names and types are the public contract.
            bss: BssData in BSS {
                #[schema(example = 1234)]
                #[serde(default)]
                usersched_pid: u32 {
                    kind: Id, modes: Every,
                    help: "PID of the user-space scheduler (scx_pilot itself for its own scheduler)",
                    kernel: "pid of the scx_pilot agent",
                    user: "thread id of the dispatcher thread",
                },
                #[schema(example = 1750328998123456789u64)]
                #[serde(default, skip_serializing_if = "is_zero")]
                usersched_last_run_at: u64 {
                    kind: Timestamp, modes: Every, prom: "scx_pilot_usersched_last_run_timestamp_seconds",
                    help: "When the user-space scheduler last ran, in ns since the Unix epoch (absent or 0: not reported)",
                    kernel: "when the agent read these counters (the sample time)",
                    user: "same",
                },
                nr_queued: u64 {
                    kind: Gauge, modes: Every, prom: "scx_pilot_queued_tasks",
                    help: "Tasks waiting in the scheduler's queues",
                    kernel: "tasks waiting in the scheduler's queues (priority + shared), counted at the end of each dispatch",
                    user: "the same plus tasks in the ring not yet read by the dispatcher",
                },
                nr_scheduled: u64 {
                    kind: Gauge, modes: Every, prom: "scx_pilot_scheduled_tasks",
                    help: "Tasks held by a user-space dispatcher (0 in kernel mode)",
                    kernel: "always 0",
                    user: "tasks the dispatcher holds (could not send yet: decision ring full)",
                },
                // Not a .bss field: sched::bss counts the CPUs whose cpu_ctx is busy.
                nr_running: u64 {
                    kind: Gauge, modes: Every, prom: "scx_pilot_running_tasks",
                    help: "Tasks running on a CPU under this scheduler",
                    kernel: "tasks running on a CPU under this scheduler",
                    user: "same",
                },
                nr_online_cpus: u64 {
                    kind: Gauge, modes: Every, prom: "scx_pilot_online_cpus",
                    help: "Online CPUs",
                    kernel: "online CPUs when the scheduler was loaded (hotplug makes the kernel restart it)",
                    user: "same",
                },
                nr_user_dispatches: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_user_dispatches",
                    rate: user_dispatches_per_s,
                    help: "Dispatches decided in user space (0 in kernel mode)",
                    kernel: "always 0",
                    user: "tasks placed as the dispatcher decided",
                },
                nr_kernel_dispatches: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_kernel_dispatches",
                    rate: kernel_dispatches_per_s,
                    help: "Dispatches decided in BPF",
                    kernel: "tasks placed on a CPU by the BPF scheduler",
                    user: "the BPF fast path: priority tasks, kthreads, the dispatcher, fallback and congestion dispatches",
                },
                nr_cancel_dispatches: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_cancel_dispatches",
                    rate: cancel_dispatches_per_s,
                    help: "Tasks taken back before they were dispatched",
                    kernel: "tasks taken back before they ran (`ops.dequeue`: affinity or property changes, migrations)",
                    user: "decisions dropped as stale (the task was withdrawn, taken back, or queued again since)",
                },
                nr_bounce_dispatches: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_bounce_dispatches",
                    rate: bounce_dispatches_per_s,
                    help: "Dispatches bounced to another CPU (0 in kernel mode)",
                    kernel: "always 0",
                    user: "decisions naming a CPU the task may no longer run on (sent to the shared queue instead)",
                },
                nr_failed_dispatches: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_failed_dispatches",
                    rate: failed_dispatches_per_s,
                    help: "Queue insertions the kernel refused",
                    kernel: "queue insertions the kernel refused",
                    user: "same",
                },
                nr_sched_congested: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_sched_congested",
                    rate: sched_congested_per_s,
                    help: "Scheduler congestion occurrences (0 in kernel mode)",
                    kernel: "always 0",
                    user: "tasks BPF dispatched directly because the dispatcher's ring or queue depth was full",
                },
            }
            /// Counters of scx_pilot's own policy, beyond the user's BssData.
            policy: PolicyCounters in POLICY {
                nr_direct_dispatches: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_direct_dispatches",
                    help: "Waking tasks put straight on an idle CPU from select_cpu",
                    kernel: "waking tasks put straight on an idle CPU from `select_cpu`",
                    user: "same (idle-CPU wakeups stay in BPF)",
                },
                nr_prio_dispatches: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_prio_dispatches",
                    help: "Enqueues of tasks with a priority strategy",
                    kernel: "enqueues of tasks with a priority strategy",
                    user: "same (priority tasks stay in BPF)",
                },
                nr_preemptions: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_preemptions",
                    rate: preemptions_per_s,
                    help: "Priority tasks that preempted (or kicked) a CPU running a normal task",
                    kernel: "priority tasks that preempted (or kicked) a CPU running a normal task",
                    user: "same",
                },
                #[serde(default)]
                nr_wakeup_preemptions: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_wakeup_preemptions",
                    help: "Waking normal tasks that preempted a running task with a later deadline",
                    kernel: "waking normal tasks that preempted a running task with a later deadline",
                    user: "dispatcher decisions that preempted a CPU running a later deadline",
                },
                nr_starvation_guards: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_starvation_guards",
                    help: "Times a CPU served normal tasks ahead of priority ones because they had waited --starvation-ms",
                    kernel: "times a CPU served normal tasks ahead of priority ones because they had waited `--starvation-ms`",
                    user: "same",
                },
                nr_strategy_hits: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_strategy_hits",
                    rate: strategy_hits_per_s,
                    help: "Enqueues decided by any strategy",
                    kernel: "enqueues decided by any strategy",
                    user: "same",
                },
                #[serde(default)]
                nr_rcu_boosts: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_rcu_boosts",
                    help: "Tasks preempted inside an RCU read-side critical section and queued first among normal tasks",
                    kernel: "tasks preempted inside an RCU read-side critical section and queued first among normal tasks (at most once per `--starvation-ms` / 4 each), so that a light task cannot stall RCU",
                    user: "same (such tasks stay in BPF)",
                },
                #[serde(default)]
                nr_preempted_resumes: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_preempted_resumes",
                    help: "Normal tasks preempted by a waking task that went on, on their CPU, right after it",
                    kernel: "normal tasks preempted by a waking task that went on, on their CPU, right after it, for the rest of their slice (instead of through the shared queue)",
                    user: "always 0 (a preempted task goes back to the dispatcher)",
                },
                #[serde(default)]
                nr_wakeups_before_resumed: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_wakeups_before_resumed",
                    help: "Waking normal tasks that did not preempt and went on next on their CPU, ahead of a task a wakeup preempted there",
                    kernel: "waking normal tasks that did not preempt the task on their CPU (a waker with about the same deadline) and went on next there, ahead of the task a wakeup had preempted (`nr_preempted_resumes`), whose deadline is later",
                    user: "always 0",
                },
                #[serde(default)]
                nr_yields: u64 {
                    kind: Counter, modes: Every, prom: "scx_pilot_yields",
                    help: "sched_yield() calls: the task was queued behind the waiting tasks, in BPF",
                    kernel: "`sched_yield()` calls: the task's slice ended and it was queued behind the tasks waiting for a CPU (the rest of its request forfeit, as under EEVDF)",
                    user: "same, without a round trip to the dispatcher (spinning waits yield many times a millisecond)",
                },
                #[serde(default)]
                nr_user_enqueues: u64 {
                    kind: Counter, modes: UserDispatch, prom: "scx_pilot_user_enqueues",
                    help: "Tasks sent to the user-space dispatcher (--dispatch user)",
                    kernel: "always 0",
                    user: "tasks sent to the dispatcher thread",
                },
                #[serde(default)]
                nr_user_fallbacks: u64 {
                    kind: Counter, modes: UserDispatch, prom: "scx_pilot_user_fallbacks",
                    help: "Times BPF bypassed a user-space dispatcher that held tasks without answering for --user-stall-ms",
                    kernel: "always 0",
                    user: "times BPF bypassed a dispatcher that held tasks without answering for `--user-stall-ms`",
                },
                #[serde(default)]
                nr_user_recovered: u64 {
                    kind: Counter, modes: UserDispatch, prom: "scx_pilot_user_recovered",
                    help: "Tasks BPF took back from the user-space dispatcher (stalled, or held a task --user-stall-ms)",
                    kernel: "always 0",
                    user: "tasks BPF took back from the dispatcher (stalled, or held the task `--user-stall-ms`)",
                },
                #[serde(default)]
                nr_user_aged: u64 {
                    kind: Counter, modes: UserDispatch, prom: "scx_pilot_user_aged",
                    help: "Of the tasks taken back, those held --user-stall-ms by a dispatcher that was otherwise answering",
                    kernel: "always 0",
                    user: "of the tasks taken back, those held `--user-stall-ms` by a dispatcher that was otherwise answering",
                },
                #[serde(default)]
                nr_user_withdrawn: u64 {
                    kind: Counter, modes: UserDispatch, prom: "scx_pilot_user_withdrawn",
                    help: "Tasks dequeued (affinity, priority change) while the user-space dispatcher held them",
                    kernel: "always 0",
                    user: "tasks dequeued (affinity, priority change) while the dispatcher held them",
                },
                #[serde(default)]
                nr_user_outstanding: u64 {
                    kind: Gauge, modes: UserDispatch, prom: "scx_pilot_user_outstanding",
                    help: "Tasks in the user-space dispatcher's hands at this sample",
                    kernel: "always 0 (no Prometheus series)",
                    user: "tasks in the dispatcher's hands at this sample",
                },
            }
        }
    };
}
pub(crate) use counter_table;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// `Some(x)` for one token tree, `None` for none.
macro_rules! optional {
    () => {
        None
    };
    ($x:expr) => {
        Some($x)
    };
}

/// The items generated from the table.
macro_rules! define_counters {
    ([] $(
        $(#[doc = $group_doc:literal])*
        $group:ident: $Name:ident in $LIST:ident {
            $(
                $(#[$attr:meta])*
                $field:ident: $ty:ty {
                    kind: $kind:ident, modes: $modes:ident $(, prom: $prom:literal)?
                    $(, rate: $rate:ident)?,
                    help: $help:literal,
                    kernel: $kernel:literal,
                    user: $user:literal $(,)?
                }
            ),* $(,)?
        }
    )*) => {
        $(
            $(#[doc = $group_doc])*
            #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
            pub struct $Name {
                $(
                    #[doc = $help]
                    $(#[$attr])*
                    pub $field: $ty,
                )*
            }

            #[doc = concat!("The fields of [`", stringify!($Name), "`], in declaration order.")]
            pub static $LIST: &[Def<$Name>] = &[$(
                Def {
                    name: stringify!($field),
                    kind: Kind::$kind,
                    modes: Modes::$modes,
                    help: $help,
                    prom_help: concat!($help, "; ", stringify!($Name), " ", stringify!($field)),
                    prom: optional!($($prom)?),
                    rate: optional!($(stringify!($rate))?),
                    kernel_mode: $kernel,
                    user_mode: $user,
                    get: |d| u64::from(d.$field),
                },
            )*];
        )*

        /// One reading of the scheduler's counters.
        #[derive(Debug, Clone, Copy, PartialEq, Serialize)]
        pub struct Sample {
            pub timestamp: DateTime<Utc>,
            $(pub $group: $Name,)*
        }

        /// Per-second rates of the monotonic counters between two samples.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
        pub struct Rates {
            pub interval_s: f64,
            $($($(
                #[doc = concat!("`", stringify!($field), "` per second")]
                pub $rate: f64,
            )?)*)*
        }

        impl Rates {
            /// Rates from `prev` to `cur`; None when time did not advance. A
            /// counter that went backwards (the scheduler restarted) counts
            /// from zero.
            pub fn between(prev: &Sample, cur: &Sample) -> Option<Rates> {
                let interval_s =
                    (cur.timestamp - prev.timestamp).num_microseconds()? as f64 / 1e6;
                if interval_s <= 0.0 {
                    return None;
                }
                let rate = |a: u64, b: u64| {
                    let delta = if b >= a { b - a } else { b };
                    delta as f64 / interval_s
                };
                Some(Rates {
                    interval_s,
                    $($($(
                        $rate: rate(
                            u64::from(prev.$group.$field),
                            u64::from(cur.$group.$field),
                        ),
                    )?)*)*
                })
            }
        }
    };
}

counter_table!(define_counters);

/// The tables as JSON for the dashboard: name, kind, description, and
/// whether the field is kept in every dispatch mode.
pub fn table_json() -> serde_json::Value {
    fn rows<T>(defs: &[Def<T>]) -> Vec<serde_json::Value> {
        defs.iter()
            .map(|d| {
                let kind = match d.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                    Kind::Id => "id",
                    Kind::Timestamp => "timestamp",
                };
                serde_json::json!({
                    "name": d.name,
                    "kind": kind,
                    "help": d.help,
                    "kernel_mode": d.kernel_mode,
                    "user_mode": d.user_mode,
                    "every_mode": d.modes == Modes::Every,
                })
            })
            .collect()
    }
    serde_json::json!({ "bss": rows(BSS), "policy": rows(POLICY) })
}

#[cfg(test)]
/// A markdown table of `defs` for the README: field, rate, Prometheus series,
/// meaning in each dispatch mode.
pub fn markdown_table<T>(defs: &[Def<T>]) -> String {
    let mut out = String::from(
        "| field | rate (`.metrics.rates`) | Prometheus | kernel dispatch mode (default) | user dispatch mode |\n\
         |---|---|---|---|---|\n",
    );
    let code = |s: Option<&str>| s.map_or("-".to_string(), |s| format!("`{s}`"));
    for d in defs {
        let prom = d.prom.map(|p| match d.kind {
            Kind::Counter => format!("{p}_total"),
            _ => p.to_string(),
        });
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            d.name,
            code(d.rate),
            code(prom.as_deref()),
            d.kernel_mode,
            d.user_mode
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: i64, kernel: u64) -> Sample {
        Sample {
            timestamp: DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap(),
            bss: BssData {
                nr_kernel_dispatches: kernel,
                ..Default::default()
            },
            policy: PolicyCounters::default(),
        }
    }

    #[test]
    fn rates_are_per_second() {
        let r = Rates::between(&sample(0, 100), &sample(500, 600)).unwrap();
        assert_eq!(r.interval_s, 0.5);
        assert_eq!(r.kernel_dispatches_per_s, 1000.0);
    }

    #[test]
    fn counter_reset_counts_from_zero() {
        let r = Rates::between(&sample(0, 1000), &sample(1000, 30)).unwrap();
        assert_eq!(r.kernel_dispatches_per_s, 30.0);
    }

    #[test]
    fn no_rate_without_elapsed_time() {
        assert!(Rates::between(&sample(0, 1), &sample(0, 2)).is_none());
    }

    #[test]
    fn lists_follow_the_structs() {
        // Every field set: a zero usersched_last_run_at is left out.
        let bss = serde_json::to_value(BssData {
            nr_queued: 7,
            usersched_last_run_at: 1,
            ..Default::default()
        })
        .unwrap();
        let names: Vec<&str> = BSS.iter().map(|d| d.name).collect();
        let keys: Vec<&str> = bss
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, keys);
        let queued = BSS.iter().find(|d| d.name == "nr_queued").unwrap();
        assert_eq!(
            (queued.get)(&BssData {
                nr_queued: 7,
                ..Default::default()
            }),
            7
        );
        let rates = serde_json::to_value(Rates::default()).unwrap();
        let with_rate = BSS.iter().filter_map(|d| d.rate);
        for rate in with_rate.chain(POLICY.iter().filter_map(|d| d.rate)) {
            assert!(rates.get(rate).is_some(), "{rate}");
        }
        assert!(POLICY
            .iter()
            .filter(|d| d.modes == Modes::UserDispatch)
            .all(|d| d.name.starts_with("nr_user_")));
    }

    /// The README's counter tables are generated from the table; on a
    /// mismatch this prints the table to paste.
    #[test]
    fn readme_tables_follow_the_table() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        for table in [markdown_table(BSS), markdown_table(POLICY)] {
            assert!(
                readme.contains(&table),
                "README.md lacks this table:\n{table}"
            );
        }
    }
}
