//! Batched matrix transpose, the CPU reference for `kernels/layout.cu` and
//! `shaders/layout.wgsl`: it turns channels-last feature maps into PyTorch's
//! channels-first order (flatten) and per-channel columns into rows (batch
//! normalization is a row normalization of the transpose).

use super::pointwise::for_rows;
use super::recycle::scratch;
use super::{Cpu, Elem};
use crate::backend::shapes::rows_of;
use crate::error::Result;
use crate::tensor::Tensor;

pub fn transpose<T: Elem>(x: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let (n, r, c) = rows_of("transpose", x.shape())?;
    let xv = T::view(x.storage())?;
    let mut out = scratch(xv.len());
    // Output row (b, j) is column j of matrix b.
    for_rows(&mut out, r, |row_index, row| {
        let (b, j) = (row_index / c, row_index % c);
        let m = &xv[b * r * c..(b + 1) * r * c];
        for (i, v) in row.iter_mut().enumerate() {
            *v = m[i * c + j];
        }
    });
    let shape = match x.shape().len() {
        3 => vec![n, c, r],
        _ => vec![c, r],
    };
    Ok(Tensor::from_parts(shape, T::wrap(out)))
}
