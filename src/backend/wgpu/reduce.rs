//! Launches `shaders/reduce.wgsl`: sums over rows, per-member inner products
//! and norms, per-row squared norms and argmax accuracy counts. The
//! per-member scalars a user logs (`sum_sq`, `sum_abs`, `count_correct`) are
//! read back here; nothing else is.

use super::context::grid;
use super::{bits, Wgpu, WgpuTensor};
use crate::backend::shapes::{one_label_per_row, same_shapes};
use crate::backend::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `member_reduce`'s operations.
#[derive(Copy, Clone)]
pub enum MemberOp {
    Dot = 0,
    SumSq = 1,
    SumAbs = 2,
    Sum = 3,
}

/// The shader's `Params`: rows, n, per, op, alpha, total.
fn params(rows: usize, n: usize, per: usize, op: MemberOp, alpha: f64, total: usize) -> [u32; 6] {
    [
        rows.max(1) as u32,
        n as u32,
        per as u32,
        op as u32,
        bits(alpha),
        total as u32,
    ]
}

/// Members of `[E, ...]` (a rank-1 tensor is one member), as the CPU counts.
fn members(shape: &[usize]) -> usize {
    if shape.len() >= 2 {
        shape[0]
    } else {
        1
    }
}

/// `alpha * op` over each of `e` consecutive blocks of `per` elements of `a`
/// (and `b` for `Dot`): a `[e]` buffer, of the backend's dtype, or f32 for
/// values bound for the host (`host`), which f16 could overflow.
#[allow(clippy::too_many_arguments)]
pub fn member_reduce(
    be: &Wgpu,
    a: &::wgpu::Buffer,
    b: Option<&::wgpu::Buffer>,
    e: usize,
    per: usize,
    op: MemberOp,
    alpha: f64,
    host: bool,
) -> Result<super::WgpuStorage> {
    let out = if host {
        be.alloc_as(e, DType::F32)?
    } else {
        be.alloc(e)?
    };
    if e == 0 {
        return Ok(out);
    }
    let p = params(1, 0, per, op, alpha, 0);
    let (entry, slot) = if host {
        ("member_reduce_host", 5)
    } else {
        ("member_reduce", 3)
    };
    // The entry point reads in2 only for Dot, but binds it always.
    let bind = [(1, a), (2, b.unwrap_or(a)), (slot, out.buffer())];
    // One workgroup per member; more than 65535 members never occur in one
    // ensemble, but fail clearly if they do.
    if e > 65535 {
        return Err(Error::Device(format!(
            "wgpu: {e} ensemble members exceed one launch's 65535 workgroups"
        )));
    }
    be.launch("reduce", entry, &p, &bind, (e as u32, 1, 1), &[])?;
    Ok(out)
}

pub fn sum_rows(be: &Wgpu, x: &WgpuTensor, alpha: f64) -> Result<WgpuTensor> {
    let (e, rows, n) = x.as_batched()?;
    let total = e * n;
    let out = be.alloc(total)?;
    if total > 0 {
        let p = params(rows, n, 0, MemberOp::Sum, alpha, total);
        be.launch(
            "reduce",
            "sum_rows",
            &p,
            &[(1, x.storage().buffer()), (3, out.buffer())],
            grid(total),
            &[],
        )?;
    }
    let shape = if x.shape().len() == 3 {
        vec![e, n]
    } else {
        vec![n]
    };
    Ok(Tensor::from_parts(shape, out))
}

pub fn dot_members(be: &Wgpu, a: &WgpuTensor, b: &WgpuTensor) -> Result<WgpuTensor> {
    same_shapes("dot_members", &[a.shape(), b.shape()])?;
    let e = members(a.shape());
    let per = a.numel().checked_div(e).unwrap_or(0);
    let out = member_reduce(
        be,
        a.storage().buffer(),
        Some(b.storage().buffer()),
        e,
        per,
        MemberOp::Dot,
        1.0,
        false,
    )?;
    Ok(Tensor::from_parts(vec![e], out))
}

fn member_scalars(be: &Wgpu, x: &WgpuTensor, op: MemberOp) -> Result<Vec<f64>> {
    let e = members(x.shape());
    let per = x.numel().checked_div(e).unwrap_or(0);
    let out = member_reduce(be, x.storage().buffer(), None, e, per, op, 1.0, true)?;
    Ok(be
        .ctx
        .read(out.buffer(), e)?
        .into_iter()
        .map(f64::from)
        .collect())
}

pub fn sum_sq(be: &Wgpu, x: &WgpuTensor) -> Result<Vec<f64>> {
    member_scalars(be, x, MemberOp::SumSq)
}

pub fn sum_abs(be: &Wgpu, x: &WgpuTensor) -> Result<Vec<f64>> {
    member_scalars(be, x, MemberOp::SumAbs)
}

pub fn row_sq_norms(be: &Wgpu, x: &WgpuTensor) -> Result<WgpuTensor> {
    let (e, rows, n) = x.as_batched()?;
    let total = e * rows;
    let out = be.alloc(total)?;
    if total > 0 {
        let p = params(rows, n, 0, MemberOp::SumSq, 1.0, total);
        be.launch(
            "reduce",
            "row_sq_norms",
            &p,
            &[(1, x.storage().buffer()), (3, out.buffer())],
            grid(total),
            &[],
        )?;
    }
    let shape = if x.shape().len() == 3 {
        vec![e, rows]
    } else {
        vec![rows]
    };
    Ok(Tensor::from_parts(shape, out))
}

pub fn count_correct(be: &Wgpu, f: &WgpuTensor, labels: &WgpuTensor) -> Result<Vec<f64>> {
    let (e, rows, k) = f.as_batched()?;
    one_label_per_row("count_correct", labels.shape(), f.shape(), rows)?;
    let counts = be.alloc_as(e, DType::F32)?;
    let total = e * rows;
    if total > 0 && k > 0 {
        let p = params(rows, k, 0, MemberOp::Sum, 1.0, total);
        be.launch(
            "reduce",
            "count_correct",
            &p,
            &[
                (1, f.storage().buffer()),
                (2, labels.storage().buffer()),
                (4, counts.buffer()),
            ],
            grid(total),
            &[counts.buffer()],
        )?;
    } else {
        return Ok(vec![0.0; e]);
    }
    Ok(be
        .ctx
        .read_words(counts.buffer(), e)?
        .into_iter()
        .map(f64::from)
        .collect())
}
