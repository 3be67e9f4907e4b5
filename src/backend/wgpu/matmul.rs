//! Launches `shaders/matmul.wgsl`: batched matmul with transposes and
//! ensemble broadcasting, 64x64 output tiles per workgroup.

use super::{bits, Wgpu, WgpuTensor};
use crate::error::{Error, Result};
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
    let (ea, ar, ac) = a.as_batched()?;
    let (eb, br, bc) = b.as_batched()?;
    let (m, ka) = if ta { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if tb { (bc, br) } else { (br, bc) };
    if ka != kb {
        return Err(Error::shape(format!(
            "matmul of {:?}{} and {:?}{}: inner dimensions {ka} and {kb} differ",
            a.shape(),
            if ta { "^T" } else { "" },
            b.shape(),
            if tb { "^T" } else { "" },
        )));
    }
    if ea != eb && ea != 1 && eb != 1 {
        return Err(Error::shape(format!(
            "matmul ensemble sizes {ea} and {eb} differ",
        )));
    }
    let e = ea.max(eb);
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
    let shape = if a.shape().len() == 3 || b.shape().len() == 3 {
        vec![e, m, n]
    } else {
        vec![m, n]
    };
    Ok(Tensor::from_parts(shape, out))
}
