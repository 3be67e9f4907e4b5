#!/usr/bin/env bash
# Side-by-side speed and memory of lmech and PyTorch, in one command.
#
# Builds lmech in release mode, then runs bench/compare.py: for each
# (workload, size) of a grid it runs lmech (target/release/lmech-bench) and
# PyTorch (bench/pytorch/workloads.py) alternately, each in its own fresh
# process, on the same machine with the same thread count, after warm-up,
# several repetitions each. It prints a markdown table (medians, the ratio
# PyTorch / lmech, peak memory of both) ready for BENCHMARKS.md and writes
# bench/results/compare-<device>-<date>.json (and the table beside it, .md).
# A row that fails (out of memory, timeout, device missing) is recorded as
# such and the run goes on.
#
# Usage (from the repository root or anywhere else; a relative --out is
# taken from the current directory):
#   bench/compare.sh                 # default grid, ~10 min on 2 cores
#   bench/compare.sh --quick         # smoke test of every workload, ~2 min
#   bench/compare.sh --full          # every workload on the whole grid:
#                                    # widths 64,256,1024,4096 x depths 2,4,8 x
#                                    # batches 100,1000,5000 x inputs 40,784,3072
#                                    # (hours to days on a small CPU)
#   bench/compare.sh --conv --rounds 2   # Cohen et al.'s CNN and ResNet-20
#                                    # (no norm, BatchNorm) on 3x32x32 inputs,
#                                    # ~20 min on 2 cores
#   bench/compare.sh --transformer --rounds 2 --row-timeout 7200
#                                    # the issue's transformer rows: 2 pre-norm
#                                    # blocks, 4 heads, d_model 128 and 512,
#                                    # T 64, batch 256, vocab 64 (training step,
#                                    # gradient, HVP against jvp(grad) and the
#                                    # double backward, per-sample norms against
#                                    # vmap(grad), sharpness by power iteration
#                                    # and Lanczos); d 512: hours on 2 cores
#   bench/compare.sh --sizes transformer:32x2x8x16 --reps 1 --warmup 0 \
#       --workloads train_step,hvp,per_sample_norms,sharpness_power \
#       --hvp-method fwd_over_rev,double_backward
#                                    # a transformer smoke test (~2 min)
#   bench/compare.sh --sizes cnn:32x2x1000x3072,resnet/batch:16x20x100x3072 \
#       --workloads hvp --hvp-method double_backward,fwd_over_rev
#                                    # any model, against both PyTorch HVPs
#   bench/compare.sh --device cuda   # both sides on CUDA (lmech's CUDA backend;
#                                    # without a driver or GPU a side is
#                                    # recorded as "unavailable")
#   bench/compare.sh --device cuda --workloads gemm --sizes 4096x2x1x1 --gemm tc-tf32
#                                    # lmech's GEMM kernel vs torch.mm
#
# Options (all passed to bench/compare.py; `bench/compare.sh --help` lists them):
#   --quick | --full | --conv | --transformer grid (default: the ~10-minute
#                             one; --conv: the CNN / ResNet-20 grid,
#                             bench/compare.py's conv_rows; --transformer: its
#                             transformer_rows at d 128 and 512; each with its
#                             own warm-up and repetitions)
#   --device cpu|cuda|cuda:N  device of both sides (default cpu)
#   --threads N               threads of both sides (default: CPUs available)
#   --reps R --warmup K       timed and untimed calls per side and row
#                             (default 5 and 2; 3 and 1 for the slow workloads
#                             sharpness_*, hutchinson, gd_run; --quick: 3 and 1)
#   --rounds N                alternating rounds per row (default 1)
#   --split                   also record where lmech's time goes per row
#                             (lmech-bench --split: gemm, layout, pointwise,
#                             reduce, loss, optimizer, transfers, host; system
#                             time and page faults) and add a second table
#   --peak                    measure the GEMM peak first (lmech-bench gemm,
#                             1024^3) and give each MLP row's FLOP-bound time
#                             (its products' FLOPs at that peak) in that table
#   --workloads a,b,...       subset of train_step, forward_backward, hvp,
#                             hvp_warm, sharpness_power, sharpness_lanczos,
#                             hutchinson, per_sample_norms, ntk, gd_run, gemm
#                             (gemm: width x width x width; the other size
#                             fields only size an unused model)
#   --gemm simt|tc-tf32|tc-bf16|cublas   GEMM kind of the gemm workload
#   --sizes [MODEL:]WxDxBxI,...  explicit sizes (width x depth x batch x
#                             input); MODEL is ARCH[/NORM], ARCH mlp, cnn,
#                             resnet or transformer, NORM none, batch, layer or
#                             rms (passed as --arch/--norm to both sides; a
#                             conv model takes --input 3*s*s), e.g.
#                             resnet/batch:16x20x100x3072. transformer: width
#                             d_model (a multiple of the 4 heads), depth
#                             blocks, input T tokens per example, NORM layer
#                             (default), rms or none, e.g. transformer:128x2x256x64;
#                             random tokens, next-token labels at every
#                             position. Before its rows each transformer is
#                             checked to be one model on both sides (lmech-bench
#                             --save-model, workloads.py --check-twin: logits,
#                             loss at init, parameter counts; in the table's
#                             notes and the JSON's meta.twin_checks)
#   --arch A --norm N         MODEL of the --sizes without a prefix
#   --vocab V                 the transformer's vocabulary, both sides (64)
#   --widths/--depths/--batches/--inputs v,...   with --full: cut the grid
#   --time-budget S           timed seconds per side and row before repetitions
#                             are cut (default 60)
#   --row-timeout S           kill a side after S seconds (default 900)
#   --mem-limit-gib G         address-space cap per child on CPU (default 80%
#                             of available memory)
#   --tol, --max-iter, --probes, --steps, --lr, --seed
#                             workload settings (1e-3, 200, 10, 100, 0.05, 0)
#   --hvp-method M[,M...]     PyTorch's cold HVP: double_backward (default),
#                             fwd_over_rev (torch.func jvp(grad)), rev_over_rev;
#                             several: one hvp row each (a transformer's
#                             PyTorch side writes attention out for these:
#                             CPU scaled_dot_product_attention has no
#                             forward-mode AD nor double backward)
#   --psn-method M[,M...]     PyTorch's per-sample norms: vmap (default;
#                             vmap(grad)) or hooks (Opacus-style); several: one
#                             row each. BatchNorm models: skipped (undefined);
#                             hooks on a transformer: skipped (Linear and
#                             Conv2d layers only). ntk on a transformer:
#                             skipped (T*vocab outputs per example)
#   --lmech-bin BIN           the lmech-bench to run (default target/release's)
#   --lmech-before BIN [--before-label TEXT]
#                             an older lmech-bench as a third side of every row,
#                             alternating with the other two in the same run:
#                             adds a before/after table (both times, the speedup,
#                             both ratios to PyTorch, peak memory; the FLOP-bound
#                             time with --peak)
#   --out PATH                JSON path;  --list  print the grid and exit
#
# Environment: PYTHON (default python3; it also runs the PyTorch side) with torch (bench/pytorch/
# requirements.txt); scipy optional (PyTorch's Lanczos row is skipped without).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
(cd "$root" && cargo build --release --bins)
exec "${PYTHON:-python3}" "$root/bench/compare.py" "$@"
