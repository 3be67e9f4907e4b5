// Batched matmul with transposes: c[e] = alpha * op(a[e]) @ op(b[e]), where
// op(x) is x or its transpose. Twin of kernels/matmul.cu; reference
// src/backend/cpu/matmul.rs.
//
// Each 16x16 workgroup computes a 64x64 tile of c; each thread holds a 4x4
// register block (rows ly + 16i, columns lx + 16j, so neighbouring threads
// read neighbouring shared-memory words). Tiles of op(a) and op(b) that are
// 16 deep in k are staged in workgroup memory; the load order follows the
// operand's memory layout so global reads stay coalesced whether or not it
// is transposed. Out-of-range elements load as zero, so any size works.
// A batch stride of 0 broadcasts a single matrix across the ensemble.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    ta: u32,
    tb: u32,
    a_stride: u32,
    b_stride: u32,
    alpha: f32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// [TK][TM] and [TK][TN]: k-major, so the inner product loop reads rows.
var<workgroup> tile_a: array<f32, 1024>;
var<workgroup> tile_b: array<f32, 1024>;

fn load_a(off: u32, row: u32, kk: u32) -> f32 {
    if row >= p.m || kk >= p.k {
        return 0.0;
    }
    if p.ta != 0u {
        return a[off + kk * p.m + row];
    }
    return a[off + row * p.k + kk];
}

fn load_b(off: u32, kk: u32, col: u32) -> f32 {
    if col >= p.n || kk >= p.k {
        return 0.0;
    }
    if p.tb != 0u {
        return b[off + col * p.k + kk];
    }
    return b[off + kk * p.n + col];
}

@compute @workgroup_size(16, 16, 1)
fn matmul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let e = wg.z;
    let row0 = wg.y * TM;
    let col0 = wg.x * TN;
    let a_off = e * p.a_stride;
    let b_off = e * p.b_stride;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        for (var t = 0u; t < 4u; t++) {
            let idx = li + t * 256u;
            // a is [m, k] (contiguous in k) or, transposed, [k, m].
            var r: u32;
            var kk: u32;
            if p.ta != 0u {
                kk = idx / TM;
                r = idx % TM;
            } else {
                r = idx / TK;
                kk = idx % TK;
            }
            tile_a[kk * TM + r] = load_a(a_off, row0 + r, k0 + kk);
            // b is [k, n] (contiguous in n) or, transposed, [n, k].
            var cc: u32;
            var kb: u32;
            if p.tb != 0u {
                cc = idx / TK;
                kb = idx % TK;
            } else {
                kb = idx / TN;
                cc = idx % TN;
            }
            tile_b[kb * TN + cc] = load_b(b_off, k0 + kb, col0 + cc);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = tile_a[kk * TM + lid.y + 16u * i];
                bv[i] = tile_b[kk * TN + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    let c_off = e * p.m * p.n;
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + 16u * j;
            if row < p.m && col < p.n {
                c[c_off + row * p.n + col] = p.alpha * acc[i * 4u + j];
            }
        }
    }
}
