#!/usr/bin/env bash
# Runs the index-heavy CUDA kernels on the CPU, no GPU or CUDA toolkit
# needed: each kernels/*.cu is compiled by g++ against
# scripts/cuda-emulate/emu.h, which runs one std::thread per CUDA thread
# (blocks one after another, std::barrier for __syncthreads and for warp
# shuffles) and replaces the tensor-core inline PTX (cvt.rna.tf32, mma.sync
# m16n8k8 TF32 and m16n8k16 BF16) with an emulation that assembles each
# warp's A and B tiles from the lanes' registers by the PTX ISA's fragment
# layouts. scripts/cuda-emulate/main.cpp checks every GEMM kernel (all
# transposes, ensemble broadcast, ragged sizes), the column sums, row norms,
# per-member sums, argmax, the cross-entropy kernels, bias + activation, the
# optimizer updates, im2col / col2im, row max / pick / place, the tiled
# transpose, the elementwise product, the row normalization kernels and the
# row softmax kernels (causal or not) against double precision references.
# About two minutes on 2 cores.
#
# What it cannot catch: anything specific to real hardware (the layouts
# themselves are the emulator's assumption, checked against the PTX ISA
# documentation, not against a GPU), timing, races the sequential block
# order hides.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$root/kernels" "$work" <<'PY'
import glob, os, re, sys
kernels, work = sys.argv[1], sys.argv[2]
families = ["matmul", "reduce", "loss", "pointwise", "optim", "conv", "pool", "layout", "norm", "softmax"]
# A new kernels/*.cu must be emulated too (and checked in main.cpp).
present = sorted(os.path.basename(p)[:-3] for p in glob.glob(f"{kernels}/*.cu"))
assert present == sorted(families), f"kernels/*.cu {present} vs emulated {families}"
for fam in families:
    src = open(f"{kernels}/{fam}.cu").read().replace('#include "common.cuh"', "")
    if fam == "matmul":
        emulated = {
            "to_tf32": "__device__ __forceinline__ unsigned to_tf32(float x) {\n"
                       "    unsigned u = __float_as_uint(x) + 0x1000u;\n    return u & ~0x1fffu;\n}",
            "mma_tf32": "__device__ __forceinline__ void mma_tf32(float* d, const unsigned* a, "
                        "const unsigned* b) { emu_mma(d, a, b, false); }",
            "mma_bf16": "__device__ __forceinline__ void mma_bf16(float* d, const unsigned* a, "
                        "const unsigned* b) { emu_mma(d, a, b, true); }",
        }
        for name, body in emulated.items():
            src, n = re.subn(r"__device__ __forceinline__ \w+ " + name + r"\(.*?\n\}", body, src,
                             count=1, flags=re.S)
            assert n == 1, f"matmul.cu: no {name} to emulate"
        assert "asm" not in src, "matmul.cu has inline PTX the emulator does not know"
    open(f"{work}/{fam}_emu.h", "w").write(src)
open(f"{work}/common_emu.h", "w").write(open(f"{kernels}/common.cuh").read())
PY
cp "$root/scripts/cuda-emulate/emu.h" "$root/scripts/cuda-emulate/main.cpp" "$work/"
g++ -std=c++20 -O1 -pthread -w "$work/main.cpp" -o "$work/emu"
"$work/emu"
