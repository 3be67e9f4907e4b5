// Reductions: sums over batch rows (bias gradients), per-member inner
// products and norms, per-row squared norms (per-sample gradient norms,
// DESIGN.md 5) and argmax accuracy counts. Twin of kernels/reduce.cu;
// reference src/backend/cpu/reduce.rs. Sums accumulate in f32 in a fixed
// order per launch shape, so results are deterministic.

struct Params {
    rows: u32,
    n: u32,
    per: u32,
    op: u32,
    alpha: f32,
    total: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(3) var<storage, read_write> out0: array<f32>;
@group(0) @binding(4) var<storage, read_write> counts: array<atomic<u32>>;

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
        s += in1[base + r * p.n];
    }
    out0[i] = p.alpha * s;
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
        let v = in1[i * p.n + j];
        s = fma(v, v, s);
    }
    out0[i] = s;
}

var<workgroup> partial: array<f32, 256>;

// One workgroup per ensemble member (workgroup id x) reduces that member's
// `per` elements: op 0 sum in1 * in2, 1 sum in1^2, 2 sum |in1|, 3 sum in1;
// out0[member] = alpha * sum.
@compute @workgroup_size(256)
fn member_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let base = wg.x * p.per;
    var s = 0.0;
    for (var i = li; i < p.per; i += 256u) {
        let v = in1[base + i];
        switch p.op {
            case 0u: {
                s = fma(v, in2[base + i], s);
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
    for (var half = 128u; half > 0u; half >>= 1u) {
        if li < half {
            partial[li] += partial[li + half];
        }
        workgroupBarrier();
    }
    if li == 0u {
        out0[wg.x] = p.alpha * partial[0];
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
        if in1[base + j] > in1[base + best] {
            best = j;
        }
    }
    if f32(best) == in2[i % p.rows] {
        atomicAdd(&counts[i / p.rows], 1u);
    }
}
