// Row softmax (attention's probabilities over keys), optionally causal, and
// its two derivative products. The Jacobian J = diag(y) - y y^T is
// symmetric, so one product serves the jvp and the vjp; softmax_rows_second
// is the derivative of J g along an input tangent. Rows are split between
// threads exactly as in norm.cu: a warp per row (eight rows per block) up to
// WARP_ROW_MAX (src/backend/cuda/mod.rs) entries, a whole block beyond,
// with common.cuh's row groups and fixed-order f32 group sums and maxima,
// so results do not depend on timing. Twin of src/backend/cpu/softmax.rs.

#include "common.cuh"

// y = softmax of each row of x [nrows, c]. With `causal` the rows are
// stacked c x c score matrices: row r keeps columns 0..=(r mod c) (r counts
// over all nrows, as on the CPU) and the rest of y is exactly 0. The row
// maximum is subtracted before exp so large scores do not overflow; exp is
// evaluated again in the last pass rather than stored, since re-reading x
// costs less than writing and re-reading y.
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
softmax_rows(const float* __restrict__ x, float* __restrict__ y, long long nrows, int c,
             int causal, int warp_rows) {
    __shared__ float scratch[32];
    const RowGroup g = row_group(warp_rows);
    if (g.row >= nrows) {
        return;
    }
    const long long base = g.row * c;
    const int keep = causal ? (int)(g.row % c) + 1 : c;
    float mx = NEG_INF_F;
    for (int j = g.lane; j < keep; j += g.size) {
        mx = fmaxf(mx, x[base + j]);
    }
    mx = group_max(mx, warp_rows, scratch);
    float sum = 0.0f;
    for (int j = g.lane; j < keep; j += g.size) {
        sum += expf(x[base + j] - mx);
    }
    // exp(v - mx) times 1 / sum, the CPU's order of operations.
    const float inv = 1.0f / group_sum(sum, warp_rows, scratch);
    for (int j = g.lane; j < c; j += g.size) {
        y[base + j] = j < keep ? expf(x[base + j] - mx) * inv : 0.0f;
    }
}

// out = J t = y * (t - y . t) row by row, for y, t [nrows, c]. Masked
// entries have y = 0, so no mask is needed.
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
softmax_rows_j(const float* __restrict__ y, const float* __restrict__ t, float* __restrict__ out,
               long long nrows, int c, int warp_rows) {
    __shared__ float scratch[32];
    const RowGroup g = row_group(warp_rows);
    if (g.row >= nrows) {
        return;
    }
    const long long base = g.row * c;
    float yt = 0.0f;
    for (int j = g.lane; j < c; j += g.size) {
        yt += y[base + j] * t[base + j];
    }
    yt = group_sum(yt, warp_rows, scratch);
    for (int j = g.lane; j < c; j += g.size) {
        out[base + j] = y[base + j] * (t[base + j] - yt);
    }
}

// out = y_dot * (g - y . g) - y (y_dot . g) with y_dot = J x_dot = y *
// (x_dot - y . x_dot), row by row: the derivative of J g along x_dot with g
// fixed. y_dot . g is summed from y_dot's entries, as the CPU does, not
// expanded into dot products of the inputs.
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
softmax_rows_second(const float* __restrict__ y, const float* __restrict__ g,
                    const float* __restrict__ x_dot, float* __restrict__ out, long long nrows,
                    int c, int warp_rows) {
    __shared__ float scratch[32];
    const RowGroup grp = row_group(warp_rows);
    if (grp.row >= nrows) {
        return;
    }
    const long long base = grp.row * c;
    const float *yr = y + base, *gr = g + base, *xr = x_dot + base;
    float yx = 0.0f, yg = 0.0f;
    for (int j = grp.lane; j < c; j += grp.size) {
        yx += yr[j] * xr[j];
        yg += yr[j] * gr[j];
    }
    yx = group_sum(yx, warp_rows, scratch);
    yg = group_sum(yg, warp_rows, scratch);
    float ydg = 0.0f;
    for (int j = grp.lane; j < c; j += grp.size) {
        ydg += yr[j] * (xr[j] - yx) * gr[j];
    }
    ydg = group_sum(ydg, warp_rows, scratch);
    for (int j = grp.lane; j < c; j += grp.size) {
        const float yd = yr[j] * (xr[j] - yx);
        out[base + j] = yd * (gr[j] - yg) - yr[j] * ydg;
    }
}
