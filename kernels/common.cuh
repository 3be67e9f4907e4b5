// Definitions shared by every kernel family: the activation functions and
// their derivatives (the same formulas, in the same order of operations, as
// src/nn/activation.rs, so CUDA and the CPU reference agree to rounding), and
// warp / block reductions. Inlined into each .cu by the backend's loader
// (NVRTC is given one source string per family).

#define ACT_IDENTITY 0
#define ACT_RELU 1
#define ACT_TANH 2
#define ACT_GELU 3
#define ACT_SILU 4
#define ACT_ELU 5
#define ACT_SOFTPLUS 6

#define FRAC_1_SQRT_2_F 0.70710678118654752f
#define INV_SQRT_2PI_F 0.39894228040143268f
// NVRTC has no <math.h> macros.
#define NEG_INF_F __int_as_float(0xff800000)
#define NAN_F __int_as_float(0x7fc00000)

// Sigmoid written, like the CPU's, so exp never overflows.
__device__ __forceinline__ float sigmoid_f(float x) {
    if (x >= 0.0f) {
        return 1.0f / (1.0f + expf(-x));
    }
    float e = expf(x);
    return e / (1.0f + e);
}

__device__ __forceinline__ float act_apply(int act, float x) {
    switch (act) {
    case ACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case ACT_TANH:
        return tanhf(x);
    case ACT_GELU:
        return 0.5f * x * (1.0f + erff(x * FRAC_1_SQRT_2_F));
    case ACT_SILU:
        return x * sigmoid_f(x);
    case ACT_ELU:
        return x > 0.0f ? x : expf(x) - 1.0f;
    case ACT_SOFTPLUS:
        return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
    default:
        return x;
    }
}

// d act / dx at x.
__device__ __forceinline__ float act_deriv(int act, float x) {
    switch (act) {
    case ACT_RELU:
        return x > 0.0f ? 1.0f : 0.0f;
    case ACT_TANH: {
        float t = tanhf(x);
        return 1.0f - t * t;
    }
    case ACT_GELU: {
        float cdf = 0.5f * (1.0f + erff(x * FRAC_1_SQRT_2_F));
        float pdf = INV_SQRT_2PI_F * expf(-0.5f * x * x);
        return cdf + x * pdf;
    }
    case ACT_SILU: {
        float s = sigmoid_f(x);
        return s * (1.0f + x * (1.0f - s));
    }
    case ACT_ELU:
        return x > 0.0f ? 1.0f : expf(x);
    case ACT_SOFTPLUS:
        return sigmoid_f(x);
    default:
        return 1.0f;
    }
}

// d act / dx given also y = act(x) (Activation::deriv_with_output).
__device__ __forceinline__ float act_deriv_out(int act, float x, float y) {
    switch (act) {
    case ACT_TANH:
        return 1.0f - y * y;
    case ACT_ELU:
        return x > 0.0f ? 1.0f : y + 1.0f;
    case ACT_SOFTPLUS:
        return 1.0f - expf(-y);
    default:
        return act_deriv(act, x);
    }
}

// d^2 act / dx^2 given x and y = act(x) (Activation::second_deriv).
__device__ __forceinline__ float act_second(int act, float x, float y) {
    switch (act) {
    case ACT_TANH:
        return -2.0f * y * (1.0f - y * y);
    case ACT_GELU: {
        float pdf = INV_SQRT_2PI_F * expf(-0.5f * x * x);
        return pdf * (2.0f - x * x);
    }
    case ACT_SILU: {
        float s = sigmoid_f(x);
        return s * (1.0f - s) * (2.0f + x * (1.0f - 2.0f * s));
    }
    case ACT_ELU:
        return x > 0.0f ? 0.0f : y + 1.0f;
    case ACT_SOFTPLUS: {
        float s = sigmoid_f(x);
        return s * (1.0f - s);
    }
    default:
        return 0.0f;
    }
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    }
    return v;
}

// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024);
// every thread gets the total. `scratch` holds 32 doubles.
__device__ __forceinline__ double block_sum_d(double v, double* scratch) {
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int nwarps = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    double t = lane < nwarps ? scratch[lane] : 0.0;
    t = warp_sum_d(t);
    return t;
}

// Row kernels (norm.cu, softmax.cu) give each row one group of threads: a
// warp (eight rows per block of 256) for rows up to WARP_ROW_MAX, a whole
// block of ROW_THREADS for longer ones (row_groups in
// src/backend/cuda/mod.rs picks the launch and the `warp_rows` flag).
#define ROW_THREADS 256

// The threads sharing a row: `size` of them, this one being `lane`.
struct RowGroup {
    long long row;
    int lane;
    int size;
};

__device__ __forceinline__ RowGroup row_group(int warp_rows) {
    if (warp_rows) {
        return {blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32, (int)(threadIdx.x % 32),
                32};
    }
    return {(long long)blockIdx.x, (int)threadIdx.x, (int)blockDim.x};
}

// Sum over the row's group; every thread of the group gets the total.
// `scratch` (32 floats of shared memory) is only used by block rows, whose
// early exits are block-uniform, so every thread reaches the barriers.
__device__ __forceinline__ float group_sum(float v, int warp_rows, float* scratch) {
    v = warp_sum(v);
    if (warp_rows) {
        return v;
    }
    int lane = threadIdx.x & 31;
    // The previous sum's threads have all read scratch.
    __syncthreads();
    if (lane == 0) {
        scratch[threadIdx.x >> 5] = v;
    }
    __syncthreads();
    return warp_sum(lane < (int)(blockDim.x >> 5) ? scratch[lane] : 0.0f);
}

// Maximum over the row's group (NaN ignored, as fmaxf and the CPU's max
// do), with group_sum's use of `scratch`.
__device__ __forceinline__ float group_max(float v, int warp_rows, float* scratch) {
    v = warp_max(v);
    if (warp_rows) {
        return v;
    }
    int lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0) {
        scratch[threadIdx.x >> 5] = v;
    }
    __syncthreads();
    return warp_max(lane < (int)(blockDim.x >> 5) ? scratch[lane] : NEG_INF_F);
}
