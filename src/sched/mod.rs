//! Everything that touches BPF: loading and attaching the scheduler, its exit
//! info, the .bss reader and the strategy-map writer.

pub(crate) mod bpf_intf;
pub mod bpf_skel;
pub mod bss;
mod libbpf_log;
pub mod maps_only;
pub(crate) mod preflight;
mod scheduler;
mod status;
pub mod strategy_map;
pub mod user_dispatch;
pub(crate) mod user_policy;

pub use libbpf_log::forward_bpf_logs;
pub use scheduler::{Channels, RunExit, SchedConfig, Scheduler};
pub use status::{CgroupCpu, DispatcherStatus, Mode, SchedulerStatus, StatusCell};
pub use strategy_map::StrategyMapWriter;
