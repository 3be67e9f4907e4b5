//! Launches `shaders/pool.wgsl`: the max of each row with its column, and
//! the gather (`row_pick`) and scatter (`row_place`) through that column
//! that max pooling's tangent and vjp are. Shape checks are the CPU
//! reference's.

use super::context::grid;
use super::{Wgpu, WgpuTensor};
use crate::backend::shapes::{place_shape, row_index, rows_of, with_last};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn row_max(be: &Wgpu, x: &WgpuTensor) -> Result<(WgpuTensor, WgpuTensor)> {
    let (m, r, k) = rows_of("row_max", x.shape())?;
    if k == 0 {
        return Err(Error::shape("row_max of empty rows"));
    }
    let rows = m * r;
    let (best, arg) = (be.alloc(rows)?, be.alloc(rows)?);
    if rows > 0 {
        be.launch(
            "pool",
            "row_max",
            &[rows as u32, k as u32],
            &[
                (1, x.storage().buffer()),
                (3, best.buffer()),
                (4, arg.buffer()),
            ],
            grid(rows),
            &[],
        )?;
    }
    let shape = with_last(x.shape(), 1);
    Ok((
        Tensor::from_parts(shape.clone(), best),
        Tensor::from_parts(shape, arg),
    ))
}

pub fn row_pick(be: &Wgpu, x: &WgpuTensor, arg: &WgpuTensor) -> Result<WgpuTensor> {
    let (m, r, k) = row_index("row_pick", x.shape(), arg.shape())?;
    let rows = m * r;
    // Rows of nothing have no column to pick: the CPU refuses every index.
    if k == 0 && rows > 0 {
        return Err(Error::shape(format!(
            "row_pick: no column in rows of {:?}",
            x.shape()
        )));
    }
    let out = be.alloc(rows)?;
    if rows > 0 {
        be.launch(
            "pool",
            "row_pick",
            &[rows as u32, k as u32],
            &[
                (1, x.storage().buffer()),
                (2, arg.storage().buffer()),
                (3, out.buffer()),
            ],
            grid(rows),
            &[],
        )?;
    }
    Ok(Tensor::from_parts(with_last(x.shape(), 1), out))
}

pub fn row_place(be: &Wgpu, g: &WgpuTensor, arg: &WgpuTensor, k: usize) -> Result<WgpuTensor> {
    // The CPU reference's check (pool.rs), with its message.
    if g.shape() != arg.shape() || k == 0 {
        return Err(Error::shape(format!(
            "row_place: values {:?}, index {:?}, rows of {k}",
            g.shape(),
            arg.shape()
        )));
    }
    let total = g.numel() * k;
    let out = be.alloc(total)?;
    if total > 0 {
        be.launch(
            "pool",
            "row_place",
            &[total as u32, k as u32],
            &[
                (1, g.storage().buffer()),
                (2, arg.storage().buffer()),
                (3, out.buffer()),
            ],
            grid(total),
            &[],
        )?;
    }
    Ok(Tensor::from_parts(place_shape(g.shape(), k), out))
}
