//! Launches the batched GEMMs of `kernels/matmul.cu` (or cuBLAS). Transposes
//! and the broadcast of a rank-2 operand over the ensemble are strides, as on
//! the CPU (`src/backend/cpu/matmul.rs`), so no operand is copied.

use super::{launch, to_i32, to_u32, Cuda, CudaTensor, GemmKind};
use crate::backend::shapes::matmul_dims;
use crate::backend::Backend;
use crate::error::{Error, Result};
use cudarc::cublas::{sys::cublasOperation_t, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::LaunchConfig;

/// Tensor-core kinds apply to products whose M, N and K all reach this;
/// smaller ones run the fp32 SIMT kernel (a mostly empty 64 x 64 tile gains
/// nothing, and small products are where rounding to TF32/BF16 shows most).
pub const TC_MIN_DIM: usize = 64;

pub(super) fn matmul(
    be: &Cuda,
    a: &CudaTensor,
    ta: bool,
    b: &CudaTensor,
    tb: bool,
    alpha: f64,
) -> Result<CudaTensor> {
    let d = matmul_dims(a.shape(), ta, b.shape(), tb)?;
    let (e, ea, eb, m, n, ka) = (d.e, d.ea, d.eb, d.m, d.n, d.k);
    // The stored (untransposed) matrices' rows and columns.
    let (_, ar, ac) = a.as_batched()?;
    let (_, br, bc) = b.as_batched()?;
    let k = ka;
    let shape = d.out_shape.clone();
    let (abuf, bbuf) = (be.buf(a)?, be.buf(b)?);
    if e * m * n == 0 || k == 0 {
        return be.zeros(&shape);
    }
    let mut out = be.alloc(e * m * n)?;
    // Row / column / batch strides of op(a) and op(b).
    let (a_rs, a_cs) = if ta { (1, ac) } else { (ac, 1) };
    let (b_rs, b_cs) = if tb { (1, bc) } else { (bc, 1) };
    let a_bs = if ea == 1 { 0 } else { ar * ac };
    let b_bs = if eb == 1 { 0 } else { br * bc };
    let tc_fits = m >= TC_MIN_DIM && n >= TC_MIN_DIM && k >= TC_MIN_DIM;
    let kind = match be.gemm() {
        GemmKind::Tf32 | GemmKind::Bf16 if !tc_fits => GemmKind::Simt,
        kind => kind,
    };
    if kind == GemmKind::Cublas {
        cublas(
            be,
            abuf,
            bbuf,
            &mut out,
            [m, n, k, e],
            [ta, tb],
            [ac, bc, a_bs, b_bs],
            alpha,
        )?;
        return Ok(be.wrap(shape, out));
    }
    let (mi, ni, ki) = (to_i32(m, "M")?, to_i32(n, "N")?, to_i32(k, "K")?);
    let (a_rs, a_cs, a_bs) = (a_rs as i64, a_cs as i64, a_bs as i64);
    let (b_rs, b_cs, b_bs) = (b_rs as i64, b_cs as i64, b_bs as i64);
    let alpha = alpha as f32;
    // SIMT: 128 x 128 tiles unless that leaves SMs idle, then 64 x 64.
    let big_tiles = m.div_ceil(128) * n.div_ceil(128) * e;
    let small_simt = kind == GemmKind::Simt && big_tiles < be.sm_count();
    let (tile, threads) = match kind {
        GemmKind::Simt if !small_simt => (128, 256),
        GemmKind::Simt => (64, 256),
        _ => (64, 128),
    };
    let grid_y = m.div_ceil(tile);
    if grid_y > 65535 || e > 65535 {
        return Err(Error::shape(format!(
            "matmul of {m} rows over {e} ensemble members exceeds the CUDA grid"
        )));
    }
    let cfg = LaunchConfig {
        grid_dim: (
            to_u32(n.div_ceil(tile), "column tiles")?,
            grid_y as u32,
            e as u32,
        ),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    };
    macro_rules! gemm {
        ($name:literal) => {
            launch!(
                be, "matmul", $name, cfg, abuf, bbuf, &mut out, &mi, &ni, &ki, &a_rs, &a_cs, &a_bs,
                &b_rs, &b_cs, &b_bs, &alpha
            )
        };
    }
    match kind {
        GemmKind::Tf32 => gemm!("gemm_tc_tf32")?,
        GemmKind::Bf16 => gemm!("gemm_tc_bf16")?,
        _ if small_simt => gemm!("gemm_simt_64")?,
        _ => gemm!("gemm_simt")?,
    }
    Ok(be.wrap(shape, out))
}

/// The same product through cuBLAS. cuBLAS is column-major: a row-major
/// M x N result C is the column-major N x M matrix C^T = op(B)^T op(A)^T, and a
/// row-major operand read column-major is its own transpose, so B goes first
/// with transpose flag `tb` and leading dimension `bc` (its row length), then
/// A with `ta` and `ac`.
#[allow(clippy::too_many_arguments)]
fn cublas(
    be: &Cuda,
    a: &cudarc::driver::CudaSlice<f32>,
    b: &cudarc::driver::CudaSlice<f32>,
    out: &mut cudarc::driver::CudaSlice<f32>,
    [m, n, k, e]: [usize; 4],
    [ta, tb]: [bool; 2],
    [ac, bc, a_bs, b_bs]: [usize; 4],
    alpha: f64,
) -> Result<()> {
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    let cfg = StridedBatchedConfig {
        gemm: GemmConfig {
            transa: op(tb),
            transb: op(ta),
            m: to_i32(n, "N")?,
            n: to_i32(m, "M")?,
            k: to_i32(k, "K")?,
            alpha: alpha as f32,
            lda: to_i32(bc, "ldb")?,
            ldb: to_i32(ac, "lda")?,
            beta: 0.0f32,
            ldc: to_i32(n, "ldc")?,
        },
        batch_size: to_i32(e, "batch")?,
        stride_a: b_bs as i64,
        stride_b: a_bs as i64,
        stride_c: (m * n) as i64,
    };
    let blas = be.blas()?;
    // SAFETY: shapes, leading dimensions and strides describe in-bounds
    // matrices of the buffers, as derived above.
    unsafe { blas.gemm_strided_batched(cfg, b, a, out) }
        .map_err(|e| super::context::drv("cuBLAS sgemm", e))
}
