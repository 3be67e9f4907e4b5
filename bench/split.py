"""Where lmech's time goes, beside the time the matrix products alone would
take at the machine's peak: the second table of `bench/compare.sh --split`.

lmech-bench --split reports, per timed call, the wall time of each kind of
backend work (lmech::backend::profile: gemm, layout, pointwise, reduce,
loss, optimizer, upload, download, sync), `host` for the rest (the tape's
bookkeeping, the spectral algorithms' f64 vectors, observers' host
arithmetic), and the process's system time and page faults (fresh memory).

The FLOP-bound time is the workload's matrix-product FLOPs (counted below
for MLPs, as lmech computes them) divided by the peak GEMM rate measured on
the same machine and threads (`--peak`: lmech-bench's gemm workload at
1024^3, the best of its repetitions).
"""

import json
import subprocess

CLASSES = 10
PARTS = ["gemm", "layout", "pointwise", "reduce", "loss", "optimizer", "upload", "download",
         "sync"]


def mlp_layers(width, depth, inp, classes=CLASSES):
    sizes = [inp] + [width] * (depth - 1) + [classes]
    return list(zip(sizes, sizes[1:]))


def units(workload):
    """Products per dense layer, as (first layer, other layers), in units of
    one forward product 2*B*in*out. The first layer needs no input gradient
    and its input has no tangent. Forward-over-reverse HVP: forward 1, the
    tangent forward 2 (x_dot W and x W_dot), backward 2 (weight and input
    gradients), the tangent backward 4; a warm HVP (the forward values and
    cotangents kept) only the tangent passes."""
    grad = (2, 3)
    return {
        "forward": (1, 1),
        "train_step": grad, "forward_backward": grad, "per_sample_norms": grad,
        "hvp": (4, 9), "hvp_warm": (2, 6),
    }.get(workload)


def product_flops(workload, width, depth, batch, inp, hvps=None, steps=None, arch="mlp"):
    """Matrix-product FLOPs of one call of `workload` on an MLP, or None
    where it is not counted here (the NTK; conv and transformer models)."""
    if workload == "gemm":
        return 2.0 * width ** 3
    if arch != "mlp":
        return None
    layers = mlp_layers(width, depth, inp)

    def count(kind):
        first, rest = units(kind)
        return sum(2.0 * batch * a * b * (first if i == 0 else rest)
                   for i, (a, b) in enumerate(layers))
    if workload in ("sharpness_power", "sharpness_lanczos", "hutchinson"):
        if not hvps:
            return None
        return count("hvp") + (hvps - 1) * count("hvp_warm")
    if workload == "gd_run":
        return (steps or 0) * count("train_step")
    if units(workload) is None:
        return None
    return count(workload)


def measure_peak(lmech_bin, threads, width=1024, reps=5):
    """The machine's f32 GEMM rate on `threads` threads (GFLOP/s): lmech's
    own gemm workload, best repetition (the rate the products could reach)."""
    cmd = [lmech_bin, "--workload", "gemm", "--width", str(width), "--depth", "1",
           "--batch", "1", "--input", "1", "--threads", str(threads), "--reps", str(reps),
           "--warmup", "2"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    line = json.loads(p.stdout.strip().splitlines()[-1])
    return 2.0 * width ** 3 / (line["min_ms"] * 1e-3) / 1e9


def fmt(x):
    if x is None:
        return "—"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def split_table(rows, peak_gflops, shape_of):
    """Markdown: one line per row whose lmech side reported a split."""
    lines = [
        "| workload | model | batch | input | lmech ms | FLOP-bound ms | gemm | layout "
        "| pointwise | reduce + loss | optimizer | transfers | host | sys ms | page faults |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lm = r["lmech"]
        s = lm.get("split") if lm.get("status") == "ok" else None
        if not s:
            continue
        flops = product_flops(r["workload"], r["width"], r["depth"], r["batch"], r["input"],
                              hvps=lm.get("hvps"), steps=r.get("gd_steps"),
                              arch=r.get("arch", "mlp"))
        bound = flops / (peak_gflops * 1e9) * 1e3 if flops and peak_gflops else None
        part = lambda *names: sum(s.get(f"{n}_ms", 0.0) for n in names)  # noqa: E731
        lines.append(
            f"| {r['workload']} | {shape_of(r)} | {r['batch']} | {r['input']} "
            f"| {fmt(lm['median_ms'])} | {fmt(bound)} | {fmt(part('gemm'))} "
            f"| {fmt(part('layout'))} | {fmt(part('pointwise'))} "
            f"| {fmt(part('reduce', 'loss'))} | {fmt(part('optimizer'))} "
            f"| {fmt(part('upload', 'download', 'sync'))} | {fmt(s.get('host_ms'))} "
            f"| {fmt(s.get('sys_ms'))} | {fmt(s.get('minor_faults'))} |")
    return lines
