//! The autodiff tape. A forward pass records each op with its inputs and
//! output value; `backward` walks the records in reverse and asks each op for
//! the vector-Jacobian product. Every intermediate cotangent is kept in the
//! returned `Grads`: for a dense layer, the cotangent of its output is the
//! backprop signal d_i that per-sample gradient norms and the NTK are built
//! from (DESIGN.md, 5).
//!
//! An op is a value implementing `Op`; forward-mode (jvp) and the tangent of
//! the vjp, which Hessian-vector products need (DESIGN.md, 4), are further
//! methods on the same trait, so adding them changes no caller.

mod bias_act;
mod dense;
mod loss_head;
mod op;

pub use bias_act::BiasAct;
pub use dense::Dense;
pub use loss_head::LossHead;
pub use op::Op;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A handle to a value on the tape.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Var(usize);

impl Var {
    pub fn index(self) -> usize {
        self.0
    }
}

struct Node<B: Backend> {
    op: Option<Box<dyn Op<B>>>,
    inputs: Vec<Var>,
    value: Tensor<B>,
    requires_grad: bool,
}

pub struct Tape<B: Backend> {
    backend: B,
    nodes: Vec<Node<B>>,
}

/// Cotangents of every value on the path from the leaves that require
/// gradients to the root.
pub struct Grads<B: Backend> {
    grads: Vec<Option<Tensor<B>>>,
}

impl<B: Backend> Grads<B> {
    pub fn get(&self, v: Var) -> Option<&Tensor<B>> {
        self.grads.get(v.0).and_then(|g| g.as_ref())
    }

    pub fn take(&mut self, v: Var) -> Option<Tensor<B>> {
        self.grads.get_mut(v.0).and_then(|g| g.take())
    }
}

impl<B: Backend> Tape<B> {
    pub fn new(backend: B) -> Self {
        Tape {
            backend,
            nodes: Vec::new(),
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Record an input. Parameters are leaves with `requires_grad`; data is a
    /// leaf without.
    pub fn leaf(&mut self, value: Tensor<B>, requires_grad: bool) -> Var {
        self.nodes.push(Node {
            op: None,
            inputs: Vec::new(),
            value,
            requires_grad,
        });
        Var(self.nodes.len() - 1)
    }

    /// Run `op` forward on `inputs` and record it.
    pub fn apply(&mut self, mut op: Box<dyn Op<B>>, inputs: &[Var]) -> Result<Var> {
        let values: Vec<&Tensor<B>> = inputs.iter().map(|v| &self.nodes[v.0].value).collect();
        let value = op.forward(&self.backend, &values)?;
        let requires_grad = inputs.iter().any(|v| self.nodes[v.0].requires_grad);
        self.nodes.push(Node {
            op: Some(op),
            inputs: inputs.to_vec(),
            value,
            requires_grad,
        });
        Ok(Var(self.nodes.len() - 1))
    }

    pub fn value(&self, v: Var) -> &Tensor<B> {
        &self.nodes[v.0].value
    }

    pub fn op_name(&self, v: Var) -> Option<&'static str> {
        self.nodes[v.0].op.as_ref().map(|op| op.name())
    }

    /// Reverse pass from `root` with cotangent `seed` (same shape as root).
    pub fn backward(&self, root: Var, seed: Tensor<B>) -> Result<Grads<B>> {
        if seed.shape() != self.nodes[root.0].value.shape() {
            return Err(Error::shape(format!(
                "backward seed {:?} for a value of shape {:?}",
                seed.shape(),
                self.nodes[root.0].value.shape()
            )));
        }
        let mut grads: Vec<Option<Tensor<B>>> = (0..self.nodes.len()).map(|_| None).collect();
        grads[root.0] = Some(seed);
        for i in (0..=root.0).rev() {
            let node = &self.nodes[i];
            let Some(op) = node.op.as_ref() else { continue };
            if !node.requires_grad {
                continue;
            }
            let Some(g_out) = grads[i].as_ref() else {
                continue;
            };
            let inputs: Vec<&Tensor<B>> =
                node.inputs.iter().map(|v| &self.nodes[v.0].value).collect();
            let needs: Vec<bool> = node
                .inputs
                .iter()
                .map(|v| self.nodes[v.0].requires_grad)
                .collect();
            let cot = op.vjp(&self.backend, &inputs, &node.value, g_out, &needs)?;
            for ((input, need), c) in node.inputs.iter().zip(needs).zip(cot) {
                let Some(c) = c else { continue };
                if !need {
                    continue;
                }
                match grads[input.0].as_mut() {
                    Some(acc) => self.backend.axpy(acc, 1.0, &c)?,
                    None => grads[input.0] = Some(c),
                }
            }
        }
        Ok(Grads { grads })
    }
}
