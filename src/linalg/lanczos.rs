//! The Lanczos method with full reorthogonalization: the Krylov process
//! itself (shared with stochastic Lanczos quadrature) and, built on it, the
//! top-k eigensolver for a Hessian's largest eigenvalues.
//!
//! Full reorthogonalization keeps the basis orthonormal to working
//! precision, so there are no ghost copies of converged eigenvalues and the
//! residual estimate `|beta_m s_{m,i}|` is the true residual
//! `||A y_i - theta_i y_i||`. Each step subtracts the three-term recurrence
//! (`beta_{m-1} q_{m-1}`, then `alpha q_m`) from `A q_m`, which does the
//! large cancellation on two vectors, then runs one classical Gram-Schmidt
//! pass against the whole basis, fused with the measurement of what it
//! left; a second pass runs only when a measured component exceeds `1e-12`
//! of the residual's norm (a pass that cancelled most of its vector;
//! "twice is enough", Kahan and Parlett). So every basis vector is measured
//! orthogonal to each earlier one to `1e-12` (in practice `1e-14`), not
//! assumed to be.
//!
//! The price is memory: the basis holds up to `min(max_iter, n)` vectors of
//! `n` values, i.e. `8 * n * max_iter` bytes in `f64` (800 MB for a
//! 1M-parameter model and 100 iterations), half that in `f32`. Work on top
//! of the operator call: two reads of the `m`-vector basis per step (its
//! coefficients; the update and its measurement), `16 * n * m` bytes of
//! memory traffic in `f64`, half of what Gram-Schmidt applied twice reads.
//! Add the convergence check's dense Jacobi solve of the `m x m` `T` (a few
//! ms at `m = 100`, ~20 ms at `m = 200`).
//!
//! The basis may be stored in `f32` (`BasisStorage`), all arithmetic still
//! in `f64`: an operator computed in `f32` (an `f32` model's Hessian-vector
//! product) is accurate to about `1e-7` of its norm, and its products have
//! measured components of `1e-8` along the basis that full
//! reorthogonalization removes, so an `f64` basis stores digits the
//! operator never had. The stored vectors are orthonormal only to their
//! `f32` rounding (at most `2^-24` of each), which is measured as each is
//! stored and added to the bounds; `f64` operators keep the `f64` basis and
//! its exactness.
//!
//! The bounds stay linear in the residuals (Kahan's), not the quadratic
//! Kato-Temple bound `r^2 / gap`: that one is as valid once the Krylov
//! space has found the top eigenvalues, but it lets a warm-started solve
//! stop before the random part of its start has uncovered an eigenvalue
//! the warm part lacked (two crossing eigenvalues: the tests in
//! `tests/linalg.rs` then get a converged value of the second one), and it
//! saved at most 3 of 20-53 products on the benchmark grid.

use crate::error::{Error, Result};
use crate::linalg::eigen::sym_eigen;
use crate::linalg::operator::{apply, start_vector, Operator};
use crate::linalg::vector::{
    add_combination, axpy, gaussian, norm, round_scaled, scale, subtract_and_dots, widen, Stored,
};
use crate::rng::Rng;
use std::borrow::Cow;

/// `beta` below this fraction of the largest `||A q||` seen means the Krylov
/// space is invariant to working precision (what is left of `A q` after
/// orthogonalization is rounding noise, not a new direction).
const BREAKDOWN: f64 = 1e-12;

/// Largest `|q_j . w| / ||w||` accepted between a new basis vector and an
/// old one. One Gram-Schmidt pass leaves about `1e-15` (the rounding of the
/// chunked dot products, whose sequential runs are at most 4096 long, is
/// below `5e-13` even in the worst case), so this only catches a pass whose
/// rounding was large relative to what it left.
const ORTHOGONALITY: f64 = 1e-12;

/// Gram-Schmidt passes after which a vector still not orthogonal to the
/// basis is taken for rounding noise inside its span: each pass shrinks
/// the components along the basis to rounding of the norm before it, so
/// failing three times takes a norm below about `1e-12` of the first.
const MAX_PASSES: usize = 3;

/// The Lanczos process: an orthonormal basis `q_0, q_1, ...` of the Krylov
/// space of a start vector and the tridiagonal projection `T = Q^T A Q`
/// (diagonal `alphas`, off-diagonal `betas`), the basis stored as `T`
/// (`f64`, or `f32` with the rounding measured: see `BasisStorage`).
pub(crate) struct LanczosProcess<S: Stored = f64> {
    n: usize,
    /// `q_0 ..= q_m`: one vector ahead of `alphas` between steps.
    basis: Vec<Vec<S>>,
    alphas: Vec<f64>,
    /// `betas[j]` couples `q_j` and `q_{j+1}` in `T`.
    betas: Vec<f64>,
    /// What is left of `A q_m` after orthogonalization, and its norm.
    residual: Vec<f64>,
    beta: f64,
    /// Largest `||A q_j||` so far: the operator's scale for `BREAKDOWN`.
    op_scale: f64,
    /// The last residual could not be made orthogonal to the basis: it is
    /// rounding noise inside the span, a breakdown whatever its norm.
    unorthogonalizable: bool,
    /// What storing the basis rounded: the sum of `||q_j - stored q_j||^2`,
    /// and the same weighted by each vector's coupling `beta_{j-1}^2` (see
    /// `storage_error`). Zero for an `f64` basis.
    rounded_sq: f64,
    coupled_rounded_sq: f64,
}

impl<S: Stored> LanczosProcess<S> {
    /// A process started from the unit vector `q0`.
    pub(crate) fn new(q0: Vec<f64>) -> Self {
        let mut process = LanczosProcess {
            n: q0.len(),
            basis: Vec::new(),
            alphas: Vec::new(),
            betas: Vec::new(),
            residual: Vec::new(),
            beta: 0.0,
            op_scale: 0.0,
            unorthogonalizable: false,
            rounded_sq: 0.0,
            coupled_rounded_sq: 0.0,
        };
        process.store(q0, 1.0, 0.0);
        process
    }

    /// Appends the unit vector `factor * q`, coupled to the last one by
    /// `beta`, to the basis in storage precision, keeping account of the
    /// rounding: an `f64` vector is scaled in place and moved, any other
    /// scaled and rounded in one pass.
    fn store(&mut self, mut q: Vec<f64>, factor: f64, beta: f64) {
        if S::EXACT && factor != 1.0 {
            scale(factor, &mut q);
        }
        let (stored, lost_sq) = match S::exact(q) {
            Ok(moved) => (moved, 0.0),
            Err(q) => round_scaled::<S>(&q, factor),
        };
        self.rounded_sq += lost_sq;
        self.coupled_rounded_sq += beta * beta * lost_sq;
        self.basis.push(stored);
    }

    /// `q_j` in `f64`, borrowed when stored so.
    fn vector(&self, j: usize) -> Cow<'_, [f64]> {
        let v = &self.basis[j];
        match S::as_f64(v) {
            Some(exact) => Cow::Borrowed(exact),
            None => Cow::Owned(widen(v)),
        }
    }

    /// What storing the basis in less than `f64` can hide from `T`'s
    /// bounds: `(coupling, orthonormality)`. Storing `q_{j+1} = w_j /
    /// beta_j` as `q_{j+1} + d_{j+1}` makes the Lanczos relation `A Q = Q T
    /// + beta_m q_{m+1} e_m^T + G` with `||G||_F <= coupling = sqrt(sum
    /// beta_j^2 ||d_{j+1}||^2)`, which adds at most that to every residual;
    /// and the stored basis is orthonormal only to `orthonormality = 2
    /// sqrt(sum ||d_j||^2)` (plus the measured `ORTHOGONALITY` per pair),
    /// which moves its Ritz values by at most that relative to `||T||`.
    /// Both `(0, 0)` for an `f64` basis, whose rounding is `T`'s own.
    pub(crate) fn storage_error(&self) -> (f64, f64) {
        if S::EXACT {
            return (0.0, 0.0);
        }
        let pairs = self.basis.len() as f64;
        (
            self.coupled_rounded_sq.sqrt(),
            2.0 * self.rounded_sq.sqrt() + pairs * ORTHOGONALITY,
        )
    }

    /// Steps taken so far (= operator calls = order of `T`).
    pub(crate) fn steps(&self) -> usize {
        self.alphas.len()
    }

    /// One operator call: `A q_m`, less the three-term recurrence, then
    /// orthogonalized against the whole basis, gives `alpha_m` and the next
    /// residual.
    pub(crate) fn step(&mut self, op: &mut Operator<'_>) -> Result<()> {
        let m = self.alphas.len();
        let mut w = apply(op, &self.vector(m), self.n)?;
        self.op_scale = self.op_scale.max(norm(&w));
        let (local, first) = self.three_term(&mut w, m);
        let done = orthogonalize(&mut w, &self.basis, first);
        // alpha is the total q_m-coefficient removed; the other
        // coefficients are beta_{m-1} and rounding, already in T.
        self.alphas.push(local + done.coefficients[m]);
        self.beta = done.norm;
        self.unorthogonalizable = !done.orthogonal;
        self.residual = w;
        Ok(())
    }

    /// Subtracts `beta_{m-1} q_{m-1}` and `alpha q_m` from `w = A q_m`
    /// (the Lanczos recurrence, which removes all of `w`'s basis components
    /// in exact arithmetic) and returns that `alpha` and the basis
    /// components of what is left. Doing this large cancellation first,
    /// on two vectors, leaves the full pass a vector already orthogonal to
    /// rounding of `||A q_m||`, which one pass then makes orthogonal to
    /// rounding of its own, smaller norm.
    fn three_term(&self, w: &mut [f64], m: usize) -> (f64, Vec<f64>) {
        let previous = m.saturating_sub(1)..m;
        let coupling = &self.betas[previous.clone()];
        let current = &self.basis[m..=m];
        let (d, _) = subtract_and_dots(w, &self.basis[previous], coupling, current);
        let alpha = d[0];
        let (first, _) = subtract_and_dots(w, current, &[alpha], &self.basis);
        (alpha, first)
    }

    /// Norm of the last residual: `beta_m`, the coupling of the Krylov space
    /// to the rest of the space.
    pub(crate) fn beta(&self) -> f64 {
        self.beta
    }

    /// Whether the Krylov space is invariant to working precision.
    pub(crate) fn broke_down(&self) -> bool {
        self.beta <= BREAKDOWN * self.op_scale || self.unorthogonalizable
    }

    /// Extends the basis by the normalized residual (call only if it did not
    /// break down).
    pub(crate) fn advance(&mut self) {
        let q = std::mem::take(&mut self.residual);
        self.store(q, 1.0 / self.beta, self.beta);
        self.betas.push(self.beta);
    }

    /// Extends the basis by a random direction orthogonal to it, coupled to
    /// it by 0 in `T`: after a breakdown the basis spans an invariant
    /// subspace, and the search continues in its complement. Call only with
    /// fewer than `n` steps taken.
    pub(crate) fn restart(&mut self, rng: &mut Rng) -> Result<()> {
        let mut q = gaussian(self.n, rng);
        let (first, before_sq) = subtract_and_dots(&mut q, &[], &[], &self.basis);
        let done = orthogonalize(&mut q, &self.basis, first);
        let after = done.norm;
        // A Gaussian vector keeps about sqrt((n - m) / n) of its norm; losing
        // almost all of it means the basis already spans the space.
        if !done.orthogonal || after <= 1e-8 * before_sq.sqrt() {
            return Err(Error::msg(
                "Lanczos restart: no direction left orthogonal to the Krylov basis",
            ));
        }
        self.residual.clear();
        self.unorthogonalizable = false;
        self.store(q, 1.0 / after, 0.0);
        self.betas.push(0.0);
        Ok(())
    }

    /// `T` as a dense row-major `m x m` matrix, `m = steps()`.
    pub(crate) fn tridiagonal(&self) -> Vec<f64> {
        let m = self.alphas.len();
        let mut t = vec![0.0; m * m];
        for (j, &a) in self.alphas.iter().enumerate() {
            t[j * m + j] = a;
        }
        for (j, &b) in self.betas.iter().take(m.saturating_sub(1)).enumerate() {
            t[j * m + j + 1] = b;
            t[(j + 1) * m + j] = b;
        }
        t
    }

    /// The Ritz vector `Q s` of a coefficient vector `s` of length
    /// `steps()`, normalized.
    fn ritz_vector(&self, s: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; self.n];
        add_combination(&mut y, &self.basis[..s.len()], s);
        let len = norm(&y);
        scale(1.0 / len, &mut y);
        y
    }
}

/// What `orthogonalize` removed and left.
struct Orthogonalized {
    /// Total coefficient removed along each basis vector, over all passes.
    coefficients: Vec<f64>,
    /// Norm of what is left.
    norm: f64,
    /// Whether what is left was measured orthogonal to the basis (see
    /// `ORTHOGONALITY`); false when it is rounding noise inside the span.
    orthogonal: bool,
}

/// Classical Gram-Schmidt with measured orthogonality: removes from `w`
/// its components `first` (`= basis^T w`, computed by the caller's last
/// pass) along the orthonormal `basis`, measuring what is left in the same
/// pass over memory, and repeats with the measured components while they
/// exceed `ORTHOGONALITY` of the norm. One pass suffices unless `w` lay
/// mostly inside the span (the pass then cancels most of it and its
/// rounding is large relative to what is left); the second makes it
/// orthogonal to rounding ("twice is enough", Kahan and Parlett), and a
/// vector still not orthogonal after `MAX_PASSES` is noise inside the span.
fn orthogonalize<S: Stored>(w: &mut [f64], basis: &[Vec<S>], first: Vec<f64>) -> Orthogonalized {
    let mut coefficients = vec![0.0; basis.len()];
    let mut h = first;
    let mut passes = 0;
    loop {
        let (left, norm_sq) = subtract_and_dots(w, basis, &h, basis);
        for (c, x) in coefficients.iter_mut().zip(&h) {
            *c += x;
        }
        passes += 1;
        let largest = left.iter().fold(0.0f64, |acc, x| acc.max(x.abs()));
        let orthogonal = largest <= ORTHOGONALITY * norm_sq.sqrt();
        if orthogonal || passes == MAX_PASSES {
            return Orthogonalized {
                coefficients,
                norm: norm_sq.sqrt(),
                orthogonal,
            };
        }
        h = left;
    }
}

/// Tolerances below this keep an `f64` basis (`BasisStorage::for_operator`):
/// an `f32` basis adds about `1e-6` of the top value to the bounds at 50
/// steps, which must stay well below the tolerance.
const F32_BASIS_MIN_TOL: f64 = 1e-5;

/// How `lanczos_in` stores its Krylov basis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasisStorage {
    /// `f64` vectors: orthonormal to `1e-12`, bounds as exact as the dense
    /// solve of `T`.
    F64,
    /// `f32` vectors with all arithmetic in `f64`: half the memory and half
    /// the re-orthogonalization's memory traffic. The rounding (at most
    /// `2^-24` of each vector) is measured and added to the bounds (see
    /// `LanczosProcess::storage_error`), which it keeps above about
    /// `2e-7 * sqrt(steps)` of the top value (1.4e-6 at 50 steps).
    F32,
}

impl BasisStorage {
    /// The storage for an operator computed in `f64` or not, at relative
    /// tolerance `tol`: `f32` when the operator is computed in `f32` (its
    /// products are accurate to about `1e-7` of their norm, and leave
    /// components of `1e-8` along the basis that re-orthogonalization
    /// removes: an `f64` basis stores digits the operator never had) and
    /// the tolerance leaves room for the storage term; `f64` otherwise.
    pub fn for_operator(operator_f64: bool, tol: f64) -> Self {
        if operator_f64 || tol < F32_BASIS_MIN_TOL {
            BasisStorage::F64
        } else {
            BasisStorage::F32
        }
    }
}

/// Settings of the top-k Lanczos eigensolver.
#[derive(Debug, Clone)]
pub struct LanczosOptions {
    /// Number of eigenpairs wanted (the algebraically largest).
    pub k: usize,
    /// Most operator calls; also the most basis vectors kept (memory
    /// `8 * n * max_iter` bytes). Capped at `n`.
    pub max_iter: usize,
    /// Relative error bound (see `LanczosResult::bounds`) every one of the
    /// k values must reach.
    pub tol: f64,
    /// Seed of the random start vector (and of restarts after a breakdown).
    pub seed: u64,
    /// Warm start, e.g. the previous top eigenvectors summed; need not be
    /// unit. A random direction of the same norm is always mixed in (see
    /// `operator::start_vector`).
    pub start: Option<Vec<f64>>,
}

/// Top-k eigenpairs found by `lanczos`.
#[derive(Debug, Clone)]
pub struct LanczosResult {
    /// Ritz values, descending: estimates of the k largest eigenvalues.
    /// Each is a lower bound of its eigenvalue (Cauchy interlacing):
    /// `values[i] <= lambda_i`.
    pub values: Vec<f64>,
    /// Unit Ritz vectors; `vectors[i]` belongs to `values[i]`.
    pub vectors: Vec<Vec<f64>>,
    /// The next Ritz vector below the k wanted ones (none when the Krylov
    /// space has only k dimensions): a warm start that also holds it
    /// follows an eigenvalue that rises past the k-th.
    pub guard: Option<Vec<f64>>,
    /// Relative residuals `||A y_i - theta_i y_i|| / |theta_i|`; an
    /// eigenvalue of the operator lies within `residuals[i] * |values[i]|`
    /// of `values[i]`.
    pub residuals: Vec<f64>,
    /// Relative error bounds of the values: `||R||_F / |theta_i|`, with `R`
    /// the residual block of the k Ritz pairs. By Kahan's theorem there are
    /// k eigenvalues, matched in order, each within `||R||_2 <= ||R||_F` of
    /// its Ritz value; when the Krylov space has found the top k (the
    /// random part of every start is there for that), they are
    /// `lambda_1..lambda_k`, so `theta_i <= lambda_i <= theta_i + bound *
    /// |theta_i|`. An `f32` basis adds its measured rounding (see
    /// `LanczosProcess::storage_error`).
    pub bounds: Vec<f64>,
    /// Whether every bound reached `tol` and the values settled (moved by
    /// at most `tol` in the last step), or the Krylov space is the whole
    /// space.
    pub converged: bool,
    /// Operator calls made.
    pub matvecs: usize,
}

impl LanczosResult {
    /// The warm start of the next solve at nearby weights: the sum of the
    /// top-k Ritz vectors and the guard below them. Holding the guard, the
    /// next Krylov space contains from its first step the eigenvector of a
    /// value that rose past the k-th (two top eigenvalues crossing); the
    /// random half that `lanczos` mixes into every start is there for any
    /// eigenvector not among them.
    pub fn next_start(&self) -> Vec<f64> {
        let mut sum = self.vectors[0].clone();
        for v in self.vectors[1..].iter().chain(&self.guard) {
            axpy(1.0, v, &mut sum);
        }
        sum
    }
}

/// The `k` algebraically largest eigenpairs of the symmetric operator `op`
/// on `R^n`, by Lanczos with full reorthogonalization.
///
/// Stops when all k bounds are `<= tol` and the values moved by at most
/// `tol` (relative) in the last step, after `max_iter` operator calls, or
/// after `n` (the Krylov space is then the whole space and the result is
/// exact). The settling test costs at most one product and catches a value
/// still rising as the random part of the start uncovers an eigenvector
/// the warm part lacked. If the Krylov space becomes invariant (`beta ~ 0`)
/// the search continues from a random direction orthogonal to it. A run
/// that stops unconverged returns `Ok` with `converged == false` and its
/// bounds, for the caller to report. The basis is `f64` (`lanczos_in`
/// chooses).
pub fn lanczos(n: usize, op: &mut Operator<'_>, opts: &LanczosOptions) -> Result<LanczosResult> {
    lanczos_in(n, op, opts, BasisStorage::F64)
}

/// `lanczos` with the basis stored as `storage` says.
pub fn lanczos_in(
    n: usize,
    op: &mut Operator<'_>,
    opts: &LanczosOptions,
    storage: BasisStorage,
) -> Result<LanczosResult> {
    match storage {
        BasisStorage::F64 => solve::<f64>(n, op, opts),
        BasisStorage::F32 => solve::<f32>(n, op, opts),
    }
}

fn solve<S: Stored>(
    n: usize,
    op: &mut Operator<'_>,
    opts: &LanczosOptions,
) -> Result<LanczosResult> {
    check_options(n, opts)?;
    let k = opts.k;
    let max_steps = opts.max_iter.min(n);
    let mut rng = Rng::stream(opts.seed, "lanczos");
    let q0 = start_vector(n, opts.start.as_deref(), &mut rng)?;
    let mut process = LanczosProcess::<S>::new(q0);
    let mut previous: Option<Vec<f64>> = None;

    loop {
        process.step(op)?;
        let m = process.steps();
        if m >= k {
            // With m = n the basis spans the whole space: the residual is
            // zero in exact arithmetic, whatever rounding left in beta.
            let beta = if m == n { 0.0 } else { process.beta() };
            let ritz = RitzPairs::of(&process, k, beta)?;
            let settled = previous.as_ref().is_some_and(|p| {
                p.iter()
                    .zip(&ritz.values)
                    .all(|(a, b)| (a - b).abs() <= opts.tol * b.abs())
            });
            // The whole space is exact only in an f64 basis; an f32 one
            // still carries its rounding, which the bounds hold.
            let whole = m == n && S::EXACT;
            let converged = whole || (settled && ritz.bounds.iter().all(|&b| b <= opts.tol));
            previous = Some(ritz.values.clone());
            if converged || m == max_steps {
                return Ok(ritz.into_result(&process, converged));
            }
        }
        if process.broke_down() {
            process.restart(&mut rng)?;
        } else {
            process.advance();
        }
    }
}

fn check_options(n: usize, opts: &LanczosOptions) -> Result<()> {
    let k = opts.k;
    if k == 0 {
        return Err(Error::config(
            "k",
            "asked for 0 eigenvalues; need at least 1",
        ));
    }
    if k > n {
        return Err(Error::config(
            "k",
            format!("asked for {k} eigenvalues of a {n}-parameter model"),
        ));
    }
    if opts.max_iter < k {
        return Err(Error::config(
            "max_iter",
            format!(
                "{} Lanczos iterations cannot give {k} eigenvalues; need max_iter >= k",
                opts.max_iter
            ),
        ));
    }
    if opts.tol.is_nan() || opts.tol < 0.0 {
        return Err(Error::config(
            "tol",
            format!("tolerance must be >= 0, got {}", opts.tol),
        ));
    }
    Ok(())
}

/// The top-k Ritz pairs of the current `T`, in coefficients of the basis,
/// and the coefficients of the guard pair below them.
struct RitzPairs {
    values: Vec<f64>,
    coefficients: Vec<Vec<f64>>,
    guard: Option<Vec<f64>>,
    residuals: Vec<f64>,
    bounds: Vec<f64>,
}

impl RitzPairs {
    fn of<S: Stored>(process: &LanczosProcess<S>, k: usize, beta: f64) -> Result<Self> {
        let m = process.steps();
        let eig = sym_eigen(&process.tridiagonal(), m)?;
        // Relative to |theta|, but never to less than rounding of T's scale:
        // a Ritz value of exactly 0 would otherwise give 0/0.
        let t_norm = eig.values[0].abs().max(eig.values[m - 1].abs());
        let floor = f64::EPSILON * t_norm;
        let relative = |r: f64, theta: f64| {
            // An exact pair (e.g. of the zero operator) has residual 0.
            if r == 0.0 {
                0.0
            } else {
                r / theta.abs().max(floor)
            }
        };
        // A basis stored in less than f64 adds its measured rounding to
        // every residual and its loss of orthonormality to every value
        // (to first order; both 0 for an f64 basis).
        let (coupling, orthonormality) = process.storage_error();
        let stored = coupling + orthonormality * t_norm;
        let absolute: Vec<f64> = eig.vectors[..k]
            .iter()
            .map(|s| (beta * s[m - 1]).abs() + stored)
            .collect();
        let block = absolute.iter().map(|r| r * r).sum::<f64>().sqrt();
        let block = block + 2.0 * orthonormality * t_norm;
        let residuals = absolute
            .iter()
            .zip(&eig.values)
            .map(|(&r, &theta)| relative(r, theta))
            .collect();
        let bounds = eig.values[..k]
            .iter()
            .map(|&theta| relative(block, theta))
            .collect();
        let mut values = eig.values;
        values.truncate(k);
        let mut coefficients = eig.vectors;
        let guard = coefficients.get(k).cloned();
        coefficients.truncate(k);
        Ok(RitzPairs {
            values,
            coefficients,
            guard,
            residuals,
            bounds,
        })
    }

    fn into_result<S: Stored>(self, process: &LanczosProcess<S>, converged: bool) -> LanczosResult {
        LanczosResult {
            vectors: self
                .coefficients
                .iter()
                .map(|s| process.ritz_vector(s))
                .collect(),
            guard: self.guard.map(|s| process.ritz_vector(&s)),
            values: self.values,
            residuals: self.residuals,
            bounds: self.bounds,
            converged,
            matvecs: process.steps(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::vector::dot;

    /// Eigenvalues that test orthogonality hardest: a repeated top
    /// eigenvalue and a repeated bottom one (found early, then their
    /// directions must stay out of every later vector), a cluster 1e-9
    /// wide, and 102 distinct values in all, so that 150 steps run into an
    /// invariant subspace and restart.
    fn clustered_spectrum() -> Vec<f64> {
        let mut d = vec![2.0; 100];
        d.extend((0..20).map(|i| 1.5 + 1e-9 * i as f64 / 20.0));
        d.extend(std::iter::repeat_n(-1.0, 100));
        d.extend((0..80).map(|i| -0.5 + 1.5 * i as f64 / 79.0));
        d
    }

    /// `H diag(d) H` for the Householder reflection `H = I - 2 u u^T` of a
    /// random unit `u`: the spectrum `d` with dense eigenvectors, applied
    /// in O(n).
    fn reflected(d: Vec<f64>, seed: u64) -> impl FnMut(&[f64]) -> Result<Vec<f64>> {
        let mut rng = Rng::new(seed);
        let mut u = gaussian(d.len(), &mut rng);
        scale(1.0 / norm(&u), &mut u);
        let reflect = move |x: &mut Vec<f64>, u: &[f64]| axpy(-2.0 * dot(u, x), u, x);
        move |x| {
            let mut y = x.to_vec();
            reflect(&mut y, &u);
            y.iter_mut().zip(&d).for_each(|(yi, di)| *yi *= di);
            reflect(&mut y, &u);
            Ok(y)
        }
    }

    /// `q_j = H e_j` for `j < count`: orthonormal to rounding, with the
    /// reflection `H` that `reflected` uses for this seed's `u`.
    fn reflected_units(n: usize, count: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = Rng::new(seed);
        let mut u = gaussian(n, &mut rng);
        scale(1.0 / norm(&u), &mut u);
        (0..count)
            .map(|j| {
                let mut e = vec![0.0; n];
                e[j] = 1.0;
                axpy(-2.0 * u[j], &u, &mut e);
                e
            })
            .collect()
    }

    /// `max_j |q_j . w| / ||w||`.
    fn largest_component(basis: &[Vec<f64>], w: &[f64]) -> f64 {
        let len = norm(w);
        basis
            .iter()
            .map(|q| dot(q, w).abs() / len)
            .fold(0.0, f64::max)
    }

    #[test]
    fn orthogonalize_repeats_a_pass_that_cancelled_most_of_the_vector() {
        let (n, m) = (5000, 20);
        let units = reflected_units(n, m + 1, 9);
        let (basis, outside) = (&units[..m], &units[m]);
        // Mostly inside the span, 1e-10 outside it: one pass cancels all
        // but 1e-10 of the norm and leaves rounding of the whole.
        let coefficients: Vec<f64> = (0..m).map(|j| 1.0 + j as f64 / m as f64).collect();
        let mut w = vec![0.0; n];
        add_combination(&mut w, basis, &coefficients);
        axpy(1e-10, outside, &mut w);
        let (first, _) = subtract_and_dots(&mut w.clone(), &[], &[], basis);

        let mut once = w.clone();
        let (left, norm_sq) = subtract_and_dots(&mut once, basis, &first, basis);
        let one_pass = left.iter().fold(0.0f64, |a, x| a.max(x.abs())) / norm_sq.sqrt();
        assert!(
            one_pass > ORTHOGONALITY,
            "one pass already left {one_pass:e}"
        );

        let done = orthogonalize(&mut w, basis, first);
        assert!(done.orthogonal);
        let left = largest_component(basis, &w);
        assert!(left <= ORTHOGONALITY, "{left:e} left after orthogonalize");
        assert!(
            (done.norm / 1e-10 - 1.0).abs() < 1e-4,
            "norm {:e}",
            done.norm
        );
        for (c, want) in done.coefficients.iter().zip(&coefficients) {
            assert!((c - want).abs() < 1e-14, "coefficient {c}, want {want}");
        }
    }

    /// `max |Q^T Q - I|` over all entries.
    fn loss_of_orthogonality(basis: &[Vec<f64>]) -> f64 {
        let mut worst = 0.0f64;
        for (i, a) in basis.iter().enumerate() {
            for (j, b) in basis.iter().enumerate().skip(i) {
                let identity = if i == j { 1.0 } else { 0.0 };
                worst = worst.max((dot(a, b) - identity).abs());
            }
        }
        worst
    }

    #[test]
    fn basis_stays_orthonormal_over_a_long_run() {
        let d = clustered_spectrum();
        let n = d.len();
        let mut op = reflected(d, 3);
        let mut rng = Rng::new(4);
        let mut process = LanczosProcess::new(start_vector(n, None, &mut rng).unwrap());
        let mut restarts = 0;
        for _ in 0..150 {
            process.step(&mut op).unwrap();
            if process.broke_down() {
                process.restart(&mut rng).unwrap();
                restarts += 1;
            } else {
                process.advance();
            }
        }
        let lost = loss_of_orthogonality(&process.basis);
        assert!(
            lost <= 1e-12,
            "max |Q^T Q - I| = {lost:e} over {} vectors",
            process.basis.len()
        );
        assert!(restarts >= 1, "the run never reached an invariant subspace");
    }

    #[test]
    fn an_f32_basis_is_orthonormal_within_its_measured_storage_error() {
        let d = clustered_spectrum();
        let n = d.len();
        let mut op = reflected(d, 3);
        let mut rng = Rng::new(4);
        let q0 = start_vector(n, None, &mut rng).unwrap();
        let mut process = LanczosProcess::<f32>::new(q0);
        for _ in 0..80 {
            process.step(&mut op).unwrap();
            if process.broke_down() {
                process.restart(&mut rng).unwrap();
            } else {
                process.advance();
            }
        }
        let widened: Vec<Vec<f64>> = process.basis.iter().map(|q| widen(q)).collect();
        let lost = loss_of_orthogonality(&widened);
        let (coupling, orthonormality) = process.storage_error();
        assert!(lost > 1e-12, "an f32 basis orthonormal to {lost:e}?");
        assert!(
            lost <= orthonormality,
            "max |Q^T Q - I| = {lost:e} beyond the bound {orthonormality:e}"
        );
        assert!(coupling > 0.0 && orthonormality < 1e-5);
    }
}
