//! Launches `shaders/layout.wgsl`: each matrix of a batch transposed
//! (channels-last to channels-first, columns to rows). Shapes are the CPU
//! reference's.

use super::context::grid;
use super::{Wgpu, WgpuTensor};
use crate::backend::shapes::rows_of;
use crate::error::Result;
use crate::tensor::Tensor;

pub fn transpose(be: &Wgpu, x: &WgpuTensor) -> Result<WgpuTensor> {
    let (n, r, c) = rows_of("transpose", x.shape())?;
    let total = x.numel();
    let out = be.alloc(total)?;
    if total > 0 {
        be.launch(
            "layout",
            "transpose",
            &[total as u32, r as u32, c as u32],
            &[(1, x.storage().buffer()), (2, out.buffer())],
            grid(total),
            &[],
        )?;
    }
    let shape = match x.shape().len() {
        3 => vec![n, c, r],
        _ => vec![c, r],
    };
    Ok(Tensor::from_parts(shape, out))
}
