// im2col and its adjoint col2im on channels-last images (the geometry is
// src/backend/window.rs). Twin of kernels/conv.cu; reference
// src/backend/cpu/conv.rs. A convolution is im2col followed by one matmul.
//
// One thread per output element. col2im gathers: each pixel sums the patch
// entries read from it, in the CPU's order (kernel row, then kernel column),
// so it needs no atomics and its sums are deterministic. Launches wider
// than 65535 workgroups use a 2-D grid; `flat` turns the global id back into
// an element index.

// Element type of the tensor buffers: f32 here, f16 in the variant
// src/backend/wgpu/variant.rs makes; loads convert to f32, sums accumulate
// in f32, stores convert back with S(..).
alias S = f32;

struct Params {
    total: u32,
    c: u32,
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    out_h: u32,
    out_w: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> src: array<S>;
@group(0) @binding(2) var<storage, read_write> dst: array<S>;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// dst[row, col] of the patch matrix: row (image, oy, ox), column (channel,
// kernel row i, kernel column j); src holds the images [h, w, c]. Padding
// reads zero.
@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if e >= p.total {
        return;
    }
    let kk = p.kh * p.kw;
    let patch_len = p.c * kk;
    let row = e / patch_len;
    let col = e % patch_len;
    let positions = p.out_h * p.out_w;
    let img = row / positions;
    let pos = row % positions;
    let ci = col / kk;
    let i = (col % kk) / p.kw;
    let j = col % p.kw;
    // Unsigned: a coordinate in the padding before the image wraps past h
    // (or w), so one comparison rejects both sides.
    let iy = (pos / p.out_w) * p.sh + i - p.ph;
    let ix = (pos % p.out_w) * p.sw + j - p.pw;
    var v = 0.0;
    if iy < p.h && ix < p.w {
        v = f32(src[((img * p.h + iy) * p.w + ix) * p.c + ci]);
    }
    dst[e] = S(v);
}

const NONE: u32 = 0xffffffffu;

// The window position o that reads pixel coordinate `at` at kernel offset
// `k` (o * stride + k - pad == at), or NONE; callers also check o against
// the output size.
fn source(at: u32, k: u32, stride: u32, pad: u32) -> u32 {
    let shifted = at + pad;
    if shifted < k || (shifted - k) % stride != 0u {
        return NONE;
    }
    return (shifted - k) / stride;
}

// dst[image, y, x, channel] = the sum of the patch entries of src (the
// patch matrix) read from that pixel.
@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if e >= p.total {
        return;
    }
    let ci = e % p.c;
    let px = e / p.c;
    let img = px / (p.h * p.w);
    let iy = (px / p.w) % p.h;
    let ix = px % p.w;
    let kk = p.kh * p.kw;
    let patch_len = p.c * kk;
    let first_row = img * p.out_h * p.out_w;
    var s = 0.0;
    for (var i = 0u; i < p.kh; i++) {
        let oy = source(iy, i, p.sh, p.ph);
        if oy >= p.out_h {
            continue;
        }
        for (var j = 0u; j < p.kw; j++) {
            let ox = source(ix, j, p.sw, p.pw);
            if ox < p.out_w {
                let row = first_row + oy * p.out_w + ox;
                s += f32(src[row * patch_len + ci * kk + i * p.kw + j]);
            }
        }
    }
    dst[e] = S(s);
}
