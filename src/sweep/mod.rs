//! Sweeps: grids of runs over any config keys (width, learning rate, seed,
//! parametrization, ...), packed into ensembles that train in the same
//! kernel launches, spread over devices, claimed, verified and committed
//! one by one into a crash-safe results store that any number of workers
//! share, and summarized by a report (a table and the standard plots).

pub mod claim;
pub mod heartbeat;
pub mod pack;
pub mod picker;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod shard;
pub mod spec;
pub mod status;
pub mod store;
pub mod tidy;
pub mod verify;

pub use report::{write_report, ReportOutcome};
pub use schedule::{run_sweep, SweepOptions, SweepOutcome};
pub use shard::Shard;
pub use spec::{RunSpec, SweepSpec};
pub use status::{store_status, StoreStatus};
