//! lmech: a training engine for the science of deep learning. It trains
//! networks while measuring what the theory of training dynamics predicts.
//! See DESIGN.md (the architecture map) and README.md (usage).

pub mod backend;
pub mod config;
pub mod curvature;
pub mod data;
pub mod eos;
pub mod error;
pub mod linalg;
pub mod measure;
pub mod member_steps;
pub mod nn;
pub mod observe;
pub mod optim;
pub mod resume;
pub mod rng;
pub mod run;
pub mod scalar;
pub mod sweep;
pub mod tape;
pub mod tensor;
pub mod train;

pub use backend::cpu::Cpu;
pub use backend::wgpu::Wgpu;
pub use backend::{Backend, DType};
pub use error::{Error, Result};
pub use tensor::Tensor;
