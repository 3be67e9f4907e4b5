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

#include "common.cuh"

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
    static_assert((BM * S_BK) % S_THREADS == 0 && (BN * S_BK) % S_THREADS == 0, "even loads");
    // As[buf][k][m], Bs[buf][k][n]: each thread reads TM (TN) consecutive m
    // (n) values of one k row as float4s. Two buffers: the next K step is
    // loaded from global memory into registers while this one is computed,
    // then stored into the other buffer.
    __shared__ __align__(16) float As[2][S_BK][BM];
    __shared__ __align__(16) float Bs[2][S_BK][BN];
    constexpr int LA = (BM * S_BK) / S_THREADS;
    constexpr int LB = (BN * S_BK) / S_THREADS;
    float ra[LA], rb[LB];

    const long long batch = blockIdx.z;
    const float* Ab = A + batch * a_bs;
    const float* Bb = B + batch * b_bs;
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

    // Element r of this thread's share of a tile: (kk, mm) of A, (kk, nn) of
    // B. Consecutive threads walk the operand's contiguous dimension so
    // global loads coalesce.
    auto a_at = [&](int r, int& kk, int& mm) {
        int i = tid + r * S_THREADS;
        if (a_cs == 1) {
            kk = i % S_BK;
            mm = i / S_BK;
        } else {
            mm = i % BM;
            kk = i / BM;
        }
    };
    auto b_at = [&](int r, int& kk, int& nn) {
        int i = tid + r * S_THREADS;
        if (b_cs == 1) {
            nn = i % BN;
            kk = i / BN;
        } else {
            kk = i % S_BK;
            nn = i / S_BK;
        }
    };
    auto load_global = [&](int k0) {
#pragma unroll
        for (int r = 0; r < LA; ++r) {
            int kk, mm;
            a_at(r, kk, mm);
            int m = m0 + mm, k = k0 + kk;
            ra[r] = (m < M && k < K) ? Ab[(long long)m * a_rs + (long long)k * a_cs] : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < LB; ++r) {
            int kk, nn;
            b_at(r, kk, nn);
            int n = n0 + nn, k = k0 + kk;
            rb[r] = (n < N && k < K) ? Bb[(long long)k * b_rs + (long long)n * b_cs] : 0.0f;
        }
    };
    auto store_shared = [&](int buf) {
#pragma unroll
        for (int r = 0; r < LA; ++r) {
            int kk, mm;
            a_at(r, kk, mm);
            As[buf][kk][mm] = ra[r];
        }
#pragma unroll
        for (int r = 0; r < LB; ++r) {
            int kk, nn;
            b_at(r, kk, nn);
            Bs[buf][kk][nn] = rb[r];
        }
    };

    load_global(0);
    store_shared(0);
    __syncthreads();
    int buf = 0;
    for (int k0 = 0; k0 < K; k0 += S_BK) {
        // Block-uniform: every thread takes the same branches, so all reach
        // the barrier below.
        const bool more = k0 + S_BK < K;
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
                int n = n0 + tc * TN + j;
                if (n < N) {
                    Cb[(long long)m * N + n] = alpha * acc[i][j];
                }
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

// BF16 = false: TF32 m16n8k8 (two k steps per tile); true: BF16 m16n8k16.
template <bool BF16>
__device__ __forceinline__ void gemm_tc(const float* __restrict__ A, const float* __restrict__ B,
                                        float* __restrict__ C, int M, int N, int K,
                                        long long a_rs, long long a_cs, long long a_bs,
                                        long long b_rs, long long b_cs, long long b_bs,
                                        float alpha) {
    // As[buf][m][k] and Bs[buf][n][k]: the k-contiguous layouts the row.col
    // mma wants. Two buffers, filled as in gemm_simt_tile: the next K step
    // is loaded into registers while this one is computed.
    __shared__ __align__(16) float As[2][T_BM][T_BK + T_PAD];
    __shared__ __align__(16) float Bs[2][T_BN][T_BK + T_PAD];
    constexpr int LA = (T_BM * T_BK) / T_THREADS;
    constexpr int LB = (T_BN * T_BK) / T_THREADS;
    float ra[LA], rb[LB];

    const long long batch = blockIdx.z;
    const float* Ab = A + batch * a_bs;
    const float* Bb = B + batch * b_bs;
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

    auto a_at = [&](int r, int& kk, int& mm) {
        int i = tid + r * T_THREADS;
        if (a_cs == 1) {
            kk = i % T_BK;
            mm = i / T_BK;
        } else {
            mm = i % T_BM;
            kk = i / T_BM;
        }
    };
    auto b_at = [&](int r, int& kk, int& nn) {
        int i = tid + r * T_THREADS;
        if (b_cs == 1) {
            nn = i % T_BN;
            kk = i / T_BN;
        } else {
            kk = i % T_BK;
            nn = i / T_BK;
        }
    };
    auto load_global = [&](int k0) {
#pragma unroll
        for (int r = 0; r < LA; ++r) {
            int kk, mm;
            a_at(r, kk, mm);
            int m = m0 + mm, k = k0 + kk;
            ra[r] = (m < M && k < K) ? Ab[(long long)m * a_rs + (long long)k * a_cs] : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < LB; ++r) {
            int kk, nn;
            b_at(r, kk, nn);
            int n = n0 + nn, k = k0 + kk;
            rb[r] = (n < N && k < K) ? Bb[(long long)k * b_rs + (long long)n * b_cs] : 0.0f;
        }
    };
    auto store_shared = [&](int buf) {
#pragma unroll
        for (int r = 0; r < LA; ++r) {
            int kk, mm;
            a_at(r, kk, mm);
            As[buf][mm][kk] = ra[r];
        }
#pragma unroll
        for (int r = 0; r < LB; ++r) {
            int kk, nn;
            b_at(r, kk, nn);
            Bs[buf][nn][kk] = rb[r];
        }
    };

    load_global(0);
    store_shared(0);
    __syncthreads();
    int buf = 0;
    for (int k0 = 0; k0 < K; k0 += T_BK) {
        const bool more = k0 + T_BK < K;  // block-uniform
        if (more) {
            load_global(k0 + T_BK);
        }
        if (BF16) {
            // m16n8k16 fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16"):
            // a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..);
            // b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g); lower k in the low half.
            unsigned af[2][4], bfr[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                int r0 = wm + mi * 16 + g;
                af[mi][0] = pack_bf16(As[buf][r0][2 * t], As[buf][r0][2 * t + 1]);
                af[mi][1] = pack_bf16(As[buf][r0 + 8][2 * t], As[buf][r0 + 8][2 * t + 1]);
                af[mi][2] = pack_bf16(As[buf][r0][2 * t + 8], As[buf][r0][2 * t + 9]);
                af[mi][3] = pack_bf16(As[buf][r0 + 8][2 * t + 8], As[buf][r0 + 8][2 * t + 9]);
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                int c0 = wn + ni * 8 + g;
                bfr[ni][0] = pack_bf16(Bs[buf][c0][2 * t], Bs[buf][c0][2 * t + 1]);
                bfr[ni][1] = pack_bf16(Bs[buf][c0][2 * t + 8], Bs[buf][c0][2 * t + 9]);
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) mma_bf16(acc[mi][ni], af[mi], bfr[ni]);
        } else {
            // m16n8k8 TF32 fragments: a0 (g, t), a1 (g+8, t), a2 (g, t+4),
            // a3 (g+8, t+4); b0 (k t, n g), b1 (k t+4, n g).
#pragma unroll
            for (int ks = 0; ks < T_BK; ks += 8) {
                unsigned af[2][4], bfr[4][2];
#pragma unroll
                for (int mi = 0; mi < 2; ++mi) {
                    int r0 = wm + mi * 16 + g;
                    af[mi][0] = to_tf32(As[buf][r0][ks + t]);
                    af[mi][1] = to_tf32(As[buf][r0 + 8][ks + t]);
                    af[mi][2] = to_tf32(As[buf][r0][ks + t + 4]);
                    af[mi][3] = to_tf32(As[buf][r0 + 8][ks + t + 4]);
                }
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) {
                    int c0 = wn + ni * 8 + g;
                    bfr[ni][0] = to_tf32(Bs[buf][c0][ks + t]);
                    bfr[ni][1] = to_tf32(Bs[buf][c0][ks + t + 4]);
                }
#pragma unroll
                for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                    for (int ni = 0; ni < 4; ++ni) mma_tf32(acc[mi][ni], af[mi], bfr[ni]);
            }
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
                int m = row + (r >= 2 ? 8 : 0);
                int n = col + (r & 1);
                if (m < M && n < N) {
                    Cb[(long long)m * N + n] = alpha * acc[mi][ni][r];
                }
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
    gemm_tc<false>(A, B, C, M, N, K, a_rs, a_cs, a_bs, b_rs, b_cs, b_bs, alpha);
}

extern "C" __global__ void __launch_bounds__(T_THREADS)
gemm_tc_bf16(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
             int M, int N, int K,
             long long a_rs, long long a_cs, long long a_bs,
             long long b_rs, long long b_cs, long long b_bs,
             float alpha) {
    gemm_tc<true>(A, B, C, M, N, K, a_rs, a_cs, a_bs, b_rs, b_cs, b_bs, alpha);
}

#endif  // __CUDA_ARCH__ >= 800
