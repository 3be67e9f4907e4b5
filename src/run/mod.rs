//! Everything a training run writes into its run directory: the metrics log
//! (`metrics.jsonl`, `metrics.csv`), `summary.json`, plots, safetensors
//! checkpoints, plus the live progress line and the rules for choosing the
//! directory. All result files are replaced atomically.

pub mod atomic;
pub mod checkpoint;
pub mod dir;
pub mod flow_plot;
pub mod metrics;
pub mod plot;
pub mod progress;
pub mod record;
pub mod summary;

pub use atomic::write_atomic;
pub use checkpoint::{load_checkpoint, save_checkpoint, NamedTensor, TensorData};
pub use dir::{prepare_run_dir, unique_run_dir};
pub use flow_plot::{plot_central_flow, running_average, RUNNING_AVERAGE_HALF_WINDOW};
pub use metrics::MetricsLog;
pub use plot::{plot_accuracy, plot_curves, plot_loss, plot_panels, Panel};
pub use progress::Progress;
pub use record::{Record, Value};
pub use summary::{Status, Summary};
