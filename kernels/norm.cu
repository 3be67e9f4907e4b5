// Row normalization (LayerNorm with `center`, RMSNorm without) and its two
// derivative products: with y the output and s the row's inverse scale the
// Jacobian is J = s (P - y y^T / C) (P the centering projection or the
// identity), symmetric, so one product serves the jvp and the vjp;
// norm_rows_second is the derivative of J g along an input tangent. A row
// belongs to one group of threads: a warp (eight rows per block) for rows
// up to WARP_ROW_MAX (src/backend/cuda/mod.rs) long, the whole block for
// longer ones (batch normalization's per-channel rows); the row groups and
// their sums are common.cuh's, shared with softmax.cu. Row statistics are
// group sums in f32 (warp shuffles, then shared memory across the block's
// warps) in a fixed order, so results do not depend on timing. Twin of
// src/backend/cpu/norm.rs.

#include "common.cuh"

// y = (x - mean) s and s = 1 / sqrt(var + eps) (biased variance) per row of
// x [nrows, c] with `center`; without, y = x s and s = 1 / sqrt(mean(x^2) +
// eps). Two passes (mean, then centered squares), as on the CPU.
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
norm_rows(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ s, long long nrows,
          int c, int center, float eps, int warp_rows) {
    __shared__ float scratch[32];
    const RowGroup g = row_group(warp_rows);
    if (g.row >= nrows) {
        return;
    }
    const float* xr = x + g.row * c;
    const float n = (float)c;
    float mean = 0.0f;
    if (center) {
        float t = 0.0f;
        for (int j = g.lane; j < c; j += g.size) {
            t += xr[j];
        }
        mean = group_sum(t, warp_rows, scratch) / n;
    }
    float v = 0.0f;
    for (int j = g.lane; j < c; j += g.size) {
        float d = xr[j] - mean;
        v += d * d;
    }
    const float sc = 1.0f / sqrtf(group_sum(v, warp_rows, scratch) / n + eps);
    for (int j = g.lane; j < c; j += g.size) {
        y[g.row * c + j] = (xr[j] - mean) * sc;
    }
    if (g.lane == 0) {
        s[g.row] = sc;
    }
}

// Entry k of J v for one row: s ((v_k - mean v) - y_k (y . v) / C), given
// mv = mean v (0 without centering) and yv_n = (y . v) / C.
__device__ __forceinline__ float j_entry(float sc, float vk, float mv, float yk, float yv_n) {
    return sc * (vk - mv - yk * yv_n);
}

// out = J t row by row, for y, t [nrows, c] and s [nrows].
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
norm_rows_j(const float* __restrict__ y, const float* __restrict__ s, const float* __restrict__ t,
            float* __restrict__ out, long long nrows, int c, int center, int warp_rows) {
    __shared__ float scratch[32];
    const RowGroup g = row_group(warp_rows);
    if (g.row >= nrows) {
        return;
    }
    const long long base = g.row * c;
    const float n = (float)c;
    float st = 0.0f, yt = 0.0f;
    for (int j = g.lane; j < c; j += g.size) {
        st += t[base + j];
        yt += y[base + j] * t[base + j];
    }
    const float mt = center ? group_sum(st, warp_rows, scratch) / n : 0.0f;
    const float yt_n = group_sum(yt, warp_rows, scratch) / n;
    const float sc = s[g.row];
    for (int j = g.lane; j < c; j += g.size) {
        out[base + j] = j_entry(sc, t[base + j], mt, y[base + j], yt_n);
    }
}

// out = -(s / C) [(y . x_dot) J g + (y . g) J x_dot + (J x_dot . g) y] row
// by row: the derivative of J g along x_dot with g fixed. J x_dot . g is
// summed from J x_dot's entries, as the CPU does, not expanded.
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
norm_rows_second(const float* __restrict__ y, const float* __restrict__ s,
                 const float* __restrict__ g, const float* __restrict__ x_dot,
                 float* __restrict__ out, long long nrows, int c, int center, int warp_rows) {
    __shared__ float scratch[32];
    const RowGroup grp = row_group(warp_rows);
    if (grp.row >= nrows) {
        return;
    }
    const long long base = grp.row * c;
    const float *yr = y + base, *gr = g + base, *xr = x_dot + base;
    const float n = (float)c;
    float sg = 0.0f, sx = 0.0f, yg = 0.0f, yx = 0.0f;
    for (int j = grp.lane; j < c; j += grp.size) {
        sg += gr[j];
        sx += xr[j];
        yg += yr[j] * gr[j];
        yx += yr[j] * xr[j];
    }
    const float mg = center ? group_sum(sg, warp_rows, scratch) / n : 0.0f;
    const float mx = center ? group_sum(sx, warp_rows, scratch) / n : 0.0f;
    yg = group_sum(yg, warp_rows, scratch);
    yx = group_sum(yx, warp_rows, scratch);
    const float sc = s[grp.row];
    float jxg = 0.0f;
    for (int j = grp.lane; j < c; j += grp.size) {
        jxg += j_entry(sc, xr[j], mx, yr[j], yx / n) * gr[j];
    }
    jxg = group_sum(jxg, warp_rows, scratch);
    const float f = -sc / n;
    for (int j = grp.lane; j < c; j += grp.size) {
        float jg = j_entry(sc, gr[j], mg, yr[j], yg / n);
        float jx = j_entry(sc, xr[j], mx, yr[j], yx / n);
        out[base + j] = f * (yx * jg + yg * jx + jxg * yr[j]);
    }
}
