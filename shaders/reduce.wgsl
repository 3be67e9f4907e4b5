// Reductions: sums over batch rows (bias gradients), per-member inner
// products and norms, per-row squared norms (per-sample gradient norms,
// DESIGN.md 5) and argmax accuracy counts. Twin of kernels/reduce.cu;
// reference src/backend/cpu/reduce.rs. Sums accumulate in f32 in a fixed
// order per launch shape, so results are deterministic.

// Element type of the tensor buffers: f32 here, f16 in the variant
// src/backend/wgpu/variant.rs makes; loads convert to f32, sums accumulate
// in f32, stores convert back with S(..). Per-member scalars read back to the
// host go to `host`, which is f32 in both, so a logged norm does not
// overflow f16.
alias S = f32;

struct Params {
    rows: u32,
    n: u32,
    per: u32,
    op: u32,
    alpha: f32,
    total: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> in1: array<S>;
@group(0) @binding(2) var<storage, read> in2: array<S>;
@group(0) @binding(3) var<storage, read_write> out0: array<S>;
@group(0) @binding(4) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> host: array<f32>;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// out0[m, j] = alpha * sum_r in1[m, r, j]; one thread per output, so
// neighbouring threads read neighbouring columns.
@compute @workgroup_size(256)
fn sum_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    let m = i / p.n;
    let j = i % p.n;
    var s = 0.0;
    let base = m * p.rows * p.n + j;
    for (var r = 0u; r < p.rows; r++) {
        s += f32(in1[base + r * p.n]);
    }
    out0[i] = S(p.alpha * s);
}

// out0[row] = sum_j in1[row, j]^2.
@compute @workgroup_size(256)
fn row_sq_norms(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    var s = 0.0;
    for (var j = 0u; j < p.n; j++) {
        let v = f32(in1[i * p.n + j]);
        s = fma(v, v, s);
    }
    out0[i] = S(s);
}

var<workgroup> partial: array<f32, 256>;

// One workgroup per ensemble member (workgroup id x) reduces that member's
// `per` elements: op 0 sum in1 * in2, 1 sum in1^2, 2 sum |in1|, 3 sum in1;
// returns alpha * sum to every thread of the workgroup.
fn reduce_member(member: u32, li: u32) -> f32 {
    let base = member * p.per;
    var s = 0.0;
    for (var i = li; i < p.per; i += 256u) {
        let v = f32(in1[base + i]);
        switch p.op {
            case 0u: {
                s = fma(v, f32(in2[base + i]), s);
            }
            case 1u: {
                s = fma(v, v, s);
            }
            case 2u: {
                s += abs(v);
            }
            default: {
                s += v;
            }
        }
    }
    partial[li] = s;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width >>= 1u) {
        if li < width {
            partial[li] += partial[li + width];
        }
        workgroupBarrier();
    }
    return p.alpha * partial[0];
}

// out0[member]: a per-member tensor (dot_members, the loss means).
@compute @workgroup_size(256)
fn member_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let s = reduce_member(wg.x, li);
    if li == 0u {
        out0[wg.x] = S(s);
    }
}

// host[member]: per-member scalars read back to the host, in f32.
@compute @workgroup_size(256)
fn member_reduce_host(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let s = reduce_member(wg.x, li);
    if li == 0u {
        host[wg.x] = s;
    }
}

// counts[member] += 1 for each row of in1 [E, rows, n] whose first argmax is
// the label in2[row]. `counts` is cleared before the launch.
@compute @workgroup_size(256)
fn count_correct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p.total {
        return;
    }
    let base = i * p.n;
    var best = 0u;
    for (var j = 1u; j < p.n; j++) {
        if f32(in1[base + j]) > f32(in1[base + best]) {
            best = j;
        }
    }
    if f32(best) == f32(in2[i % p.rows]) {
        atomicAdd(&counts[i / p.rows], 1u);
    }
}
