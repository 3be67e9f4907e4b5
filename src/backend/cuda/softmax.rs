//! PLACEHOLDER (branch attention only, never on main): the cuda softmax
//! kernels are being written; every call is refused.

use super::{Cuda, CudaTensor};
use crate::error::{Error, Result};

fn refused() -> Error {
    Error::msg("softmax_rows is not yet on cuda")
}

pub fn softmax_rows(_be: &Cuda, _x: &CudaTensor, _causal: bool) -> Result<CudaTensor> {
    Err(refused())
}

pub fn softmax_rows_j(_be: &Cuda, _y: &CudaTensor, _t: &CudaTensor) -> Result<CudaTensor> {
    Err(refused())
}

pub fn softmax_rows_second(
    _be: &Cuda,
    _y: &CudaTensor,
    _g: &CudaTensor,
    _x_dot: &CudaTensor,
) -> Result<CudaTensor> {
    Err(refused())
}
