// Pointwise kernels: fused bias + activation, the activation's backward
// product and its tangent (for Hessian-vector products), per-member scaling,
// elementwise products (with a per-member row broadcast, like the bias) and
// axpy. Twin of kernels/pointwise.cu; reference
// src/backend/cpu/pointwise.rs, with the activation definitions of
// src/nn/activation.rs (ids: 0 identity, 1 relu, 2 tanh, 3 gelu, 4 silu,
// 5 elu, 6 softplus).
//
// One thread per element. Launches wider than 65535 workgroups use a 2-D
// grid; `flat` turns the global id back into an element index.

// Element type of the tensor buffers: f32 here, f16 in the variant
// src/backend/wgpu/variant.rs makes; loads convert to f32, all arithmetic is
// f32, stores convert back with S(..).
alias S = f32;

struct Params {
    total: u32,
    n: u32,
    per_member: u32,
    bias_members: u32,
    act: u32,
    scale: f32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> in1: array<S>;
@group(0) @binding(2) var<storage, read> in2: array<S>;
@group(0) @binding(3) var<storage, read> in3: array<S>;
@group(0) @binding(4) var<storage, read> in4: array<S>;
@group(0) @binding(5) var<storage, read> in5: array<S>;
@group(0) @binding(6) var<storage, read_write> out0: array<S>;
@group(0) @binding(7) var<storage, read_write> out1: array<S>;

const FRAC_1_SQRT_2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn sigmoid(x: f32) -> f32 {
    // Split at 0 so exp never overflows, as the CPU does.
    if x >= 0.0 {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

// log(1 + t) accurate for small t (WGSL has no log1p).
fn log1p(t: f32) -> f32 {
    let u = 1.0 + t;
    if u == 1.0 {
        return t;
    }
    return log(u) * t / (u - 1.0);
}

// erfc(z) for z >= 0 with relative error below 1.2e-7 (Numerical Recipes'
// erfcc). WGSL has no erf; working from erfc keeps the normal CDF accurate
// in its small left tail, where 1 + erf(x) would cancel.
fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(-z * z + poly);
}

fn normal_cdf(x: f32) -> f32 {
    let tail = 0.5 * erfc_pos(abs(x) * FRAC_1_SQRT_2);
    return select(1.0 - tail, tail, x < 0.0);
}

fn normal_pdf(x: f32) -> f32 {
    return INV_SQRT_2PI * exp(-0.5 * x * x);
}

fn act_apply(act: u32, x: f32) -> f32 {
    switch act {
        case 1u: {
            return select(0.0, x, x > 0.0);
        }
        case 2u: {
            // Clamped so no implementation's exp-based tanh overflows;
            // tanh(10) rounds to 1 in f32 anyway.
            return tanh(clamp(x, -10.0, 10.0));
        }
        case 3u: {
            return x * normal_cdf(x);
        }
        case 4u: {
            return x * sigmoid(x);
        }
        case 5u: {
            return select(exp(x) - 1.0, x, x > 0.0);
        }
        case 6u: {
            return max(x, 0.0) + log1p(exp(-abs(x)));
        }
        default: {
            return x;
        }
    }
}

// d act / dx given x and y = act(x) (Activation::deriv_with_output).
fn act_deriv(act: u32, x: f32, y: f32) -> f32 {
    switch act {
        case 1u: {
            return select(0.0, 1.0, x > 0.0);
        }
        case 2u: {
            return 1.0 - y * y;
        }
        case 3u: {
            return normal_cdf(x) + x * normal_pdf(x);
        }
        case 4u: {
            let s = sigmoid(x);
            return s * (1.0 + x * (1.0 - s));
        }
        case 5u: {
            return select(y + 1.0, 1.0, x > 0.0);
        }
        case 6u: {
            return 1.0 - exp(-y);
        }
        default: {
            return 1.0;
        }
    }
}

// d^2 act / dx^2 given x and y (Activation::second_deriv).
fn act_second(act: u32, x: f32, y: f32) -> f32 {
    switch act {
        case 2u: {
            return -2.0 * y * (1.0 - y * y);
        }
        case 3u: {
            return normal_pdf(x) * (2.0 - x * x);
        }
        case 4u: {
            let s = sigmoid(x);
            return s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s));
        }
        case 5u: {
            return select(y + 1.0, 0.0, x > 0.0);
        }
        case 6u: {
            let s = sigmoid(x);
            return s * (1.0 - s);
        }
        default: {
            return 0.0;
        }
    }
}

// Where element i of in1 [E, rows, n] finds its entry of the row in2 holds
// per member ([E, n]), or one row for all (bias_members 1).
fn member_row(i: u32) -> u32 {
    let member = select(i / p.per_member, 0u, p.bias_members == 1u);
    return member * p.n + i % p.n;
}

fn biased(i: u32) -> f32 {
    return f32(in1[i]) + p.scale * f32(in2[member_row(i)]);
}

// pre = z + scale * bias (out0), post = act(pre) (out1).
@compute @workgroup_size(256)
fn bias_act(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    let pre = biased(i);
    out0[i] = S(pre);
    out1[i] = S(act_apply(p.act, pre));
}

// pre = z + scale * bias (out0), for the identity activation.
@compute @workgroup_size(256)
fn add_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    out0[i] = S(biased(i));
}

// post = act(pre) (out1), for layers without a bias.
@compute @workgroup_size(256)
fn activate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    out1[i] = S(act_apply(p.act, f32(in1[i])));
}

// g_post * act'(pre): in1 pre, in2 post, in3 g_post.
@compute @workgroup_size(256)
fn act_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    out0[i] = S(f32(in3[i]) * act_deriv(p.act, f32(in1[i]), f32(in2[i])));
}

// g_post_dot * act'(pre) + g_post * act''(pre) * pre_dot: in1 pre, in2 post,
// in3 g_post, in4 g_post_dot, in5 pre_dot.
@compute @workgroup_size(256)
fn act_backward_tangent(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    let x = f32(in1[i]);
    let y = f32(in2[i]);
    out0[i] = S(f32(in4[i]) * act_deriv(p.act, x, y) + f32(in3[i]) * act_second(p.act, x, y) * f32(in5[i]));
}

// out0 = in1 * in2[member].
@compute @workgroup_size(256)
fn scale_members(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    out0[i] = S(f32(in1[i]) * f32(in2[i / p.per_member]));
}

// out0 = in1 * in2, in2 one row per member broadcast over in1's rows
// (member_row); an in2 of in1's shape is one row of length total.
@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    out0[i] = S(f32(in1[i]) * f32(in2[member_row(i)]));
}

// out0 += scale * in1, in place.
@compute @workgroup_size(256)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    out0[i] = S(f32(out0[i]) + p.scale * f32(in1[i]));
}
