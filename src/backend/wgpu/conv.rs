//! Launches `shaders/conv.wgsl`: im2col and its adjoint col2im, the patch
//! matrices a convolution multiplies. Shapes are `Window`'s checks, as on
//! the CPU.

use super::context::grid;
use super::{Wgpu, WgpuTensor};
use crate::backend::Window;
use crate::error::Result;
use crate::tensor::Tensor;

/// The shader's `Params`: total, then the window's geometry.
fn params(total: usize, win: &Window) -> [u32; 12] {
    [
        total,
        win.c,
        win.h,
        win.w,
        win.kh,
        win.kw,
        win.sh,
        win.sw,
        win.ph,
        win.pw,
        win.out_h(),
        win.out_w(),
    ]
    .map(|v| v as u32)
}

/// `entry` from `src` into a new tensor of `shape` (one thread per output).
fn run(
    be: &Wgpu,
    entry: &'static str,
    src: &WgpuTensor,
    shape: Vec<usize>,
    win: &Window,
) -> Result<WgpuTensor> {
    let total: usize = shape.iter().product();
    let out = be.alloc(total)?;
    be.launch(
        "conv",
        entry,
        &params(total, win),
        &[(1, src.storage().buffer()), (2, out.buffer())],
        grid(total),
        &[],
    )?;
    Ok(Tensor::from_parts(shape, out))
}

pub fn im2col(be: &Wgpu, x: &WgpuTensor, win: &Window) -> Result<WgpuTensor> {
    let (_, shape) = win.im2col_shape(x.shape())?;
    run(be, "im2col", x, shape, win)
}

pub fn col2im(be: &Wgpu, cols: &WgpuTensor, win: &Window) -> Result<WgpuTensor> {
    let (_, shape) = win.col2im_shape(cols.shape())?;
    run(be, "col2im", cols, shape, win)
}
