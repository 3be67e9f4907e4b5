// Fused optimizer updates, in place, one thread per parameter: PyTorch's
// SGD (momentum without dampening, optional Nesterov, coupled weight
// decay), Adam (coupled decay) and AdamW (decoupled). Twin of
// kernels/optim.cu; reference src/backend/cpu/optim.rs. Learning rates come
// per ensemble member in `lr` (length 1 applies to all).

// Element type of parameters and gradients: f32 here, f16 in the variant
// src/backend/wgpu/variant.rs makes. Optimizer state (buf1, buf2) and the
// learning rates stay f32 in both: Adam's second moment, g^2, underflows
// f16 for |g| < 2.4e-4, and a zero v turns the step into lr * m / eps.
alias S = f32;

struct Params {
    total: u32,
    per: u32,
    lr_len: u32,
    nesterov: u32,
    decoupled: u32,
    momentum: f32,
    wd: f32,
    beta1: f32,
    beta2: f32,
    bc1: f32,
    bc2_sqrt: f32,
    eps: f32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<S>;
@group(0) @binding(2) var<storage, read> lr: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<S>;
@group(0) @binding(4) var<storage, read_write> buf1: array<f32>;
@group(0) @binding(5) var<storage, read_write> buf2: array<f32>;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn lr_of(i: u32) -> f32 {
    return lr[select(i / p.per, 0u, p.lr_len == 1u)];
}

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    let w = f32(param[i]);
    param[i] = S(w - lr_of(i) * (f32(grad[i]) + p.wd * w));
}

// buf1 is the momentum buffer.
@compute @workgroup_size(256)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    let w = f32(param[i]);
    let g = f32(grad[i]) + p.wd * w;
    let b = p.momentum * buf1[i] + g;
    buf1[i] = b;
    let d = select(b, g + p.momentum * b, p.nesterov != 0u);
    param[i] = S(w - lr_of(i) * d);
}

// buf1 and buf2 are the first and second moments.
@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    let rate = lr_of(i);
    var w = f32(param[i]);
    var g = f32(grad[i]);
    if p.decoupled != 0u {
        w = w * (1.0 - rate * p.wd);
    } else {
        g = g + p.wd * w;
    }
    let m = p.beta1 * buf1[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * buf2[i] + (1.0 - p.beta2) * g * g;
    buf1[i] = m;
    buf2[i] = v;
    // PyTorch's form: lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
    param[i] = S(w - rate / p.bc1 * m / (sqrt(v) / p.bc2_sqrt + p.eps));
}
