//! Observers: measurements taken during training on a schedule, written into
//! the run's metrics records under stable names. The train loop only asks
//! whether anything is due at a step and hands over the model; it knows
//! nothing of what is measured (DESIGN.md, 6).

pub mod central_flow;
pub mod config;
mod flow_check;
mod flow_observer;
pub mod flow_optimizer;
pub mod ntk;
pub mod per_sample;
mod runner;
pub mod sites;
pub mod stats;
mod uploads;

pub use config::ObserveConfig;
pub use flow_check::central_flow_optimizer;
pub use runner::{check_examples_separate, Observers};
