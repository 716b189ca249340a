pub mod agent;
pub mod cli;
pub mod logging;
pub mod metrics;
pub mod sched;
