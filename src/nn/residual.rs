//! The residual block `act(f(x) + s(x))`: `f` is a list of layers, `s` the
//! identity or, when `f` changes the shape (or a projection is asked for), a
//! 1x1 convolution with `f`'s stride or a dense layer, without bias, as in
//! ResNets (He et al. 2016, option B). No parameters of its own: those of
//! `f` and `s` are in their nodes (`layers.i.body.j`, `layers.i.projection`).

use crate::backend::Backend;
use crate::error::Result;
use crate::nn::activation::Activation;
use crate::nn::activation_layer::ActLayer;
use crate::nn::layer::{Node, Recorder};
use crate::tape::{Add, Var};

pub struct ResidualLayer {
    pub body: Vec<Node>,
    pub projection: Option<Box<Node>>,
    pub activation: Activation,
}

impl ResidualLayer {
    pub fn record<B: Backend>(&self, rec: &mut Recorder<B>, x: Var, params: &[Var]) -> Result<Var> {
        let mut h = x;
        for node in &self.body {
            h = node.record(rec, h, params)?;
        }
        let skip = match &self.projection {
            Some(p) => p.record(rec, x, params)?,
            None => x,
        };
        let sum = rec.tape.apply(Box::new(Add), &[h, skip])?;
        ActLayer {
            activation: self.activation,
        }
        .record(rec, sum)
    }
}
