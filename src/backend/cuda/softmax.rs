//! Launches the row softmax and its two derivative products
//! (`kernels/softmax.cu`), with the shape checks and messages of
//! `src/backend/cpu/softmax.rs` (`rows_of`, `same_shapes`, and its refusal
//! of empty rows). Rows are split between threads as for row normalization
//! (`row_groups`): a warp per short row, a block per long one.

use super::{launch, row_groups, to_i32, Cuda, CudaTensor};
use crate::backend::shapes::{rows_of, same_shapes, softmax_input};
use crate::error::Result;

pub(super) fn softmax_rows(be: &Cuda, x: &CudaTensor, causal: bool) -> Result<CudaTensor> {
    let (m, r, c) = softmax_input(x.shape(), causal)?;
    let nrows = m * r;
    let mut y = be.alloc(x.numel())?;
    if nrows > 0 {
        let (cfg, warp_rows) = row_groups(nrows, c)?;
        let (nr, ci, ca) = (nrows as i64, to_i32(c, "row length")?, causal as i32);
        launch!(
            be,
            "softmax",
            "softmax_rows",
            cfg,
            be.buf(x)?,
            &mut y,
            &nr,
            &ci,
            &ca,
            &warp_rows
        )?;
    }
    Ok(be.wrap(x.shape().to_vec(), y))
}

pub(super) fn softmax_rows_j(be: &Cuda, y: &CudaTensor, t: &CudaTensor) -> Result<CudaTensor> {
    same_shapes("softmax_rows_j", &[y.shape(), t.shape()])?;
    let (m, r, c) = rows_of("softmax_rows_j", y.shape())?;
    let nrows = m * r;
    let mut out = be.alloc(y.numel())?;
    // Rows of 0 entries (which the CPU accepts here) have nothing to write.
    if nrows > 0 && c > 0 {
        let (cfg, warp_rows) = row_groups(nrows, c)?;
        let (nr, ci) = (nrows as i64, to_i32(c, "row length")?);
        let (yb, tb) = (be.buf(y)?, be.buf(t)?);
        launch!(
            be,
            "softmax",
            "softmax_rows_j",
            cfg,
            yb,
            tb,
            &mut out,
            &nr,
            &ci,
            &warp_rows
        )?;
    }
    Ok(be.wrap(y.shape().to_vec(), out))
}

pub(super) fn softmax_rows_second(
    be: &Cuda,
    y: &CudaTensor,
    g: &CudaTensor,
    x_dot: &CudaTensor,
) -> Result<CudaTensor> {
    same_shapes(
        "softmax_rows_second",
        &[y.shape(), g.shape(), x_dot.shape()],
    )?;
    let (m, r, c) = rows_of("softmax_rows_second", y.shape())?;
    let nrows = m * r;
    let mut out = be.alloc(y.numel())?;
    if nrows > 0 && c > 0 {
        let (cfg, warp_rows) = row_groups(nrows, c)?;
        let (nr, ci) = (nrows as i64, to_i32(c, "row length")?);
        let (yb, gb, xb) = (be.buf(y)?, be.buf(g)?, be.buf(x_dot)?);
        launch!(
            be,
            "softmax",
            "softmax_rows_second",
            cfg,
            yb,
            gb,
            xb,
            &mut out,
            &nr,
            &ci,
            &warp_rows
        )?;
    }
    Ok(be.wrap(y.shape().to_vec(), out))
}
