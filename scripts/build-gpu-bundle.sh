#!/usr/bin/env bash
# Builds, on this (x86-64, Rust) machine, what scripts/gpu-check.sh runs on a
# GPU machine that has no Rust toolchain: the release binaries (lmech,
# lmech-bench) and the CUDA test executables (tests/cuda_parity.rs,
# tests/cuda_compile.rs), debug info stripped, in gpu-bundle/ (git-ignored;
# the device tool carries it: carry ["gpu-bundle"], at most 64 MiB).
#
# Usage: scripts/build-gpu-bundle.sh [DIR]   (default gpu-bundle)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dir="${1:-gpu-bundle}"
cargo build --release --bins
# The test executables' paths, from cargo's JSON messages.
tests="$(cargo test --release --no-run --message-format=json \
    --test cuda_parity --test cuda_compile |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
')"
rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/tests"
strip_to() {
    if command -v strip >/dev/null; then
        strip --strip-debug -o "$2" "$1"
    else
        objcopy --strip-debug "$1" "$2"
    fi
}
for b in lmech lmech-bench; do
    strip_to "target/release/$b" "$dir/bin/$b"
done
n=0
while read -r name exe; do
    [ -n "$name" ] || continue
    strip_to "$exe" "$dir/tests/$name"
    n=$((n + 1))
done <<< "$tests"
if [ "$n" -ne 2 ]; then
    echo "error: expected the cuda_parity and cuda_compile test executables, found $n" >&2
    exit 1
fi
{
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src kernels tests || echo +dirty)"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m) with $(rustc --version)"
} > "$dir/MANIFEST"
size=$(du -sb "$dir" | cut -f1)
du -h "$dir"/bin/* "$dir"/tests/*
echo "bundle $dir: $((size / 1048576)) MiB"
if [ "$size" -gt $((64 * 1048576)) ]; then
    echo "error: $dir is over the 64 MiB the device tool carries" >&2
    exit 1
fi
