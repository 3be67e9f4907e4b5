// Fused optimizer updates, one pass over each parameter tensor, PyTorch
// semantics (twin of src/backend/cpu/optim.rs): SGD with coupled weight decay
// and momentum without dampening (optional Nesterov); Adam (coupled decay)
// and AdamW (decoupled). Learning rates are per ensemble member: `lrs` holds
// E values (member = i / per) or is null, in which case `lr` applies to all.

extern "C" __global__ void sgd_update(float* __restrict__ p, const float* __restrict__ g,
                                      float* __restrict__ buf, const float* __restrict__ lrs,
                                      float lr, long long total, long long per, float momentum,
                                      int use_momentum, int nesterov, float wd) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        float l = lrs ? lrs[i / per] : lr;
        float w = p[i];
        if (!use_momentum) {
            p[i] = w - l * (g[i] + wd * w);
        } else {
            float gi = g[i] + wd * w;
            float b = momentum * buf[i] + gi;
            buf[i] = b;
            float d = nesterov ? gi + momentum * b : b;
            p[i] = w - l * d;
        }
    }
}

// bc1 = 1 - beta1^step and bc2_sqrt = sqrt(1 - beta2^step) come from the host
// (computed in f64 there, as the CPU does).
extern "C" __global__ void adam_update(float* __restrict__ p, const float* __restrict__ g,
                                       float* __restrict__ m, float* __restrict__ v,
                                       const float* __restrict__ lrs, float lr, long long total,
                                       long long per, float beta1, float beta2, float eps, float wd,
                                       int decoupled, float bc1, float bc2_sqrt) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        float l = lrs ? lrs[i / per] : lr;
        float w = p[i];
        float gi = g[i];
        if (decoupled) {
            w = w * (1.0f - l * wd);
        } else {
            gi = gi + wd * w;
        }
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = w - l / bc1 * mi / denom;
    }
}
