//! Curvature of a model's loss on a data set: gradients, Hessian- and
//! Gauss-Newton-vector products over the data in chunks (memory bounded by
//! the chunk, not the data), as host vectors for the spectral algorithms in
//! `crate::linalg`, and third-derivative products for the central flow.

mod flat;
mod loss_on_data;
mod third;

pub use flat::{flatten, unflatten};
pub use loss_on_data::LossOnData;
pub use third::{third_difference_step, ThirdOnData};
