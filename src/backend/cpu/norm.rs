//! Row normalization (LayerNorm with `center`, RMSNorm without) and its two
//! derivative products, the CPU reference for `kernels/norm.cu` and
//! `shaders/norm.wgsl`. With `y` the output and `s` the row's inverse
//! scale, the Jacobian is `J = s (P - y y^T / C)` (P the centering
//! projection or the identity), symmetric, so one product serves the jvp
//! and the vjp; `norm_rows_second` is the derivative of `J g` along an
//! input tangent, the curvature term of the vjp's tangent.

use super::pointwise::for_rows;
use super::recycle::scratch;
use super::{Cpu, Elem};
use crate::backend::shapes::{norm_input, norm_operands};
use crate::error::Result;
use crate::tensor::Tensor;

pub fn norm_rows<T: Elem>(
    x: &Tensor<Cpu>,
    center: bool,
    eps: f64,
) -> Result<(Tensor<Cpu>, Tensor<Cpu>)> {
    let (m, r, c) = norm_input(x.shape())?;
    let xv = T::view(x.storage())?;
    let n = T::from_f64(c as f64);
    let eps = T::from_f64(eps);
    let mut scale = scratch(m * r);
    for (i, s) in scale.iter_mut().enumerate() {
        let row = &xv[i * c..(i + 1) * c];
        let mean = if center {
            row.iter().fold(T::ZERO, |a, &v| a + v) / n
        } else {
            T::ZERO
        };
        let var = row
            .iter()
            .fold(T::ZERO, |a, &v| a + (v - mean) * (v - mean))
            / n;
        *s = T::ONE / (var + eps).sqrt();
    }
    let mut y = scratch(xv.len());
    for_rows(&mut y, c, |i, row| {
        let src = &xv[i * c..(i + 1) * c];
        let mean = if center {
            src.iter().fold(T::ZERO, |a, &v| a + v) / n
        } else {
            T::ZERO
        };
        for (o, &v) in row.iter_mut().zip(src) {
            *o = (v - mean) * scale[i];
        }
    });
    let s_shape = match x.shape().len() {
        3 => vec![m, r],
        _ => vec![m * r],
    };
    Ok((
        Tensor::from_parts(x.shape().to_vec(), T::wrap(y)),
        Tensor::from_parts(s_shape, T::wrap(scale)),
    ))
}

fn dot<T: Elem>(a: &[T], b: &[T]) -> T {
    a.iter().zip(b).fold(T::ZERO, |acc, (&p, &q)| acc + p * q)
}

fn mean<T: Elem>(a: &[T], center: bool) -> T {
    if center {
        a.iter().fold(T::ZERO, |acc, &v| acc + v) / T::from_f64(a.len() as f64)
    } else {
        T::ZERO
    }
}

/// `J t` for one row: `s ((t - mean t) - y (y . t) / C)`.
fn j_row<T: Elem>(y: &[T], s: T, t: &[T], center: bool, out: &mut [T]) {
    let n = T::from_f64(y.len() as f64);
    let (mt, yt) = (mean(t, center), dot(y, t) / n);
    for ((o, &yv), &tv) in out.iter_mut().zip(y).zip(t) {
        *o = s * (tv - mt - yv * yt);
    }
}

pub fn norm_rows_j<T: Elem>(
    y: &Tensor<Cpu>,
    s: &Tensor<Cpu>,
    t: &Tensor<Cpu>,
    center: bool,
) -> Result<Tensor<Cpu>> {
    let (_, c) = norm_operands("norm_rows_j", y.shape(), s.shape(), &[t.shape()])?;
    let (yv, sv, tv) = (
        T::view(y.storage())?,
        T::view(s.storage())?,
        T::view(t.storage())?,
    );
    let mut out = scratch(yv.len());
    for_rows(&mut out, c, |i, row| {
        let span = i * c..(i + 1) * c;
        j_row(&yv[span.clone()], sv[i], &tv[span], center, row);
    });
    Ok(Tensor::from_parts(y.shape().to_vec(), T::wrap(out)))
}

pub fn norm_rows_second<T: Elem>(
    y: &Tensor<Cpu>,
    s: &Tensor<Cpu>,
    g: &Tensor<Cpu>,
    x_dot: &Tensor<Cpu>,
    center: bool,
) -> Result<Tensor<Cpu>> {
    let (_, c) = norm_operands(
        "norm_rows_second",
        y.shape(),
        s.shape(),
        &[g.shape(), x_dot.shape()],
    )?;
    let (yv, sv) = (T::view(y.storage())?, T::view(s.storage())?);
    let (gv, xv) = (T::view(g.storage())?, T::view(x_dot.storage())?);
    let n = T::from_f64(c as f64);
    let mut out = scratch(yv.len());
    for_rows(&mut out, c, |i, row| {
        let span = i * c..(i + 1) * c;
        let (y, g, xd) = (&yv[span.clone()], &gv[span.clone()], &xv[span]);
        let s = sv[i];
        let mut jg = vec![T::ZERO; c];
        let mut jx = vec![T::ZERO; c];
        j_row(y, s, g, center, &mut jg);
        j_row(y, s, xd, center, &mut jx);
        let (yx, yg, jxg) = (dot(y, xd), dot(y, g), dot(&jx, g));
        let f = -s / n;
        for k in 0..c {
            row[k] = f * (yx * jg[k] + yg * jx[k] + jxg * y[k]);
        }
    });
    Ok(Tensor::from_parts(y.shape().to_vec(), T::wrap(out)))
}
