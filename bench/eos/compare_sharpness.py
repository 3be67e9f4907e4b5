"""Compare the sharpness measurements of `lmech eos` runs against a tight
reference run of the same experiment (BENCHMARKS.md, "sharpness
measurements on the main job"). Full-batch GD is deterministic and
observers do not change the trajectory, so every run visits the same
weights and step s of one run can be compared with step s of another.

    python3 bench/eos/compare_sharpness.py TIGHT_DIR RUN_DIR [RUN_DIR ...]

Each DIR is an `lmech eos --out DIR` directory (lr_*/metrics.jsonl). For
each learning rate and run it prints HVPs per measurement, how many were
marked converged, how many of those lie outside their stated bound (with
the reference's own bound as slack), and the worst and median relative
errors. Standard library only.
"""

import json
import pathlib
import statistics
import sys


def measurements(run_dir, lr_dir):
    rows = (json.loads(line) for line in open(run_dir / lr_dir / "metrics.jsonl"))
    return {r["step"]: r for r in rows if "sharpness" in r}


def main():
    tight_dir, *run_dirs = (pathlib.Path(a) for a in sys.argv[1:])
    for lr_dir in sorted(p.name for p in tight_dir.glob("lr_*")):
        ref = measurements(tight_dir, lr_dir)
        for run_dir in run_dirs:
            rows = measurements(run_dir, lr_dir)
            hvps = [r["sharpness_hvps"] for r in rows.values()]
            converged = [s for s, r in rows.items() if r["sharpness_converged"] == 1]
            err = {s: abs(ref[s]["sharpness"] - r["sharpness"]) / ref[s]["sharpness"] for s, r in rows.items()}
            outside = [
                s
                for s in converged
                if err[s] > rows[s]["sharpness_error_bound"] + ref[s]["sharpness_error_bound"]
            ]
            print(
                f"{lr_dir:8} {str(run_dir):24} HVPs mean {statistics.mean(hvps):5.2f} "
                f"median {statistics.median(hvps):4} max {max(hvps):3}  "
                f"converged {len(converged)}/{len(rows)}  outside bound {len(outside)}  "
                f"worst err {max(err.values()):.1e}  median err {statistics.median(err.values()):.1e}"
            )
        worst = max(r["sharpness_error_bound"] for r in ref.values())
        done = sum(r["sharpness_converged"] for r in ref.values())
        print(f"{lr_dir:8} reference: converged {done}/{len(ref)}, worst bound {worst:.1e}")


if __name__ == "__main__":
    main()
