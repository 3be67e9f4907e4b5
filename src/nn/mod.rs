//! Models and what defines them: a model is a graph of layers (`graph`,
//! `model`), one layer kind per file (`dense`, `conv`, `pool`, `flatten`,
//! `norm`, `residual`, `activation_layer`, `attention`, `embedding`,
//! `position_embedding`, `pick_position`, `unembedding`), with activations, losses,
//! parametrizations, the MLP and the presets as configurations of it.

pub mod activation;
pub mod activation_layer;
pub mod attention;
pub mod batch_norm;
pub mod checkpoint;
pub mod conv;
pub mod dense;
pub mod embedding;
pub mod flatten;
pub mod graph;
pub mod layer;
pub mod layer_spec;
pub mod loss;
pub mod mlp;
pub mod model;
pub mod norm;
pub mod parametrization;
pub mod pick_position;
pub mod pool;
pub mod position_embedding;
pub mod presets;
pub mod residual;
pub mod shape;
pub mod transformer_preset;
pub mod unembedding;
