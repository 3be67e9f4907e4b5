//! Observers: measurements taken during training on a schedule, written into
//! the run's metrics records under stable names. The train loop only asks
//! "is anything due at this step?" and hands over the model; it knows nothing
//! of what is measured (DESIGN.md, 6).

pub mod ntk;
pub mod per_sample;
pub mod stats;
