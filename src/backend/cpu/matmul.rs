//! Batched matmul with transposes through the `gemm` crate. Transposes are
//! expressed as strides, so no operand is copied. `gemm` splits work across
//! threads by output tiles and keeps the same reduction order over k whatever
//! the thread count, which keeps results independent of the thread count.

use super::recycle::{scratch, zeroed};
use super::{Cpu, Elem};
use crate::backend::shapes::matmul_dims;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Work (m * n * k) under which a product runs on one thread: splitting it
/// costs more in thread hand-offs than it saves (a 1000 x 10 x 64 product
/// takes 28 us on one thread, more on two; BENCHMARKS.md).
const SERIAL_PRODUCT: usize = 1 << 20;

pub fn matmul<T: Elem>(
    a: &Tensor<Cpu>,
    ta: bool,
    b: &Tensor<Cpu>,
    tb: bool,
    alpha: f64,
) -> Result<Tensor<Cpu>> {
    let d = matmul_dims(a.shape(), ta, b.shape(), tb)?;
    let (e, ea, eb, m, n, ka) = (d.e, d.ea, d.eb, d.m, d.n, d.k);
    // The stored (untransposed) matrices' rows and columns.
    let (_, ar, ac) = a.as_batched()?;
    let (_, br, bc) = b.as_batched()?;
    let k = ka;
    let av = T::view(a.storage())?;
    let bv = T::view(b.storage())?;
    // gemm overwrites every output element (beta 0) unless k is 0.
    let mut out = if k == 0 {
        zeroed(e * m * n)
    } else {
        scratch(e * m * n)
    };
    // Row/column strides of op(a) and op(b) inside one matrix.
    let (a_rs, a_cs) = if ta {
        (1, ac as isize)
    } else {
        (ac as isize, 1)
    };
    let (b_rs, b_cs) = if tb {
        (1, bc as isize)
    } else {
        (bc as isize, 1)
    };
    let alpha = T::from_f64(alpha);
    let one_product = |i: usize, dst: &mut [T], par: gemm::Parallelism| {
        if k == 0 {
            return;
        }
        let a_off = if ea == 1 { 0 } else { i * ar * ac };
        let b_off = if eb == 1 { 0 } else { i * br * bc };
        // SAFETY: the pointers and strides describe in-bounds matrices of the
        // shapes checked above; dst is a distinct m x n row-major buffer.
        // gemm computes dst = 0 * dst + alpha * lhs * rhs here.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                n as isize,
                false,
                av[a_off..].as_ptr(),
                a_cs,
                a_rs,
                bv[b_off..].as_ptr(),
                b_cs,
                b_rs,
                T::ZERO,
                alpha,
                false,
                false,
                false,
                par,
            )
        }
    };
    let threads = rayon::current_num_threads();
    if m * n == 0 {
    } else if e > 1 && by_member(e, m * n * k, threads) {
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, dst)| one_product(i, dst, gemm::Parallelism::None));
    } else {
        let par = if threads > 1 && m * n * k >= SERIAL_PRODUCT {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        for (i, dst) in out.chunks_mut(m * n).enumerate() {
            one_product(i, dst, par);
        }
    }
    let shape = d.out_shape.clone();
    Ok(Tensor::from_parts(shape, T::wrap(out)))
}

/// Whether an ensemble's `e` products of `work` multiply-adds each run one
/// per thread, each single-threaded, rather than one after another, each on
/// every thread. By member, no product waits for another thread; that wins
/// when the products are small (thread hand-offs would dominate) or when the
/// members fill the threads evenly (no thread idles in the last round).
fn by_member(e: usize, work: usize, threads: usize) -> bool {
    work < SERIAL_PRODUCT || e % threads == 0 || e >= 4 * threads
}
