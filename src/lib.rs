pub mod agent;
pub mod api;
pub mod cli;
pub mod logging;
pub mod metrics;
pub mod pods;
pub mod sched;
pub mod strategy;
