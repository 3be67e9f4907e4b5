// The CUDA kernels run on the CPU emulator (emu.h) against double precision
// references; run through scripts/cuda-emulate.sh, which generates the
// *_emu.h files from kernels/*.cu. Prints each failure; exit status 1 if any.
#include "emu.h"
#include "common_emu.h"
#include "matmul_emu.h"
#include "reduce_emu.h"
#include "loss_emu.h"
#include "pointwise_emu.h"
#include "optim_emu.h"
#include "conv_emu.h"
#include "pool_emu.h"
#include "layout_emu.h"
#include "norm_emu.h"
#include "softmax_emu.h"
#include <cstdio>
#include <random>
#include <string>

static std::mt19937 rng(1);
std::vector<float> randn(size_t n) { std::normal_distribution<float> d; std::vector<float> v(n); for (auto& x : v) x = d(rng); return v; }
int failures = 0;
// max |got - want| / max |want| (NaN counts as infinite), returned so that
// callers can report it.
double check(const char* what, const std::vector<float>& got, const std::vector<double>& want, double tol) {
    double mx = 1e-30, err = 0;
    for (size_t i = 0; i < want.size(); ++i) { mx = std::max(mx, std::fabs(want[i])); double e = std::fabs(got[i] - want[i]); if (!(e <= err)) err = std::isnan(e) ? INFINITY : std::max(err, e); }
    double rel = err / mx;
    if (!(rel <= tol)) { printf("FAIL %s: rel %g > %g\n", what, rel, tol); ++failures; }
    return rel;
}

using Kern = void (*)(const float*, const float*, float*, int, int, int, long long, long long, long long, long long, long long, long long, float);

void gemm_case(const char* name, Kern k, int tile, int threads, int M, int N, int K, int ea, int eb, bool ta, bool tb, double tol) {
    int E = std::max(ea, eb);
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    auto A = randn((size_t)ea * ar * ac), B = randn((size_t)eb * br * bc);
    std::vector<float> C((size_t)E * M * N, NAN);
    long long a_rs = ta ? 1 : ac, a_cs = ta ? ac : 1, b_rs = tb ? 1 : bc, b_cs = tb ? bc : 1;
    long long a_bs = ea == 1 ? 0 : (long long)ar * ac, b_bs = eb == 1 ? 0 : (long long)br * bc;
    float alpha = 0.7f;
    dim3 grid{unsigned((N + tile - 1) / tile), unsigned((M + tile - 1) / tile), unsigned(E)};
    launch(grid, dim3{unsigned(threads), 1, 1}, [&] { k(A.data(), B.data(), C.data(), M, N, K, a_rs, a_cs, a_bs, b_rs, b_cs, b_bs, alpha); });
    std::vector<double> want((size_t)E * M * N);
    for (int e = 0; e < E; ++e) for (int m = 0; m < M; ++m) for (int n = 0; n < N; ++n) {
        double s = 0;
        for (int kk = 0; kk < K; ++kk) s += (double)A[e * a_bs + m * a_rs + kk * a_cs] * B[e * b_bs + kk * b_rs + n * b_cs];
        want[((size_t)e * M + m) * N + n] = alpha * s;
    }
    char what[256]; snprintf(what, sizeof what, "%s M%d N%d K%d ea%d eb%d ta%d tb%d", name, M, N, K, ea, eb, ta, tb);
    check(what, C, want, tol);
}

// One-thread-per-element launches, as grid_1d in src/backend/cuda/mod.rs.
template <class F> void launch_1d(long long total, F f) { launch(dim3{(unsigned)std::max(1LL, (total + 255) / 256)}, dim3{256}, f); }

// im2col against direct indexing and col2im against a scatter of every
// patch entry (the adjoint written the other way round), in double.
void conv_case(int groups, int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw) {
    int oh = (h + 2 * ph - kh) / sh + 1, ow = (w + 2 * pw - kw) / sw + 1, patch = c * kh * kw;
    long long images = (long long)groups * n, rows = images * oh * ow;
    Window win{c, h, w, kh, kw, sh, sw, ph, pw, oh, ow};
    auto x = randn(images * h * w * c), cols = randn(rows * patch);
    std::vector<float> got_cols(rows * patch, NAN), got_x(x.size(), NAN);
    std::vector<double> want_cols(rows * patch, 0), want_x(x.size(), 0);
    for (long long r = 0; r < rows; ++r) {
        long long img = r / (oh * ow); int oy = (r % (oh * ow)) / ow, ox = r % ow;
        for (int ci = 0; ci < c; ++ci) for (int i = 0; i < kh; ++i) for (int j = 0; j < kw; ++j) {
            int iy = oy * sh + i - ph, ix = ox * sw + j - pw;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            long long at = ((img * h + iy) * w + ix) * c + ci, col = r * patch + (ci * kh + i) * kw + j;
            want_cols[col] = x[at];
            want_x[at] += cols[col];
        }
    }
    launch_1d(rows * patch, [&] { im2col(x.data(), got_cols.data(), rows * patch, win); });
    launch_1d((long long)x.size(), [&] { col2im(cols.data(), got_x.data(), (long long)x.size(), win); });
    char what[160];
    snprintf(what, sizeof what, "groups%d n%d c%d %dx%d k%dx%d s%d,%d p%d,%d", groups, n, c, h, w, kh, kw, sh, sw, ph, pw);
    check((std::string("im2col ") + what).c_str(), got_cols, want_cols, 0);
    check((std::string("col2im ") + what).c_str(), got_x, want_x, 1e-6);
}

void conv_checks() {
    // groups, n, c, h, w, kh, kw, sh, sw, ph, pw
    int cases[][11] = {
        {1, 2, 1, 5, 5, 3, 3, 1, 1, 0, 0}, {2, 2, 3, 5, 6, 3, 3, 2, 2, 1, 1}, {3, 1, 3, 7, 5, 2, 3, 1, 2, 1, 0},
        {2, 3, 1, 1, 9, 1, 3, 1, 2, 0, 1}, {1, 2, 3, 6, 6, 3, 2, 2, 1, 0, 1}, {2, 1, 2, 4, 4, 4, 4, 1, 1, 0, 0},
        {1, 1, 2, 7, 7, 2, 2, 3, 3, 0, 0}, {1, 2, 3, 1, 1, 1, 1, 1, 1, 0, 0}, {2, 1, 1, 3, 3, 3, 3, 2, 2, 1, 1}};
    for (auto& k : cases) conv_case(k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9], k[10]);
    printf("conv done, %d failures\n", failures);
}

// The CPU's scan (strict >: first maximum wins, a NaN first entry is kept).
void row_max_ref(const std::vector<float>& x, int k, std::vector<double>& best, std::vector<double>& arg) {
    for (size_t r = 0; r < best.size(); ++r) {
        int at = 0;
        for (int j = 1; j < k; ++j) if (x[r * k + j] > x[r * k + at]) at = j;
        best[r] = x[r * k + at]; arg[r] = at;
    }
}

void pool_checks() {
    for (int k : {1, 4, 9, 37}) for (long long nrows : {1LL, 13LL, 300LL}) {
        // Small integers: many ties.
        auto x = randn(nrows * k); for (auto& v : x) v = std::round(v);
        std::vector<float> best(nrows, NAN), arg(nrows, NAN), picked(nrows, NAN), placed(nrows * k, NAN);
        std::vector<double> wb(nrows), wa(nrows);
        row_max_ref(x, k, wb, wa);
        launch_1d(nrows, [&] { row_max(x.data(), best.data(), arg.data(), nrows, k); });
        char w[64]; snprintf(w, 64, "row_max k%d rows%lld", k, nrows);
        check(w, best, wb, 0); check(w, arg, wa, 0);
        // Arbitrary valid indices, with a fraction (truncated, as on the CPU).
        std::vector<float> idx(nrows); for (long long r = 0; r < nrows; ++r) idx[r] = (r * 7) % k + (r % 3 == 0 ? 0.5f : 0.0f);
        auto g = randn(nrows);
        std::vector<double> wp(nrows), wpl(nrows * k, 0);
        for (long long r = 0; r < nrows; ++r) { int j = (int)idx[r]; wp[r] = x[r * k + j]; wpl[r * k + j] = g[r]; }
        launch_1d(nrows, [&] { row_pick(x.data(), idx.data(), picked.data(), nrows, k); });
        launch_1d(nrows * k, [&] { row_place(g.data(), idx.data(), placed.data(), nrows * k, k); });
        snprintf(w, 64, "row_pick/place k%d rows%lld", k, nrows);
        check(w, picked, wp, 0); check(w, placed, wpl, 0);
    }
    // NaN: a NaN first entry is the max, a later one never is.
    {
        int k = 3; std::vector<float> x = {NAN, 5, 1, 2, NAN, 7, 4, NAN, 4};
        std::vector<float> best(3, 0), arg(3, -1);
        launch_1d(3, [&] { row_max(x.data(), best.data(), arg.data(), 3, k); });
        if (!std::isnan(best[0]) || arg[0] != 0 || best[1] != 7 || arg[1] != 2 || best[2] != 4 || arg[2] != 0) {
            printf("FAIL row_max NaN rule\n"); ++failures;
        }
    }
    // An index outside the row (the CPU's error) gives NaN in that row only.
    {
        int k = 4; long long nrows = 4; auto x = randn(nrows * k), g = randn(nrows);
        std::vector<float> idx = {1, (float)k, -1, 3}, picked(nrows, 0), placed(nrows * k, 0);
        launch_1d(nrows, [&] { row_pick(x.data(), idx.data(), picked.data(), nrows, k); });
        launch_1d(nrows * k, [&] { row_place(g.data(), idx.data(), placed.data(), nrows * k, k); });
        bool ok = !std::isnan(picked[0]) && std::isnan(picked[1]) && std::isnan(picked[2]) && !std::isnan(picked[3]);
        for (int j = 0; j < k; ++j) ok = ok && !std::isnan(placed[j]) && std::isnan(placed[k + j]) && std::isnan(placed[2 * k + j]) && !std::isnan(placed[3 * k + j]);
        if (!ok) { printf("FAIL row_pick/place bad index\n"); ++failures; }
    }
    printf("pool done, %d failures\n", failures);
}

void layout_checks() {
    // n, r, c, and how many block rows stride over the n matrices.
    int cases[][4] = {{1, 1, 1, 1}, {3, 33, 65, 3}, {3, 33, 65, 2}, {2, 70, 31, 2}, {1, 5, 1, 1}, {1, 1, 40, 1}, {2, 32, 32, 1}, {1, 64, 96, 1}};
    for (auto& k : cases) {
        long long n = k[0]; int r = k[1], c = k[2];
        auto x = randn(n * r * c); std::vector<float> out(x.size(), NAN); std::vector<double> want(x.size());
        for (long long b = 0; b < n; ++b) for (int i = 0; i < r; ++i) for (int j = 0; j < c; ++j) want[(b * c + j) * r + i] = x[(b * r + i) * c + j];
        unsigned tiles = ((r + 31) / 32) * ((c + 31) / 32);
        launch(dim3{tiles, (unsigned)k[3]}, dim3{32, 8}, [&] { transpose(x.data(), out.data(), n, r, c); });
        char w[64]; snprintf(w, 64, "transpose n%lld r%d c%d by%d", n, r, c, k[3]); check(w, out, want, 0);
    }
    printf("layout done, %d failures\n", failures);
}

void mul_checks() {
    int E = 3, rows = 7, n = 45; long long total = (long long)E * rows * n;
    auto a = randn(total);
    for (int mode = 0; mode < 3; ++mode) {
        // mode 0: same shape; 1: one row per member; 2: one row for all.
        int members = mode == 1 ? E : 1;
        auto b = randn(mode == 0 ? total : members * n);
        std::vector<float> out(total, NAN); std::vector<double> want(total);
        for (long long i = 0; i < total; ++i) {
            long long row = i / n, m = members == 1 ? 0 : row / rows;
            want[i] = (double)a[i] * (mode == 0 ? b[i] : b[m * n + i % n]);
        }
        launch_1d(total, [&] { mul(a.data(), b.data(), out.data(), total, n, rows, members, mode != 0); });
        char w[32]; snprintf(w, 32, "mul mode%d", mode); check(w, out, want, 1e-7);
    }
    printf("mul done, %d failures\n", failures);
}

// One warp per row (8 rows per block) or one block per row, as
// src/backend/cuda/norm.rs launches them.
template <class F> void launch_norm(long long nrows, int warp_rows, F f) {
    launch(dim3{(unsigned)(warp_rows ? (nrows + 7) / 8 : nrows)}, dim3{256}, f);
}

double dot(const std::vector<double>& a, const std::vector<double>& b) { double s = 0; for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i]; return s; }
double mean(const std::vector<double>& a, bool center) { if (!center) return 0; double s = 0; for (double v : a) s += v; return s / a.size(); }
std::vector<double> j_ref(const std::vector<double>& y, double s, const std::vector<double>& t, bool center) {
    double mt = mean(t, center), yt = dot(y, t) / y.size(); std::vector<double> o(y.size());
    for (size_t k = 0; k < y.size(); ++k) o[k] = s * (t[k] - mt - y[k] * yt);
    return o;
}
std::vector<double> row(const std::vector<float>& v, long long r, int c) { return std::vector<double>(v.begin() + r * c, v.begin() + (r + 1) * c); }

// norm_rows against the definitions in double; the two Jacobian products
// against the formulas of the trait's documentation, evaluated in double on
// the kernel's own (float) y and s.
void norm_case(long long nrows, int c, int center, int warp_rows) {
    auto x = randn(nrows * c); for (auto& v : x) v = 2 * v + 1.5f;
    auto t = randn(nrows * c), g = randn(nrows * c);
    std::vector<float> y(nrows * c, NAN), s(nrows, NAN), jt(nrows * c, NAN), sec(nrows * c, NAN);
    float eps = 1e-5f;
    launch_norm(nrows, warp_rows, [&] { norm_rows(x.data(), y.data(), s.data(), nrows, c, center, eps, warp_rows); });
    launch_norm(nrows, warp_rows, [&] { norm_rows_j(y.data(), s.data(), t.data(), jt.data(), nrows, c, center, warp_rows); });
    launch_norm(nrows, warp_rows, [&] { norm_rows_second(y.data(), s.data(), g.data(), t.data(), sec.data(), nrows, c, center, warp_rows); });
    std::vector<double> wy(nrows * c), ws(nrows), wj(nrows * c), wsec(nrows * c);
    for (long long r = 0; r < nrows; ++r) {
        auto xr = row(x, r, c); double mu = mean(xr, center), var = 0;
        for (double v : xr) var += (v - mu) * (v - mu);
        ws[r] = 1 / std::sqrt(var / c + eps);
        for (int k = 0; k < c; ++k) wy[r * c + k] = (xr[k] - mu) * ws[r];
        auto yr = row(y, r, c), tr = row(t, r, c), gr = row(g, r, c);
        auto jx = j_ref(yr, s[r], tr, center), jg = j_ref(yr, s[r], gr, center);
        double yx = dot(yr, tr), yg = dot(yr, gr), jxg = dot(jx, gr);
        for (int k = 0; k < c; ++k) {
            wj[r * c + k] = jx[k];
            wsec[r * c + k] = -s[r] / c * (yx * jg[k] + yg * jx[k] + jxg * yr[k]);
        }
    }
    char w[96]; snprintf(w, 96, "norm rows%lld c%d center%d warp%d", nrows, c, center, warp_rows);
    check((std::string(w) + " y").c_str(), y, wy, 1e-5); check((std::string(w) + " s").c_str(), s, ws, 1e-5);
    // A single uncentered entry has y = x / sqrt(x^2 + eps), so J = s (1 - y^2)
    // is eps-small and all f32 cancellation: no kernel computes it to 1e-5.
    if (c == 1 && !center) return;
    check((std::string(w) + " j").c_str(), jt, wj, 1e-5); check((std::string(w) + " second").c_str(), sec, wsec, 1e-5);
}

void norm_checks() {
    // Rows shorter and longer than a warp and than a block, in both modes.
    for (int c : {1, 7, 32, 45, 300, 1025, 3000}) for (int center = 0; center < 2; ++center)
        for (int warp_rows = 0; warp_rows < 2; ++warp_rows) norm_case(c > 1000 ? 3 : 9, c, center, warp_rows);
    printf("norm done, %d failures\n", failures);
}

// The largest errors the softmax checks measured, per kernel.
double softmax_err[3];

// softmax_rows against its definition in double; the two products against
// the trait's formulas evaluated in double on the kernel's own (float) y.
// Every third row is shifted by 100, where exp without the maximum
// subtracted overflows f32. Causal rows r keep columns 0..=(r mod c), so
// nrows past c checks the wrap into the next score matrix; the masked
// entries of y and of both products (y = 0 there) must be exactly 0. With
// `only` just the blocks holding those rows run and are checked (blocks own
// whole rows and are independent), for grids too large to emulate whole.
void softmax_case(long long nrows, int c, int causal, int warp_rows, std::vector<long long> only = {}) {
    auto x = randn(nrows * c); for (auto& v : x) v *= 3;
    for (long long r = 0; r < nrows; r += 3) for (int k = 0; k < c; ++k) x[r * c + k] += 100;
    auto t = randn(nrows * c), g = randn(nrows * c);
    std::vector<float> y(nrows * c, NAN), jt(nrows * c, NAN), sec(nrows * c, NAN);
    std::vector<unsigned> blocks;
    for (long long r : only) blocks.push_back((unsigned)(warp_rows ? r / 8 : r));
    std::vector<long long> rows;
    for (long long r = 0; r < nrows; ++r) {
        bool ran = only.empty() || std::count(blocks.begin(), blocks.end(), (unsigned)(warp_rows ? r / 8 : r));
        if (ran) rows.push_back(r);
    }
    const std::vector<unsigned>* sel = only.empty() ? nullptr : &blocks;
    dim3 grid{(unsigned)(warp_rows ? (nrows + 7) / 8 : nrows)}, block{256};
    launch(grid, block, [&] { softmax_rows(x.data(), y.data(), nrows, c, causal, warp_rows); }, sel);
    launch(grid, block, [&] { softmax_rows_j(y.data(), t.data(), jt.data(), nrows, c, warp_rows); }, sel);
    launch(grid, block, [&] { softmax_rows_second(y.data(), g.data(), t.data(), sec.data(), nrows, c, warp_rows); }, sel);
    std::vector<float> gy, gj, gs;
    std::vector<double> wy, wj, wsec;
    long long masked_nonzero = 0;
    for (long long r : rows) {
        int keep = causal ? (int)(r % c) + 1 : c;
        auto xr = row(x, r, c); double mx = xr[0], sum = 0;
        for (int k = 0; k < keep; ++k) mx = std::max(mx, xr[k]);
        for (int k = 0; k < keep; ++k) sum += std::exp(xr[k] - mx);
        for (int k = 0; k < c; ++k) wy.push_back(k < keep ? std::exp(xr[k] - mx) / sum : 0.0);
        auto yr = row(y, r, c), tr = row(t, r, c), gr = row(g, r, c);
        double yt = dot(yr, tr), yg = dot(yr, gr);
        std::vector<double> yd(c);
        for (int k = 0; k < c; ++k) { yd[k] = yr[k] * (tr[k] - yt); wj.push_back(yd[k]); }
        double ydg = dot(yd, gr);
        for (int k = 0; k < c; ++k) wsec.push_back(yd[k] * (gr[k] - yg) - yr[k] * ydg);
        for (int k = 0; k < c; ++k) { gy.push_back(y[r * c + k]); gj.push_back(jt[r * c + k]); gs.push_back(sec[r * c + k]); }
        for (int k = keep; k < c; ++k) masked_nonzero += y[r * c + k] != 0 || jt[r * c + k] != 0 || sec[r * c + k] != 0;
    }
    char w[96]; snprintf(w, 96, "softmax rows%lld (%zu run) c%d causal%d warp%d", nrows, rows.size(), c, causal, warp_rows);
    if (masked_nonzero) { printf("FAIL %s: %lld masked entries not 0\n", w, masked_nonzero); ++failures; }
    double e[3] = {check((std::string(w) + " y").c_str(), gy, wy, 1e-5), check((std::string(w) + " j").c_str(), gj, wj, 1e-5),
                   check((std::string(w) + " second").c_str(), gs, wsec, 1e-5)};
    for (int i = 0; i < 3; ++i) softmax_err[i] = std::max(softmax_err[i], e[i]);
}

void softmax_checks() {
    // Rows shorter and longer than a warp and than a block, up to the
    // longest a warp takes (1024) and past it, in both launch modes.
    for (int c : {1, 7, 32, 45, 300, 1024, 1025, 3000}) for (int warp_rows = 0; warp_rows < 2; ++warp_rows) {
        softmax_case(c > 1000 ? 3 : 9, c, 0, warp_rows);
        // Causal over two c x c matrices and a bit: every kept length 1..c
        // and the wrap into the next matrix, all rows for warps up to c =
        // 45; otherwise (each block an emulated row costs 256 threads) only
        // the rows of the first and last few kept lengths and of the wrap.
        long long nrows = 2LL * c + 3;
        std::vector<long long> only;
        if (c > 45 || (!warp_rows && c > 7))
            for (long long r : {0LL, 1LL, 2LL, 8LL, c - 2LL, c - 1LL, (long long)c, c + 1LL, 2LL * c + 2}) only.push_back(r);
        softmax_case(nrows, c, 1, warp_rows, only);
    }
    printf("softmax done, %d failures; max rel err y %.3g, j %.3g, second %.3g\n", failures, softmax_err[0], softmax_err[1], softmax_err[2]);
}

int main() {
    struct { const char* name; Kern k; int tile, threads; double tol; } kinds[] = {
        {"simt", gemm_simt, 128, 256, 1e-5}, {"simt64", gemm_simt_64, 64, 256, 1e-5},
        {"tf32", gemm_tc_tf32, 64, 128, 5e-3}, {"bf16", gemm_tc_bf16, 64, 128, 3e-2}};
    int sizes[][3] = {{1, 1, 1}, {5, 7, 3}, {70, 65, 19}, {130, 129, 33}};
    for (auto& kd : kinds) for (auto& s : sizes) for (int ab = 0; ab < 3; ++ab) for (int t = 0; t < 4; ++t) {
        int ea = ab == 1 ? 1 : 2, eb = ab == 2 ? 1 : 2;
        gemm_case(kd.name, kd.k, kd.tile, kd.threads, s[0], s[1], s[2], ea, eb, t & 1, t & 2, kd.tol);
    }
    printf("gemm done, %d failures\n", failures);

    // sum_rows two-stage and one-stage.
    for (int rows : {1, 31, 50, 700}) for (int n : {1, 33, 70}) {
        int E = 3; auto x = randn((size_t)E * rows * n);
        std::vector<double> want((size_t)E * n, 0);
        for (int e = 0; e < E; ++e) for (int r = 0; r < rows; ++r) for (int j = 0; j < n; ++j) want[e * n + j] += 0.5 * x[((size_t)e * rows + r) * n + j];
        int chunks = std::clamp((rows + 31) / 32, 1, 64);
        std::vector<float> out((size_t)E * n, NAN);
        if (chunks == 1) {
            launch(dim3{(unsigned)((E * n + 255) / 256)}, dim3{256}, [&] { sum_rows(x.data(), out.data(), E, rows, n, 0.5f); });
        } else {
            int per = (rows + chunks - 1) / chunks;
            std::vector<float> part((size_t)E * chunks * n, NAN);
            launch(dim3{(unsigned)((n + 31) / 32), (unsigned)chunks, (unsigned)E}, dim3{32, 8, 1}, [&] { sum_rows_partial(x.data(), part.data(), rows, n, per); });
            launch(dim3{(unsigned)((E * n + 255) / 256)}, dim3{256}, [&] { sum_rows(part.data(), out.data(), E, chunks, n, 0.5f); });
        }
        char w[64]; snprintf(w, 64, "sum_rows rows%d n%d", rows, n); check(w, out, want, 1e-5);
    }
    // row_sq_norms
    for (int n : {1, 31, 100}) for (int nrows : {1, 9, 17}) {
        auto x = randn((size_t)nrows * n); std::vector<float> out(nrows, NAN); std::vector<double> want(nrows, 0);
        for (int r = 0; r < nrows; ++r) for (int j = 0; j < n; ++j) want[r] += (double)x[r * n + j] * x[r * n + j];
        launch(dim3{(unsigned)((nrows + 7) / 8)}, dim3{256}, [&] { row_sq_norms(x.data(), out.data(), nrows, n); });
        char w[64]; snprintf(w, 64, "row_sq_norms n%d rows%d", n, nrows); check(w, out, want, 1e-5);
    }
    // member sums, every mode, several partial counts.
    for (long long per : {1LL, 300LL, 5000LL}) for (int mode = 0; mode < 4; ++mode) {
        int E = 3; auto a = randn(E * per), b = randn(E * per);
        int parts = (int)std::clamp((per + 1023) / 1024, 1LL, 1024LL);
        std::vector<double> partials((size_t)E * parts, NAN), outd(E, NAN); std::vector<float> outf(E, NAN);
        launch(dim3{(unsigned)parts, (unsigned)E}, dim3{256}, [&] { member_partials(a.data(), b.data(), partials.data(), per, mode); });
        launch(dim3{(unsigned)E}, dim3{256}, [&] { member_finish(partials.data(), parts, 2.0, outd.data(), outf.data()); });
        std::vector<double> want(E, 0);
        for (int e = 0; e < E; ++e) for (long long i = 0; i < per; ++i) { double v = a[e * per + i]; want[e] += mode == 0 ? v * b[e * per + i] : mode == 1 ? v * v : mode == 2 ? std::fabs(v) : v; }
        for (auto& w : want) w *= 2.0;
        std::vector<float> od(outd.begin(), outd.end());
        char w[64]; snprintf(w, 64, "member mode%d per%lld", mode, per); check(w, od, want, 1e-6); check(w, outf, want, 1e-6);
    }
    // argmax hits
    {
        int E = 2, rows = 13, k = 5; auto f = randn(E * rows * k); std::vector<float> labels(rows), hit(E * rows, NAN);
        for (int r = 0; r < rows; ++r) labels[r] = r % k;
        launch(dim3{1}, dim3{256}, [&] { argmax_hits(f.data(), labels.data(), hit.data(), E * rows, rows, k); });
        std::vector<double> want(E * rows);
        for (int r = 0; r < E * rows; ++r) { int best = 0; for (int j = 1; j < k; ++j) if (f[r * k + j] > f[r * k + best]) best = j; want[r] = best == (int)labels[r % rows]; }
        check("argmax", hit, want, 0);
    }
    // cross-entropy loss, gradient and hvp.
    for (int k : {1, 10, 77}) {
        int E = 2, rows = 11; long long nrows = E * rows; auto f = randn(nrows * k), d = randn(nrows * k);
        std::vector<float> labels(rows); for (int r = 0; r < rows; ++r) labels[r] = (r * 7) % k;
        std::vector<float> grad(nrows * k, NAN), rl(nrows, NAN), hv(nrows * k, NAN);
        float inv_b = 1.0f / rows;
        launch(dim3{(unsigned)((nrows + 7) / 8)}, dim3{256}, [&] { ce_loss(f.data(), labels.data(), grad.data(), rl.data(), nrows, rows, k, inv_b); });
        launch(dim3{(unsigned)((nrows + 7) / 8)}, dim3{256}, [&] { ce_hvp(f.data(), d.data(), hv.data(), nrows, k, inv_b); });
        std::vector<double> wg(nrows * k), wl(nrows), wh(nrows * k);
        for (int r = 0; r < nrows; ++r) {
            double mx = -1e30; for (int j = 0; j < k; ++j) mx = std::max(mx, (double)f[r * k + j]);
            double s = 0; for (int j = 0; j < k; ++j) s += std::exp(f[r * k + j] - mx);
            int lab = (int)labels[r % rows]; double pd = 0;
            for (int j = 0; j < k; ++j) { double p = std::exp(f[r * k + j] - mx) / s; wg[r * k + j] = (p - (j == lab)) / rows; pd += p * d[r * k + j]; }
            for (int j = 0; j < k; ++j) { double p = std::exp(f[r * k + j] - mx) / s; wh[r * k + j] = p * (d[r * k + j] - pd) / rows; }
            wl[r] = mx + std::log(s) - f[r * k + lab];
        }
        char w[64]; snprintf(w, 64, "ce k%d", k); check(w, grad, wg, 1e-5); check(w, rl, wl, 1e-5); check(w, hv, wh, 1e-5);
        // A bad label gives NaN.
        labels[3] = k; launch(dim3{(unsigned)((nrows + 7) / 8)}, dim3{256}, [&] { ce_loss(f.data(), labels.data(), grad.data(), rl.data(), nrows, rows, k, inv_b); });
        if (!std::isnan(rl[3]) || std::isnan(rl[2])) { printf("FAIL bad label handling k%d\n", k); ++failures; }
    }
    // bias + activation: bias per member or shared; reference with the same
    // formulas in double.
    for (int act = 0; act <= 6; ++act) for (int members : {1, 3}) {
        int E = 3, rows = 7, n = 45; long long total = (long long)E * rows * n;
        auto z = randn(total), bias = randn(members * n);
        std::vector<float> pre(total, NAN), post(total, NAN);
        launch(dim3{(unsigned)((total + 255) / 256)}, dim3{256}, [&] { bias_act(z.data(), bias.data(), pre.data(), post.data(), total, n, rows, members, 1, 0.3f, act); });
        std::vector<double> wpre(total), wpost(total);
        for (long long i = 0; i < total; ++i) {
            long long row = i / n, col = i % n, m = members == 1 ? 0 : row / rows;
            double x = z[i] + 0.3 * bias[m * n + col];
            wpre[i] = x;
            double sg = 1 / (1 + std::exp(-x));
            wpost[i] = act == 1 ? std::max(x, 0.0) : act == 2 ? std::tanh(x) : act == 3 ? 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)))
                     : act == 4 ? x * sg : act == 5 ? (x > 0 ? x : std::exp(x) - 1) : act == 6 ? std::log1p(std::exp(x)) : x;
        }
        char w[64]; snprintf(w, 64, "bias_act act%d members%d", act, members); check(w, pre, wpre, 1e-6); check(w, post, wpost, 1e-5);
    }
    // SGD with per-member learning rates and momentum; Adam.
    {
        int E = 3; long long per = 300, total = E * per;
        auto p0 = randn(total), g = randn(total), b0 = randn(total);
        float lrs[3] = {0.1f, 0.03f, 0.2f};
        for (int nesterov = 0; nesterov < 2; ++nesterov) {
            auto p = p0, b = b0;
            launch(dim3{(unsigned)((total + 255) / 256)}, dim3{256}, [&] { sgd_update(p.data(), g.data(), b.data(), lrs, 0.0f, total, per, 0.9f, 1, nesterov, 0.01f); });
            std::vector<double> wp(total), wb(total);
            for (long long i = 0; i < total; ++i) {
                double l = lrs[i / per], gi = g[i] + 0.01 * p0[i], bi = 0.9 * b0[i] + gi;
                wb[i] = bi; wp[i] = p0[i] - l * (nesterov ? gi + 0.9 * bi : bi);
            }
            check("sgd p", p, wp, 1e-6); check("sgd buf", b, wb, 1e-6);
        }
        auto p = p0; std::vector<float> m(total, 0.1f), v(total, 0.2f);
        launch(dim3{(unsigned)((total + 255) / 256)}, dim3{256}, [&] { adam_update(p.data(), g.data(), m.data(), v.data(), nullptr, 0.01f, total, per, 0.9f, 0.999f, 1e-8f, 0.05f, 1, 0.1f, 0.0316f); });
        std::vector<double> wp(total);
        for (long long i = 0; i < total; ++i) {
            double w = p0[i] * (1 - 0.01 * 0.05), mi = 0.9 * 0.1 + 0.1 * g[i], vi = 0.999 * 0.2 + 0.001 * g[i] * g[i];
            wp[i] = w - 0.01 / 0.1 * mi / (std::sqrt(vi) / 0.0316 + 1e-8);
        }
        check("adamw p", p, wp, 1e-5);
    }
    conv_checks();
    pool_checks();
    layout_checks();
    mul_checks();
    norm_checks();
    softmax_checks();
    printf("%d failures\n", failures);
    return failures != 0;
}
