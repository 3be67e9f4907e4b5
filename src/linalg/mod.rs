//! Spectral algorithms on host `f64` vectors for lmech's curvature
//! observables. Every algorithm sees the curvature only through a linear
//! operator closure (`Operator`: a Hessian- or Gauss-Newton-vector product
//! in practice, symmetric, possibly indefinite, expensive), and reports how
//! many times it called it.
//!
//! - `complementarity`: the small semidefinite complementarity problem of
//!   the central flow.
//! - `diagonal`: Hutchinson's estimator of the diagonal.
//! - `eigen`: dense symmetric eigen-decomposition (Jacobi), for small
//!   matrices.
//! - `lanczos`: top-k eigenpairs with full reorthogonalization.
//! - `power`: power iteration for the largest-magnitude eigenvalue.
//! - `trace`: Hutchinson's trace estimator.
//! - `slq`: spectral density by stochastic Lanczos quadrature.
//! - `vector`: the deterministic parallel vector kernels they share.
//!
//! Results are deterministic: a seed fixes every random vector, and every
//! sum runs in a fixed order independent of the thread count.

mod complementarity;
mod diagonal;
mod eigen;
mod lanczos;
mod operator;
mod power;
mod slq;
mod trace;
mod vector;

pub use complementarity::{solve_complementarity, Complementarity};
pub use diagonal::{hutchinson_diagonal, DiagonalEstimate};
pub use eigen::{sym_eigen, SymEigen};
pub use lanczos::{lanczos, lanczos_in, BasisStorage, LanczosOptions, LanczosResult};
pub use operator::Operator;
pub use power::{power_iteration, PowerOptions, PowerResult};
pub use slq::{slq, SpectralDensity};
pub use trace::{hutchinson_trace, TraceEstimate};
pub use vector::{axpy, dot, norm, scale};
