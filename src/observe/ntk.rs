//! The empirical neural tangent kernel on n examples, Theta_k(i, j) =
//! <d f_k(x_i)/d theta, d f_k(x_j)/d theta> for each output k and its trace
//! over outputs, built from per-layer Gram matrices of the layer inputs and
//! backprop signals: for a dense layer with multiplier m the contribution is
//! m^2 (D_k D_k^T) .* (A A^T), plus m_b^2 D_k D_k^T for its bias — one
//! backward pass per output, no n x P Jacobian.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::mlp::Mlp;
use crate::tape::Tape;
use crate::tensor::Tensor;

/// Gram matrices, row-major `n x n`.
pub struct Ntk {
    pub n: usize,
    /// One per output.
    pub per_output: Vec<Vec<f64>>,
    /// Sum over outputs.
    pub trace: Vec<f64>,
}

impl Ntk {
    /// ||a - b||_F / ||b||_F of the trace kernels: the kernel's relative
    /// movement from `b` (e.g. at initialization).
    pub fn relative_change(&self, from: &Ntk) -> Result<f64> {
        if self.n != from.n {
            return Err(Error::shape(format!(
                "NTKs on {} and {} examples",
                self.n, from.n
            )));
        }
        let diff: f64 = self
            .trace
            .iter()
            .zip(&from.trace)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let base: f64 = from.trace.iter().map(|b| b * b).sum();
        Ok((diff / base).sqrt())
    }
}

/// The empirical NTK of `model` (one member) on inputs `x` `[n, d]`.
pub fn empirical_ntk<B: Backend>(be: &B, model: &Mlp<B>, x: &Tensor<B>) -> Result<Ntk> {
    if model.ensemble != 1 {
        return Err(Error::msg(
            "the NTK is measured one model at a time (ensemble of 1)",
        ));
    }
    let n = x.shape().first().copied().unwrap_or(0);
    let outputs = *model.spec.sizes.last().unwrap_or(&0);
    let mut tape = Tape::new(be.clone());
    let xv = tape.leaf(x.clone(), false);
    let vars = model.forward(&mut tape, xv, true)?;
    // Gram matrices of each layer's inputs, shared by all outputs.
    let input_grams = vars
        .layer_inputs
        .iter()
        .map(|&a| be.to_f64(&be.matmul(tape.value(a), false, tape.value(a), true, 1.0)?))
        .collect::<Result<Vec<_>>>()?;
    let mut per_output = Vec::with_capacity(outputs);
    let mut trace = vec![0.0; n * n];
    for k in 0..outputs {
        let mut seed = vec![0.0; n * outputs];
        for i in 0..n {
            seed[i * outputs + k] = 1.0;
        }
        let grads = tape.backward(vars.output, be.from_f64(&[1, n, outputs], &seed)?)?;
        let mut theta = vec![0.0; n * n];
        for (l, gram) in input_grams.iter().enumerate() {
            let d = grads
                .get(vars.layer_products[l])
                .ok_or_else(|| Error::msg("internal: no layer signal"))?;
            let dd = be.to_f64(&be.matmul(d, false, d, true, 1.0)?)?;
            let m2 = model.scales[l].multiplier.powi(2);
            let mb2 = if model.spec.bias {
                model.scales[l].bias_multiplier.powi(2)
            } else {
                0.0
            };
            for ((t, &dv), &av) in theta.iter_mut().zip(&dd).zip(gram) {
                *t += dv * (m2 * av + mb2);
            }
        }
        for (t, v) in trace.iter_mut().zip(&theta) {
            *t += v;
        }
        per_output.push(theta);
    }
    Ok(Ntk {
        n,
        per_output,
        trace,
    })
}
