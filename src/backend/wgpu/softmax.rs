//! Launches `shaders/softmax.wgsl`: row softmax (optionally causal) and its
//! Jacobian products, one workgroup per row. Shape checks and messages are
//! the CPU reference's (`cpu/softmax.rs`, through `shapes`).

use super::context::workgroups;
use super::{Wgpu, WgpuTensor};
use crate::backend::shapes::{rows_of, same_shapes, softmax_input};
use crate::error::Result;
use crate::tensor::Tensor;

/// The shader's `Params`: rows, c, causal.
fn params(rows: usize, c: usize, causal: bool) -> [u32; 3] {
    [rows as u32, c as u32, causal as u32]
}

/// `entry` over the rows (of length `c`) of `operands[0]`, bound from
/// binding 1 on: a new tensor of its shape. Nothing is launched for an
/// empty tensor (no rows, or rows of length 0, which the products accept
/// as the CPU does).
fn launch_rows(
    be: &Wgpu,
    entry: &'static str,
    operands: &[&WgpuTensor],
    rows: usize,
    c: usize,
    causal: bool,
) -> Result<WgpuTensor> {
    let x = operands[0];
    let out = be.alloc(x.numel())?;
    if rows > 0 && c > 0 {
        let mut bind: Vec<(u32, &::wgpu::Buffer)> = (1..)
            .zip(operands.iter().map(|t| t.storage().buffer()))
            .collect();
        bind.push((4, out.buffer()));
        be.launch(
            "softmax",
            entry,
            &params(rows, c, causal),
            &bind,
            workgroups(rows),
            &[],
        )?;
    }
    Ok(Tensor::from_parts(x.shape().to_vec(), out))
}

pub fn softmax_rows(be: &Wgpu, x: &WgpuTensor, causal: bool) -> Result<WgpuTensor> {
    let (m, r, c) = softmax_input(x.shape(), causal)?;
    launch_rows(be, "softmax_rows", &[x], m * r, c, causal)
}

pub fn softmax_rows_j(be: &Wgpu, y: &WgpuTensor, t: &WgpuTensor) -> Result<WgpuTensor> {
    same_shapes("softmax_rows_j", &[y.shape(), t.shape()])?;
    let (m, r, c) = rows_of("softmax_rows_j", y.shape())?;
    launch_rows(be, "softmax_rows_j", &[y, t], m * r, c, false)
}

pub fn softmax_rows_second(
    be: &Wgpu,
    y: &WgpuTensor,
    g: &WgpuTensor,
    x_dot: &WgpuTensor,
) -> Result<WgpuTensor> {
    same_shapes(
        "softmax_rows_second",
        &[y.shape(), g.shape(), x_dot.shape()],
    )?;
    let (m, r, c) = rows_of("softmax_rows_second", y.shape())?;
    launch_rows(be, "softmax_rows_second", &[y, g, x_dot], m * r, c, false)
}
