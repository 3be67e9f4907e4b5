// Row softmax (attention's probabilities over keys, optionally causal) and
// its two derivative products. Twin of kernels/softmax.cu; reference
// src/backend/cpu/softmax.rs. With `causal` the rows are stacked C x C
// score matrices and row r keeps columns 0..=(r mod C); the rest are
// exactly 0. The Jacobian diag(y) - y y^T is symmetric, so one product
// serves the vjp and the jvp; softmax_rows_second is the derivative of J g
// along an input tangent. Masked entries have y = 0, so the products need
// no mask.
//
// One 256-thread workgroup per row, as in norm.wgsl: each thread takes
// every 256th entry and the row's max and sums are tree reductions in
// workgroup memory, in a fixed order, so results are deterministic. Past
// 65535 rows the grid folds into two dimensions; `row_of` unfolds it (the
// causal mask depends on the unfolded row).

// Element type of the tensor buffers: f32 here, f16 in the variant
// src/backend/wgpu/variant.rs makes; loads convert to f32, sums accumulate
// in f32, stores convert back with S(..).
alias S = f32;

struct Params {
    rows: u32,
    c: u32,
    causal: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> y_in: array<S>;
@group(0) @binding(2) var<storage, read> t_in: array<S>;
@group(0) @binding(3) var<storage, read> xd_in: array<S>;
@group(0) @binding(4) var<storage, read_write> out0: array<S>;

var<workgroup> partial: array<vec2<f32>, 256>;

fn row_of(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

// The sum over the workgroup of each thread's `v`, returned to every thread.
fn sum2(li: u32, v: vec2<f32>) -> vec2<f32> {
    partial[li] = v;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width >>= 1u) {
        if li < width {
            partial[li] += partial[li + width];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // Every thread has read the total before a next reduction overwrites it.
    workgroupBarrier();
    return total;
}

// The max over the workgroup of each thread's `v`, returned to every thread.
fn max1(li: u32, v: f32) -> f32 {
    partial[li] = vec2<f32>(v, 0.0);
    workgroupBarrier();
    for (var width = 128u; width > 0u; width >>= 1u) {
        if li < width {
            partial[li].x = max(partial[li].x, partial[li + width].x);
        }
        workgroupBarrier();
    }
    let total = partial[0].x;
    workgroupBarrier();
    return total;
}

// out0 = softmax of each row of y_in (here the input x). Only the kept
// columns enter the max and the sum; the others are stored as 0.
@compute @workgroup_size(256)
fn softmax_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = row_of(wg, nwg);
    if r >= p.rows {
        return;
    }
    let base = r * p.c;
    let keep = select(p.c, r % p.c + 1u, p.causal != 0u);
    // Column 0 is always kept, so it starts every thread's max, as it
    // starts the CPU's fold: threads with no kept column need no -inf.
    var m = f32(y_in[base]);
    for (var k = li; k < keep; k += 256u) {
        m = max(m, f32(y_in[base + k]));
    }
    let mx = max1(li, m);
    var a = 0.0;
    for (var k = li; k < keep; k += 256u) {
        a += exp(f32(y_in[base + k]) - mx);
    }
    // One reciprocal and a product per entry, as on the CPU.
    let inv = 1.0 / sum2(li, vec2<f32>(a, 0.0)).x;
    for (var k = li; k < p.c; k += 256u) {
        var v = 0.0;
        if k < keep {
            v = exp(f32(y_in[base + k]) - mx) * inv;
        }
        out0[base + k] = S(v);
    }
}

// out0 = y * (t - y . t) row by row, y in y_in and t in t_in.
@compute @workgroup_size(256)
fn softmax_rows_j(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = row_of(wg, nwg);
    if r >= p.rows {
        return;
    }
    let base = r * p.c;
    var a = 0.0;
    for (var k = li; k < p.c; k += 256u) {
        a = fma(f32(y_in[base + k]), f32(t_in[base + k]), a);
    }
    let yt = sum2(li, vec2<f32>(a, 0.0)).x;
    for (var k = li; k < p.c; k += 256u) {
        out0[base + k] = S(f32(y_in[base + k]) * (f32(t_in[base + k]) - yt));
    }
}

// out0 = y_dot * (g - y . g) - y (y_dot . g) row by row, with
// y_dot = y * (x_dot - y . x_dot); g in t_in and x_dot in xd_in. y_dot is
// recomputed where needed rather than stored, so it is never rounded to
// the storage type.
@compute @workgroup_size(256)
fn softmax_rows_second(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = row_of(wg, nwg);
    if r >= p.rows {
        return;
    }
    let base = r * p.c;
    var a = vec2<f32>(0.0);
    for (var k = li; k < p.c; k += 256u) {
        let y = f32(y_in[base + k]);
        a += y * vec2<f32>(f32(t_in[base + k]), f32(xd_in[base + k]));
    }
    let sums = sum2(li, a);
    let yg = sums.x;
    let yx = sums.y;
    var b = 0.0;
    for (var k = li; k < p.c; k += 256u) {
        let yd = f32(y_in[base + k]) * (f32(xd_in[base + k]) - yx);
        b = fma(yd, f32(t_in[base + k]), b);
    }
    let ydg = sum2(li, vec2<f32>(b, 0.0)).x;
    for (var k = li; k < p.c; k += 256u) {
        let y = f32(y_in[base + k]);
        let g = f32(t_in[base + k]);
        let yd = y * (f32(xd_in[base + k]) - yx);
        out0[base + k] = S(yd * (g - yg) - y * ydg);
    }
}
