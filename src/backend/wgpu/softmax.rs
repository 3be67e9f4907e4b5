//! PLACEHOLDER (branch attention only, never on main): the wgpu softmax
//! kernels are being written; every call is refused.

use super::{Wgpu, WgpuTensor};
use crate::error::{Error, Result};

fn refused() -> Error {
    Error::msg("softmax_rows is not yet on wgpu")
}

pub fn softmax_rows(_be: &Wgpu, _x: &WgpuTensor, _causal: bool) -> Result<WgpuTensor> {
    Err(refused())
}

pub fn softmax_rows_j(_be: &Wgpu, _y: &WgpuTensor, _t: &WgpuTensor) -> Result<WgpuTensor> {
    Err(refused())
}

pub fn softmax_rows_second(
    _be: &Wgpu,
    _y: &WgpuTensor,
    _g: &WgpuTensor,
    _x_dot: &WgpuTensor,
) -> Result<WgpuTensor> {
    Err(refused())
}
