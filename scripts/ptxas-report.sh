#!/usr/bin/env bash
# Registers, spills and shared memory of every CUDA kernel, per architecture,
# as a markdown table (recorded in kernels/README.md and BENCHMARKS.md). No
# GPU needed: tests/cuda_compile.rs compiles each kernels/*.cu with NVRTC and,
# with LMECH_EMIT_PTX set, writes the PTX; ptxas (PyPI's
# nvidia-cuda-nvcc-cu12 wheel) assembles it with -v. Both wheels are
# installed into target/ with pip --target when missing.
#
# Usage: scripts/ptxas-report.sh [sm_80 sm_90 ...]   (default: sm_80 sm_90)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(sm_80 sm_90)
wheels="$root/target/pip-cuda"
nvrtc_lib="$wheels/nvidia/cuda_nvrtc/lib"
ptxas="$wheels/nvidia/cuda_nvcc/bin/ptxas"
if [ ! -e "$nvrtc_lib/libnvrtc.so.12" ] || [ ! -x "$ptxas" ]; then
    python3 -m pip install --quiet --target "$wheels" nvidia-cuda-nvrtc-cu12 nvidia-cuda-nvcc-cu12
fi
ptx="$(mktemp -d)"
trap 'rm -rf "$ptx"' EXIT
LD_LIBRARY_PATH="$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" LMECH_EMIT_PTX="$ptx" CI=1 \
    cargo test --release --quiet --test cuda_compile every_kernel_compiles >&2
echo "ptxas $("$ptxas" --version | tail -1 | sed 's/.*release //')"
echo
echo "| family | kernel | arch | registers | spill stores (B) | spill loads (B) | stack (B) | static smem (B) |"
echo "|---|---|---|---|---|---|---|---|"
for arch in "${archs[@]}"; do
    for f in "$ptx"/*."compute_${arch#sm_}".ptx; do
        family="$(basename "$f" | cut -d. -f1)"
        "$ptxas" -arch="$arch" -v "$f" -o /dev/null 2>&1 | python3 -c '
import re, sys
family, arch = sys.argv[1], sys.argv[2]
kernel = None
info = {}
rows = []
for line in sys.stdin:
    m = re.search(r"Compiling entry function .(\w+). for", line)
    if m:
        kernel = m.group(1)
        info = {"stack": 0, "stores": 0, "loads": 0, "smem": 0}
        continue
    m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
    if m and kernel:
        info["stack"], info["stores"], info["loads"] = map(int, m.groups())
    m = re.search(r"Used (\d+) registers", line)
    if m and kernel:
        s = re.search(r"(\d+) bytes smem", line)
        info["smem"] = int(s.group(1)) if s else 0
        rows.append((kernel, int(m.group(1)), info))
        kernel = None
for k, regs, i in sorted(rows):
    print("| %s | %s | %s | %d | %d | %d | %d | %d |"
          % (family, k, arch, regs, i["stores"], i["loads"], i["stack"], i["smem"]))
' "$family" "$arch"
    done
done
