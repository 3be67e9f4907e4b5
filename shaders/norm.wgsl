// Row normalization (LayerNorm with `center`, RMSNorm without) and its two
// derivative products. Twin of kernels/norm.cu; reference
// src/backend/cpu/norm.rs, which derives them: with y the output and s the
// row's inverse scale the Jacobian is J = s (P - y y^T / C), P the centering
// projection or the identity; norm_rows_second is the derivative of J g
// along an input tangent.
//
// One 256-thread workgroup per row, so both many short rows (LayerNorm
// over tokens) and few long ones (batch normalization, a row per channel)
// fill the device; each thread takes every 256th entry and the row's sums
// are a tree reduction in workgroup memory, in a fixed order, so results
// are deterministic. Past 65535 rows the grid folds into two dimensions;
// `row_of` unfolds it.

// Element type of the tensor buffers: f32 here, f16 in the variant
// src/backend/wgpu/variant.rs makes; loads convert to f32, sums accumulate
// in f32, stores convert back with S(..).
alias S = f32;

struct Params {
    rows: u32,
    c: u32,
    center: u32,
    eps: f32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> y_in: array<S>;
@group(0) @binding(2) var<storage, read> s_in: array<S>;
@group(0) @binding(3) var<storage, read> t_in: array<S>;
@group(0) @binding(4) var<storage, read> xd_in: array<S>;
@group(0) @binding(5) var<storage, read_write> out0: array<S>;
@group(0) @binding(6) var<storage, read_write> out1: array<S>;

var<workgroup> partial: array<vec4<f32>, 256>;

fn row_of(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

// The sum over the workgroup of each thread's `v`, returned to every thread.
fn sum4(li: u32, v: vec4<f32>) -> vec4<f32> {
    partial[li] = v;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width >>= 1u) {
        if li < width {
            partial[li] += partial[li + width];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // Every thread has read the total before a next sum overwrites it.
    workgroupBarrier();
    return total;
}

// A row sum as a mean when centering, else 0 (P is the identity).
fn mean_if_centered(sum: f32) -> f32 {
    return select(0.0, sum / f32(p.c), p.center != 0u);
}

// Entry k of J t for one row: s ((t_k - mean t) - y_k (y . t) / C), given
// mean t and (y . t) / C.
fn j_entry(s: f32, t: f32, mt: f32, y: f32, yt: f32) -> f32 {
    return s * (t - mt - y * yt);
}

// out0 = y, out1[row] = s for the rows of y_in (here the input x); the
// variance is two-pass about the mean, as on the CPU.
@compute @workgroup_size(256)
fn norm_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = row_of(wg, nwg);
    if r >= p.rows {
        return;
    }
    let base = r * p.c;
    var mean = 0.0;
    if p.center != 0u {
        var a = 0.0;
        for (var k = li; k < p.c; k += 256u) {
            a += f32(y_in[base + k]);
        }
        mean = sum4(li, vec4<f32>(a, 0.0, 0.0, 0.0)).x / f32(p.c);
    }
    var q = 0.0;
    for (var k = li; k < p.c; k += 256u) {
        let d = f32(y_in[base + k]) - mean;
        q = fma(d, d, q);
    }
    let s = 1.0 / sqrt(sum4(li, vec4<f32>(q, 0.0, 0.0, 0.0)).x / f32(p.c) + p.eps);
    for (var k = li; k < p.c; k += 256u) {
        out0[base + k] = S((f32(y_in[base + k]) - mean) * s);
    }
    if li == 0u {
        out1[r] = S(s);
    }
}

// out0 = J t row by row.
@compute @workgroup_size(256)
fn norm_rows_j(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = row_of(wg, nwg);
    if r >= p.rows {
        return;
    }
    let base = r * p.c;
    var a = vec4<f32>(0.0);
    for (var k = li; k < p.c; k += 256u) {
        let t = f32(t_in[base + k]);
        a += vec4<f32>(t, f32(y_in[base + k]) * t, 0.0, 0.0);
    }
    let sums = sum4(li, a);
    let mt = mean_if_centered(sums.x);
    let yt = sums.y / f32(p.c);
    let s = f32(s_in[r]);
    for (var k = li; k < p.c; k += 256u) {
        out0[base + k] = S(j_entry(s, f32(t_in[base + k]), mt, f32(y_in[base + k]), yt));
    }
}

// out0 = -(s / C) [(y . x_dot) J g + (y . g) J x_dot + (J x_dot . g) y] row
// by row, g in t_in and x_dot in xd_in.
@compute @workgroup_size(256)
fn norm_rows_second(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = row_of(wg, nwg);
    if r >= p.rows {
        return;
    }
    let base = r * p.c;
    let n = f32(p.c);
    var a = vec4<f32>(0.0);
    for (var k = li; k < p.c; k += 256u) {
        let y = f32(y_in[base + k]);
        let g = f32(t_in[base + k]);
        let xd = f32(xd_in[base + k]);
        a += vec4<f32>(g, xd, y * g, y * xd);
    }
    let sums = sum4(li, a);
    let mg = mean_if_centered(sums.x);
    let mx = mean_if_centered(sums.y);
    let yg = sums.z;
    let yx = sums.w;
    let s = f32(s_in[r]);
    var b = 0.0;
    for (var k = li; k < p.c; k += 256u) {
        let jx = j_entry(s, f32(xd_in[base + k]), mx, f32(y_in[base + k]), yx / n);
        b = fma(jx, f32(t_in[base + k]), b);
    }
    let jxg = sum4(li, vec4<f32>(b, 0.0, 0.0, 0.0)).x;
    let f = -s / n;
    for (var k = li; k < p.c; k += 256u) {
        let y = f32(y_in[base + k]);
        let jg = j_entry(s, f32(t_in[base + k]), mg, y, yg / n);
        let jx = j_entry(s, f32(xd_in[base + k]), mx, y, yx / n);
        out0[base + k] = S(f * (yx * jg + yg * jx + jxg * y));
    }
}
