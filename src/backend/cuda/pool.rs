//! Launches row_max, row_pick and row_place (`kernels/pool.cu`) with the
//! shape checks of `src/backend/cpu/pool.rs`. An index outside its row,
//! which the CPU refuses, gives NaN for that row here (checking would cost a
//! host round trip), as a bad class label does in the loss heads.

use super::{grid_1d, launch, to_i32, Cuda, CudaTensor};
use crate::backend::shapes::{place_shape, row_index, rows_of, with_last};
use crate::error::{Error, Result};

pub(super) fn row_max(be: &Cuda, x: &CudaTensor) -> Result<(CudaTensor, CudaTensor)> {
    let (m, r, k) = rows_of("row_max", x.shape())?;
    if k == 0 {
        return Err(Error::shape("row_max of empty rows"));
    }
    let nrows = m * r;
    let mut best = be.alloc(nrows)?;
    let mut arg = be.alloc(nrows)?;
    if nrows > 0 {
        let (nr, ki) = (nrows as i64, to_i32(k, "row length")?);
        launch!(
            be,
            "pool",
            "row_max",
            grid_1d(nrows),
            be.buf(x)?,
            &mut best,
            &mut arg,
            &nr,
            &ki
        )?;
    }
    let shape = with_last(x.shape(), 1);
    Ok((be.wrap(shape.clone(), best), be.wrap(shape, arg)))
}

pub(super) fn row_pick(be: &Cuda, x: &CudaTensor, arg: &CudaTensor) -> Result<CudaTensor> {
    let (m, r, k) = row_index("row_pick", x.shape(), arg.shape())?;
    let nrows = m * r;
    // Every index is outside an empty row: the CPU refuses whatever the
    // values, so this is a shape error here too.
    if k == 0 && nrows > 0 {
        return Err(Error::shape(format!(
            "row_pick: no column to pick in the empty rows of {:?}",
            x.shape()
        )));
    }
    let mut out = be.alloc(nrows)?;
    if nrows > 0 {
        let (nr, ki) = (nrows as i64, to_i32(k, "row length")?);
        let (xb, ab) = (be.buf(x)?, be.buf(arg)?);
        launch!(
            be,
            "pool",
            "row_pick",
            grid_1d(nrows),
            xb,
            ab,
            &mut out,
            &nr,
            &ki
        )?;
    }
    Ok(be.wrap(with_last(x.shape(), 1), out))
}

pub(super) fn row_place(
    be: &Cuda,
    g: &CudaTensor,
    arg: &CudaTensor,
    k: usize,
) -> Result<CudaTensor> {
    // The CPU's check (src/backend/cpu/pool.rs), message and all.
    if g.shape() != arg.shape() || k == 0 {
        return Err(Error::shape(format!(
            "row_place: values {:?}, index {:?}, rows of {k}",
            g.shape(),
            arg.shape()
        )));
    }
    let total = g.numel() * k;
    let mut out = be.alloc(total)?;
    if total > 0 {
        let (t, ki) = (total as i64, to_i32(k, "row length")?);
        let (gb, ab) = (be.buf(g)?, be.buf(arg)?);
        launch!(
            be,
            "pool",
            "row_place",
            grid_1d(total),
            gb,
            ab,
            &mut out,
            &t,
            &ki
        )?;
    }
    Ok(be.wrap(place_shape(g.shape(), k), out))
}
