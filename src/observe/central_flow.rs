//! The central flow of full-batch gradient descent (Cohen, Damian et al.,
//! "Understanding Optimization in Deep Learning with Central Flows",
//! arXiv:2410.24206): an ODE for the time-averaged GD trajectory at the edge
//! of stability, integrated by forward Euler beside the real run. Time t
//! counts GD steps; a step of the real run is `1 / dt` substeps here.
//!
//! The law, with U the top-k Hessian eigenvectors at the flow's point w,
//! `S = U^T H U` (diagonal for exact eigenvectors) and X a k x k PSD
//! matrix (the covariance of the oscillations in U's coordinates, Sigma =
//! U X U^T):
//!
//! `dw/dt = -eta [ g + 1/2 sum_ij X_ij grad S_ij ]`,  g = grad L(w),
//! `grad S_ij = T[u_i, u_j, .]` (`curvature::ThirdOnData`).
//!
//! X keeps the flow at the edge: with `A = 2I - eta S`, X solves the
//! complementarity problem `X >= 0`, `A + dt dA/dt[X] >= 0`, `<X, A + dt
//! dA/dt[X]> = 0`. The rate of change of A along the flow, with U held
//! fixed over the substep (for eigenvectors, the derivative of an
//! eigenvalue is `u^T (dH/dt) u`, and dH/dt along dw/dt is
//! `T[., ., dw/dt]`):
//!
//! `dS_ij/dt = <grad S_ij, dw/dt> = -eta [ B_ij + 1/2 sum_kl G_ij,kl X_kl ]`,
//! `B_ij = <grad S_ij, g>`, `G_ij,kl = <grad S_ij, grad S_kl>`,
//!
//! so `dA/dt[X] = -eta dS/dt = eta^2 (B + 1/2 G X)`, affine in X with a PSD
//! operator (G is a Gram matrix). The problem handed to
//! `linalg::solve_complementarity` is therefore
//! `Q = A + dt eta^2 B`, `L = dt eta^2 / 2 G`. When A stays PSD after the
//! substep without help (`Q >= 0`) X = 0 and the flow is gradient flow;
//! otherwise X is just large enough that the top eigenvalues land on 2/eta
//! at the end of the substep (an eigenvalue that drifted above 2/eta is put
//! back: A's negative part is in Q). For k = 1 at S = 2/eta this is the
//! paper's `sigma^2 = max(0, -2 <g, grad S> / |grad S|^2)`.
//!
//! Predictions of time averages: for any f, `f(w) + 1/2 <U^T (hess f) U,
//! X>`; for the loss, `L(w) + 1/2 sum_i X_ii S_ii` (at the edge, S_ii =
//! 2/eta: `L(w) + tr(X) / eta`).

use crate::backend::Backend;
use crate::curvature::{flatten, unflatten, LossOnData, ThirdOnData};
use crate::error::{Error, Result};
use crate::linalg::{self, dot, LanczosOptions};
use crate::nn::loss::LossKind;
use crate::nn::model::Model;
use crate::tape::Curvature;
use crate::tensor::Tensor;

/// One Euler substep's measurements at its starting point.
#[derive(Debug, Clone)]
pub struct FlowStep {
    /// L(w) at the flow's point.
    pub loss: f64,
    /// The predicted time-averaged loss `L(w) + 1/2 <X, S>`.
    pub predicted_loss: f64,
    /// The top-k Hessian eigenvalues at w (descending).
    pub sharpness: Vec<f64>,
    /// Eigenvalues of X (descending).
    pub x_eigenvalues: Vec<f64>,
    /// Hessian-vector products this substep spent.
    pub hvps: usize,
}

/// The state of a central (or plain gradient) flow.
pub struct CentralFlow<B: Backend> {
    be: B,
    model: Model<B>,
    kind: LossKind,
    chunks: Vec<(Tensor<B>, Tensor<B>)>,
    eta: f64,
    /// None: plain gradient flow (X = 0, no curvature measured).
    k: Option<usize>,
    w: Vec<f64>,
    warm: Option<Vec<f64>>,
    seed: u64,
}

impl<B: Backend> CentralFlow<B> {
    /// A flow from `model`'s current weights (a copy) for GD at learning
    /// rate `eta`; `k = None` integrates gradient flow.
    pub fn new(
        be: &B,
        model: &Model<B>,
        kind: LossKind,
        chunks: Vec<(Tensor<B>, Tensor<B>)>,
        eta: f64,
        k: Option<usize>,
        seed: u64,
    ) -> Result<Self> {
        let copy = model.member(be, 0)?;
        let w = flatten(be, &copy.params().into_iter().cloned().collect::<Vec<_>>())?;
        if let Some(k) = k {
            if k == 0 || k > 8 || k >= w.len() {
                return Err(Error::msg(format!(
                    "central flow: k = {k} eigenvectors for a {}-parameter model; \
                     k must be in 1..=8 and below the parameter count",
                    w.len()
                )));
            }
        }
        Ok(CentralFlow {
            be: be.clone(),
            model: copy,
            kind,
            chunks,
            eta,
            k,
            w,
            warm: None,
            seed,
        })
    }

    /// The flow's weights, flat.
    pub fn weights(&self) -> &[f64] {
        &self.w
    }

    /// One forward-Euler substep of length `dt` (in GD steps).
    pub fn substep(&mut self, dt: f64) -> Result<FlowStep> {
        let like: Vec<Tensor<B>> = self.model.params().into_iter().cloned().collect();
        let refs: Vec<&Tensor<B>> = like.iter().collect();
        let tensors = unflatten(&self.be, &self.w, &refs)?;
        for (dst, t) in self.model.params_mut().into_iter().zip(tensors) {
            *dst = t;
        }
        let lod = LossOnData::new(&self.be, &self.model, self.kind, self.chunks.clone())?;
        let (loss, grad) = lod.gradient()?;
        let g = flatten(&self.be, &grad)?;
        let Some(k) = self.k else {
            for (w, gi) in self.w.iter_mut().zip(&g) {
                *w -= dt * self.eta * gi;
            }
            return Ok(FlowStep {
                loss,
                predicted_loss: loss,
                sharpness: Vec::new(),
                x_eigenvalues: Vec::new(),
                hvps: 0,
            });
        };
        let eig = {
            let mut op = |v: &[f64]| lod.product(v, Curvature::Hessian);
            let opts = LanczosOptions {
                k,
                max_iter: (4 * k + 40).min(self.w.len()),
                tol: 1e-7,
                seed: self.seed,
                start: self.warm.clone(),
            };
            linalg::lanczos(self.w.len(), &mut op, &opts)?
        };
        self.warm = Some(eig.next_start());
        let third = ThirdOnData::new(&self.be, &self.model, self.kind, self.chunks.clone())?;
        let grad_s = pair_gradients(&third, &eig.vectors)?;
        let (x, drift) = self.solve_x(&eig.values, &g, &grad_s, dt)?;
        for (i, w) in self.w.iter_mut().enumerate() {
            *w += dt * (-self.eta * (g[i] + 0.5 * drift[i]));
        }
        let predicted_loss = loss + 0.5 * (0..k).map(|i| x[i * k + i] * eig.values[i]).sum::<f64>();
        Ok(FlowStep {
            loss,
            predicted_loss,
            sharpness: eig.values.clone(),
            x_eigenvalues: linalg::sym_eigen(&x, k)?.values,
            hvps: lod.products() + third.hvps(),
        })
    }
}

/// `grad S_ij = T[u_i, u_j, .]` for all i, j (k x k, symmetric: the pairs
/// j >= i are computed, k(k+1)/2 of them at 2 displaced points per i).
fn pair_gradients<B: Backend>(third: &ThirdOnData<'_, B>, u: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
    let k = u.len();
    let mut out = vec![Vec::new(); k * k];
    for i in 0..k {
        let row = third.along(&u[i], &u[i..].to_vec())?;
        for (off, t) in row.into_iter().enumerate() {
            let j = i + off;
            out[j * k + i] = t.clone();
            out[i * k + j] = t;
        }
    }
    Ok(out)
}

impl<B: Backend> CentralFlow<B> {
    /// X from the complementarity problem `Q = A + dt eta^2 B`,
    /// `L = dt eta^2 / 2 G` (module doc), and `sum_ij X_ij grad S_ij`.
    fn solve_x(
        &self,
        s: &[f64],
        g: &[f64],
        grad_s: &[Vec<f64>],
        dt: f64,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let k = s.len();
        let kk = k * k;
        let c = dt * self.eta * self.eta;
        let mut q = vec![0.0; kk];
        for i in 0..k {
            for j in 0..k {
                let a = if i == j { 2.0 - self.eta * s[i] } else { 0.0 };
                q[i * k + j] = a + c * dot(&grad_s[i * k + j], g);
            }
        }
        let mut op = vec![0.0; kk * kk];
        for r in 0..kk {
            for col in r..kk {
                let v = 0.5 * c * dot(&grad_s[r], &grad_s[col]);
                op[r * kk + col] = v;
                op[col * kk + r] = v;
            }
        }
        let x = linalg::solve_complementarity(&q, &op, k)?.x;
        let mut drift = vec![0.0; g.len()];
        for (pair, gs) in grad_s.iter().enumerate() {
            if x[pair] != 0.0 {
                linalg::axpy(x[pair], gs, &mut drift);
            }
        }
        Ok((x, drift))
    }
}
