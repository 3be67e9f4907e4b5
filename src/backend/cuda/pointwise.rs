//! Launches the elementwise kernels of `kernels/pointwise.cu`. Shape checks
//! and the identity shortcuts mirror `src/backend/cpu/pointwise.rs`.

use super::{grid_1d, launch, to_i32, Cuda, CudaTensor};
use crate::backend::shapes::{mul_operands, same_shapes};
use crate::error::{Error, Result};
use crate::nn::activation::Activation;

/// The kernels' activation codes (`ACT_*` in kernels/common.cuh).
pub(super) fn act_code(act: Activation) -> i32 {
    match act {
        Activation::Identity => 0,
        Activation::Relu => 1,
        Activation::Tanh => 2,
        Activation::Gelu => 3,
        Activation::Silu => 4,
        Activation::Elu => 5,
        Activation::Softplus => 6,
    }
}

pub(super) fn bias_act(
    be: &Cuda,
    z: &CudaTensor,
    bias: Option<&CudaTensor>,
    bias_scale: f64,
    act: Activation,
) -> Result<(CudaTensor, CudaTensor)> {
    let (e, rows, n) = z.as_batched()?;
    let total = z.numel();
    let zbuf = be.buf(z)?;
    let code = act_code(act);
    let Some(b) = bias else {
        if act == Activation::Identity {
            return Ok((z.clone(), z.clone()));
        }
        let mut post = be.alloc(total)?;
        if total > 0 {
            let t = total as i64;
            launch!(
                be,
                "pointwise",
                "act_forward",
                grid_1d(total),
                zbuf,
                &mut post,
                &t,
                &code
            )?;
        }
        return Ok((z.clone(), be.wrap(z.shape().to_vec(), post)));
    };
    let (bm, br, bn) = b.as_batched()?;
    // A bias is [E, n] or [n]; as_batched reads [E, n] as one batch of E rows.
    let members = bm * br;
    if bn != n || (members != e && members != 1) {
        return Err(Error::shape(format!(
            "bias {:?} does not fit activations {:?}",
            b.shape(),
            z.shape()
        )));
    }
    let bbuf = be.buf(b)?;
    let mut pre = be.alloc(total)?;
    let mut post = be.alloc(total)?;
    if total > 0 {
        let t = total as i64;
        let (ni, ri, mi) = (
            to_i32(n, "n")?,
            to_i32(rows, "rows")?,
            to_i32(members, "E")?,
        );
        let has_bias = 1i32;
        let scale = bias_scale as f32;
        launch!(
            be,
            "pointwise",
            "bias_act",
            grid_1d(total),
            zbuf,
            bbuf,
            &mut pre,
            &mut post,
            &t,
            &ni,
            &ri,
            &mi,
            &has_bias,
            &scale,
            &code
        )?;
    }
    let pre = be.wrap(z.shape().to_vec(), pre);
    if act == Activation::Identity {
        return Ok((pre.clone(), pre));
    }
    Ok((pre, be.wrap(z.shape().to_vec(), post)))
}

pub(super) fn act_backward(
    be: &Cuda,
    pre: &CudaTensor,
    post: &CudaTensor,
    g_post: &CudaTensor,
    act: Activation,
) -> Result<CudaTensor> {
    same_shapes("act_backward", &[pre.shape(), post.shape(), g_post.shape()])?;
    if act == Activation::Identity {
        return Ok(g_post.clone());
    }
    let total = pre.numel();
    let mut out = be.alloc(total)?;
    if total > 0 {
        let (t, code) = (total as i64, act_code(act));
        let (x, y, g) = (be.buf(pre)?, be.buf(post)?, be.buf(g_post)?);
        launch!(
            be,
            "pointwise",
            "act_backward",
            grid_1d(total),
            x,
            y,
            g,
            &mut out,
            &t,
            &code
        )?;
    }
    Ok(be.wrap(pre.shape().to_vec(), out))
}

pub(super) fn act_backward_tangent(
    be: &Cuda,
    pre: &CudaTensor,
    post: &CudaTensor,
    g_post: &CudaTensor,
    g_post_dot: &CudaTensor,
    pre_dot: &CudaTensor,
    act: Activation,
) -> Result<CudaTensor> {
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
    if act == Activation::Identity {
        return Ok(g_post_dot.clone());
    }
    let total = pre.numel();
    let mut out = be.alloc(total)?;
    if total > 0 {
        let (t, code) = (total as i64, act_code(act));
        let (x, y, g) = (be.buf(pre)?, be.buf(post)?, be.buf(g_post)?);
        let (gd, xd) = (be.buf(g_post_dot)?, be.buf(pre_dot)?);
        launch!(
            be,
            "pointwise",
            "act_backward_tangent",
            grid_1d(total),
            x,
            y,
            g,
            gd,
            xd,
            &mut out,
            &t,
            &code
        )?;
    }
    Ok(be.wrap(shape.to_vec(), out))
}

pub(super) fn scale_members(be: &Cuda, x: &CudaTensor, s: &CudaTensor) -> Result<CudaTensor> {
    let e = s.numel();
    let total = x.numel();
    if e == 0 || x.shape().first() != Some(&e) {
        return Err(Error::shape(format!(
            "scale_members: {:?} by {:?}",
            x.shape(),
            s.shape()
        )));
    }
    let per = total / e;
    let mut out = be.alloc(total)?;
    if total > 0 {
        let (t, p) = (total as i64, per as i64);
        let (xb, sb) = (be.buf(x)?, be.buf(s)?);
        launch!(
            be,
            "pointwise",
            "scale_members",
            grid_1d(total),
            xb,
            sb,
            &mut out,
            &t,
            &p
        )?;
    }
    Ok(be.wrap(x.shape().to_vec(), out))
}

pub(super) fn axpy(be: &Cuda, y: &mut CudaTensor, alpha: f64, x: &CudaTensor) -> Result<()> {
    same_shapes("axpy", &[y.shape(), x.shape()])?;
    let total = y.numel();
    if total == 0 {
        return Ok(());
    }
    let (t, a) = (total as i64, alpha as f32);
    let xb = be.buf(x)?;
    let yb = be.buf_mut(y)?;
    launch!(be, "pointwise", "axpy", grid_1d(total), yb, xb, &a, &t)
}

pub(super) fn mul(be: &Cuda, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
    let (broadcast, b_rows) = mul_operands(a.shape(), b.shape())?;
    let (_, rows, n) = a.as_batched()?;
    let total = a.numel();
    let mut out = be.alloc(total)?;
    if total > 0 {
        let t = total as i64;
        let (ni, ri) = (to_i32(n, "n")?, to_i32(rows, "rows")?);
        let (bm, bc) = (to_i32(b_rows, "rows of b")?, broadcast as i32);
        let (ab, bb) = (be.buf(a)?, be.buf(b)?);
        launch!(
            be,
            "pointwise",
            "mul",
            grid_1d(total),
            ab,
            bb,
            &mut out,
            &t,
            &ni,
            &ri,
            &bm,
            &bc
        )?;
    }
    Ok(be.wrap(a.shape().to_vec(), out))
}
