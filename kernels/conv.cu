// im2col and its adjoint col2im on channels-last images ([h, w, c] per
// image, src/backend/window.rs): with the patches as rows a convolution is
// one GEMM. One thread per output element over a grid-stride loop. col2im
// gathers (each pixel sums the patch entries read from it, in the CPU's
// order) instead of scattering, so it needs no atomics and its sums do not
// depend on timing. Twin of src/backend/cpu/conv.rs.

// A window over images [h, w, c]: a kh x kw kernel moved by strides sh, sw
// over the image padded by ph, pw, giving oh x ow positions. Field for field
// the Rust `Geometry` in src/backend/cuda/conv.rs.
struct Window {
    int c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

// cols [images * oh * ow, c * kh * kw] from x [images, h, w, c]: row
// (image, oy, ox), column (channel, i, j) is pixel
// (oy * sh + i - ph, ox * sw + j - pw) of that channel, or 0 in the padding.
// Consecutive threads write consecutive columns.
extern "C" __global__ void im2col(const float* __restrict__ x, float* __restrict__ cols,
                                  long long total, Window win) {
    const int taps = win.kh * win.kw;
    const int patch = win.c * taps;
    const int positions = win.oh * win.ow;
    for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < total;
         o += (long long)gridDim.x * blockDim.x) {
        long long row = o / patch;
        int col = (int)(o - row * patch);
        long long img = row / positions;
        int pos = (int)(row - img * positions);
        int oy = pos / win.ow, ox = pos - oy * win.ow;
        int ci = col / taps;
        int i = (col - ci * taps) / win.kw, j = col % win.kw;
        int iy = oy * win.sh + i - win.ph, ix = ox * win.sw + j - win.pw;
        bool inside = iy >= 0 && iy < win.h && ix >= 0 && ix < win.w;
        cols[o] = inside ? x[((img * win.h + iy) * win.w + ix) * win.c + ci] : 0.0f;
    }
}

// x [images, h, w, c] from cols [images * oh * ow, c * kh * kw]: each
// pixel-channel sums the entries im2col read from it. Along each axis the
// kernel offsets that reach pixel coordinate `at` are those congruent to
// at + pad modulo the stride, the output coordinate being
// (at + pad - offset) / stride; offsets ascend as on the CPU, so the sum is
// the CPU's, term for term.
extern "C" __global__ void col2im(const float* __restrict__ cols, float* __restrict__ x,
                                  long long total, Window win) {
    const int patch = win.c * win.kh * win.kw;
    const long long positions = (long long)win.oh * win.ow;
    const int pixels = win.h * win.w;
    for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < total;
         o += (long long)gridDim.x * blockDim.x) {
        long long px = o / win.c;
        int ci = (int)(o - px * win.c);
        long long img = px / pixels;
        int at = (int)(px - img * pixels);
        int sy = at / win.w + win.ph, sx = at % win.w + win.pw;
        const float* rows = cols + img * positions * patch + ci * win.kh * win.kw;
        float s = 0.0f;
        for (int i = sy % win.sh; i < win.kh && i <= sy; i += win.sh) {
            int oy = (sy - i) / win.sh;
            if (oy >= win.oh) {
                continue;
            }
            for (int j = sx % win.sw; j < win.kw && j <= sx; j += win.sw) {
                int ox = (sx - j) / win.sw;
                if (ox < win.ow) {
                    s += rows[((long long)oy * win.ow + ox) * patch + i * win.kw + j];
                }
            }
        }
        x[o] = s;
    }
}
