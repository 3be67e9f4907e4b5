//! A tensor is a shape plus a backend's storage: contiguous, row-major. The
//! leading dimension of a rank-3 tensor is the ensemble dimension E (E
//! same-shape models computed in one call); a rank-2 operand of a batched op
//! is shared by every ensemble member.

use crate::backend::Backend;
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct Tensor<B: Backend> {
    shape: Vec<usize>,
    storage: B::Storage,
}

impl<B: Backend> Tensor<B> {
    /// Backends build tensors through this; it does not check the storage's
    /// length, which is the backend's job.
    pub fn from_parts(shape: Vec<usize>, storage: B::Storage) -> Self {
        Tensor { shape, storage }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn storage(&self) -> &B::Storage {
        &self.storage
    }

    pub fn storage_mut(&mut self) -> &mut B::Storage {
        &mut self.storage
    }

    /// The tensor read as a batch of matrices: (batch, rows, cols). Rank 2 is
    /// a batch of one; rank 1 is a single row.
    pub fn as_batched(&self) -> Result<(usize, usize, usize)> {
        match self.shape.as_slice() {
            [c] => Ok((1, 1, *c)),
            [r, c] => Ok((1, *r, *c)),
            [e, r, c] => Ok((*e, *r, *c)),
            s => Err(Error::shape(format!(
                "expected a tensor of rank 1 to 3, got shape {s:?}"
            ))),
        }
    }

    /// Same data, new shape with the same number of elements.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        if shape.iter().product::<usize>() != self.numel() {
            return Err(Error::shape(format!(
                "cannot reshape {:?} to {shape:?}",
                self.shape
            )));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }
}

/// The values of ensemble member `e` of `t` (`[E, ...]`), on the host; an
/// empty tensor gives an empty list.
pub fn member_values<B: Backend>(be: &B, t: &Tensor<B>, e: usize) -> Result<Vec<f64>> {
    if t.numel() == 0 {
        return Ok(Vec::new());
    }
    let members = t.shape()[0];
    if e >= members {
        return Err(Error::shape(format!(
            "member {e} of a tensor of shape {:?}",
            t.shape()
        )));
    }
    let per = t.numel() / members;
    let all = be.to_f64(t)?;
    Ok(all[e * per..(e + 1) * per].to_vec())
}

/// The members of `t` (`[E, ...]`) as E tensors `[1, ...]`, with one
/// download of `t`. An empty tensor (an unused optimizer buffer) gives E
/// copies of itself.
pub fn split_members<B: Backend>(be: &B, t: &Tensor<B>, e: usize) -> Result<Vec<Tensor<B>>> {
    if t.numel() == 0 {
        return Ok(vec![t.clone(); e]);
    }
    if t.shape()[0] != e {
        return Err(Error::shape(format!(
            "{e} members of a tensor of shape {:?}",
            t.shape()
        )));
    }
    let mut shape = t.shape().to_vec();
    shape[0] = 1;
    let all = be.to_f64(t)?;
    all.chunks(t.numel() / e)
        .map(|values| be.from_f64(&shape, values))
        .collect()
}

/// The inverse of `split_members`: `[1, ...]` tensors stacked into one
/// `[E, ...]` tensor, with one upload.
pub fn join_members<B: Backend>(be: &B, parts: &[&Tensor<B>]) -> Result<Tensor<B>> {
    let first = parts
        .first()
        .ok_or_else(|| Error::msg("internal: joining no ensemble members"))?;
    if first.numel() == 0 {
        return Ok((*first).clone());
    }
    let mut shape = first.shape().to_vec();
    let mut values = Vec::with_capacity(first.numel() * parts.len());
    for p in parts {
        if p.shape() != first.shape() || shape[0] != 1 {
            return Err(Error::shape(format!(
                "joining ensemble members of shapes {:?} and {:?}",
                first.shape(),
                p.shape()
            )));
        }
        values.extend(be.to_f64(p)?);
    }
    shape[0] = parts.len();
    be.from_f64(&shape, &values)
}
