//! Pointwise kernels: fused bias + activation, the activation's backward
//! product, per-member scaling and axpy.

use super::recycle::scratch;
use super::{rows_per_task, Cpu, Elem, PAR_MIN_ELEMS};
use crate::backend::shapes::same_shapes;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// `$body` with `$a` bound to `$act` as a constant, one match arm per
/// activation: the match sits outside the loop in `$body`, so each arm is a
/// plain loop the compiler specializes and vectorizes. Identity runs `$id`.
macro_rules! specialize {
    ($act:expr, $a:ident => $body:expr, identity => $id:expr) => {
        match $act {
            Activation::Identity => $id,
            Activation::Relu => {
                const $a: Activation = Activation::Relu;
                $body
            }
            Activation::Tanh => {
                const $a: Activation = Activation::Tanh;
                $body
            }
            Activation::Gelu => {
                const $a: Activation = Activation::Gelu;
                $body
            }
            Activation::Silu => {
                const $a: Activation = Activation::Silu;
                $body
            }
            Activation::Elu => {
                const $a: Activation = Activation::Elu;
                $body
            }
            Activation::Softplus => {
                const $a: Activation = Activation::Softplus;
                $body
            }
        }
    };
}

/// Apply `f(row_index, row)` to each row of `out`, in parallel when the
/// work is large enough. Rows are independent, so the order does not matter.
pub(super) fn for_rows<T: Elem>(out: &mut [T], row_len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if row_len == 0 {
        return;
    }
    if out.len() < PAR_MIN_ELEMS {
        out.chunks_mut(row_len)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    } else {
        out.par_chunks_mut(row_len)
            .enumerate()
            .with_min_len(rows_per_task(row_len))
            .for_each(|(i, r)| f(i, r));
    }
}

/// `f(row_index, a_row, b_row)` over the rows of two same-length outputs,
/// as `for_rows` does for one.
fn for_row_pairs<T: Elem>(
    a: &mut [T],
    b: &mut [T],
    row_len: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) + Sync,
) {
    if row_len == 0 {
        return;
    }
    if a.len() < PAR_MIN_ELEMS {
        a.chunks_mut(row_len)
            .zip(b.chunks_mut(row_len))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    } else {
        a.par_chunks_mut(row_len)
            .zip(b.par_chunks_mut(row_len))
            .enumerate()
            .with_min_len(rows_per_task(row_len))
            .for_each(|(i, (x, y))| f(i, x, y));
    }
}

/// `pre = z + bias_scale * bias` (the bias per member, or shared) and
/// `post = act(pre)`, in one pass: each row's `pre` is still in cache when
/// its activation is taken.
pub fn bias_act<T: Elem>(
    z: &Tensor<Cpu>,
    bias: Option<&Tensor<Cpu>>,
    bias_scale: f64,
    act: Activation,
) -> Result<(Tensor<Cpu>, Tensor<Cpu>)> {
    let (e, rows, n) = z.as_batched()?;
    let shape = z.shape().to_vec();
    let Some(b) = bias else {
        if act == Activation::Identity {
            return Ok((z.clone(), z.clone()));
        }
        let zv = T::view(z.storage())?;
        let mut post = scratch(zv.len());
        for_rows(&mut post, n, |r, row| {
            apply_row(act, &zv[r * n..(r + 1) * n], row)
        });
        return Ok((z.clone(), Tensor::from_parts(shape, T::wrap(post))));
    };
    let (be, br, bn) = b.as_batched()?;
    // A bias is [E, n] (rank 2) or [n]: as_batched reads [E, n] as one
    // batch of E rows.
    let members = be * br;
    if bn != n || (members != e && members != 1) {
        return Err(Error::shape(format!(
            "bias {:?} does not fit activations {:?}",
            b.shape(),
            z.shape()
        )));
    }
    let bv = T::view(b.storage())?;
    let zv = T::view(z.storage())?;
    let scale = T::from_f64(bias_scale);
    let add_bias = |r: usize, row: &mut [T]| {
        let member = if members == 1 { 0 } else { r / rows };
        let b = &bv[member * n..(member + 1) * n];
        let z = &zv[r * n..(r + 1) * n];
        for ((x, &zz), &bb) in row.iter_mut().zip(z).zip(b) {
            *x = zz + scale * bb;
        }
    };
    let mut pre = scratch(zv.len());
    if act == Activation::Identity {
        for_rows(&mut pre, n, add_bias);
        let pre = Tensor::from_parts(shape, T::wrap(pre));
        return Ok((pre.clone(), pre));
    }
    let mut post = scratch(zv.len());
    for_row_pairs(&mut pre, &mut post, n, |r, pre_row, post_row| {
        add_bias(r, pre_row);
        apply_row(act, pre_row, post_row);
    });
    Ok((
        Tensor::from_parts(shape.clone(), T::wrap(pre)),
        Tensor::from_parts(shape, T::wrap(post)),
    ))
}

/// `dst = act(src)`.
fn apply_row<T: Elem>(act: Activation, src: &[T], dst: &mut [T]) {
    specialize!(act, A => {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = A.apply(x);
        }
    }, identity => dst.copy_from_slice(src))
}

pub fn act_backward<T: Elem>(
    pre: &Tensor<Cpu>,
    post: &Tensor<Cpu>,
    g_post: &Tensor<Cpu>,
    act: Activation,
) -> Result<Tensor<Cpu>> {
    same_shapes("act_backward", &[pre.shape(), post.shape(), g_post.shape()])?;
    if act == Activation::Identity {
        return Ok(g_post.clone());
    }
    let pv = T::view(pre.storage())?;
    let yv = T::view(post.storage())?;
    let gv = T::view(g_post.storage())?;
    let n = *pre.shape().last().unwrap_or(&1);
    let mut out = scratch(gv.len());
    specialize!(act, A => for_rows(&mut out, n, |r, row| {
        let span = r * n..(r + 1) * n;
        for ((d, &g), (&x, &y)) in row
            .iter_mut()
            .zip(&gv[span.clone()])
            .zip(pv[span.clone()].iter().zip(&yv[span]))
        {
            *d = g * A.deriv_with_output(x, y);
        }
    }), identity => unreachable!("handled above"));
    Ok(Tensor::from_parts(pre.shape().to_vec(), T::wrap(out)))
}

pub fn act_backward_tangent<T: Elem>(
    pre: &Tensor<Cpu>,
    post: &Tensor<Cpu>,
    g_post: &Tensor<Cpu>,
    g_post_dot: &Tensor<Cpu>,
    pre_dot: &Tensor<Cpu>,
    act: Activation,
) -> Result<Tensor<Cpu>> {
    let shape = pre.shape();
    same_shapes(
        "act_backward_tangent",
        &[
            shape,
            post.shape(),
            g_post.shape(),
            g_post_dot.shape(),
            pre_dot.shape(),
        ],
    )?;
    let (xv, yv) = (T::view(pre.storage())?, T::view(post.storage())?);
    let (gv, gdv, xdv) = (
        T::view(g_post.storage())?,
        T::view(g_post_dot.storage())?,
        T::view(pre_dot.storage())?,
    );
    let n = *shape.last().unwrap_or(&1);
    let mut out = scratch(xv.len());
    specialize!(act, A => for_rows(&mut out, n, |r, row| {
        let span = r * n..(r + 1) * n;
        let (x, y, g) = (&xv[span.clone()], &yv[span.clone()], &gv[span.clone()]);
        let (gd, xd) = (&gdv[span.clone()], &xdv[span]);
        for j in 0..row.len() {
            row[j] = gd[j] * A.deriv_with_output(x[j], y[j]) + g[j] * A.second_deriv(x[j], y[j]) * xd[j];
        }
    }), identity => out.copy_from_slice(gdv));
    Ok(Tensor::from_parts(shape.to_vec(), T::wrap(out)))
}

pub fn scale_members<T: Elem>(x: &Tensor<Cpu>, s: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let e = s.numel();
    let total = x.numel();
    if e == 0 || x.shape().first() != Some(&e) {
        return Err(Error::shape(format!(
            "scale_members: {:?} by {:?}",
            x.shape(),
            s.shape()
        )));
    }
    let sv = T::view(s.storage())?;
    let per = total / e;
    let mut out = scratch(total);
    out.copy_from_slice(T::view(x.storage())?);
    for (chunk, &f) in out.chunks_mut(per.max(1)).zip(sv) {
        for v in chunk.iter_mut() {
            *v = *v * f;
        }
    }
    Ok(Tensor::from_parts(x.shape().to_vec(), T::wrap(out)))
}

pub fn axpy<T: Elem>(y: &mut Tensor<Cpu>, alpha: f64, x: &Tensor<Cpu>) -> Result<()> {
    same_shapes("axpy", &[y.shape(), x.shape()])?;
    let a = T::from_f64(alpha);
    let xv = T::view(x.storage())?;
    let yv = T::view_mut(y.storage_mut())?;
    let n = yv.len();
    let chunk = 4096;
    if n < PAR_MIN_ELEMS {
        yv.iter_mut().zip(xv).for_each(|(y, &x)| *y += a * x);
    } else {
        yv.par_chunks_mut(chunk)
            .zip(xv.par_chunks(chunk))
            .for_each(|(ys, xs)| {
                ys.iter_mut().zip(xs).for_each(|(y, &x)| *y += a * x);
            });
    }
    Ok(())
}

pub fn mul<T: Elem>(a: &Tensor<Cpu>, b: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let (broadcast, b_rows) = crate::backend::shapes::mul_operands(a.shape(), b.shape())?;
    let (av, bv) = (T::view(a.storage())?, T::view(b.storage())?);
    let (_, rows, c) = a.as_batched()?;
    let mut out = scratch(av.len());
    for_rows(&mut out, c, |r, row| {
        let x = &av[r * c..(r + 1) * c];
        let y = if broadcast {
            let member = if b_rows == 1 { 0 } else { r / rows };
            &bv[member * c..(member + 1) * c]
        } else {
            &bv[r * c..(r + 1) * c]
        };
        for ((o, &p), &q) in row.iter_mut().zip(x).zip(y) {
            *o = p * q;
        }
    });
    Ok(Tensor::from_parts(a.shape().to_vec(), T::wrap(out)))
}
