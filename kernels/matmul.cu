// Batched GEMM: C[b] = alpha * op(A)[b] @ op(B)[b], C row-major M x N.
// op(A) and op(B) are described by strides, so transposes and the broadcast of
// a rank-2 operand over the ensemble (batch stride 0) cost nothing: element
// (m, k) of op(A) in batch b is A[b * a_bs + m * a_rs + k * a_cs], element
// (k, n) of op(B) is B[b * b_bs + k * b_rs + n * b_cs]. Grid: x over column
// tiles, y over row tiles, z over the batch. Every global access is bounds
// checked; out-of-range tile elements load as zero, so any M, N, K works.
//
// Two families:
//  - gemm_simt / gemm_simt_64: fp32 FMA, 128 x 128 (64 x 64) x 8 block
//    tile, 256 threads, 8 x 8 (4 x 4) outputs per thread held in registers;
//    shared tiles are read as float4.
//  - gemm_tc_tf32 / gemm_tc_bf16: tensor cores through mma.sync (sm_80+),
//    64 x 64 x 16 block tile, 4 warps of 32 x 32, fp32 accumulate. Shared
//    tiles stay fp32; operands are rounded to TF32 / BF16 when fragments are
//    built, so one load path serves both precisions.
// All four share the global-to-register-to-shared tile loader (TileOperand)
// and the bounds-checked output store (store_c); each kernel states its tile
// sizes, shared layout, inner product and accumulator layout. (The K loop
// stays written out in each kernel: moved into a shared function taking the
// inner product as a lambda, gemm_simt spilled on sm_90.)

#include "common.cuh"

// One operand's share of a block tile: ROWS x BK elements of op(A) (rows are
// m) or of op(B) (rows are n), each of THREADS threads holding L of them in
// registers between the global load and the shared store. The shared tile
// is [2][BK][ROWS] when K_MAJOR, else [2][ROWS][BK + padding].
template <int ROWS, int BK, int THREADS, bool K_MAJOR>
struct TileOperand {
    static_assert((ROWS * BK) % THREADS == 0, "even loads");
    static constexpr int L = (ROWS * BK) / THREADS;
    float reg[L];

    // Element r of this thread's share: (kk, rr). Consecutive threads walk
    // the operand's contiguous dimension (k when k_contig) so global loads
    // coalesce.
    __device__ __forceinline__ static void at(int r, bool k_contig, int& kk, int& rr) {
        int i = (int)threadIdx.x + r * THREADS;
        if (k_contig) {
            kk = i % BK;
            rr = i / BK;
        } else {
            rr = i % ROWS;
            kk = i / ROWS;
        }
    }

    // Rows r0.. (of `rows`) and k0.. (of K) of X, element (row, k) at
    // X[row * rs + k * ks].
    __device__ __forceinline__ void load(const float* __restrict__ X, long long rs, long long ks,
                                         bool k_contig, int r0, int rows, int k0, int K) {
#pragma unroll
        for (int r = 0; r < L; ++r) {
            int kk, rr;
            at(r, k_contig, kk, rr);
            int row = r0 + rr, k = k0 + kk;
            reg[r] = (row < rows && k < K) ? X[(long long)row * rs + (long long)k * ks] : 0.0f;
        }
    }

    template <class Shared>
    __device__ __forceinline__ void store(Shared& s, int buf, bool k_contig) const {
#pragma unroll
        for (int r = 0; r < L; ++r) {
            int kk, rr;
            at(r, k_contig, kk, rr);
            if constexpr (K_MAJOR) {
                s[buf][kk][rr] = reg[r];
            } else {
                s[buf][rr][kk] = reg[r];
            }
        }
    }
};

// Cb: this batch's C.
__device__ __forceinline__ void store_c(float* Cb, int M, int N, int m, int n, float alpha, float v) {
    if (m < M && n < N) {
        Cb[(long long)m * N + n] = alpha * v;
    }
}

#define S_BK 8
#define S_THREADS 256

// One BM x BN output tile per block of 256 threads laid out 16 x 16, each
// thread accumulating a TM x TN sub-tile in registers over K in steps of 8.
template <int BM, int BN, int TM, int TN>
__device__ __forceinline__ void gemm_simt_tile(const float* __restrict__ A, const float* __restrict__ B,
                                               float* __restrict__ C, int M, int N, int K,
                                               long long a_rs, long long a_cs, long long a_bs,
                                               long long b_rs, long long b_cs, long long b_bs,
                                               float alpha) {
    static_assert((BM / TM) * (BN / TN) == S_THREADS, "one sub-tile per thread");
    static_assert(TM % 4 == 0 && TN % 4 == 0, "sub-tiles are read as float4");
    // As[buf][k][m], Bs[buf][k][n]: each thread reads TM (TN) consecutive m
    // (n) values of one k row as float4s. Two buffers: the next K step is
    // loaded from global memory into registers while this one is computed,
    // then stored into the other buffer.
    __shared__ __align__(16) float As[2][S_BK][BM];
    __shared__ __align__(16) float Bs[2][S_BK][BN];
    using OpA = TileOperand<BM, S_BK, S_THREADS, true>;
    using OpB = TileOperand<BN, S_BK, S_THREADS, true>;

    const long long batch = blockIdx.z;
    float* Cb = C + batch * (long long)M * (long long)N;
    const int m0 = blockIdx.y * BM;
    const int n0 = blockIdx.x * BN;
    const int tid = threadIdx.x;
    const int tr = tid / (BN / TN);
    const int tc = tid % (BN / TN);

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            acc[i][j] = 0.0f;
        }
    }

    const float* Ab = A + batch * a_bs;
    const float* Bb = B + batch * b_bs;
    OpA ta;
    OpB tb;
    auto load_global = [&](int k0) {
        ta.load(Ab, a_rs, a_cs, a_cs == 1, m0, M, k0, K);
        tb.load(Bb, b_cs, b_rs, b_cs != 1, n0, N, k0, K);
    };
    auto store_shared = [&](int buf) {
        ta.store(As, buf, a_cs == 1);
        tb.store(Bs, buf, b_cs != 1);
    };

    load_global(0);
    store_shared(0);
    __syncthreads();
    int buf = 0;
    for (int k0 = 0; k0 < K; k0 += S_BK) {
        const bool more = k0 + S_BK < K;  // block-uniform: all reach the barrier
        if (more) {
            load_global(k0 + S_BK);
        }
#pragma unroll
        for (int kk = 0; kk < S_BK; ++kk) {
            float a[TM], b[TN];
#pragma unroll
            for (int q = 0; q < TM / 4; ++q) {
                float4 v = *reinterpret_cast<const float4*>(&As[buf][kk][tr * TM + 4 * q]);
                a[4 * q] = v.x;
                a[4 * q + 1] = v.y;
                a[4 * q + 2] = v.z;
                a[4 * q + 3] = v.w;
            }
#pragma unroll
            for (int q = 0; q < TN / 4; ++q) {
                float4 v = *reinterpret_cast<const float4*>(&Bs[buf][kk][tc * TN + 4 * q]);
                b[4 * q] = v.x;
                b[4 * q + 1] = v.y;
                b[4 * q + 2] = v.z;
                b[4 * q + 3] = v.w;
            }
#pragma unroll
            for (int i = 0; i < TM; ++i) {
#pragma unroll
                for (int j = 0; j < TN; ++j) {
                    acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
                }
            }
        }
        // The other buffer was last read before the previous barrier, so it
        // is free to fill; the barrier makes it visible before it is read.
        if (more) {
            store_shared(buf ^ 1);
        }
        __syncthreads();
        buf ^= 1;
    }

#pragma unroll
    for (int i = 0; i < TM; ++i) {
        int m = m0 + tr * TM + i;
        if (m < M) {
#pragma unroll
            for (int j = 0; j < TN; ++j) {
                store_c(Cb, M, N, m, n0 + tc * TN + j, alpha, acc[i][j]);
            }
        }
    }
}

// 128 x 128 tiles, 8 x 8 per thread: the throughput kernel. Two blocks per
// SM (at most 128 registers per thread) keep one block computing while the
// other waits at a barrier.
extern "C" __global__ void __launch_bounds__(S_THREADS, 2)
gemm_simt(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
          int M, int N, int K,
          long long a_rs, long long a_cs, long long a_bs,
          long long b_rs, long long b_cs, long long b_bs,
          float alpha) {
    gemm_simt_tile<128, 128, 8, 8>(A, B, C, M, N, K, a_rs, a_cs, a_bs, b_rs, b_cs, b_bs, alpha);
}

// 64 x 64 tiles, 4 x 4 per thread: four times the blocks, for products too
// small to fill the GPU with 128 x 128 tiles.
extern "C" __global__ void __launch_bounds__(S_THREADS)
gemm_simt_64(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
             int M, int N, int K,
             long long a_rs, long long a_cs, long long a_bs,
             long long b_rs, long long b_cs, long long b_bs,
             float alpha) {
    gemm_simt_tile<64, 64, 4, 4>(A, B, C, M, N, K, a_rs, a_cs, a_bs, b_rs, b_cs, b_bs, alpha);
}

// The tensor-core kernels need sm_80 (mma.sync with TF32 / BF16 inputs);
// compiled for an older GPU the module holds the SIMT kernels only (the
// backend refuses tensor-core GEMM kinds there).
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800

#define T_BM 64
#define T_BN 64
#define T_BK 16
#define T_PAD 4  // row length 20 floats: fragment reads hit 32 distinct banks
#define T_THREADS 128

// Round to TF32 (10-bit mantissa), nearest with ties away, as cuBLAS does.
__device__ __forceinline__ unsigned to_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

// Round to BF16, nearest even (finite inputs; NaN stays NaN or becomes inf
// only if its payload sits in the dropped bits, which finite data never has).
__device__ __forceinline__ unsigned bf16_bits(float x) {
    unsigned u = __float_as_uint(x);
    u += 0x7fffu + ((u >> 16) & 1u);
    return u >> 16;
}

// Two BF16 in one register: `lo` (the smaller k index) in bits 0..15.
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    return bf16_bits(lo) | (bf16_bits(hi) << 16);
}

__device__ __forceinline__ void mma_tf32(float* d, const unsigned* a, const unsigned* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void mma_bf16(float* d, const unsigned* a, const unsigned* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// The two MMA shapes, as gemm_tc uses them: KSTEP, the k extent of one mma;
// k_of(t), the first k of lane group t's fragments; frag(row, k), the register holding this lane's operand element(s) at
// (row, k) of a k-contiguous fp32 shared row (one TF32, or the BF16 pair k,
// k + 1); HALF, the k offset of a fragment's second register; mma, the
// instruction. Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k8"
// / "mma.m16n8k16"), g = lane / 4, t = lane % 4:
//  - TF32 m16n8k8: a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4);
//    b0 (k t, n g), b1 (k t+4, n g).
//  - BF16 m16n8k16: a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..),
//    a3 (g+8, 2t+8..); b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g); lower k in
//    the low half.
struct MmaTf32 {
    static constexpr int KSTEP = 8;
    static constexpr int HALF = 4;
    __device__ __forceinline__ static int k_of(int t) { return t; }
    __device__ __forceinline__ static unsigned frag(const float* row, int k) { return to_tf32(row[k]); }
    __device__ __forceinline__ static void mma(float* d, const unsigned* a, const unsigned* b) {
        mma_tf32(d, a, b);
    }
};

struct MmaBf16 {
    static constexpr int KSTEP = 16;
    static constexpr int HALF = 8;
    __device__ __forceinline__ static int k_of(int t) { return 2 * t; }
    __device__ __forceinline__ static unsigned frag(const float* row, int k) {
        return pack_bf16(row[k], row[k + 1]);
    }
    __device__ __forceinline__ static void mma(float* d, const unsigned* a, const unsigned* b) {
        mma_bf16(d, a, b);
    }
};

// 64 x 64 output tile per block of 4 warps, each warp a 32 x 32 tile of
// 2 x 4 mma tiles of 16 x 8; Mma is MmaTf32 or MmaBf16.
template <class Mma>
__device__ __forceinline__ void gemm_tc(const float* __restrict__ A, const float* __restrict__ B,
                                        float* __restrict__ C, int M, int N, int K,
                                        long long a_rs, long long a_cs, long long a_bs,
                                        long long b_rs, long long b_cs, long long b_bs,
                                        float alpha) {
    // As[buf][m][k] and Bs[buf][n][k]: the k-contiguous layouts the row.col
    // mma wants. Two buffers, filled as in gemm_simt_tile.
    __shared__ __align__(16) float As[2][T_BM][T_BK + T_PAD];
    __shared__ __align__(16) float Bs[2][T_BN][T_BK + T_PAD];
    using OpA = TileOperand<T_BM, T_BK, T_THREADS, false>;
    using OpB = TileOperand<T_BN, T_BK, T_THREADS, false>;

    const long long batch = blockIdx.z;
    float* Cb = C + batch * (long long)M * (long long)N;
    const int m0 = blockIdx.y * T_BM;
    const int n0 = blockIdx.x * T_BN;
    const int tid = threadIdx.x;
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int g = lane / 4;  // mma "groupID"
    const int t = lane % 4;  // mma "threadID_in_group"
    const int wm = (warp / 2) * 32;  // this warp's 32 x 32 output tile
    const int wn = (warp % 2) * 32;

    // acc[mi][ni][r]: 2 x 4 tiles of 16 x 8, four f32 per thread each.
    float acc[2][4][4];
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[mi][ni][r] = 0.0f;

    const float* Ab = A + batch * a_bs;
    const float* Bb = B + batch * b_bs;
    OpA ta;
    OpB tb;
    auto load_global = [&](int k0) {
        ta.load(Ab, a_rs, a_cs, a_cs == 1, m0, M, k0, K);
        tb.load(Bb, b_cs, b_rs, b_cs != 1, n0, N, k0, K);
    };
    auto store_shared = [&](int buf) {
        ta.store(As, buf, a_cs == 1);
        tb.store(Bs, buf, b_cs != 1);
    };

    load_global(0);
    store_shared(0);
    __syncthreads();
    int buf = 0;
    for (int k0 = 0; k0 < K; k0 += T_BK) {
        const bool more = k0 + T_BK < K;  // block-uniform: all reach the barrier
        if (more) {
            load_global(k0 + T_BK);
        }
#pragma unroll
        for (int ks = 0; ks < T_BK; ks += Mma::KSTEP) {
            const int k = ks + Mma::k_of(t);
            unsigned af[2][4], bfr[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                int r0 = wm + mi * 16 + g;
                af[mi][0] = Mma::frag(As[buf][r0], k);
                af[mi][1] = Mma::frag(As[buf][r0 + 8], k);
                af[mi][2] = Mma::frag(As[buf][r0], k + Mma::HALF);
                af[mi][3] = Mma::frag(As[buf][r0 + 8], k + Mma::HALF);
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                int c0 = wn + ni * 8 + g;
                bfr[ni][0] = Mma::frag(Bs[buf][c0], k);
                bfr[ni][1] = Mma::frag(Bs[buf][c0], k + Mma::HALF);
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) Mma::mma(acc[mi][ni], af[mi], bfr[ni]);
        }
        if (more) {
            store_shared(buf ^ 1);
        }
        __syncthreads();
        buf ^= 1;
    }

    // Accumulator layout: c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1).
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
            int row = m0 + wm + mi * 16 + g;
            int col = n0 + wn + ni * 8 + 2 * t;
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                store_c(Cb, M, N, row + (r >= 2 ? 8 : 0), col + (r & 1), alpha, acc[mi][ni][r]);
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(T_THREADS)
gemm_tc_tf32(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
             int M, int N, int K,
             long long a_rs, long long a_cs, long long a_bs,
             long long b_rs, long long b_cs, long long b_bs,
             float alpha) {
    gemm_tc<MmaTf32>(A, B, C, M, N, K, a_rs, a_cs, a_bs, b_rs, b_cs, b_bs, alpha);
}

extern "C" __global__ void __launch_bounds__(T_THREADS)
gemm_tc_bf16(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
             int M, int N, int K,
             long long a_rs, long long a_cs, long long a_bs,
             long long b_rs, long long b_cs, long long b_bs,
             float alpha) {
    gemm_tc<MmaBf16>(A, B, C, M, N, K, a_rs, a_cs, a_bs, b_rs, b_cs, b_bs, alpha);
}

#endif  // __CUDA_ARCH__ >= 800
