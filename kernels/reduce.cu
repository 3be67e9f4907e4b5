// Reductions: column sums over batch rows (bias gradients), row squared norms
// (per-sample gradient norms are products of these, DESIGN.md 5), per-member
// dot / square / absolute sums, and argmax hits. Sums that feed host scalars
// accumulate in f64 in a fixed order (partials per block, then one block per
// member), so results do not depend on timing. Twin of
// src/backend/cpu/reduce.rs.

#include "common.cuh"

#define RED_THREADS 256

// out[e, j] = alpha * sum_r x[e, r, j]: one thread per output column, walking
// the rows in order (coalesced across the warp's consecutive columns).
extern "C" __global__ void sum_rows(const float* __restrict__ x, float* __restrict__ out, int members,
                                    int rows, int n, float alpha) {
    long long total = (long long)members * n;
    for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < total;
         o += (long long)gridDim.x * blockDim.x) {
        long long e = o / n;
        long long j = o - e * n;
        const float* base = x + e * rows * (long long)n + j;
        float s = 0.0f;
        for (int r = 0; r < rows; ++r) {
            s += base[(long long)r * n];
        }
        out[o] = s * alpha;
    }
}

// Stage 1 of sum_rows for tall inputs: partial[e, c, j] = sum of x[e, r, j]
// over the rows r of chunk c (rows_per_chunk consecutive rows). Block
// (32, 8): 32 columns, each summed by 8 threads over interleaved rows, then
// combined in shared memory; grid (column blocks, chunks, E). Stage 2 is
// sum_rows over the [E, chunks, n] partials.
extern "C" __global__ void __launch_bounds__(256)
sum_rows_partial(const float* __restrict__ x, float* __restrict__ partial, int rows, int n,
                 int rows_per_chunk) {
    __shared__ float s[8][33];
    const int j = blockIdx.x * 32 + threadIdx.x;
    const long long e = blockIdx.z;
    const int c = blockIdx.y;
    const int r0 = c * rows_per_chunk;
    const int r1 = min(rows, r0 + rows_per_chunk);
    float acc = 0.0f;
    if (j < n) {
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            acc += x[(e * rows + r) * (long long)n + j];
        }
    }
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < n) {
        float t = 0.0f;
        for (int q = 0; q < 8; ++q) {
            t += s[q][threadIdx.x];
        }
        partial[(e * gridDim.y + c) * (long long)n + j] = t;
    }
}

// out[r] = sum_j x[r, j]^2 for each of `nrows` rows of length n: one warp per
// row, eight rows per 256-thread block.
extern "C" __global__ void row_sq_norms(const float* __restrict__ x, float* __restrict__ out,
                                        long long nrows, int n) {
    long long row = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= nrows) {
        return;
    }
    const float* r = x + row * n;
    float s = 0.0f;
    for (int j = lane; j < n; j += 32) {
        float v = r[j];
        s += v * v;
    }
    s = warp_sum(s);
    if (lane == 0) {
        out[row] = s;
    }
}

#define MODE_DOT 0
#define MODE_SQ 1
#define MODE_ABS 2
#define MODE_SUM 3

// Stage 1 of a per-member reduction over `per` elements of each member:
// block (bx, e) sums its grid-stride share of member e into
// partials[e * gridDim.x + bx]. MODE_DOT reads a*b, MODE_SQ a*a, MODE_ABS |a|,
// MODE_SUM a (b is unused except by MODE_DOT).
extern "C" __global__ void __launch_bounds__(RED_THREADS)
member_partials(const float* __restrict__ a, const float* __restrict__ b,
                double* __restrict__ partials, long long per, int mode) {
    __shared__ double scratch[32];
    long long e = blockIdx.y;
    const float* ae = a + e * per;
    const float* be = b + e * per;
    double s = 0.0;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < per;
         i += (long long)gridDim.x * blockDim.x) {
        double v = (double)ae[i];
        if (mode == MODE_DOT) {
            s += v * (double)be[i];
        } else if (mode == MODE_SQ) {
            s += v * v;
        } else if (mode == MODE_ABS) {
            s += fabs(v);
        } else {
            s += v;
        }
    }
    s = block_sum_d(s, scratch);
    if (threadIdx.x == 0) {
        partials[e * gridDim.x + blockIdx.x] = s;
    }
}

// Stage 2: block e sums member e's `nparts` partials; writes scale * sum as
// f64 to out_d (when not null) and as f32 to out_f (when not null).
extern "C" __global__ void __launch_bounds__(RED_THREADS)
member_finish(const double* __restrict__ partials, int nparts, double scale,
              double* __restrict__ out_d, float* __restrict__ out_f) {
    __shared__ double scratch[32];
    int e = blockIdx.x;
    double s = 0.0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) {
        s += partials[(long long)e * nparts + i];
    }
    s = block_sum_d(s, scratch);
    if (threadIdx.x == 0) {
        if (out_d) {
            out_d[e] = s * scale;
        }
        if (out_f) {
            out_f[e] = (float)(s * scale);
        }
    }
}

// hit[r] = 1 if the first argmax of row r of f ([nrows, k]) equals the label
// of example r % rows, else 0; same tie and NaN rule as the CPU (strict >).
extern "C" __global__ void argmax_hits(const float* __restrict__ f, const float* __restrict__ labels,
                                       float* __restrict__ hit, long long nrows, int rows, int k) {
    for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < nrows;
         r += (long long)gridDim.x * blockDim.x) {
        const float* row = f + r * k;
        int best = 0;
        for (int j = 1; j < k; ++j) {
            if (row[j] > row[best]) {
                best = j;
            }
        }
        hit[r] = ((float)best == labels[r % rows]) ? 1.0f : 0.0f;
    }
}
