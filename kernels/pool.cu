// Row-wise max with its argument, and the gather and scatter through that
// argument: max pooling is im2col followed by row_max over each channel's
// window, its tangent is row_pick and its vjp row_place. Pooling windows are
// a few to a few dozen entries, so row_max takes one thread per row and scans
// it in order, which is also the CPU's tie rule. Arguments are stored as
// float values, as on the CPU. Twin of src/backend/cpu/pool.rs.

#include "common.cuh"

// best[r], arg[r] = the largest entry of row r of x [nrows, k] and its
// column. Strictly greater replaces, so the first maximum wins and a NaN
// never replaces (a NaN first entry is kept), as on the CPU.
extern "C" __global__ void row_max(const float* __restrict__ x, float* __restrict__ best,
                                   float* __restrict__ arg, long long nrows, int k) {
    for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < nrows;
         r += (long long)gridDim.x * blockDim.x) {
        const float* row = x + r * k;
        float b = row[0];
        int at = 0;
        for (int j = 1; j < k; ++j) {
            if (row[j] > b) {
                b = row[j];
                at = j;
            }
        }
        best[r] = b;
        arg[r] = (float)at;
    }
}

// The column an index value names (truncated, as on the CPU), or -1 when it
// is outside [0, k). The CPU refuses such an index with an error; checking
// here would cost a host round trip, so its row comes out NaN instead.
__device__ __forceinline__ int column(float a, int k) {
    return (a >= 0.0f && a < (float)k) ? (int)a : -1;
}

// out[r] = x[r, arg[r]] for each row of x [nrows, k].
extern "C" __global__ void row_pick(const float* __restrict__ x, const float* __restrict__ arg,
                                    float* __restrict__ out, long long nrows, int k) {
    for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < nrows;
         r += (long long)gridDim.x * blockDim.x) {
        int j = column(arg[r], k);
        out[r] = j < 0 ? NAN_F : x[r * k + j];
    }
}

// out [nrows, k]: zeros with g[r] at column arg[r] of row r. One thread per
// output element, so the writes are coalesced.
extern "C" __global__ void row_place(const float* __restrict__ g, const float* __restrict__ arg,
                                     float* __restrict__ out, long long total, int k) {
    for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < total;
         o += (long long)gridDim.x * blockDim.x) {
        long long r = o / k;
        int j = column(arg[r], k);
        out[o] = j < 0 ? NAN_F : (o - r * k == j ? g[r] : 0.0f);
    }
}
