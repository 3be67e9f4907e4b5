#!/usr/bin/env bash
# Times the sweep benchmark of BENCHMARKS.md: 64 width-256 runs
# (bench/sweep/ensemble64.toml) packed as one ensemble, the same runs one at
# a time, and a Python loop over them in PyTorch. Each side gets the same
# thread count; results stores go to a temporary directory.
#
#   bash bench/sweep/run.sh [--threads 2] [--device cpu]
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=2
device=cpu
while [ $# -gt 0 ]; do
    case $1 in
        --threads) threads=$2; shift 2 ;;
        --device) device=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 1 ;;
    esac
done
cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
time_it() {
    local label=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > "$tmp/$label.out" 2>&1
    t1=$(date +%s.%N)
    printf '%-28s %8.2f s\n' "$label" "$(echo "$t1 - $t0" | bc)"
}
spec=bench/sweep/ensemble64.toml
time_it "lmech packed (E=64)" target/release/lmech --threads "$threads" sweep "$spec" --out "$tmp/packed" --device "$device" --quiet
time_it "lmech one at a time" target/release/lmech --threads "$threads" sweep "$spec" --out "$tmp/single" --device "$device" --quiet --max-ensemble 1
time_it "pytorch python loop" python3 bench/pytorch/sweep_loop.py --threads "$threads"
grep -h "runs:" "$tmp"/packed.out "$tmp"/single.out
cat "$tmp/pytorch python loop.out"
