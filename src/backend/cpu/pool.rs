//! Row-wise max with its argument, and the gather and scatter through that
//! argument: max pooling is im2col followed by `row_max` over each
//! channel's window, its tangent is `row_pick` and its vjp `row_place`. CPU
//! reference for `kernels/pool.cu` and `shaders/pool.wgsl`.

use super::pointwise::for_rows;
use super::recycle::{scratch, zeroed};
use super::{rows_per_task, Cpu, Elem, PAR_MIN_ELEMS};
use crate::backend::shapes::{place_shape, row_index, rows_of, with_last};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rayon::prelude::*;

pub fn row_max<T: Elem>(x: &Tensor<Cpu>) -> Result<(Tensor<Cpu>, Tensor<Cpu>)> {
    let (m, r, k) = rows_of("row_max", x.shape())?;
    if k == 0 {
        return Err(Error::shape("row_max of empty rows"));
    }
    let xv = T::view(x.storage())?;
    let mut best = scratch(m * r);
    let mut arg = scratch(m * r);
    let pick = |i: usize, b: &mut T, a: &mut T| {
        let row = &xv[i * k..(i + 1) * k];
        let mut at = 0;
        for (j, &v) in row.iter().enumerate().skip(1) {
            // Strictly greater: the first maximum wins, as on every backend.
            if v > row[at] {
                at = j;
            }
        }
        *b = row[at];
        *a = T::from_f64(at as f64);
    };
    let per_task = rows_per_task(k);
    best.par_chunks_mut(per_task)
        .zip(arg.par_chunks_mut(per_task))
        .enumerate()
        .with_min_len(if xv.len() < PAR_MIN_ELEMS {
            usize::MAX
        } else {
            1
        })
        .for_each(|(t, (bs, args))| {
            for (o, (b, a)) in bs.iter_mut().zip(args.iter_mut()).enumerate() {
                pick(t * per_task + o, b, a);
            }
        });
    let shape = with_last(x.shape(), 1);
    Ok((
        Tensor::from_parts(shape.clone(), T::wrap(best)),
        Tensor::from_parts(shape, T::wrap(arg)),
    ))
}

/// The column an index value names, checked against the row length.
fn column<T: Elem>(a: T, k: usize) -> Result<usize> {
    let j = a.to_f64();
    if !(j >= 0.0 && (j as usize) < k) {
        return Err(Error::shape(format!("row index {j} outside rows of {k}")));
    }
    Ok(j as usize)
}

pub fn row_pick<T: Elem>(x: &Tensor<Cpu>, arg: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let (_, _, k) = row_index("row_pick", x.shape(), arg.shape())?;
    let (xv, av) = (T::view(x.storage())?, T::view(arg.storage())?);
    let out = av
        .iter()
        .enumerate()
        .map(|(i, &a)| Ok(xv[i * k + column(a, k)?]))
        .collect::<Result<Vec<T>>>()?;
    Ok(Tensor::from_parts(with_last(x.shape(), 1), T::wrap(out)))
}

pub fn row_place<T: Elem>(g: &Tensor<Cpu>, arg: &Tensor<Cpu>, k: usize) -> Result<Tensor<Cpu>> {
    if g.shape() != arg.shape() || k == 0 {
        return Err(Error::shape(format!(
            "row_place: values {:?}, index {:?}, rows of {k}",
            g.shape(),
            arg.shape()
        )));
    }
    let (gv, av) = (T::view(g.storage())?, T::view(arg.storage())?);
    let cols = av
        .iter()
        .map(|&a| column(a, k))
        .collect::<Result<Vec<_>>>()?;
    let mut out = zeroed(gv.len() * k);
    for_rows(&mut out, k, |i, row| row[cols[i]] = gv[i]);
    Ok(Tensor::from_parts(place_shape(g.shape(), k), T::wrap(out)))
}
