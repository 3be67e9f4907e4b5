// Loss heads fused with their gradients, and the loss Hessian-vector product
// the HVP's backward-with-tangent pass starts from. One warp per output row
// (log-sum-exp and row sums are warp reductions); per-row losses go to a
// buffer that reduce.cu's member_partials / member_finish average per member
// in a fixed order. Twin of src/backend/cpu/loss.rs.

#include "common.cuh"

// Softmax cross-entropy on f [nrows, k] (nrows = E * rows) with labels [rows]:
// grad = (softmax(f) - onehot(label)) / rows, row_loss = lse(f) - f[label].
// A label that is not an integer in [0, k) gives NaN loss and gradient for
// its row (the CPU rejects it with an error; checking here would cost a host
// round trip).
extern "C" __global__ void ce_loss(const float* __restrict__ f, const float* __restrict__ labels,
                                   float* __restrict__ grad, float* __restrict__ row_loss,
                                   long long nrows, int rows, int k, float inv_b) {
    long long r = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= nrows || k <= 0) {
        return;
    }
    const float* x = f + r * k;
    float* g = grad + r * k;
    float lf = labels[r % rows];
    int label = (int)lf;
    bool ok = lf >= 0.0f && lf < (float)k && (float)label == lf;
    float mx = NEG_INF_F;
    for (int j = lane; j < k; j += 32) {
        mx = fmaxf(mx, x[j]);
    }
    mx = warp_max(mx);
    float s = 0.0f;
    for (int j = lane; j < k; j += 32) {
        s += expf(x[j] - mx);
    }
    s = warp_sum(s);
    for (int j = lane; j < k; j += 32) {
        float v = expf(x[j] - mx) / s * inv_b;
        if (j == label) {
            v = v - inv_b;
        }
        g[j] = ok ? v : NAN_F;
    }
    if (lane == 0) {
        row_loss[r] = ok ? mx + logf(s) - x[label] : NAN_F;
    }
}

// Squared errors on f [nrows, k] against targets t ([rows, k] when shared,
// else [nrows, k]): grad = (f - t) * gscale, row_loss = lscale * sum (f - t)^2.
extern "C" __global__ void mse_loss(const float* __restrict__ f, const float* __restrict__ t,
                                    float* __restrict__ grad, float* __restrict__ row_loss,
                                    long long nrows, int rows, int k, int shared, float lscale,
                                    float gscale) {
    long long r = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= nrows) {
        return;
    }
    const float* x = f + r * k;
    const float* y = t + (shared ? (r % rows) : r) * (long long)k;
    float* g = grad + r * k;
    float s = 0.0f;
    for (int j = lane; j < k; j += 32) {
        float d = x[j] - y[j];
        g[j] = d * gscale;
        s += d * d;
    }
    s = warp_sum(s);
    if (lane == 0) {
        row_loss[r] = lscale * s;
    }
}

// Cross-entropy's output Hessian applied to d, row by row:
// out = p * (d - <p, d>) * inv_b with p = softmax(f).
extern "C" __global__ void ce_hvp(const float* __restrict__ f, const float* __restrict__ d,
                                  float* __restrict__ out, long long nrows, int k, float inv_b) {
    long long r = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= nrows || k <= 0) {
        return;
    }
    const float* x = f + r * k;
    const float* dr = d + r * k;
    float mx = NEG_INF_F;
    for (int j = lane; j < k; j += 32) {
        mx = fmaxf(mx, x[j]);
    }
    mx = warp_max(mx);
    float s = 0.0f;
    for (int j = lane; j < k; j += 32) {
        s += expf(x[j] - mx);
    }
    s = warp_sum(s);
    float pd = 0.0f;
    for (int j = lane; j < k; j += 32) {
        pd += expf(x[j] - mx) / s * dr[j];
    }
    pd = warp_sum(pd);
    for (int j = lane; j < k; j += 32) {
        float p = expf(x[j] - mx) / s;
        out[r * k + j] = p * (dr[j] - pd) * inv_b;
    }
}

// out = scale * x: the squared losses' output Hessian is a multiple of I.
extern "C" __global__ void scale_all(const float* __restrict__ x, float* __restrict__ out,
                                     long long total, float scale) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        out[i] = x[i] * scale;
    }
}
