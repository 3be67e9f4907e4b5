//! Dense `f64` vector kernels for the spectral algorithms: dot products,
//! norms, axpy, scaling, the block products of Gram-Schmidt, and random
//! probe vectors.
//!
//! Vectors are as long as a model's parameter count (millions), so the
//! kernels run in parallel over fixed-size chunks. Every reduction adds its
//! per-chunk partial sums in chunk order, and chunk boundaries do not depend
//! on the thread count, so a result is bit-for-bit the same on any machine
//! and any number of threads.
//!
//! Length mismatches are programming errors inside `linalg` (callers'
//! vectors are checked before they get here), so the kernels assert them.

use rayon::prelude::*;

use crate::rng::Rng;

/// Elements per parallel work item; also the unit of every fixed-order sum.
const CHUNK: usize = 1 << 14;

/// Sum of `a[i] * b[i]` within one chunk, over four interleaved accumulators
/// (a fixed order that the compiler can vectorize).
fn dot_serial(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ta, tb) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ta.iter().zip(tb) {
        s += x * y;
    }
    s
}

/// The inner product `a . b`, deterministic (see the module doc).
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot: vectors of different lengths");
    let partials: Vec<f64> = a
        .par_chunks(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .map(|(x, y)| dot_serial(x, y))
        .collect();
    partials.iter().sum()
}

/// The Euclidean norm `||a||`.
pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `y += alpha * x`.
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    assert_eq!(x.len(), y.len(), "axpy: vectors of different lengths");
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(yc, xc)| {
            for (yi, xi) in yc.iter_mut().zip(xc) {
                *yi += alpha * xi;
            }
        });
}

/// `x *= alpha`.
pub fn scale(alpha: f64, x: &mut [f64]) {
    x.par_chunks_mut(CHUNK).for_each(|xc| {
        for xi in xc {
            *xi *= alpha;
        }
    });
}

/// All inner products `vectors[i] . w` in one pass over memory: each chunk
/// of `w` stays in cache while every vector's chunk is read once. Equal,
/// bit for bit, to calling `dot` for each vector.
pub(crate) fn dots(vectors: &[Vec<f64>], w: &[f64]) -> Vec<f64> {
    let n = w.len();
    assert!(
        vectors.iter().all(|v| v.len() == n),
        "dots: vectors of different lengths"
    );
    let chunks = n.div_ceil(CHUNK).max(1);
    let partials: Vec<Vec<f64>> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let r = c * CHUNK..((c + 1) * CHUNK).min(n);
            vectors
                .iter()
                .map(|v| dot_serial(&v[r.clone()], &w[r.clone()]))
                .collect()
        })
        .collect();
    (0..vectors.len())
        .map(|i| partials.iter().map(|p| p[i]).sum())
        .collect()
}

/// `y += sum_i coeffs[i] * vectors[i]`, adding the terms in index order for
/// each element, in one pass over memory.
pub(crate) fn add_combination(y: &mut [f64], vectors: &[Vec<f64>], coeffs: &[f64]) {
    assert_eq!(vectors.len(), coeffs.len(), "add_combination: count");
    assert!(
        vectors.iter().all(|v| v.len() == y.len()),
        "add_combination: vectors of different lengths"
    );
    y.par_chunks_mut(CHUNK).enumerate().for_each(|(c, yc)| {
        let r = c * CHUNK..c * CHUNK + yc.len();
        for (v, &a) in vectors.iter().zip(coeffs) {
            for (yi, vi) in yc.iter_mut().zip(&v[r.clone()]) {
                *yi += a * vi;
            }
        }
    });
}

/// A vector of independent standard normals (a random start direction).
pub(crate) fn gaussian(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n).map(|_| rng.normal()).collect()
}

/// A vector of independent random signs +-1 (a Rademacher probe), 64 signs
/// per random draw.
pub(crate) fn rademacher(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let bits = rng.next_u64();
        let take = (n - out.len()).min(64);
        out.extend((0..take).map(|b| if bits >> b & 1 == 1 { 1.0 } else { -1.0 }));
    }
    out
}
