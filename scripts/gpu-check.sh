#!/usr/bin/env bash
# The GPU check of the CUDA backend, for a machine with an NVIDIA GPU, its
# driver and PyTorch, and no network or Rust toolchain. It runs what
# scripts/build-gpu-bundle.sh built elsewhere (gpu-bundle/: lmech,
# lmech-bench and the CUDA test executables):
#
#   1. `lmech devices`, nvidia-smi;
#   2. tests/cuda_compile.rs (every kernel through this machine's NVRTC) and
#      tests/cuda_parity.rs (every op, training steps, HVP, Lanczos,
#      per-sample norms and NTK against the CPU reference);
#   3. bench/compare.py on CUDA, lmech against PyTorch: GEMM in fp32 (SIMT and
#      cuBLAS) / TF32 / BF16 against torch.mm at 256 to 8192, training steps
#      at widths 256 to 8192, HVPs against torch.func jvp(grad), sharpness
#      (lmech Lanczos and power against PyTorch's power iteration), per-sample
#      norms and the NTK;
#
# each stage capped in time so that the whole run ends within 8 minutes, and
# writes OUTDIR/gpu-check.json and OUTDIR/gpu-check.md (the targets of the
# CUDA issue, checked, then every table), plus each stage's raw output.
#
# Usage: scripts/gpu-check.sh OUTDIR
# Env:   LMECH_BUNDLE (default gpu-bundle), PYTHON (default python3),
#        GPU_CHECK_BUDGET seconds in all (default 470), GPU_CHECK_DRY_RUN=1
#        (run the stages even without a GPU, to test this script).
# Exit:  0 when the parity tests passed, 1 when they failed, 2 when there is
#        no GPU or no bundle (said on stderr and in the JSON).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: scripts/gpu-check.sh OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
bundle="${LMECH_BUNDLE:-$root/gpu-bundle}"
py="${PYTHON:-python3}"
budget="${GPU_CHECK_BUDGET:-470}"
start=$(date +%s)
cd "$root"

log() { echo "[gpu-check $(( $(date +%s) - start ))s] $*" >&2; }
left() { echo $(( budget - ($(date +%s) - start) )); }
fail_early() {
    log "$1"
    "$py" scripts/gpu-check-summary.py "$out" --fatal "$1"
    exit 2
}

[ -x "$bundle/bin/lmech-bench" ] && [ -x "$bundle/tests/cuda_parity" ] ||
    fail_early "no bundle at $bundle: run scripts/build-gpu-bundle.sh on the build machine and carry gpu-bundle/"
cp "$bundle/MANIFEST" "$out/bundle-manifest.txt" 2>/dev/null

if command -v nvidia-smi >/dev/null; then
    nvidia-smi > "$out/nvidia-smi.txt" 2>&1
fi
# GPU_CHECK_DRY_RUN=1 runs every stage without a GPU (each reports itself
# skipped or unavailable): a test of this script on a CPU machine.
[ -e /dev/nvidia0 ] || [ -s "$out/nvidia-smi.txt" ] || [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ] ||
    fail_early "no NVIDIA GPU here (no /dev/nvidia0, no nvidia-smi)"

# NVRTC and cuBLAS: cudarc loads libnvrtc.so / libcublas.so or their .so.12
# (see cudarc::get_lib_name_candidates). PyTorch's wheels bring them under
# site-packages/nvidia/...; a CUDA 13 build names them .so.13, which cudarc's
# list lacks, hence links with the unversioned names in one directory.
links="$(mktemp -d)"
trap 'rm -rf "$links"' EXIT
libdirs="$("$py" - "$links" <<'PY'
import glob, os, site, sys
links = sys.argv[1]
roots = site.getsitepackages() + [site.getusersitepackages(), "/usr/local/cuda/lib64",
                                  "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"]
dirs = []
for lib in ("nvrtc", "cublas", "cublasLt"):
    hits = []
    for r in roots:
        hits += glob.glob(os.path.join(r, "**", f"lib{lib}.so*"), recursive=True)
    hits = [h for h in hits if "alt" not in os.path.basename(h) and "builtins" not in h]
    # CUDA 12 first: its PTX loads on any 12.x or 13.x driver, while PTX
    # from NVRTC 13 needs a 13.x driver.
    hits.sort(key=lambda h: (".so.12" not in h, h))
    found = hits[0] if hits else None
    if found:
        d = os.path.dirname(found)
        if d not in dirs:
            dirs.append(d)
        dst = os.path.join(links, f"lib{lib}.so")
        if os.path.lexists(dst):
            os.remove(dst)
        os.symlink(found, dst)
        print(f"{lib}: {found}", file=sys.stderr)
    else:
        print(f"{lib}: not found", file=sys.stderr)
print(":".join([links] + dirs))
PY
)"
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

"$bundle/bin/lmech" devices > "$out/devices.txt" 2>&1
cat "$out/devices.txt" >&2

# Parity and compile tests (CI=1: a missing NVRTC fails instead of skipping).
log "cuda_compile"
CI=1 timeout 90 "$bundle/tests/cuda_compile" --nocapture > "$out/cuda_compile.txt" 2>&1
echo "exit $?" >> "$out/cuda_compile.txt"
log "cuda_parity"
timeout 150 "$bundle/tests/cuda_parity" --test-threads=1 --nocapture > "$out/cuda_parity.txt" 2>&1
parity=$?
echo "exit $parity" >> "$out/cuda_parity.txt"
tail -3 "$out/cuda_parity.txt" >&2

# Comparisons, cheapest first; each compare.py run is capped by what is left.
compare() {
    local name="$1"; shift
    local t
    t=$(left)
    if [ "$t" -lt 20 ]; then
        log "skip $name: out of time"
        echo "{\"skipped\": \"out of time\"}" > "$out/compare-$name.json"
        return
    fi
    log "compare $name (at most ${t}s)"
    timeout "$t" "$py" bench/compare.py --device cuda --lmech-bin "$bundle/bin/lmech-bench" \
        --threads 4 --row-timeout 60 --out "$out/compare-$name.json" "$@" \
        > "$out/compare-$name.txt" 2>&1
    log "compare $name: exit $?"
}
gemm_sizes=256x2x1x1,1024x2x1x1,4096x2x1x1,8192x2x1x1
for kind in simt tc-tf32 tc-bf16 cublas; do
    compare "gemm-$kind" --workloads gemm --gemm "$kind" --sizes "$gemm_sizes" \
        --reps 10 --warmup 3 --time-budget 3
done
compare train --workloads train_step \
    --sizes 256x3x1000x784,1024x3x1000x784,2048x3x1000x784,8192x3x1000x784 \
    --reps 10 --warmup 3 --time-budget 5
compare hvp --workloads hvp,hvp_warm --hvp-method fwd_over_rev \
    --sizes 256x3x1000x784,1024x3x1000x784,4096x3x1000x784 --reps 5 --warmup 2 --time-budget 5
compare sharpness --workloads sharpness_power,sharpness_lanczos \
    --sizes 256x3x1000x784,1024x3x1000x784 --reps 2 --warmup 1 --time-budget 10 --tol 1e-3
compare per-sample --workloads per_sample_norms \
    --sizes 256x3x256x784,1024x3x256x784 --reps 3 --warmup 1 --time-budget 5
compare ntk --workloads ntk --sizes 256x3x100x784 --reps 3 --warmup 1 --time-budget 5

"$py" scripts/gpu-check-summary.py "$out"
log "done: $out/gpu-check.md"
if [ "$parity" -ne 0 ]; then
    exit 1
fi
