//! A pointwise activation as a layer of its own (dense and convolution
//! layers fuse theirs with the bias). No parameters; any shape.

use crate::backend::Backend;
use crate::error::Result;
use crate::nn::activation::Activation;
use crate::nn::layer::Recorder;
use crate::tape::{BiasAct, Var};

pub struct ActLayer {
    pub activation: Activation,
}

impl ActLayer {
    pub fn record<B: Backend>(&self, rec: &mut Recorder<B>, x: Var) -> Result<Var> {
        if self.activation == Activation::Identity {
            return Ok(x);
        }
        rec.tape
            .apply(Box::new(BiasAct::new(self.activation, 1.0)), &[x])
    }
}
