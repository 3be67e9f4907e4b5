//! The autodiff tape. A forward pass records each op with its inputs and
//! output value; `backward` walks the records in reverse and asks each op for
//! the vector-Jacobian product. Every intermediate cotangent is kept in the
//! returned `Grads`: for a dense layer, the cotangent of its output is the
//! backprop signal d_i that per-sample gradient norms and the NTK are built
//! from (DESIGN.md, 5).
//!
//! Leaves may carry tangents; then `apply` also runs each op's jvp, and
//! `backward_with_tangents` returns, beside the cotangents, their tangents
//! along the leaf tangents: with the parameter tangents set to v, the
//! parameters' cotangent tangents are the Hessian-vector product H v (or the
//! Gauss-Newton product) of the root (DESIGN.md, 4).

mod add;
mod bias_act;
mod conv;
mod dense;
mod layout;
mod loss_head;
mod mul;
mod norm;
mod op;
mod pool;
mod softmax;

pub use add::Add;
pub use bias_act::BiasAct;
pub use conv::Im2col;
pub use dense::Dense;
pub use layout::{Reshape, Transpose};
pub use loss_head::LossHead;
pub use mul::Mul;
pub use norm::NormRows;
pub use op::{curved_vjp_tangent, linear_vjp_tangent, CotangentPair, Curvature, Op, TangentArgs};
pub use pool::{RowMax, RowMean};
pub use softmax::Softmax;

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
    tangent: Option<Tensor<B>>,
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
            tangent: None,
            requires_grad,
        });
        Var(self.nodes.len() - 1)
    }

    /// A leaf with a tangent: forward-mode derivatives along it are
    /// propagated through every op applied after it.
    pub fn leaf_with_tangent(
        &mut self,
        value: Tensor<B>,
        tangent: Tensor<B>,
        requires_grad: bool,
    ) -> Result<Var> {
        if tangent.shape() != value.shape() {
            return Err(Error::shape(format!(
                "tangent {:?} for a value {:?}",
                tangent.shape(),
                value.shape()
            )));
        }
        self.nodes.push(Node {
            op: None,
            inputs: Vec::new(),
            value,
            tangent: Some(tangent),
            requires_grad,
        });
        Ok(Var(self.nodes.len() - 1))
    }

    /// The tangent of a value (None: zero).
    pub fn tangent(&self, v: Var) -> Option<&Tensor<B>> {
        self.nodes[v.0].tangent.as_ref()
    }

    /// Run `op` forward on `inputs` and record it.
    pub fn apply(&mut self, mut op: Box<dyn Op<B>>, inputs: &[Var]) -> Result<Var> {
        let values: Vec<&Tensor<B>> = inputs.iter().map(|v| &self.nodes[v.0].value).collect();
        let value = op.forward(&self.backend, &values)?;
        let tangents: Vec<Option<&Tensor<B>>> = inputs
            .iter()
            .map(|v| self.nodes[v.0].tangent.as_ref())
            .collect();
        let tangent = if tangents.iter().any(|t| t.is_some()) {
            op.jvp(&self.backend, &values, &tangents, &value)?
        } else {
            None
        };
        let requires_grad = inputs.iter().any(|v| self.nodes[v.0].requires_grad);
        self.nodes.push(Node {
            op: Some(op),
            inputs: inputs.to_vec(),
            value,
            tangent,
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

    /// Reverse pass from `root` with cotangent `seed` and its tangent
    /// `seed_dot` (None: zero), along the tangents the leaves carry. Returns
    /// the cotangents and their tangents: for a loss root seeded with ones,
    /// the parameters' entries of the second are H v (`Curvature::Hessian`)
    /// or G v (`Curvature::GaussNewton`) for the parameter tangents v.
    /// Without `leaf_cotangents` the leaves' own cotangents (the gradient)
    /// are skipped, which an HVP does not need.
    pub fn backward_with_tangents(
        &self,
        root: Var,
        seed: Tensor<B>,
        seed_dot: Option<Tensor<B>>,
        mode: Curvature,
        leaf_cotangents: bool,
    ) -> Result<(Grads<B>, Grads<B>)> {
        self.check_seed(root, &seed)?;
        let n = self.nodes.len();
        let mut grads: Vec<Option<Tensor<B>>> = (0..n).map(|_| None).collect();
        grads[root.0] = Some(seed);
        let dots = self.reverse_tangents(
            root,
            seed_dot,
            mode,
            Cotangents::Compute(&mut grads, leaf_cotangents),
        )?;
        Ok((Grads { grads }, dots))
    }

    /// Set new tangents on leaves and recompute every op's output tangent,
    /// reusing the recorded values: the forward half of another
    /// Hessian-vector product at the same point.
    pub fn retangent(&mut self, leaves: &[(Var, Tensor<B>)]) -> Result<()> {
        for (v, t) in leaves {
            let node = &mut self.nodes[v.0];
            if node.op.is_some() || t.shape() != node.value.shape() {
                return Err(Error::shape(format!(
                    "retangent: {:?} is not a leaf of shape {:?}",
                    v,
                    t.shape()
                )));
            }
            node.tangent = Some(t.clone());
        }
        for i in 0..self.nodes.len() {
            let Some(mut op) = self.nodes[i].op.take() else {
                continue;
            };
            let (earlier, _) = self.nodes.split_at(i);
            let inputs = &self.nodes[i].inputs;
            let values: Vec<&Tensor<B>> = inputs.iter().map(|v| &earlier[v.0].value).collect();
            let tangents: Vec<Option<&Tensor<B>>> = inputs
                .iter()
                .map(|v| earlier[v.0].tangent.as_ref())
                .collect();
            let tangent = if tangents.iter().any(|t| t.is_some()) {
                op.jvp(&self.backend, &values, &tangents, &self.nodes[i].value)
            } else {
                Ok(None)
            };
            self.nodes[i].op = Some(op);
            self.nodes[i].tangent = tangent?;
        }
        Ok(())
    }

    /// The tangents of the cotangents only, given the cotangents of an
    /// earlier `backward` from the same root at the same point: the reverse
    /// half of another Hessian-vector product, which needs no plain
    /// cotangent recomputed.
    pub fn tangent_backward(
        &self,
        root: Var,
        cached: &Grads<B>,
        mode: Curvature,
    ) -> Result<Grads<B>> {
        self.reverse_tangents(root, None, mode, Cotangents::Cached(cached))
    }

    fn check_seed(&self, root: Var, seed: &Tensor<B>) -> Result<()> {
        if seed.shape() != self.nodes[root.0].value.shape() {
            return Err(Error::shape(format!(
                "backward seed {:?} for a value of shape {:?}",
                seed.shape(),
                self.nodes[root.0].value.shape()
            )));
        }
        Ok(())
    }

    fn reverse_tangents(
        &self,
        root: Var,
        seed_dot: Option<Tensor<B>>,
        mode: Curvature,
        mut cot: Cotangents<'_, B>,
    ) -> Result<Grads<B>> {
        let n = self.nodes.len();
        let mut dots: Vec<Option<Tensor<B>>> = (0..n).map(|_| None).collect();
        dots[root.0] = seed_dot;
        for i in (0..=root.0).rev() {
            let node = &self.nodes[i];
            let Some(op) = node.op.as_ref() else { continue };
            if !node.requires_grad {
                continue;
            }
            let g_out = match &cot {
                Cotangents::Compute(grads, _) => grads[i].clone(),
                Cotangents::Cached(c) => c.get(Var(i)).cloned(),
            };
            let Some(g_out) = g_out else { continue };
            let inputs: Vec<&Tensor<B>> =
                node.inputs.iter().map(|v| &self.nodes[v.0].value).collect();
            let tangents: Vec<Option<&Tensor<B>>> = node
                .inputs
                .iter()
                .map(|v| self.nodes[v.0].tangent.as_ref())
                .collect();
            let needs: Vec<bool> = node
                .inputs
                .iter()
                .map(|v| self.nodes[v.0].requires_grad)
                .collect();
            let cotangent_needed: Vec<bool> = node
                .inputs
                .iter()
                .zip(&needs)
                .map(|(v, &need)| match &cot {
                    Cotangents::Compute(_, leaves) => {
                        need && (*leaves || self.nodes[v.0].op.is_some())
                    }
                    Cotangents::Cached(_) => false,
                })
                .collect();
            let args = TangentArgs {
                inputs: &inputs,
                tangents: &tangents,
                output: &node.value,
                g_out: &g_out,
                g_out_dot: dots[i].as_ref(),
                needs: &needs,
                cotangent_needed: &cotangent_needed,
                mode,
            };
            let pairs = op.vjp_tangent(&self.backend, &args)?;
            for ((input, need), (c, cd)) in node.inputs.iter().zip(needs).zip(pairs) {
                if !need {
                    continue;
                }
                if let (Cotangents::Compute(grads, _), Some(c)) = (&mut cot, c) {
                    accumulate(&self.backend, &mut grads[input.0], c)?;
                }
                if let Some(cd) = cd {
                    accumulate(&self.backend, &mut dots[input.0], cd)?;
                }
            }
        }
        Ok(Grads { grads: dots })
    }
}

/// Where the reverse-tangent pass gets each output's plain cotangent.
enum Cotangents<'a, B: Backend> {
    /// Computed in the same pass (and kept for the leaves when the flag is
    /// set).
    Compute(&'a mut Vec<Option<Tensor<B>>>, bool),
    /// From an earlier backward pass at the same point.
    Cached(&'a Grads<B>),
}

fn accumulate<B: Backend>(be: &B, slot: &mut Option<Tensor<B>>, value: Tensor<B>) -> Result<()> {
    match slot.as_mut() {
        Some(acc) => be.axpy(acc, 1.0, &value),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// `a + b` where either may be absent (a zero).
pub(crate) fn add_optional<B: Backend>(
    be: &B,
    a: Option<Tensor<B>>,
    b: Option<Tensor<B>>,
) -> Result<Option<Tensor<B>>> {
    Ok(match (a, b) {
        (Some(mut a), Some(b)) => {
            be.axpy(&mut a, 1.0, &b)?;
            Some(a)
        }
        (a, None) => a,
        (None, b) => b,
    })
}
