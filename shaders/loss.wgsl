// Loss heads: softmax cross-entropy (stable log-sum-exp) and the two
// squared-error conventions, fused with their gradient, and the loss
// Hessian applied to an output tangent. Twin of kernels/loss.cu; reference
// src/backend/cpu/loss.rs. One thread per output row; the per-member mean of
// the row losses is reduce.wgsl's member_reduce.
//
// kind: 0 cross-entropy (labels in `targets`, one per row of a member),
// 1 Mse (0.5 * sum of squares), 2 MseMean (mean of squares).

// Element type of the tensor buffers: f32 here, f16 in the variant
// src/backend/wgpu/variant.rs makes; loads convert to f32, all arithmetic is
// f32, stores convert back with S(..).
alias S = f32;

struct Params {
    rows: u32,
    k: u32,
    kind: u32,
    shared_target: u32,
    total_rows: u32,
    inv_b: f32,
    lscale: f32,
    gscale: f32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> f: array<S>;
@group(0) @binding(2) var<storage, read> targets: array<S>;
@group(0) @binding(3) var<storage, read> f_dot: array<S>;
@group(0) @binding(4) var<storage, read_write> grad: array<S>;
@group(0) @binding(5) var<storage, read_write> row_loss: array<S>;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn row_max(base: u32) -> f32 {
    var mx = f32(f[base]);
    for (var j = 1u; j < p.k; j++) {
        mx = max(mx, f32(f[base + j]));
    }
    return mx;
}

// A label outside [0, k) is clamped rather than read out of bounds; the CPU
// reference rejects it, and checking here would cost a host round trip.
fn label_of(r: u32) -> u32 {
    return min(u32(max(f32(targets[r % p.rows]), 0.0)), p.k - 1u);
}

fn target_base(r: u32) -> u32 {
    return select(r * p.k, (r % p.rows) * p.k, p.shared_target != 0u);
}

// row_loss[r] and grad[r, :] = d(mean loss)/df for row r.
@compute @workgroup_size(256)
fn loss_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat(gid, nwg);
    if r >= p.total_rows {
        return;
    }
    let base = r * p.k;
    if p.kind == 0u {
        let label = label_of(r);
        let mx = row_max(base);
        var s = 0.0;
        for (var j = 0u; j < p.k; j++) {
            s += exp(f32(f[base + j]) - mx);
        }
        for (var j = 0u; j < p.k; j++) {
            let pj = exp(f32(f[base + j]) - mx) / s;
            grad[base + j] = S((pj - select(0.0, 1.0, j == label)) * p.inv_b);
        }
        row_loss[r] = S(mx + log(s) - f32(f[base + label]));
    } else {
        let t = target_base(r);
        var s = 0.0;
        for (var j = 0u; j < p.k; j++) {
            let d = f32(f[base + j]) - f32(targets[t + j]);
            grad[base + j] = S(d * p.gscale);
            s = fma(d, d, s);
        }
        row_loss[r] = S(p.lscale * s);
    }
}

// grad (used as the output) = H f_dot: for cross-entropy
// p * (f_dot - <p, f_dot>) / B row by row, for the squared losses
// gscale * f_dot.
@compute @workgroup_size(256)
fn loss_hvp(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat(gid, nwg);
    if r >= p.total_rows {
        return;
    }
    let base = r * p.k;
    if p.kind == 0u {
        let mx = row_max(base);
        var s = 0.0;
        var pd = 0.0;
        for (var j = 0u; j < p.k; j++) {
            let e = exp(f32(f[base + j]) - mx);
            s += e;
            pd = fma(e, f32(f_dot[base + j]), pd);
        }
        pd = pd / s;
        for (var j = 0u; j < p.k; j++) {
            let pj = exp(f32(f[base + j]) - mx) / s;
            grad[base + j] = S(pj * (f32(f_dot[base + j]) - pd) * p.inv_b);
        }
    } else {
        for (var j = 0u; j < p.k; j++) {
            grad[base + j] = S(f32(f_dot[base + j]) * p.gscale);
        }
    }
}
