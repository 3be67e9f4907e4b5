//! The central flow of full-batch gradient descent and RMSProp (Cohen, Damian et al.,
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

//!
//! RMSProp (`observe::flow_optimizer`) is the same law in preconditioned
//! coordinates: with `d = P^{-1/2}` (diagonal), U the top-k eigenvectors
//! of `d H d` with eigenvalues s, `V = d U` and `Sigma = V Y V^T`,
//!
//! `dw/dt = -d^2 [ g + 1/2 sum_ij Y_ij T[v_i, v_j, .] ]`, `A = 2I - s`,
//!
//! and the rate of `S_ij = v_i^T H v_j` gains nu's share, `(s_i + s_j)
//! sum_p (d log d_p / dt) u_ip u_jp`, with nu's rate taken at the previous
//! substep's Y (an explicit step: the share is O(1 - alpha) and keeps the
//! problem's operator the symmetric Gram matrix the solver needs). GD is
//! the case `d = sqrt(eta)`, where Y = X / eta; the code runs both through
//! the preconditioned form and reports X (GD) or Y (RMSProp).

use super::flow_optimizer::{FlowOptimizer, Nu};
use crate::backend::{Backend, DType};
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
    /// The predicted time-averaged loss `L(w) + 1/2 <Sigma, H>`.
    pub predicted_loss: f64,
    /// The top-k eigenvalues at w (descending): of H for GD, of the
    /// preconditioned `P^{-1/2} H P^{-1/2}` for RMSProp.
    pub sharpness: Vec<f64>,
    /// Eigenvalues of X (descending; Y for RMSProp, module doc).
    pub x_eigenvalues: Vec<f64>,
    /// Hessian-vector products this substep spent.
    pub hvps: usize,
    /// Whether Lanczos met its tolerance (true for gradient flow).
    pub converged: bool,
}

/// The state of a central (or plain gradient) flow.
pub struct CentralFlow<B: Backend> {
    be: B,
    model: Model<B>,
    kind: LossKind,
    chunks: Vec<(Tensor<B>, Tensor<B>)>,
    opt: FlowOptimizer,
    /// None: plain gradient flow (X = 0, no curvature measured).
    k: Option<usize>,
    w: Vec<f64>,
    /// RMSProp's nu, set at the first substep.
    nu: Option<Nu>,
    /// The previous substep's Y (k x k), for nu's share of dS/dt.
    y_prev: Vec<f64>,
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
        Self::following(be, model, kind, chunks, FlowOptimizer::Gd { eta }, k, seed)
    }

    /// A flow from `model`'s current weights for `opt`; `k = None`
    /// integrates the flow without oscillations (gradient flow, or
    /// RMSProp's preconditioned gradient flow with nu's ODE).
    pub fn following(
        be: &B,
        model: &Model<B>,
        kind: LossKind,
        chunks: Vec<(Tensor<B>, Tensor<B>)>,
        opt: FlowOptimizer,
        k: Option<usize>,
        seed: u64,
    ) -> Result<Self> {
        opt.check()?;
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
            opt,
            k,
            w,
            nu: None,
            y_prev: Vec::new(),
            warm: None,
            seed,
        })
    }

    /// The flow's weights, flat.
    pub fn weights(&self) -> &[f64] {
        &self.w
    }

    /// RMSProp's nu along the flow (None for GD, or before the first
    /// substep).
    pub fn nu(&self) -> Option<&[f64]> {
        self.nu.as_ref().map(|n| n.nu.as_slice())
    }

    /// One forward-Euler substep of length `dt` (in training steps).
    pub fn substep(&mut self, dt: f64) -> Result<FlowStep> {
        self.load_weights()?;
        let lod = LossOnData::new(&self.be, &self.model, self.kind, self.chunks.clone())?;
        let (loss, grad) = lod.gradient()?;
        let g = flatten(&self.be, &grad)?;
        let (d, rms) = scale(&self.opt, &mut self.nu, &g);
        let Some(k) = self.k else {
            for ((w, gi), di) in self.w.iter_mut().zip(&g).zip(&d) {
                *w -= dt * di * di * gi;
            }
            advance_nu(&mut self.nu, dt, rms, &g, None);
            return Ok(FlowStep {
                loss,
                predicted_loss: loss,
                sharpness: Vec::new(),
                x_eigenvalues: Vec::new(),
                hvps: 0,
                converged: true,
            });
        };
        let opts = LanczosOptions {
            k,
            max_iter: (4 * k + 40).min(self.w.len()),
            tol: lanczos_tolerance(self.be.dtype()),
            seed: self.seed,
            start: self.warm.clone(),
        };
        let eig = preconditioned_top(&lod, &d, &opts)?;
        self.warm = Some(eig.next_start());
        let v: Vec<Vec<f64>> = eig
            .vectors
            .iter()
            .map(|u| u.iter().zip(&d).map(|(a, b)| a * b).collect())
            .collect();
        let third = ThirdOnData::new(&self.be, &self.model, self.kind, self.chunks.clone())?;
        let grad_s = pair_gradients(&third, &v)?;
        let oscillation = Oscillation {
            s: &eig.values,
            u: &eig.vectors,
            d: &d,
        };
        let nu_share = match (rms, &self.nu) {
            (Some((alpha, eps)), Some(nu)) => {
                let hsh = oscillation.diag_hsh(&self.y_prev);
                Some(oscillation.nu_share(nu, alpha, eps, &g, hsh.as_deref()))
            }
            _ => None,
        };
        let (y, drift) = self.solve_y(&oscillation, &g, &grad_s, nu_share.as_deref(), dt)?;
        for i in 0..self.w.len() {
            self.w[i] -= dt * d[i] * d[i] * (g[i] + 0.5 * drift[i]);
        }
        let hsh = oscillation.diag_hsh(&y);
        advance_nu(&mut self.nu, dt, rms, &g, hsh.as_deref());
        let predicted_loss = loss + 0.5 * (0..k).map(|i| y[i * k + i] * eig.values[i]).sum::<f64>();
        let (sharpness, x) = match self.opt {
            FlowOptimizer::Gd { eta } => (
                eig.values.iter().map(|s| s / eta).collect(),
                y.iter().map(|v| v * eta).collect::<Vec<_>>(),
            ),
            FlowOptimizer::RmsProp { .. } => (eig.values.clone(), y.clone()),
        };
        self.y_prev = y;
        Ok(FlowStep {
            loss,
            predicted_loss,
            sharpness,
            x_eigenvalues: linalg::sym_eigen(&x, k)?.values,
            hvps: lod.products() + third.hvps(),
            converged: eig.converged,
        })
    }
}

impl<B: Backend> CentralFlow<B> {
    /// Puts the flow's flat weights into its model copy.
    fn load_weights(&mut self) -> Result<()> {
        let like: Vec<Tensor<B>> = self.model.params().into_iter().cloned().collect();
        let refs: Vec<&Tensor<B>> = like.iter().collect();
        let tensors = unflatten(&self.be, &self.w, &refs)?;
        for (dst, t) in self.model.params_mut().into_iter().zip(tensors) {
            *dst = t;
        }
        Ok(())
    }
}

/// The top eigenpairs of the preconditioned Hessian `d H d` by Lanczos.
fn preconditioned_top<B: Backend>(
    lod: &LossOnData<'_, B>,
    d: &[f64],
    opts: &LanczosOptions,
) -> Result<linalg::LanczosResult> {
    let mut op = |v: &[f64]| -> Result<Vec<f64>> {
        let dv: Vec<f64> = v.iter().zip(d).map(|(a, b)| a * b).collect();
        let hv = lod.product(&dv, Curvature::Hessian)?;
        Ok(hv.iter().zip(d).map(|(a, b)| a * b).collect())
    };
    linalg::lanczos_in(d.len(), &mut op, opts, lod.basis_storage(opts.tol))
}

/// Lanczos's relative residual for U: 1e-7 in f64; f32 and f16 products
/// are good to about 1e-6 of their norm, so 1e-7 would never be met there
/// and every substep would run to its iteration cap.
fn lanczos_tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-7,
        DType::F32 | DType::F16 => 1e-5,
    }
}

/// `d = P^{-1/2}` at the flow's point, and RMSProp's (alpha, eps).
fn scale(opt: &FlowOptimizer, nu: &mut Option<Nu>, g: &[f64]) -> (Vec<f64>, Option<(f64, f64)>) {
    match *opt {
        FlowOptimizer::Gd { eta } => (vec![eta.sqrt(); g.len()], None),
        FlowOptimizer::RmsProp { lr, alpha, eps } => {
            let nu = nu.get_or_insert_with(|| Nu::first(alpha, g));
            (nu.scale(lr, eps), Some((alpha, eps)))
        }
    }
}

fn advance_nu(
    nu: &mut Option<Nu>,
    dt: f64,
    rms: Option<(f64, f64)>,
    g: &[f64],
    hsh: Option<&[f64]>,
) {
    if let (Some((alpha, _)), Some(nu)) = (rms, nu.as_mut()) {
        let rate = nu.rate(alpha, g, hsh);
        nu.advance(dt, &rate);
    }
}

/// `grad S_ij = T[v_i, v_j, .]` for all i, j (k x k, symmetric: the pairs
/// j >= i are computed, k(k+1)/2 of them at 2 displaced points per i).
fn pair_gradients<B: Backend>(third: &ThirdOnData<'_, B>, v: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
    let k = v.len();
    let mut out = vec![Vec::new(); k * k];
    for i in 0..k {
        let row = third.along(&v[i], &v[i..].to_vec())?;
        for (off, t) in row.into_iter().enumerate() {
            let j = i + off;
            out[j * k + i] = t.clone();
            out[i * k + j] = t;
        }
    }
    Ok(out)
}

/// The top of the preconditioned spectrum at the flow's point.
struct Oscillation<'a> {
    s: &'a [f64],
    u: &'a [Vec<f64>],
    d: &'a [f64],
}

impl Oscillation<'_> {
    /// `diag(H Sigma H)` for `Sigma = V Y V^T`: with `H v_k = s_k u_k / d`,
    /// `sum_kl Y_kl (s_k u_k / d) (s_l u_l / d)`; None when Y is absent.
    fn diag_hsh(&self, y: &[f64]) -> Option<Vec<f64>> {
        let k = self.s.len();
        if y.len() != k * k || y.iter().all(|v| *v == 0.0) {
            return None;
        }
        let mut out = vec![0.0; self.d.len()];
        for (p, o) in out.iter_mut().enumerate() {
            let h: Vec<f64> = (0..k)
                .map(|i| self.s[i] * self.u[i][p] / self.d[p])
                .collect();
            *o = (0..k)
                .flat_map(|i| (0..k).map(move |j| (i, j)))
                .map(|(i, j)| y[i * k + j] * h[i] * h[j])
                .sum();
        }
        Some(out)
    }

    /// nu's share of `dS_ij/dt`: `(s_i + s_j) sum_p (d log d_p/dt) u_ip u_jp`.
    fn nu_share(&self, nu: &Nu, alpha: f64, eps: f64, g: &[f64], hsh: Option<&[f64]>) -> Vec<f64> {
        let k = self.s.len();
        let rate = nu.rate(alpha, g, hsh);
        let slope = nu.log_scale_slope(eps);
        let dlog: Vec<f64> = rate.iter().zip(&slope).map(|(r, c)| r * c).collect();
        let mut out = vec![0.0; k * k];
        for i in 0..k {
            for j in i..k {
                let sum: f64 = (0..dlog.len())
                    .map(|p| dlog[p] * self.u[i][p] * self.u[j][p])
                    .sum();
                out[i * k + j] = (self.s[i] + self.s[j]) * sum;
                out[j * k + i] = out[i * k + j];
            }
        }
        out
    }
}

impl<B: Backend> CentralFlow<B> {
    /// Y from the complementarity problem `Q = A + dt (B - N)`, `L = dt / 2
    /// G` with `B_ij = <grad S_ij, d^2 g>`, `G_ij,kl = <grad S_ij, d^2
    /// grad S_kl>` and N nu's share of dS/dt (module doc), and `sum_ij Y_ij
    /// grad S_ij`.
    fn solve_y(
        &self,
        osc: &Oscillation<'_>,
        g: &[f64],
        grad_s: &[Vec<f64>],
        nu_share: Option<&[f64]>,
        dt: f64,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let k = osc.s.len();
        let kk = k * k;
        let d2: Vec<f64> = osc.d.iter().map(|x| x * x).collect();
        let d2g: Vec<f64> = g.iter().zip(&d2).map(|(a, b)| a * b).collect();
        let mut q = vec![0.0; kk];
        for i in 0..k {
            for j in 0..k {
                let a = if i == j { 2.0 - osc.s[i] } else { 0.0 };
                let n = nu_share.map_or(0.0, |n| n[i * k + j]);
                q[i * k + j] = a + dt * (dot(&grad_s[i * k + j], &d2g) - n);
            }
        }
        let scaled: Vec<Vec<f64>> = grad_s
            .iter()
            .map(|t| t.iter().zip(&d2).map(|(a, b)| a * b).collect())
            .collect();
        let mut op = vec![0.0; kk * kk];
        for r in 0..kk {
            for col in r..kk {
                let v = 0.5 * dt * dot(&grad_s[r], &scaled[col]);
                op[r * kk + col] = v;
                op[col * kk + r] = v;
            }
        }
        let y = linalg::solve_complementarity(&q, &op, k)?.x;
        let mut drift = vec![0.0; g.len()];
        for (pair, gs) in grad_s.iter().enumerate() {
            if y[pair] != 0.0 {
                linalg::axpy(y[pair], gs, &mut drift);
            }
        }
        Ok((y, drift))
    }
}
