//! Sweeps: grids of runs over any config keys (width, learning rate, seed,
//! parametrization, ...), packed into ensembles that train in the same
//! kernel launches, spread over devices, committed one by one into a
//! crash-safe results store, split into shards across machines, and
//! summarized by a report (a table and the standard plots).

pub mod pack;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod shard;
pub mod spec;
pub mod store;

pub use report::{write_report, ReportOutcome};
pub use schedule::{run_sweep, SweepOptions, SweepOutcome};
pub use shard::Shard;
pub use spec::{RunSpec, SweepSpec};
