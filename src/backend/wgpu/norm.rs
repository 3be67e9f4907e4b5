//! Launches `shaders/norm.wgsl`: row normalization (LayerNorm, RMSNorm) and
//! its Jacobian products, one workgroup per row. Shape checks are the CPU
//! reference's (`shapes::norm_operands`).

use super::context::workgroups;
use super::{bits, Wgpu, WgpuTensor};
use crate::backend::shapes::{norm_input, norm_operands};
use crate::error::Result;
use crate::tensor::Tensor;

/// The shader's `Params`: rows, c, center, eps.
fn params(rows: usize, c: usize, center: bool, eps: f64) -> [u32; 4] {
    [rows as u32, c as u32, center as u32, bits(eps)]
}

pub fn norm_rows(
    be: &Wgpu,
    x: &WgpuTensor,
    center: bool,
    eps: f64,
) -> Result<(WgpuTensor, WgpuTensor)> {
    let (m, r, c) = norm_input(x.shape())?;
    let rows = m * r;
    let (y, s) = (be.alloc(x.numel())?, be.alloc(rows)?);
    if rows > 0 {
        be.launch(
            "norm",
            "norm_rows",
            &params(rows, c, center, eps),
            &[(1, x.storage().buffer()), (5, y.buffer()), (6, s.buffer())],
            workgroups(rows),
            &[],
        )?;
    }
    let s_shape = match x.shape().len() {
        3 => vec![m, r],
        _ => vec![rows],
    };
    Ok((
        Tensor::from_parts(x.shape().to_vec(), y),
        Tensor::from_parts(s_shape, s),
    ))
}

/// `entry` over the rows of `y`, with `operands` bound from binding 3 on
/// (after `y` and `s`): a new tensor of `y`'s shape.
fn product(
    be: &Wgpu,
    entry: &'static str,
    y: &WgpuTensor,
    s: &WgpuTensor,
    operands: &[&WgpuTensor],
    center: bool,
) -> Result<WgpuTensor> {
    let shapes: Vec<&[usize]> = operands.iter().map(|t| t.shape()).collect();
    let (rows, c) = norm_operands(entry, y.shape(), s.shape(), &shapes)?;
    let out = be.alloc(y.numel())?;
    if rows > 0 {
        let mut bind = vec![
            (1, y.storage().buffer()),
            (2, s.storage().buffer()),
            (5, out.buffer()),
        ];
        bind.extend((3..).zip(operands.iter().map(|t| t.storage().buffer())));
        be.launch(
            "norm",
            entry,
            &params(rows, c, center, 0.0),
            &bind,
            workgroups(rows),
            &[],
        )?;
    }
    Ok(Tensor::from_parts(y.shape().to_vec(), out))
}

pub fn norm_rows_j(
    be: &Wgpu,
    y: &WgpuTensor,
    s: &WgpuTensor,
    t: &WgpuTensor,
    center: bool,
) -> Result<WgpuTensor> {
    product(be, "norm_rows_j", y, s, &[t], center)
}

pub fn norm_rows_second(
    be: &Wgpu,
    y: &WgpuTensor,
    s: &WgpuTensor,
    g: &WgpuTensor,
    x_dot: &WgpuTensor,
    center: bool,
) -> Result<WgpuTensor> {
    product(be, "norm_rows_second", y, s, &[g, x_dot], center)
}
