//! Spectral density of a symmetric operator by stochastic Lanczos
//! quadrature (Ubaru, Chen & Saad 2017), as PyHessian (Yao et al. 2020,
//! after Ghorbani et al. 2019) uses for Hessians.
//!
//! For a unit random probe `v`, `steps` Lanczos steps from `v` give the
//! Gauss quadrature rule of the measure `sum_i (v . u_i)^2 delta(x -
//! lambda_i)`: nodes are the Ritz values, weights the squared first
//! components of `T`'s eigenvectors. It is exact for polynomials of degree
//! `< 2 steps`, and over Rademacher probes `E[v^T f(A) v] = tr f(A) / n`, so
//! averaging the rules over probes estimates the spectral density and its
//! moments.

use crate::error::{Error, Result};
use crate::linalg::eigen::sym_eigen;
use crate::linalg::lanczos::LanczosProcess;
use crate::linalg::operator::Operator;
use crate::linalg::vector::{rademacher, scale};
use crate::rng::Rng;

/// Per-probe Gauss quadrature rules of an operator's spectral measure.
#[derive(Debug, Clone)]
pub struct SpectralDensity {
    /// `nodes[p]`: Ritz values of probe `p`'s Lanczos tridiagonal
    /// (descending; fewer than `steps` if its Krylov space was invariant).
    pub nodes: Vec<Vec<f64>>,
    /// `weights[p][j]`: weight of `nodes[p][j]`; each probe's sum to 1.
    pub weights: Vec<Vec<f64>>,
    /// Operator calls made.
    pub matvecs: usize,
}

impl SpectralDensity {
    /// The density broadened by a Gaussian of width `sigma` (> 0), averaged
    /// over probes and evaluated at each point of `grid`; it integrates to 1
    /// over a grid that covers the spectrum with a few `sigma` to spare.
    pub fn density(&self, grid: &[f64], sigma: f64) -> Vec<f64> {
        let norm = 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt() * self.nodes.len() as f64);
        let inv_two_var = 1.0 / (2.0 * sigma * sigma);
        grid.iter()
            .map(|&x| {
                let total: f64 = self
                    .nodes
                    .iter()
                    .zip(&self.weights)
                    .flat_map(|(nodes, weights)| nodes.iter().zip(weights))
                    .map(|(t, w)| w * (-(x - t) * (x - t) * inv_two_var).exp())
                    .sum();
                total * norm
            })
            .collect()
    }

    /// Estimate of the `p`-th spectral moment `(1/n) tr(A^p)`; exact per
    /// probe (up to the probe's randomness) for `p < 2 steps`.
    pub fn moment(&self, p: u32) -> f64 {
        let total: f64 = self
            .nodes
            .iter()
            .zip(&self.weights)
            .map(|(nodes, weights)| {
                nodes
                    .iter()
                    .zip(weights)
                    .map(|(t, w)| w * t.powi(p as i32))
                    .sum::<f64>()
            })
            .sum();
        total / self.nodes.len() as f64
    }
}

/// Stochastic Lanczos quadrature of the symmetric operator `op` on `R^n`:
/// `probes` Rademacher probes from `seed`, `steps` Lanczos steps each
/// (capped at `n`), with full reorthogonalization (memory: `steps` vectors
/// of length n, one probe at a time).
pub fn slq(
    n: usize,
    op: &mut Operator<'_>,
    probes: usize,
    steps: usize,
    seed: u64,
) -> Result<SpectralDensity> {
    if n == 0 {
        return Err(Error::msg("spectral density of a 0-parameter model"));
    }
    if probes == 0 {
        return Err(Error::config("probes", "need at least 1 probe"));
    }
    if steps == 0 {
        return Err(Error::config("steps", "need at least 1 Lanczos step"));
    }
    let steps = steps.min(n);
    let mut rng = Rng::stream(seed, "slq");
    let mut density = SpectralDensity {
        nodes: Vec::with_capacity(probes),
        weights: Vec::with_capacity(probes),
        matvecs: 0,
    };
    for _ in 0..probes {
        let mut v = rademacher(n, &mut rng);
        scale(1.0 / (n as f64).sqrt(), &mut v);
        let mut process: LanczosProcess = LanczosProcess::new(v);
        // On breakdown the Krylov space is invariant and the quadrature
        // rule already exact for this probe: stop rather than restart,
        // which would change the measure.
        loop {
            process.step(op)?;
            if process.steps() == steps || process.broke_down() {
                break;
            }
            process.advance();
        }
        let m = process.steps();
        density.matvecs += m;
        let eig = sym_eigen(&process.tridiagonal(), m)?;
        density
            .weights
            .push(eig.vectors.iter().map(|s| s[0] * s[0]).collect());
        density.nodes.push(eig.values);
    }
    Ok(density)
}
