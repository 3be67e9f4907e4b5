// Batched matmul with transposes: c[e] = alpha * op(a[e]) @ op(b[e]), where
// op(x) is x or its transpose. Twin of kernels/matmul.cu; reference
// src/backend/cpu/matmul.rs.
//
// Each 16x16 workgroup computes a 64x64 tile of c; each thread holds a 4x4
// register block (rows 4*ly.., columns 4*lx..) as four vec4 accumulators, so
// every index into private memory is a constant and the block stays in
// registers. Tiles of op(a) and op(b) 16 deep in k are staged in workgroup
// memory as vec4s of 4 rows (a) or 4 columns (b); which thread loads which
// vec4 follows the operand's memory layout, so global reads stay coalesced
// whether or not it is transposed. Out-of-range elements load as zero, so
// any size works. A batch stride of 0 broadcasts one matrix across the
// ensemble.

// Element type of the tensor buffers: f32 here, f16 in the variant
// src/backend/wgpu/variant.rs makes; loads convert to f32, all arithmetic is
// f32, stores convert back with S(..).
alias S = f32;

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
@group(0) @binding(1) var<storage, read> a: array<S>;
@group(0) @binding(2) var<storage, read> b: array<S>;
@group(0) @binding(3) var<storage, read_write> c: array<S>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// [TK][TM / 4] and [TK][TN / 4]: tile_a[kk * 16 + g] holds rows 4g..4g+3 of
// column kk of op(a); tile_b[kk * 16 + g] columns 4g..4g+3 of row kk of op(b).
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

fn load_a(off: u32, row: u32, kk: u32) -> f32 {
    if row >= p.m || kk >= p.k {
        return 0.0;
    }
    if p.ta != 0u {
        return f32(a[off + kk * p.m + row]);
    }
    return f32(a[off + row * p.k + kk]);
}

fn load_b(off: u32, kk: u32, col: u32) -> f32 {
    if col >= p.n || kk >= p.k {
        return 0.0;
    }
    if p.tb != 0u {
        return f32(b[off + col * p.k + kk]);
    }
    return f32(b[off + kk * p.n + col]);
}

fn store(off: u32, row: u32, col: u32, v: vec4<f32>) {
    if row >= p.m {
        return;
    }
    let base = off + row * p.n + col;
    if col < p.n {
        c[base] = S(p.alpha * v.x);
    }
    if col + 1u < p.n {
        c[base + 1u] = S(p.alpha * v.y);
    }
    if col + 2u < p.n {
        c[base + 2u] = S(p.alpha * v.z);
    }
    if col + 3u < p.n {
        c[base + 3u] = S(p.alpha * v.w);
    }
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
    // a is [m, k] (contiguous in k: neighbouring threads take neighbouring
    // k) or, transposed, [k, m] (neighbouring threads take neighbouring rows).
    let a_k = select(li % 16u, li / 16u, p.ta != 0u);
    let a_g = select(li / 16u, li % 16u, p.ta != 0u);
    // b is [k, n] (contiguous in n) or, transposed, [n, k].
    let b_k = select(li / 16u, li % 16u, p.tb != 0u);
    let b_g = select(li % 16u, li / 16u, p.tb != 0u);
    let ar = row0 + 4u * a_g;
    let bc = col0 + 4u * b_g;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        let ka = k0 + a_k;
        tile_a[a_k * 16u + a_g] = vec4<f32>(
            load_a(a_off, ar, ka),
            load_a(a_off, ar + 1u, ka),
            load_a(a_off, ar + 2u, ka),
            load_a(a_off, ar + 3u, ka),
        );
        let kb = k0 + b_k;
        tile_b[b_k * 16u + b_g] = vec4<f32>(
            load_b(b_off, kb, bc),
            load_b(b_off, kb, bc + 1u),
            load_b(b_off, kb, bc + 2u),
            load_b(b_off, kb, bc + 3u),
        );
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let av = tile_a[kk * 16u + lid.y];
            let bv = tile_b[kk * 16u + lid.x];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    let c_off = e * p.m * p.n;
    let row = row0 + 4u * lid.y;
    let col = col0 + 4u * lid.x;
    store(c_off, row, col, acc0);
    store(c_off, row + 1u, col, acc1);
    store(c_off, row + 2u, col, acc2);
    store(c_off, row + 3u, col, acc3);
}
