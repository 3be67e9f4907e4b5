// CPU emulation of the CUDA execution model for testing kernel index math:
// one std::thread per CUDA thread, blocks run one after another, a
// std::barrier per block for __syncthreads and per warp for shuffles.
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>
#include <algorithm>
using std::min; using std::max;
struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
std::barrier<>* g_bar;
struct Warp { std::unique_ptr<std::barrier<>> bar; uint64_t buf[32][8]; };
std::vector<Warp>* g_warps;
inline void __syncthreads() { g_bar->arrive_and_wait(); }
inline int linear_tid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
template <class T> T __shfl_xor_sync(unsigned, T v, int o) {
    int tid = linear_tid(); Warp& w = (*g_warps)[tid / 32]; int lane = tid % 32;
    std::memcpy(&w.buf[lane][0], &v, sizeof(T));
    w.bar->arrive_and_wait();
    T r; std::memcpy(&r, &w.buf[lane ^ o][0], sizeof(T));
    w.bar->arrive_and_wait();
    return r;
}
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __int_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
struct float4 { float x, y, z, w; };
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __restrict__ __restrict
// mma emulation: lanes post their registers, then each computes its outputs.
inline float tf32_val(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline float bf16_val(unsigned h) { unsigned u = h << 16; float f; std::memcpy(&f, &u, 4); return f; }
inline void emu_mma(float* d, const unsigned* a, const unsigned* b, bool bf16) {
    int tid = linear_tid(); Warp& w = (*g_warps)[tid / 32]; int lane = tid % 32;
    for (int i = 0; i < 4; ++i) w.buf[lane][i] = a[i];
    w.buf[lane][4] = b[0]; w.buf[lane][5] = b[1];
    w.bar->arrive_and_wait();
    int K = bf16 ? 16 : 8;
    float A[16][16] = {}, B[16][8] = {};
    for (int L = 0; L < 32; ++L) {
        int g = L / 4, t = L % 4;
        unsigned r[6]; for (int i = 0; i < 6; ++i) r[i] = (unsigned)w.buf[L][i];
        if (!bf16) {
            A[g][t] = tf32_val(r[0]); A[g + 8][t] = tf32_val(r[1]);
            A[g][t + 4] = tf32_val(r[2]); A[g + 8][t + 4] = tf32_val(r[3]);
            B[t][g] = tf32_val(r[4]); B[t + 4][g] = tf32_val(r[5]);
        } else {
            auto lo = [](unsigned x) { return bf16_val(x & 0xffff); };
            auto hi = [](unsigned x) { return bf16_val(x >> 16); };
            A[g][2*t] = lo(r[0]); A[g][2*t+1] = hi(r[0]);
            A[g+8][2*t] = lo(r[1]); A[g+8][2*t+1] = hi(r[1]);
            A[g][2*t+8] = lo(r[2]); A[g][2*t+9] = hi(r[2]);
            A[g+8][2*t+8] = lo(r[3]); A[g+8][2*t+9] = hi(r[3]);
            B[2*t][g] = lo(r[4]); B[2*t+1][g] = hi(r[4]);
            B[2*t+8][g] = lo(r[5]); B[2*t+9][g] = hi(r[5]);
        }
    }
    w.bar->arrive_and_wait();
    int g = lane / 4, t = lane % 4;
    for (int q = 0; q < 4; ++q) {
        int row = g + (q >= 2 ? 8 : 0), col = 2 * t + (q & 1);
        float s = 0; for (int k = 0; k < K; ++k) s += A[row][k] * B[k][col];
        d[q] += s;
    }
}
// Runs every block of the grid, or with `only_x` just the blocks of those x
// indices (the others are skipped, as if their threads exited at once: for
// kernels whose blocks are independent, to check a few blocks of a grid too
// large to emulate whole).
template <class F> void launch(dim3 grid, dim3 block, F f, const std::vector<unsigned>* only_x = nullptr) {
    gridDim = grid; blockDim = block;
    int nt = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) {
        if (only_x && std::find(only_x->begin(), only_x->end(), bx) == only_x->end()) continue;
        std::barrier<> bar(nt); g_bar = &bar;
        std::vector<Warp> warps((nt + 31) / 32);
        for (size_t w = 0; w < warps.size(); ++w)
            warps[w].bar = std::make_unique<std::barrier<>>(std::min(32, nt - (int)w * 32));
        g_warps = &warps;
        std::vector<std::thread> ts;
        for (int i = 0; i < nt; ++i) {
            ts.emplace_back([=] {
                threadIdx = {unsigned(i % block.x), unsigned((i / block.x) % block.y), unsigned(i / (block.x * block.y))};
                blockIdx = {bx, by, bz};
                f();
            });
        }
        for (auto& t : ts) t.join();
    }
}
