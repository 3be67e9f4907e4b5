// Row-wise max with its argument, and the gather and scatter through that
// argument: max pooling is im2col then row_max over each channel's window,
// its tangent row_pick and its vjp row_place. Twin of kernels/pool.cu;
// reference src/backend/cpu/pool.rs. Indices are stored as values of the
// tensors' element type, as on the CPU.
//
// row_max and row_pick run one thread per row, row_place one per output
// element (a gather, so no buffer clear or scatter). Launches wider than
// 65535 workgroups use a 2-D grid; `flat` turns the global id back into an
// index.

// Element type of the tensor buffers: f32 here, f16 in the variant
// src/backend/wgpu/variant.rs makes; loads convert to f32, stores convert
// back with S(..).
alias S = f32;

struct Params {
    // Rows for row_max and row_pick, output elements for row_place.
    total: u32,
    k: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> in1: array<S>;
@group(0) @binding(2) var<storage, read> arg: array<S>;
@group(0) @binding(3) var<storage, read_write> out0: array<S>;
@group(0) @binding(4) var<storage, read_write> out1: array<S>;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// An index value outside [0, k) is clamped rather than read out of bounds;
// the CPU reference rejects it, and checking here would cost a host round
// trip.
fn column(r: u32) -> u32 {
    return min(u32(max(f32(arg[r]), 0.0)), p.k - 1u);
}

// out0[r] = max of row r of in1 [rows, k], out1[r] = its first column
// (strictly greater replaces, so the first maximum wins ties).
@compute @workgroup_size(256)
fn row_max(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat(gid, nwg);
    if r >= p.total {
        return;
    }
    let base = r * p.k;
    var best = f32(in1[base]);
    var at = 0u;
    for (var j = 1u; j < p.k; j++) {
        let v = f32(in1[base + j]);
        if v > best {
            best = v;
            at = j;
        }
    }
    out0[r] = S(best);
    out1[r] = S(f32(at));
}

// out0[r] = in1[r, arg[r]].
@compute @workgroup_size(256)
fn row_pick(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat(gid, nwg);
    if r >= p.total {
        return;
    }
    out0[r] = in1[r * p.k + column(r)];
}

// out0[r, j] = in1[r] where j == arg[r], else 0.
@compute @workgroup_size(256)
fn row_place(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if e >= p.total {
        return;
    }
    let r = e / p.k;
    out0[e] = select(S(0.0), in1[r], e % p.k == column(r));
}
