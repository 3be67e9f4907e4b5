// Batched matrix transpose: channels-last feature maps into PyTorch's
// channels-first order (flatten), per-channel columns into rows (batch
// normalization is a row normalization of the transpose). Twin of
// kernels/layout.cu; reference src/backend/cpu/layout.rs.
//
// One thread per output element, so writes are contiguous and reads
// strided. Launches wider than 65535 workgroups use a 2-D grid; `flat`
// turns the global id back into an element index.

// Element type of the tensor buffers: f32 here, f16 in the variant
// src/backend/wgpu/variant.rs makes; values are copied unconverted.
alias S = f32;

struct Params {
    total: u32,
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> src: array<S>;
@group(0) @binding(2) var<storage, read_write> dst: array<S>;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// dst[b, j, i] = src[b, i, j] for src [N, rows, cols].
@compute @workgroup_size(256)
fn transpose(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if e >= p.total {
        return;
    }
    let per = p.rows * p.cols;
    let b = e / per;
    let j = (e % per) / p.rows;
    let i = e % p.rows;
    dst[e] = src[b * per + i * p.cols + j];
}
