//! Reductions: sums over the batch rows (bias gradients), per-member squared
//! norms, and argmax accuracy counts. Each output is accumulated by one
//! thread in a fixed order, so sums do not depend on the thread count.

use super::recycle::zeroed;
use super::{Cpu, Elem};
use crate::backend::shapes::{one_label_per_row, same_shapes};
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

pub fn sum_rows<T: Elem>(x: &Tensor<Cpu>, alpha: f64) -> Result<Tensor<Cpu>> {
    let (e, rows, n) = x.as_batched()?;
    let xv = T::view(x.storage())?;
    let a = T::from_f64(alpha);
    let mut out = zeroed(e * n);
    let member = |m: usize, dst: &mut [T]| {
        let base = &xv[m * rows * n..(m + 1) * rows * n];
        for row in base.chunks(n) {
            for (d, &v) in dst.iter_mut().zip(row) {
                *d += v;
            }
        }
        for d in dst.iter_mut() {
            *d = *d * a;
        }
    };
    if n > 0 {
        if e > 1 {
            out.par_chunks_mut(n)
                .enumerate()
                .for_each(|(m, dst)| member(m, dst));
        } else {
            member(0, &mut out);
        }
    }
    let shape = if x.shape().len() == 3 {
        vec![e, n]
    } else {
        vec![n]
    };
    Ok(Tensor::from_parts(shape, T::wrap(out)))
}

/// `f` applied to each ensemble member's slice of `x` (`[E, ...]`; a rank-1
/// tensor is one member).
fn per_member<T: Elem>(x: &Tensor<Cpu>, f: impl Fn(&[T]) -> f64) -> Result<Vec<f64>> {
    let xv = T::view(x.storage())?;
    let e = if x.shape().len() >= 2 {
        x.shape()[0]
    } else {
        1
    };
    let per = xv.len().checked_div(e).unwrap_or(0);
    Ok((0..e).map(|m| f(&xv[m * per..(m + 1) * per])).collect())
}

pub fn sum_sq<T: Elem>(x: &Tensor<Cpu>) -> Result<Vec<f64>> {
    per_member::<T>(x, |s| s.iter().map(|&v| v.to_f64() * v.to_f64()).sum())
}

pub fn count_correct<T: Elem>(f: &Tensor<Cpu>, labels: &Tensor<Cpu>) -> Result<Vec<f64>> {
    let (e, rows, k) = f.as_batched()?;
    one_label_per_row("count_correct", labels.shape(), f.shape(), rows)?;
    let fv = T::view(f.storage())?;
    let lv = T::view(labels.storage())?;
    Ok((0..e)
        .map(|m| {
            let mut correct = 0.0;
            for (r, &label) in lv.iter().enumerate() {
                let row = &fv[(m * rows + r) * k..(m * rows + r + 1) * k];
                let mut best = 0;
                for j in 1..k {
                    if row[j] > row[best] {
                        best = j;
                    }
                }
                if best as f64 == label.to_f64() {
                    correct += 1.0;
                }
            }
            correct
        })
        .collect())
}

pub fn dot_members<T: Elem>(a: &Tensor<Cpu>, b: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    same_shapes("dot_members", &[a.shape(), b.shape()])?;
    let (av, bv) = (T::view(a.storage())?, T::view(b.storage())?);
    let e = if a.shape().len() >= 2 {
        a.shape()[0]
    } else {
        1
    };
    let per = av.len().checked_div(e).unwrap_or(0);
    let out: Vec<T> = (0..e)
        .map(|m| {
            let mut s = T::ZERO;
            for (&x, &y) in av[m * per..(m + 1) * per]
                .iter()
                .zip(&bv[m * per..(m + 1) * per])
            {
                s += x * y;
            }
            s
        })
        .collect();
    Ok(Tensor::from_parts(vec![e], T::wrap(out)))
}

pub fn row_sq_norms<T: Elem>(x: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let (e, rows, n) = x.as_batched()?;
    let xv = T::view(x.storage())?;
    let out: Vec<T> = xv
        .chunks(n.max(1))
        .map(|row| {
            let mut s = T::ZERO;
            for &v in row {
                s += v * v;
            }
            s
        })
        .collect();
    let shape = if x.shape().len() == 3 {
        vec![e, rows]
    } else {
        vec![rows]
    };
    Ok(Tensor::from_parts(shape, T::wrap(out)))
}

pub fn sum_abs<T: Elem>(x: &Tensor<Cpu>) -> Result<Vec<f64>> {
    per_member::<T>(x, |s| s.iter().map(|&v| v.to_f64().abs()).sum())
}
