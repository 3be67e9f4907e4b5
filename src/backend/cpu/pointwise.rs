//! Pointwise kernels: fused bias + activation, the activation's backward
//! product, per-member scaling and axpy.

use super::{rows_per_task, Cpu, Elem, PAR_MIN_ELEMS};
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::tensor::Tensor;
use rayon::prelude::*;

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

pub fn bias_act<T: Elem>(
    z: &Tensor<Cpu>,
    bias: Option<&Tensor<Cpu>>,
    bias_scale: f64,
    act: Activation,
) -> Result<(Tensor<Cpu>, Tensor<Cpu>)> {
    let (e, rows, n) = z.as_batched()?;
    let zv = T::view(z.storage())?;
    let bv = match bias {
        Some(b) => {
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
            Some((T::view(b.storage())?, members))
        }
        None => None,
    };
    let scale = T::from_f64(bias_scale);
    let mut pre = zv.to_vec();
    if let Some((bv, members)) = bv {
        for_rows(&mut pre, n, |r, row| {
            let member = if members == 1 { 0 } else { r / rows };
            let b = &bv[member * n..(member + 1) * n];
            for (x, &bb) in row.iter_mut().zip(b) {
                *x += scale * bb;
            }
        });
    }
    let mut post = pre.clone();
    if act != Activation::Identity {
        for_rows(&mut post, n, |_, row| {
            for x in row.iter_mut() {
                *x = act.apply(*x);
            }
        });
    }
    let shape = z.shape().to_vec();
    Ok((
        Tensor::from_parts(shape.clone(), T::wrap(pre)),
        Tensor::from_parts(shape, T::wrap(post)),
    ))
}

pub fn act_backward<T: Elem>(
    pre: &Tensor<Cpu>,
    g_post: &Tensor<Cpu>,
    act: Activation,
) -> Result<Tensor<Cpu>> {
    if pre.shape() != g_post.shape() {
        return Err(Error::shape(format!(
            "act_backward: {:?} vs {:?}",
            pre.shape(),
            g_post.shape()
        )));
    }
    let pv = T::view(pre.storage())?;
    let mut out = T::view(g_post.storage())?.to_vec();
    let n = *pre.shape().last().unwrap_or(&1);
    if act != Activation::Identity {
        for_rows(&mut out, n, |r, row| {
            let p = &pv[r * n..(r + 1) * n];
            for (g, &x) in row.iter_mut().zip(p) {
                *g = *g * act.deriv(x);
            }
        });
    }
    Ok(Tensor::from_parts(pre.shape().to_vec(), T::wrap(out)))
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
    let mut out = T::view(x.storage())?.to_vec();
    for (chunk, &f) in out.chunks_mut(per.max(1)).zip(sv) {
        for v in chunk.iter_mut() {
            *v = *v * f;
        }
    }
    Ok(Tensor::from_parts(x.shape().to_vec(), T::wrap(out)))
}

pub fn axpy<T: Elem>(y: &mut Tensor<Cpu>, alpha: f64, x: &Tensor<Cpu>) -> Result<()> {
    if y.shape() != x.shape() {
        return Err(Error::shape(format!(
            "axpy: {:?} += {:?}",
            y.shape(),
            x.shape()
        )));
    }
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
