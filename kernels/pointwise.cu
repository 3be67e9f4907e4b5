// Elementwise kernels: fused bias + activation, the activation's backward
// product and its tangent (the HVP's backward-with-tangent step), per-member
// scaling, axpy and the elementwise product. One thread per element over a
// grid-stride loop; the activation is a warp-uniform switch (see
// common.cuh), so each launch runs one straight-line formula. Twin of
// src/backend/cpu/pointwise.rs.

#include "common.cuh"

// pre = z + scale * bias[member(row)], post = act(pre). z is [E, rows, n]
// flattened to `total`; bias holds `bias_members` (1 or E) rows of n. With
// has_bias == 0 the bias pointer is not read and pre = z.
extern "C" __global__ void bias_act(const float* __restrict__ z, const float* __restrict__ bias,
                                    float* __restrict__ pre, float* __restrict__ post,
                                    long long total, int n, int rows, int bias_members,
                                    int has_bias, float scale, int act) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        float x = z[i];
        if (has_bias) {
            long long row = i / n;
            long long col = i - row * n;
            long long member = bias_members == 1 ? 0 : row / rows;
            x = x + scale * bias[member * n + col];
        }
        pre[i] = x;
        post[i] = act_apply(act, x);
    }
}

// post = act(pre), for a bias-free layer whose pre-activation is z itself.
extern "C" __global__ void act_forward(const float* __restrict__ pre, float* __restrict__ post,
                                       long long total, int act) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        post[i] = act_apply(act, pre[i]);
    }
}

// out = g_post * act'(pre), with act' read off post where that is cheaper.
extern "C" __global__ void act_backward(const float* __restrict__ pre, const float* __restrict__ post,
                                        const float* __restrict__ g_post, float* __restrict__ out,
                                        long long total, int act) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        out[i] = g_post[i] * act_deriv_out(act, pre[i], post[i]);
    }
}

// out = g_post_dot * act'(pre) + g_post * act''(pre) * pre_dot.
extern "C" __global__ void act_backward_tangent(const float* __restrict__ pre,
                                                const float* __restrict__ post,
                                                const float* __restrict__ g_post,
                                                const float* __restrict__ g_post_dot,
                                                const float* __restrict__ pre_dot,
                                                float* __restrict__ out, long long total, int act) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        float x = pre[i], y = post[i];
        out[i] = g_post_dot[i] * act_deriv_out(act, x, y) + g_post[i] * act_second(act, x, y) * pre_dot[i];
    }
}

// out = x * s[i / per]: each ensemble member's slice times its own factor.
extern "C" __global__ void scale_members(const float* __restrict__ x, const float* __restrict__ s,
                                         float* __restrict__ out, long long total, long long per) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        out[i] = x[i] * s[i / per];
    }
}

// y += alpha * x.
extern "C" __global__ void axpy(float* __restrict__ y, const float* __restrict__ x, float alpha,
                                long long total) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        y[i] += alpha * x[i];
    }
}

// out = a * b, where b has a's shape (broadcast == 0) or holds b_members
// (1 or E) rows of n broadcast over the rows of a ([E, rows, n] flattened to
// `total`), as a bias is.
extern "C" __global__ void mul(const float* __restrict__ a, const float* __restrict__ b,
                               float* __restrict__ out, long long total, int n, int rows,
                               int b_members, int broadcast) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        long long at = i;
        if (broadcast) {
            long long row = i / n;
            long long member = b_members == 1 ? 0 : row / rows;
            at = member * n + (i - row * n);
        }
        out[i] = a[i] * b[at];
    }
}
