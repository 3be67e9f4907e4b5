//! Launches `shaders/matmul.wgsl`: batched matmul with transposes and
//! ensemble broadcasting, 64x64 output tiles per workgroup.

use super::{bits, Wgpu, WgpuTensor};
use crate::backend::shapes::matmul_dims;
use crate::error::Result;
use crate::tensor::Tensor;

const TILE: usize = 64;

pub fn matmul(
    be: &Wgpu,
    a: &WgpuTensor,
    ta: bool,
    b: &WgpuTensor,
    tb: bool,
    alpha: f64,
) -> Result<WgpuTensor> {
    let d = matmul_dims(a.shape(), ta, b.shape(), tb)?;
    let (e, ea, eb, m, n, ka) = (d.e, d.ea, d.eb, d.m, d.n, d.k);
    // The stored (untransposed) matrices' rows and columns.
    let (_, ar, ac) = a.as_batched()?;
    let (_, br, bc) = b.as_batched()?;
    let out = be.alloc(e * m * n)?;
    if e * m * n > 0 {
        let stride = |batch: usize, size: usize| if batch == 1 { 0 } else { size as u32 };
        let params = [
            m as u32,
            n as u32,
            ka as u32,
            ta as u32,
            tb as u32,
            stride(ea, ar * ac),
            stride(eb, br * bc),
            bits(alpha),
        ];
        be.launch(
            "matmul",
            "matmul",
            &params,
            &[
                (1, a.storage().buffer()),
                (2, b.storage().buffer()),
                (3, out.buffer()),
            ],
            (n.div_ceil(TILE) as u32, m.div_ceil(TILE) as u32, e as u32),
            &[],
        )?;
    }
    let shape = d.out_shape.clone();
    Ok(Tensor::from_parts(shape, out))
}
