//! Operand shape checks shared by every backend, so the CPU reference, CUDA
//! and wgpu accept exactly the same shapes and refuse the rest with the same
//! messages. Each returns the sizes the kernels need.

use crate::backend::{AdamHyper, SgdHyper};
use crate::error::{Error, Result};

/// The sizes of `op(a) @ op(b)` batched over the ensemble: `e` products of
/// `[m, k] x [k, n]`, where `ea`/`eb` (1 or `e`) are the operands' batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    pub e: usize,
    pub ea: usize,
    pub eb: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// `[e, m, n]` when either operand has an ensemble dimension, else `[m, n]`.
    pub out_shape: Vec<usize>,
}

/// `(batch, rows, cols)` of a rank 1 to 3 shape (see `Tensor::as_batched`).
fn batched(shape: &[usize]) -> Result<(usize, usize, usize)> {
    match *shape {
        [c] => Ok((1, 1, c)),
        [r, c] => Ok((1, r, c)),
        [e, r, c] => Ok((e, r, c)),
        _ => Err(Error::shape(format!(
            "expected a tensor of rank 1 to 3, got shape {shape:?}"
        ))),
    }
}

pub fn matmul_dims(a: &[usize], ta: bool, b: &[usize], tb: bool) -> Result<MatmulDims> {
    let (ea, ar, ac) = batched(a)?;
    let (eb, br, bc) = batched(b)?;
    let (m, ka) = if ta { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if tb { (bc, br) } else { (br, bc) };
    if ka != kb {
        return Err(Error::shape(format!(
            "matmul of {a:?}{} and {b:?}{}: inner dimensions {ka} and {kb} differ",
            if ta { "^T" } else { "" },
            if tb { "^T" } else { "" },
        )));
    }
    if ea != eb && ea != 1 && eb != 1 {
        return Err(Error::shape(format!(
            "matmul ensemble sizes {ea} and {eb} differ",
        )));
    }
    let e = ea.max(eb);
    let out_shape = if a.len() == 3 || b.len() == 3 {
        vec![e, m, n]
    } else {
        vec![m, n]
    };
    Ok(MatmulDims {
        e,
        ea,
        eb,
        m,
        n,
        k: ka,
        out_shape,
    })
}

/// Every operand of the elementwise op `op` has the first one's shape.
pub fn same_shapes(op: &str, shapes: &[&[usize]]) -> Result<()> {
    if shapes.windows(2).all(|w| w[0] == w[1]) {
        return Ok(());
    }
    let listed: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
    Err(Error::shape(format!(
        "{op}: operands of shapes {}",
        listed.join(", ")
    )))
}

/// Checks an SGD update's operands (the momentum buffer is unused, and may be
/// empty, without momentum) and returns how many learning rates there are.
pub fn sgd_members(param: &[usize], grad: &[usize], buf: &[usize], hp: &SgdHyper) -> Result<usize> {
    if hp.momentum != 0.0 {
        optimizer_members("sgd", param, &[grad, buf], hp.lr)
    } else {
        optimizer_members("sgd", param, &[grad], hp.lr)
    }
}

/// Checks an Adam update's operands and step count (1 on the first update)
/// and returns how many learning rates there are.
pub fn adam_members(
    param: &[usize],
    grad: &[usize],
    m: &[usize],
    v: &[usize],
    hp: &AdamHyper,
) -> Result<usize> {
    let e = optimizer_members("adam", param, &[grad, m, v], hp.lr)?;
    if hp.step == 0 {
        return Err(Error::msg("adam: step counts from 1"));
    }
    Ok(e)
}

/// Checks an optimizer update's operands (the state buffers have the
/// parameter's shape; one learning rate, or one per ensemble member) and
/// returns how many learning rates there are.
fn optimizer_members(name: &str, param: &[usize], state: &[&[usize]], lr: &[f64]) -> Result<usize> {
    for s in state {
        if *s != param {
            return Err(Error::shape(format!(
                "{name}: parameter {param:?} vs state {s:?}"
            )));
        }
    }
    let e = if lr.len() == 1 {
        1
    } else {
        param.first().copied().unwrap_or(1)
    };
    if lr.len() != e || lr.is_empty() {
        return Err(Error::shape(format!(
            "{name}: {} learning rates for parameter {param:?}",
            lr.len()
        )));
    }
    Ok(e)
}

/// Whether a squared loss's targets (`target`, for outputs `f` of `e`
/// members with `rows x k` values each) are shared by every member (`[B, K]`)
/// rather than given per member (`[E, B, K]`); any other size is an error.
pub fn squared_loss_targets_shared(
    target: &[usize],
    f: &[usize],
    e: usize,
    rows: usize,
    k: usize,
) -> Result<bool> {
    let numel: usize = target.iter().product();
    let per_member = rows * k;
    if numel == per_member {
        Ok(true)
    } else if numel == e * per_member {
        Ok(false)
    } else {
        Err(Error::shape(format!(
            "squared loss: targets {target:?} do not match outputs {f:?}"
        )))
    }
}

/// `labels` holds one class label per row (example) of the outputs `f`, whose
/// rows per member are `rows`; `op` names the operation in the error.
pub fn one_label_per_row(op: &str, labels: &[usize], f: &[usize], rows: usize) -> Result<()> {
    let n: usize = labels.iter().product();
    if n == rows {
        return Ok(());
    }
    Err(Error::shape(format!(
        "{op} needs one label per example: {n} labels for outputs {f:?}"
    )))
}

/// A loss Hessian-vector product's tangent `f_dot` has the outputs' shape.
pub fn loss_tangent(f: &[usize], f_dot: &[usize]) -> Result<()> {
    if f == f_dot {
        return Ok(());
    }
    Err(Error::shape(format!(
        "loss_hvp: tangent {f_dot:?} for outputs {f:?}"
    )))
}

/// `(batch, rows, cols)` of a row-wise op's input (rank 1 to 3).
pub fn rows_of(op: &str, x: &[usize]) -> Result<(usize, usize, usize)> {
    batched(x).map_err(|_| Error::shape(format!("{op}: expected rank 1 to 3, got {x:?}")))
}

/// A softmax's rows `(batch, rows, cols)`: rows of at least one entry and,
/// with `causal`, whole C x C score matrices per member (the mask keeps
/// columns 0..=(r mod C) of row r, which is the query's position only then).
pub fn softmax_input(x: &[usize], causal: bool) -> Result<(usize, usize, usize)> {
    let (m, r, c) = rows_of("softmax_rows", x)?;
    if c == 0 {
        return Err(Error::shape(format!(
            "softmax_rows: rows of {x:?} are empty"
        )));
    }
    if causal && r % c != 0 {
        return Err(Error::shape(format!(
            "softmax_rows: a causal softmax takes whole {c} x {c} score matrices, but {x:?} has {r} rows per member"
        )));
    }
    Ok((m, r, c))
}

/// `x` with its last dimension replaced by `k` (rank kept, at least 2).
pub fn with_last(x: &[usize], k: usize) -> Vec<usize> {
    let mut s = if x.len() < 2 { vec![1, k] } else { x.to_vec() };
    *s.last_mut().unwrap() = k;
    s
}

/// A per-row index operand (`[M, R, 1]`) for rows of `x`; returns `x`'s
/// `(batch, rows, cols)`.
pub fn row_index(op: &str, x: &[usize], arg: &[usize]) -> Result<(usize, usize, usize)> {
    let (m, r, k) = rows_of(op, x)?;
    if arg.iter().product::<usize>() != m * r {
        return Err(Error::shape(format!(
            "{op}: index {arg:?} for rows of {x:?}"
        )));
    }
    Ok((m, r, k))
}

/// Whether `mul`'s `b` is a row per member broadcast over `a`'s rows (else
/// it has `a`'s shape); returns that and how many rows `b` holds.
pub fn mul_operands(a: &[usize], b: &[usize]) -> Result<(bool, usize)> {
    if a == b {
        return Ok((false, 0));
    }
    let (m, _, c) = rows_of("mul", a)?;
    let (bm, br, bc) = rows_of("mul", b)?;
    let rows = bm * br;
    if b.len() <= 2 && bc == c && (rows == m || rows == 1) {
        return Ok((true, rows));
    }
    Err(Error::shape(format!(
        "mul: operands of shapes {a:?} and {b:?}"
    )))
}

/// The operands of a row normalization's Jacobian products: each of
/// `others` has `y`'s shape and `s` holds one scale per row. Returns the
/// rows and the row length.
pub fn norm_operands(
    op: &str,
    y: &[usize],
    s: &[usize],
    others: &[&[usize]],
) -> Result<(usize, usize)> {
    let (m, r, c) = rows_of(op, y)?;
    for o in others {
        if *o != y {
            return Err(Error::shape(format!("{op}: operand {o:?} for rows {y:?}")));
        }
    }
    if s.iter().product::<usize>() != m * r {
        return Err(Error::shape(format!("{op}: scales {s:?} for rows {y:?}")));
    }
    Ok((m * r, c))
}

/// The shape `row_place` gives values `g` placed in rows of `k`: `g`'s
/// shape with its last dimension (1, one value per row) replaced by `k`,
/// or with `k` appended when each entry of `g` is a row.
pub fn place_shape(g: &[usize], k: usize) -> Vec<usize> {
    match g.last() {
        Some(1) if g.len() >= 2 => with_last(g, k),
        _ => {
            let mut s = g.to_vec();
            s.push(k);
            s
        }
    }
}

/// A row normalization's input (`[M, R, C]`, rank 1 to 3, C at least 1);
/// returns its `(batch, rows, cols)`.
pub fn norm_input(x: &[usize]) -> Result<(usize, usize, usize)> {
    let (m, r, c) = rows_of("norm_rows", x)?;
    if c == 0 {
        return Err(Error::shape(format!("norm_rows: rows of {x:?} are empty")));
    }
    Ok((m, r, c))
}
