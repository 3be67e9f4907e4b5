//! Dense `f64` vector kernels for the spectral algorithms: dot products,
//! norms, axpy, scaling, Gram-Schmidt's fused update-and-measure pass, a
//! linear combination of many vectors, and random probe vectors. The
//! kernels over a Krylov basis also take one stored in `f32` (`Stored`),
//! always accumulating in `f64`.
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

/// Elements of `subtract_and_dots`'s cache block: 8 KB of each vector, so
/// that the pieces of a few dozen basis vectors stay in a core's L2 between
/// the update and the dots.
const BLOCK: usize = 1 << 10;

/// The element type of a stored basis vector: `f64`, or `f32` for half the
/// memory and memory traffic where the operator itself is computed in
/// `f32` (see `lanczos`'s `BasisStorage`). Arithmetic is always in `f64`.
pub(crate) trait Stored: Copy + Send + Sync + Into<f64> + 'static {
    /// Whether storing an `f64` loses nothing (no rounding to measure).
    const EXACT: bool;
    /// The nearest stored value.
    fn round(x: f64) -> Self;
    /// `v` itself when it is already `f64` (read in place, not widened).
    fn as_f64(v: &[Self]) -> Option<&[f64]>;
    /// `v` moved into storage when that loses nothing (no copy), else `v`
    /// back to be rounded.
    fn exact(v: Vec<f64>) -> std::result::Result<Vec<Self>, Vec<f64>>;
}

impl Stored for f64 {
    const EXACT: bool = true;
    fn round(x: f64) -> Self {
        x
    }
    fn as_f64(v: &[Self]) -> Option<&[f64]> {
        Some(v)
    }
    fn exact(v: Vec<f64>) -> std::result::Result<Vec<Self>, Vec<f64>> {
        Ok(v)
    }
}

impl Stored for f32 {
    const EXACT: bool = false;
    fn round(x: f64) -> Self {
        x as f32
    }
    fn as_f64(_: &[Self]) -> Option<&[f64]> {
        None
    }
    fn exact(v: Vec<f64>) -> std::result::Result<Vec<Self>, Vec<f64>> {
        Err(v)
    }
}

/// `factor * v` rounded to storage (scaled and rounded in one pass), and
/// the squared norm of what the rounding lost.
pub(crate) fn round_scaled<T: Stored>(v: &[f64], factor: f64) -> (Vec<T>, f64) {
    let mut out = vec![T::round(0.0); v.len()];
    let lost: Vec<f64> = out
        .par_chunks_mut(CHUNK)
        .zip(v.par_chunks(CHUNK))
        .map(|(o, x)| {
            let mut sq = 0.0;
            for (oi, &xi) in o.iter_mut().zip(x) {
                let y = factor * xi;
                *oi = T::round(y);
                let d = y - (*oi).into();
                sq += d * d;
            }
            sq
        })
        .collect();
    (out, lost.iter().sum())
}

/// A stored vector widened to `f64`.
pub(crate) fn widen<T: Stored>(v: &[T]) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    out.par_chunks_mut(CHUNK)
        .zip(v.par_chunks(CHUNK))
        .for_each(|(o, x)| o.iter_mut().zip(x).for_each(|(oi, &xi)| *oi = xi.into()));
    out
}

/// Sum of `a[i] * b[i]` within one chunk, over four interleaved accumulators
/// (a fixed order that the compiler can vectorize).
fn dot_serial<T: Stored>(a: &[T], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ta, tb) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        for l in 0..4 {
            acc[l] += x[l].into() * y[l];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (&x, y) in ta.iter().zip(tb) {
        s += x.into() * y;
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

/// `w -= sum_i coeffs[i] * subtract[i]`, then the inner products
/// `against[j] . w` of the result and `w . w`, in one pass over memory.
///
/// Gram-Schmidt's update and the measurement of what it left are fused so
/// that each vector is read from memory once: every `BLOCK` elements of `w`
/// are updated and then dotted while the vectors' pieces are still in
/// cache. The update adds its terms in index order for each element; the
/// sums run in block order within a chunk and in chunk order across chunks
/// (deterministic, see the module doc).
pub(crate) fn subtract_and_dots<T: Stored>(
    w: &mut [f64],
    subtract: &[Vec<T>],
    coeffs: &[f64],
    against: &[Vec<T>],
) -> (Vec<f64>, f64) {
    let n = w.len();
    assert_eq!(subtract.len(), coeffs.len(), "subtract_and_dots: count");
    assert!(
        subtract.iter().chain(against).all(|v| v.len() == n),
        "subtract_and_dots: vectors of different lengths"
    );
    let partials: Vec<(Vec<f64>, f64)> = w
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(c, wc)| {
            let mut d = vec![0.0; against.len()];
            let mut sq = 0.0;
            for (b, wb) in wc.chunks_mut(BLOCK).enumerate() {
                let from = c * CHUNK + b * BLOCK;
                let r = from..from + wb.len();
                subtract_block(wb, subtract, coeffs, from);
                for (dj, v) in d.iter_mut().zip(against) {
                    *dj += dot_serial(&v[r.clone()], wb);
                }
                sq += dot_serial(wb, wb);
            }
            (d, sq)
        })
        .collect();
    let d = (0..against.len())
        .map(|j| partials.iter().map(|p| p.0[j]).sum())
        .collect();
    (d, partials.iter().map(|p| p.1).sum())
}

/// `wb -= sum_i coeffs[i] * vectors[i][from..]` for one cache block `wb`,
/// four vectors at a time so that `wb` is loaded and stored once per four
/// (the load and store, not the arithmetic, bound a one-vector loop). Each
/// element still subtracts its terms one by one in index order.
fn subtract_block<T: Stored>(wb: &mut [f64], vectors: &[Vec<T>], coeffs: &[f64], from: usize) {
    let r = from..from + wb.len();
    let fours = vectors.chunks_exact(4).zip(coeffs.chunks_exact(4));
    for (v, a) in fours {
        let pieces = v[0][r.clone()]
            .iter()
            .zip(&v[1][r.clone()])
            .zip(&v[2][r.clone()])
            .zip(&v[3][r.clone()]);
        for (wi, (((&x0, &x1), &x2), &x3)) in wb.iter_mut().zip(pieces) {
            let (x0, x1, x2, x3): (f64, f64, f64, f64) =
                (x0.into(), x1.into(), x2.into(), x3.into());
            *wi = (((*wi - a[0] * x0) - a[1] * x1) - a[2] * x2) - a[3] * x3;
        }
    }
    let done = vectors.len() / 4 * 4;
    for (v, &a) in vectors[done..].iter().zip(&coeffs[done..]) {
        for (wi, &vi) in wb.iter_mut().zip(&v[r.clone()]) {
            *wi -= a * vi.into();
        }
    }
}

/// `y += sum_i coeffs[i] * vectors[i]`, adding the terms in index order for
/// each element, in one pass over memory.
pub(crate) fn add_combination<T: Stored>(y: &mut [f64], vectors: &[Vec<T>], coeffs: &[f64]) {
    assert_eq!(vectors.len(), coeffs.len(), "add_combination: count");
    assert!(
        vectors.iter().all(|v| v.len() == y.len()),
        "add_combination: vectors of different lengths"
    );
    y.par_chunks_mut(CHUNK).enumerate().for_each(|(c, yc)| {
        let r = c * CHUNK..c * CHUNK + yc.len();
        for (v, &a) in vectors.iter().zip(coeffs) {
            for (yi, &vi) in yc.iter_mut().zip(&v[r.clone()]) {
                *yi += a * vi.into();
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
