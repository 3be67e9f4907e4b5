//! Launches the reductions of `kernels/reduce.cu`. Per-member sums go
//! through two stages (fixed partials per block, then one block per member,
//! both in f64), so a sum is the same on every run.

use super::{grid_1d, grid_rows, launch, to_i32, to_u32, Cuda, CudaTensor, OrNull};
use crate::backend::shapes::{one_label_per_row, same_shapes};
use crate::error::{Error, Result};
use cudarc::driver::{CudaSlice, LaunchConfig};

pub(super) const MODE_DOT: i32 = 0;
pub(super) const MODE_SQ: i32 = 1;
pub(super) const MODE_ABS: i32 = 2;
pub(super) const MODE_SUM: i32 = 3;

/// Threads of the reduction blocks (RED_THREADS in reduce.cu).
const RED_THREADS: u32 = 256;
/// At most this many partial sums per member.
const MAX_PARTS: usize = 1024;

/// Rows summed per chunk by `sum_rows_partial` (about; the last chunk may
/// hold fewer), and the most chunks.
const ROWS_PER_CHUNK: usize = 32;
const MAX_CHUNKS: usize = 64;

/// Column sums. One thread per column walking all rows leaves most of the
/// GPU idle when there are few columns and many rows (a bias gradient over a
/// batch), so tall inputs are first cut into row chunks summed in parallel
/// (`sum_rows_partial`), then the chunks' partial sums are summed.
pub(super) fn sum_rows(be: &Cuda, x: &CudaTensor, alpha: f64) -> Result<CudaTensor> {
    let (e, rows, n) = x.as_batched()?;
    let shape = if x.shape().len() == 3 {
        vec![e, n]
    } else {
        vec![n]
    };
    let mut out = be.alloc(e * n)?;
    if e * n == 0 {
        return Ok(be.wrap(shape, out));
    }
    let xb = be.buf(x)?;
    let (ei, ni, a) = (to_i32(e, "E")?, to_i32(n, "n")?, alpha as f32);
    let chunks = rows.div_ceil(ROWS_PER_CHUNK).clamp(1, MAX_CHUNKS);
    if chunks == 1 {
        let ri = to_i32(rows, "rows")?;
        launch!(
            be,
            "reduce",
            "sum_rows",
            grid_1d(e * n),
            xb,
            &mut out,
            &ei,
            &ri,
            &ni,
            &a
        )?;
        return Ok(be.wrap(shape, out));
    }
    if e > 65535 {
        return Err(Error::shape(format!(
            "sum_rows over {e} members exceeds the CUDA grid"
        )));
    }
    let per_chunk = rows.div_ceil(chunks);
    let mut partial = be.alloc(e * chunks * n)?;
    let cfg = LaunchConfig {
        grid_dim: (
            to_u32(n.div_ceil(32), "column blocks")?,
            chunks as u32,
            e as u32,
        ),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    };
    let (ri, pc) = (to_i32(rows, "rows")?, to_i32(per_chunk, "rows per chunk")?);
    launch!(
        be,
        "reduce",
        "sum_rows_partial",
        cfg,
        xb,
        &mut partial,
        &ri,
        &ni,
        &pc
    )?;
    let ci = chunks as i32;
    launch!(
        be,
        "reduce",
        "sum_rows",
        grid_1d(e * n),
        &partial,
        &mut out,
        &ei,
        &ci,
        &ni,
        &a
    )?;
    Ok(be.wrap(shape, out))
}

pub(super) fn row_sq_norms(be: &Cuda, x: &CudaTensor) -> Result<CudaTensor> {
    let (e, rows, n) = x.as_batched()?;
    let shape = if x.shape().len() == 3 {
        vec![e, rows]
    } else {
        vec![rows]
    };
    let nrows = e * rows;
    let mut out = be.alloc(nrows)?;
    if nrows > 0 {
        let (nr, ni) = (nrows as i64, to_i32(n, "n")?);
        let xb = be.buf(x)?;
        launch!(
            be,
            "reduce",
            "row_sq_norms",
            grid_rows(nrows)?,
            xb,
            &mut out,
            &nr,
            &ni
        )?;
    }
    Ok(be.wrap(shape, out))
}

/// Members and elements per member of `[E, ...]` (a rank-1 tensor is one
/// member), as the CPU's `per_member` reads them.
fn members(x: &CudaTensor) -> (usize, usize) {
    let e = if x.shape().len() >= 2 {
        x.shape()[0]
    } else {
        1
    };
    (e, x.numel().checked_div(e).unwrap_or(0))
}

/// Where `member_sums` puts its results.
enum Sink<'a> {
    Host(&'a mut CudaSlice<f64>),
    Device(&'a mut CudaSlice<f32>),
}

/// `scale * sum` over each of `e` members' `per` elements of `a` (combined
/// with `b` for MODE_DOT).
#[allow(clippy::too_many_arguments)]
fn member_sums(
    be: &Cuda,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    e: usize,
    per: usize,
    mode: i32,
    scale: f64,
    sink: Sink,
) -> Result<()> {
    if e == 0 {
        return Ok(());
    }
    let parts = per.div_ceil(RED_THREADS as usize * 4).clamp(1, MAX_PARTS);
    // SAFETY: stage 1 writes every one of the e * parts partials.
    let mut partials = unsafe { be.stream().alloc::<f64>(e * parts) }
        .map_err(|err| super::context::drv("allocation", err))?;
    let cfg = LaunchConfig {
        grid_dim: (parts as u32, to_u32(e, "members")?, 1),
        block_dim: (RED_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let p = per as i64;
    launch!(
        be,
        "reduce",
        "member_partials",
        cfg,
        a,
        b,
        &mut partials,
        &p,
        &mode
    )?;
    let cfg = LaunchConfig {
        grid_dim: (to_u32(e, "members")?, 1, 1),
        block_dim: (RED_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let np = parts as i32;
    let (out_d, out_f) = match sink {
        Sink::Host(out) => (Some(out), None),
        Sink::Device(out) => (None, Some(out)),
    };
    launch!(
        be,
        "reduce",
        "member_finish",
        cfg,
        &partials,
        &np,
        &scale,
        OrNull(out_d),
        OrNull(out_f)
    )
}

/// Per-member sum of squares or of absolute values, on the host.
pub(super) fn host_member_sum(be: &Cuda, x: &CudaTensor, mode: i32) -> Result<Vec<f64>> {
    let (e, per) = members(x);
    if e == 0 {
        return Ok(Vec::new());
    }
    let xb = be.buf(x)?;
    let mut out = be
        .stream()
        .alloc_zeros::<f64>(e)
        .map_err(|err| super::context::drv("allocation", err))?;
    member_sums(be, xb, xb, e, per, mode, 1.0, Sink::Host(&mut out))?;
    be.download(&out, e)
}

/// Per-member `scale * sum` of rows-long segments into an f32 `[e]` tensor
/// (the loss heads' mean over examples).
pub(super) fn member_mean(
    be: &Cuda,
    x: &CudaSlice<f32>,
    e: usize,
    per: usize,
    scale: f64,
) -> Result<CudaTensor> {
    let mut out = be.alloc_zeros(e)?;
    member_sums(be, x, x, e, per, MODE_SUM, scale, Sink::Device(&mut out))?;
    Ok(be.wrap(vec![e], out))
}

pub(super) fn dot_members(be: &Cuda, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
    same_shapes("dot_members", &[a.shape(), b.shape()])?;
    let (e, per) = members(a);
    let mut out = be.alloc_zeros(e)?;
    member_sums(
        be,
        be.buf(a)?,
        be.buf(b)?,
        e,
        per,
        MODE_DOT,
        1.0,
        Sink::Device(&mut out),
    )?;
    Ok(be.wrap(vec![e], out))
}

pub(super) fn count_correct(be: &Cuda, f: &CudaTensor, labels: &CudaTensor) -> Result<Vec<f64>> {
    let (e, rows, k) = f.as_batched()?;
    one_label_per_row("count_correct", labels.shape(), f.shape(), rows)?;
    if k == 0 || rows == 0 {
        return Ok(vec![0.0; e]);
    }
    let nrows = e * rows;
    let mut hits = be.alloc(nrows)?;
    let (nr, ri, ki) = (nrows as i64, to_i32(rows, "rows")?, to_i32(k, "k")?);
    let (fb, lb) = (be.buf(f)?, be.buf(labels)?);
    launch!(
        be,
        "reduce",
        "argmax_hits",
        grid_1d(nrows),
        fb,
        lb,
        &mut hits,
        &nr,
        &ri,
        &ki
    )?;
    let hits = be.download(&hits, nrows)?;
    Ok(hits
        .chunks(rows)
        .map(|member| member.iter().map(|&h| h as f64).sum())
        .collect())
}
