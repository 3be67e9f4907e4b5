//! Launches `shaders/pointwise.wgsl`: fused bias + activation, the
//! activation's backward product and its tangent, per-member scaling,
//! elementwise products and axpy. Shape checks mirror the CPU reference's.

use super::context::grid;
use super::{bits, Wgpu, WgpuTensor};
use crate::backend::shapes::{mul_operands, same_shapes};
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::tensor::Tensor;

/// The activation's id in the shader's `switch`.
fn act_id(act: Activation) -> u32 {
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

/// The shader's `Params`: total, n, per_member, bias_members, act, scale.
fn params(
    total: usize,
    n: usize,
    per: usize,
    members: usize,
    act: Activation,
    scale: f64,
) -> [u32; 6] {
    [
        total as u32,
        n.max(1) as u32,
        per.max(1) as u32,
        members as u32,
        act_id(act),
        bits(scale),
    ]
}

pub fn bias_act(
    be: &Wgpu,
    z: &WgpuTensor,
    bias: Option<&WgpuTensor>,
    bias_scale: f64,
    act: Activation,
) -> Result<(WgpuTensor, WgpuTensor)> {
    let (e, rows, n) = z.as_batched()?;
    let total = z.numel();
    let shape = z.shape().to_vec();
    let zb = z.storage().buffer();
    let Some(b) = bias else {
        if act == Activation::Identity || total == 0 {
            return Ok((z.clone(), z.clone()));
        }
        let post = be.alloc(total)?;
        let p = params(total, n, rows * n, 1, act, 0.0);
        be.launch(
            "pointwise",
            "activate",
            &p,
            &[(1, zb), (7, post.buffer())],
            grid(total),
            &[],
        )?;
        return Ok((z.clone(), Tensor::from_parts(shape, post)));
    };
    let (be_, br, bn) = b.as_batched()?;
    // A bias is [E, n] or [n]; as_batched reads [E, n] as one batch of E rows.
    let members = be_ * br;
    if bn != n || (members != e && members != 1) {
        return Err(Error::shape(format!(
            "bias {:?} does not fit activations {:?}",
            b.shape(),
            z.shape()
        )));
    }
    let pre = be.alloc(total)?;
    if total == 0 {
        let pre = Tensor::from_parts(shape, pre);
        return Ok((pre.clone(), pre));
    }
    let p = params(total, n, rows * n, members, act, bias_scale);
    let bb = b.storage().buffer();
    if act == Activation::Identity {
        be.launch(
            "pointwise",
            "add_bias",
            &p,
            &[(1, zb), (2, bb), (6, pre.buffer())],
            grid(total),
            &[],
        )?;
        let pre = Tensor::from_parts(shape, pre);
        return Ok((pre.clone(), pre));
    }
    let post = be.alloc(total)?;
    be.launch(
        "pointwise",
        "bias_act",
        &p,
        &[(1, zb), (2, bb), (6, pre.buffer()), (7, post.buffer())],
        grid(total),
        &[],
    )?;
    Ok((
        Tensor::from_parts(shape.clone(), pre),
        Tensor::from_parts(shape, post),
    ))
}

pub fn act_backward(
    be: &Wgpu,
    pre: &WgpuTensor,
    post: &WgpuTensor,
    g_post: &WgpuTensor,
    act: Activation,
) -> Result<WgpuTensor> {
    same_shapes("act_backward", &[pre.shape(), post.shape(), g_post.shape()])?;
    let total = pre.numel();
    if act == Activation::Identity || total == 0 {
        return Ok(g_post.clone());
    }
    let out = be.alloc(total)?;
    let p = params(total, 1, 1, 1, act, 0.0);
    be.launch(
        "pointwise",
        "act_backward",
        &p,
        &[
            (1, pre.storage().buffer()),
            (2, post.storage().buffer()),
            (3, g_post.storage().buffer()),
            (6, out.buffer()),
        ],
        grid(total),
        &[],
    )?;
    Ok(Tensor::from_parts(pre.shape().to_vec(), out))
}

pub fn act_backward_tangent(
    be: &Wgpu,
    pre: &WgpuTensor,
    post: &WgpuTensor,
    g_post: &WgpuTensor,
    g_post_dot: &WgpuTensor,
    pre_dot: &WgpuTensor,
    act: Activation,
) -> Result<WgpuTensor> {
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
    let total = pre.numel();
    if act == Activation::Identity || total == 0 {
        return Ok(g_post_dot.clone());
    }
    let out = be.alloc(total)?;
    let p = params(total, 1, 1, 1, act, 0.0);
    be.launch(
        "pointwise",
        "act_backward_tangent",
        &p,
        &[
            (1, pre.storage().buffer()),
            (2, post.storage().buffer()),
            (3, g_post.storage().buffer()),
            (4, g_post_dot.storage().buffer()),
            (5, pre_dot.storage().buffer()),
            (6, out.buffer()),
        ],
        grid(total),
        &[],
    )?;
    Ok(Tensor::from_parts(shape.to_vec(), out))
}

pub fn scale_members(be: &Wgpu, x: &WgpuTensor, s: &WgpuTensor) -> Result<WgpuTensor> {
    let e = s.numel();
    let total = x.numel();
    if e == 0 || x.shape().first() != Some(&e) {
        return Err(Error::shape(format!(
            "scale_members: {:?} by {:?}",
            x.shape(),
            s.shape()
        )));
    }
    let out = be.alloc(total)?;
    if total > 0 {
        let p = params(total, 1, total / e, 1, Activation::Identity, 0.0);
        be.launch(
            "pointwise",
            "scale_members",
            &p,
            &[
                (1, x.storage().buffer()),
                (2, s.storage().buffer()),
                (6, out.buffer()),
            ],
            grid(total),
            &[],
        )?;
    }
    Ok(Tensor::from_parts(x.shape().to_vec(), out))
}

pub fn axpy(be: &Wgpu, y: &mut WgpuTensor, alpha: f64, x: &WgpuTensor) -> Result<()> {
    same_shapes("axpy", &[y.shape(), x.shape()])?;
    let total = y.numel();
    if total == 0 {
        return Ok(());
    }
    be.make_unique(y)?;
    let p = params(total, 1, 1, 1, Activation::Identity, alpha);
    be.launch(
        "pointwise",
        "axpy",
        &p,
        &[(1, x.storage().buffer()), (6, y.storage().buffer())],
        grid(total),
        &[],
    )
}

pub fn mul(be: &Wgpu, a: &WgpuTensor, b: &WgpuTensor) -> Result<WgpuTensor> {
    let (broadcast, b_rows) = mul_operands(a.shape(), b.shape())?;
    // Refuses a rank past 3 that mul_operands passes as equal shapes, as
    // the CPU reference does.
    let (_, rows, c) = a.as_batched()?;
    let total = a.numel();
    let out = be.alloc(total)?;
    if total > 0 {
        // Same shapes: b is one "row" as long as a (member_row in the shader).
        let (n, members) = if broadcast { (c, b_rows) } else { (total, 1) };
        let p = params(total, n, rows * c, members, Activation::Identity, 0.0);
        be.launch(
            "pointwise",
            "mul",
            &p,
            &[
                (1, a.storage().buffer()),
                (2, b.storage().buffer()),
                (6, out.buffer()),
            ],
            grid(total),
            &[],
        )?;
    }
    Ok(Tensor::from_parts(a.shape().to_vec(), out))
}
