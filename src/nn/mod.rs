//! Models and what defines them: activations, losses, parametrizations and
//! the MLP.

pub mod activation;
pub mod checkpoint;
pub mod loss;
pub mod mlp;
pub mod parametrization;
