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
#include <cstdio>
#include <random>

static std::mt19937 rng(1);
std::vector<float> randn(size_t n) { std::normal_distribution<float> d; std::vector<float> v(n); for (auto& x : v) x = d(rng); return v; }
int failures = 0;
void check(const char* what, const std::vector<float>& got, const std::vector<double>& want, double tol) {
    double mx = 1e-30, err = 0;
    for (size_t i = 0; i < want.size(); ++i) { mx = std::max(mx, std::fabs(want[i])); double e = std::fabs(got[i] - want[i]); if (!(e <= err)) err = std::isnan(e) ? INFINITY : std::max(err, e); }
    double rel = err / mx;
    if (!(rel <= tol)) { printf("FAIL %s: rel %g > %g\n", what, rel, tol); ++failures; }
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
    printf("%d failures\n", failures);
    return failures != 0;
}
