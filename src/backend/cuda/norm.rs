//! Launches the row normalization and its two derivative products
//! (`kernels/norm.cu`), with the shape checks of `src/backend/cpu/norm.rs`
//! (`rows_of`, `norm_operands`). Short rows get a warp each and long ones a
//! block each (`row_groups`), so neither many short rows nor a few long
//! ones leave most threads idle.

use super::{launch, row_groups, to_i32, Cuda, CudaTensor};
use crate::backend::shapes::{norm_input, norm_operands};
use crate::error::Result;

pub(super) fn norm_rows(
    be: &Cuda,
    x: &CudaTensor,
    center: bool,
    eps: f64,
) -> Result<(CudaTensor, CudaTensor)> {
    let (m, r, c) = norm_input(x.shape())?;
    let nrows = m * r;
    let mut y = be.alloc(x.numel())?;
    let mut s = be.alloc(nrows)?;
    if nrows > 0 {
        let (cfg, warp_rows) = row_groups(nrows, c)?;
        let (nr, ci) = (nrows as i64, to_i32(c, "row length")?);
        let (ce, e) = (center as i32, eps as f32);
        launch!(
            be,
            "norm",
            "norm_rows",
            cfg,
            be.buf(x)?,
            &mut y,
            &mut s,
            &nr,
            &ci,
            &ce,
            &e,
            &warp_rows
        )?;
    }
    let s_shape = match x.shape().len() {
        3 => vec![m, r],
        _ => vec![nrows],
    };
    Ok((be.wrap(x.shape().to_vec(), y), be.wrap(s_shape, s)))
}

pub(super) fn norm_rows_j(
    be: &Cuda,
    y: &CudaTensor,
    s: &CudaTensor,
    t: &CudaTensor,
    center: bool,
) -> Result<CudaTensor> {
    let (nrows, c) = norm_operands("norm_rows_j", y.shape(), s.shape(), &[t.shape()])?;
    let mut out = be.alloc(y.numel())?;
    if nrows > 0 {
        let (cfg, warp_rows) = row_groups(nrows, c)?;
        let (nr, ci, ce) = (nrows as i64, to_i32(c, "row length")?, center as i32);
        let (yb, sb, tb) = (be.buf(y)?, be.buf(s)?, be.buf(t)?);
        launch!(
            be,
            "norm",
            "norm_rows_j",
            cfg,
            yb,
            sb,
            tb,
            &mut out,
            &nr,
            &ci,
            &ce,
            &warp_rows
        )?;
    }
    Ok(be.wrap(y.shape().to_vec(), out))
}

pub(super) fn norm_rows_second(
    be: &Cuda,
    y: &CudaTensor,
    s: &CudaTensor,
    g: &CudaTensor,
    x_dot: &CudaTensor,
    center: bool,
) -> Result<CudaTensor> {
    let others = [g.shape(), x_dot.shape()];
    let (nrows, c) = norm_operands("norm_rows_second", y.shape(), s.shape(), &others)?;
    let mut out = be.alloc(y.numel())?;
    if nrows > 0 {
        let (cfg, warp_rows) = row_groups(nrows, c)?;
        let (nr, ci, ce) = (nrows as i64, to_i32(c, "row length")?, center as i32);
        let (yb, sb) = (be.buf(y)?, be.buf(s)?);
        let (gb, xb) = (be.buf(g)?, be.buf(x_dot)?);
        launch!(
            be,
            "norm",
            "norm_rows_second",
            cfg,
            yb,
            sb,
            gb,
            xb,
            &mut out,
            &nr,
            &ci,
            &ce,
            &warp_rows
        )?;
    }
    Ok(be.wrap(y.shape().to_vec(), out))
}
