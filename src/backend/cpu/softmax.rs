//! Row softmax, the CPU reference for `kernels/softmax.cu` and
//! `shaders/softmax.wgsl`: attention's probabilities over keys. With
//! `causal` the rows are stacked C x C score matrices and row r keeps
//! columns 0..=(r mod C) (a query sees itself and the keys before it); the
//! rest are exactly 0. The Jacobian `diag(y) - y y^T` is symmetric, so one
//! product serves the vjp and the jvp; `softmax_rows_second` is the
//! curvature term of the vjp tangent. Masked entries have y = 0, so the
//! products need no mask.

use super::pointwise::for_rows;
use super::recycle::scratch;
use super::{Cpu, Elem};
use crate::backend::shapes::{rows_of, same_shapes, softmax_input};
use crate::error::Result;
use crate::tensor::Tensor;

/// Columns row `r` of rows of `c` keeps.
fn kept(r: usize, c: usize, causal: bool) -> usize {
    if causal {
        r % c + 1
    } else {
        c
    }
}

pub fn softmax_rows<T: Elem>(x: &Tensor<Cpu>, causal: bool) -> Result<Tensor<Cpu>> {
    let (_, _, c) = softmax_input(x.shape(), causal)?;
    let xv = T::view(x.storage())?;
    let mut out = scratch(xv.len());
    for_rows(&mut out, c, |r, row| {
        let keep = kept(r, c, causal);
        let src = &xv[r * c..r * c + keep];
        let mx = src.iter().fold(src[0], |m, &v| m.max(v));
        let mut sum = T::ZERO;
        for (o, &v) in row.iter_mut().zip(src) {
            *o = (v - mx).exp();
            sum += *o;
        }
        let inv = T::ONE / sum;
        row[..keep].iter_mut().for_each(|o| *o = *o * inv);
        row[keep..].iter_mut().for_each(|o| *o = T::ZERO);
    });
    Ok(Tensor::from_parts(x.shape().to_vec(), T::wrap(out)))
}

fn dot<T: Elem>(a: &[T], b: &[T]) -> T {
    a.iter().zip(b).fold(T::ZERO, |acc, (&p, &q)| acc + p * q)
}

/// `J t = y * (t - y . t)` for one row.
fn j_row<T: Elem>(y: &[T], t: &[T], out: &mut [T]) {
    let yt = dot(y, t);
    for ((o, &yv), &tv) in out.iter_mut().zip(y).zip(t) {
        *o = yv * (tv - yt);
    }
}

pub fn softmax_rows_j<T: Elem>(y: &Tensor<Cpu>, t: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    same_shapes("softmax_rows_j", &[y.shape(), t.shape()])?;
    let (_, _, c) = rows_of("softmax_rows_j", y.shape())?;
    let (yv, tv) = (T::view(y.storage())?, T::view(t.storage())?);
    let mut out = scratch(yv.len());
    for_rows(&mut out, c, |r, row| {
        let span = r * c..(r + 1) * c;
        j_row(&yv[span.clone()], &tv[span], row);
    });
    Ok(Tensor::from_parts(y.shape().to_vec(), T::wrap(out)))
}

/// The derivative of `J g` along `x_dot` with `g` fixed: with
/// `y_dot = J x_dot`, `y_dot * (g - y . g) - y (y_dot . g)`.
pub fn softmax_rows_second<T: Elem>(
    y: &Tensor<Cpu>,
    g: &Tensor<Cpu>,
    x_dot: &Tensor<Cpu>,
) -> Result<Tensor<Cpu>> {
    same_shapes(
        "softmax_rows_second",
        &[y.shape(), g.shape(), x_dot.shape()],
    )?;
    let (_, _, c) = rows_of("softmax_rows_second", y.shape())?;
    let (yv, gv, xv) = (
        T::view(y.storage())?,
        T::view(g.storage())?,
        T::view(x_dot.storage())?,
    );
    let mut out = scratch(yv.len());
    for_rows(&mut out, c, |r, row| {
        let span = r * c..(r + 1) * c;
        let (y, g, xd) = (&yv[span.clone()], &gv[span.clone()], &xv[span]);
        // row holds y_dot first, then the result.
        j_row(y, xd, row);
        let (yg, ydg) = (dot(y, g), dot(row, g));
        for ((o, &yk), &gk) in row.iter_mut().zip(y).zip(g) {
            *o = *o * (gk - yg) - yk * ydg;
        }
    });
    Ok(Tensor::from_parts(y.shape().to_vec(), T::wrap(out)))
}
