//! Batched matmul with transposes through the `gemm` crate. Transposes are
//! expressed as strides, so no operand is copied. Threads get whole
//! blocks: an ensemble's members, or bands of one product's rows or
//! columns, each a single-threaded `gemm` call; only the largest products
//! run on the crate's own threads, which share their packed operand. Mid-
//! sized products split or not as timing their first calls showed faster
//! (`split_choice`). Every
//! output element reduces over all of k in the same order either way, so
//! results do not depend on the thread count.

use super::recycle::{scratch, zeroed};
use super::split_choice::{Call, ProductKey, Way};
use super::{Cpu, Elem};
use crate::backend::shapes::matmul_dims;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Work (m * n * k) under which a product runs on one thread. In a loop of
/// back-to-back products, splitting pays from about 2^16 (100 x 64 x 40:
/// 8.8 us on one thread, 7.0 us split in two), but between the products of
/// a real step the other threads fall asleep and waking them costs more:
/// a 64-wide MLP step at batch 100 (products up to 2^18) took 0.10 ms
/// serial and 0.145 ms split (BENCHMARKS.md, "small steps").
const SERIAL_PRODUCT: usize = 1 << 19;

/// Work from which one product runs on the `gemm` crate's own threads
/// instead of one block per thread. As fast there (1024^3: 21.6 ms either
/// way; 1000 x 256 x 784: 3.35 against 3.15 ms), and the threads share
/// one packed copy of the right operand, where a block per thread packs
/// its own: that took 12 MiB more peak memory in a 1024-wide training step
/// at batch 1000 and 75 MiB more at 4096 x 4 (BENCHMARKS.md, 2026-12-02).
const CRATE_THREADS_PRODUCT: usize = 1 << 27;

/// Work under which a product that could split over the threads is timed
/// both ways on its first calls, and runs the faster way after
/// (`split_choice`). Past it splitting always won.
const TUNED_PRODUCT: usize = 1 << 24;

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
    // One block of one product: rows `r0..r0 + rows` and columns
    // `c0..c0 + cols` of member i's output, on the calling thread or, with
    // `Parallelism::Rayon`, on the crate's split of the pool.
    let block = |i: usize,
                 dst: *mut T,
                 (r0, rows): (usize, usize),
                 (c0, cols): (usize, usize),
                 threads: gemm::Parallelism| {
        let a_off = if ea == 1 { 0 } else { i * ar * ac };
        let b_off = if eb == 1 { 0 } else { i * br * bc };
        // SAFETY: the pointers and strides describe in-bounds matrices of the
        // shapes checked above, and the block lies inside them; dst is member
        // i's m x n row-major output, and blocks running at once are
        // disjoint. gemm computes dst = 0 * dst + alpha * lhs * rhs here.
        unsafe {
            gemm::gemm(
                rows,
                cols,
                k,
                dst.add(r0 * n + c0),
                1,
                n as isize,
                false,
                av[a_off..].as_ptr().offset(r0 as isize * a_rs),
                a_cs,
                a_rs,
                bv[b_off..].as_ptr().offset(c0 as isize * b_cs),
                b_cs,
                b_rs,
                T::ZERO,
                alpha,
                false,
                false,
                false,
                threads,
            )
        }
    };
    let threads = rayon::current_num_threads();
    let one = gemm::Parallelism::None;
    if m * n == 0 || k == 0 {
    } else if e > 1 && by_member(e, m * n * k, threads) {
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, dst)| block(i, dst.as_mut_ptr(), (0, m), (0, n), one));
    } else if threads == 1 || m * n * k < SERIAL_PRODUCT {
        for (i, dst) in out.chunks_mut(m * n).enumerate() {
            block(i, dst.as_mut_ptr(), (0, m), (0, n), one);
        }
    } else if m * n * k >= CRATE_THREADS_PRODUCT {
        let all = gemm::Parallelism::Rayon(threads);
        for (i, dst) in out.chunks_mut(m * n).enumerate() {
            block(i, dst.as_mut_ptr(), (0, m), (0, n), all);
        }
    } else {
        // Past TUNED_PRODUCT splitting always won; below it, timed.
        let call = (m * n * k < TUNED_PRODUCT).then(|| {
            Call::start(ProductKey {
                e,
                m,
                n,
                k,
                ta,
                tb,
                elem_bytes: std::mem::size_of::<T>(),
                threads,
                in_pool: rayon::current_thread_index().is_some(),
            })
        });
        let way = call.as_ref().map_or(Way::Split, |c| c.way);
        for (i, dst) in out.chunks_mut(m * n).enumerate() {
            match way {
                Way::Serial => block(i, dst.as_mut_ptr(), (0, m), (0, n), one),
                Way::Split => split_over_threads(dst.as_mut_ptr(), m, n, threads, |dst, r, c| {
                    block(i, dst, r, c, one)
                }),
            }
        }
        if let Some(call) = call {
            call.finish();
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

/// A raw output pointer shared by threads that write disjoint blocks.
struct SharedOut<T>(*mut T);
impl<T> Clone for SharedOut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedOut<T> {}
// SAFETY: each thread writes only its own block (split_over_threads).
unsafe impl<T> Send for SharedOut<T> {}
unsafe impl<T> Sync for SharedOut<T> {}

/// Runs one m x n product as `threads` single-threaded blocks in parallel:
/// bands of rows when m >= n, of columns otherwise. Every block reduces over
/// all of k in the same order, so the result does not depend on the split.
/// Measured faster than the `gemm` crate's own threading on the small and
/// skinny products of small models (BENCHMARKS.md, "small steps").
fn split_over_threads<T: Send>(
    dst: *mut T,
    m: usize,
    n: usize,
    threads: usize,
    block: impl Fn(*mut T, (usize, usize), (usize, usize)) + Sync,
) {
    let by_rows = m >= n;
    let len = if by_rows { m } else { n };
    let parts = threads.min(len).max(1);
    let out = SharedOut(dst);
    (0..parts).into_par_iter().for_each(|p| {
        let out = &out;
        let (start, end) = (p * len / parts, (p + 1) * len / parts);
        let span = (start, end - start);
        if by_rows {
            block(out.0, span, (0, n));
        } else {
            block(out.0, (0, m), span);
        }
    });
}
