"""Side-by-side speed and memory of lmech and PyTorch on the same workloads,
same machine, same thread count. Normally run through bench/compare.sh,
which builds lmech first; see that file's header for the options.

For each (workload, size) of the chosen grid, it runs lmech's side
(target/release/lmech-bench, a subprocess) and PyTorch's side (this script
again, `--torch-child`, which runs bench/pytorch/workloads.py in a fresh
process), alternately, each with its own warm-up and repetitions, so that
each side's peak memory is its own process's. It prints one line per row as
it goes, then a markdown table (medians, the ratio PyTorch / lmech, peak
memory), and writes JSON results to bench/results/compare-<device>-<date>.json
(rewritten after every row, so an interrupted run keeps what it measured).
An error in one row (out of memory, a timeout, a missing device) is recorded
in that row and the run goes on.
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import split  # noqa: E402  (bench/split.py, the --split table)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

sys.path.insert(0, os.path.join(HERE, "pytorch"))
from workloads import WORKLOADS  # noqa: E402  (its top level imports no torch)
# Workloads whose single call is many products or steps: fewer repetitions.
SLOW = {"sharpness_power", "sharpness_lanczos", "hutchinson", "gd_run"}
CLASSES = 10
ARCHS = ["mlp", "cnn", "resnet", "transformer"]
# Normalizations each architecture takes, the first its default (a
# transformer's: LayerNorm before each block and at the end, GPT-2's).
ARCH_NORMS = {"mlp": ["none"], "cnn": ["none", "batch", "layer", "rms"],
              "resnet": ["none", "batch", "layer", "rms"],
              "transformer": ["layer", "rms", "none"]}

# Sizes: (width, depth, batch, input); depth counts dense layers. A fifth
# field names a convolutional model, "ARCH" or "ARCH/NORM" (lmech-bench's
# and workloads.py's --arch cnn|resnet, --norm none|batch|layer|rms) on
# 3 x s x s images, input 3*s*s; depth then counts a CNN's convolutions or
# is a ResNet's 6n+2. "transformer" (lmech's transformer preset, 4 causal
# heads, pre-norm LayerNorm unless "/rms" or "/none", on token ids of a
# --vocab vocabulary) takes width = d_model, depth = blocks, input = T
# tokens per example, next-token labels at every position. A grid row is
# (workload, size) or (workload, size, opts), opts a dict of per-row
# settings: "hvp_method" / "psn_method" (the PyTorch method of that row),
# "warmup" / "reps" (unless given on the command line).
TINY = (64, 2, 100, 40)        # teacher-student scale: overhead-bound
DIGITS = (64, 3, 1000, 64)     # `lmech eos`: 8x8 digits, width 64
MNIST_S = (256, 4, 1000, 784)  # MNIST-sized inputs, medium width
REF = (1024, 3, 1000, 784)     # the BENCHMARKS.md reference model
WIDE = (4096, 2, 500, 3072)    # very wide, CIFAR-sized inputs
DEEP = (256, 8, 5000, 784)     # deep, large batch
CIFAR = (512, 8, 5000, 3072)   # deep, large batch, CIFAR-sized inputs

# Cohen et al.'s CNN (32 channels, 2 convolutions) and ResNet-20 (16
# channels, no norm and BatchNorm) on CIFAR-sized 3x32x32 inputs.
CNN = (32, 2, 1000, 3072, "cnn")
RESNET = (16, 20, 100, 3072, "resnet")
RESNET_BN = (16, 20, 100, 3072, "resnet/batch")
ONE_CALL = {"warmup": 0, "reps": 1}  # sharpness: one cold run per side and round
FEW = {"warmup": 1, "reps": 3}  # calls of 0.5-6 s


# The transformer rows: 2 blocks, d_model 128 and 512, T = 64,
# batch 256.
TRANSFORMER_128 = (128, 2, 256, 64, "transformer")
TRANSFORMER_512 = (512, 2, 256, 64, "transformer")


def transformer_rows(size):
    """The transformer grid's rows for one model: a training step and the
    gradient, the cold HVP against torch.func jvp(grad) and the double
    backward, per-sample norms against vmap(grad) (Opacus-style hooks here
    know Linear and Conv2d layers only), sharpness to --tol by power
    iteration and Lanczos, all on the whole batch. No NTK: a sequence model
    has T*vocab outputs per example."""
    return [("train_step", size, FEW), ("forward_backward", size, FEW),
            ("hvp", size, dict(FEW, hvp_method="fwd_over_rev")),
            ("hvp", size, dict(FEW, hvp_method="double_backward")),
            ("per_sample_norms", size, dict(FEW, psn_method="vmap")),
            ("sharpness_power", size, ONE_CALL), ("sharpness_lanczos", size, ONE_CALL)]


def conv_rows(size, sharp_batch):
    """The conv grid's rows for one model: a training step, the cold HVP
    against both PyTorch methods, per-sample norms against vmap(grad) and
    Opacus-style hooks (not with BatchNorm: undefined), sharpness by power
    iteration and Lanczos at batch `sharp_batch` (one run is tens of HVPs)."""
    sharp = size[:2] + (sharp_batch,) + size[3:]
    rows = [("train_step", size, FEW),
            ("hvp", size, dict(FEW, hvp_method="double_backward")),
            ("hvp", size, dict(FEW, hvp_method="fwd_over_rev"))]
    if not size[4].endswith("/batch"):
        rows += [("per_sample_norms", size, dict(FEW, psn_method="vmap")),
                 ("per_sample_norms", size, dict(FEW, psn_method="hooks"))]
    rows += [("sharpness_power", sharp, ONE_CALL), ("sharpness_lanczos", sharp, ONE_CALL)]
    return rows


GRIDS = {
    # ~2 minutes on 2 cores: a smoke test of every workload.
    "quick": [
        ("train_step", TINY),
        ("train_step", DIGITS),
        ("train_step", REF),
        ("forward_backward", MNIST_S),
        ("hvp", MNIST_S),
        ("hvp", REF),
        ("hvp_warm", REF),
        ("sharpness_power", DIGITS),
        ("sharpness_power", MNIST_S),
        ("sharpness_lanczos", DIGITS),
        ("hutchinson", DIGITS),
        ("per_sample_norms", DIGITS),
        ("per_sample_norms", (1024, 3, 256, 784)),
        ("ntk", (64, 3, 100, 64)),
        ("gd_run", DIGITS),
    ],
    # ~10 minutes on 2 cores: each regime researchers use, for each workload.
    "default": [
        ("train_step", TINY),
        ("train_step", DIGITS),
        ("train_step", MNIST_S),
        ("train_step", REF),
        ("train_step", WIDE),
        ("train_step", DEEP),
        ("train_step", CIFAR),
        ("train_step", (4096, 4, 1000, 784)),
        ("forward_backward", DIGITS),
        ("forward_backward", REF),
        ("forward_backward", WIDE),
        ("hvp", DIGITS),
        ("hvp", MNIST_S),
        ("hvp", REF),
        ("hvp", DEEP),
        ("hvp", WIDE),
        ("hvp_warm", DIGITS),
        ("hvp_warm", MNIST_S),
        ("hvp_warm", REF),
        ("hvp_warm", DEEP),
        ("hvp_warm", WIDE),
        ("sharpness_power", DIGITS),
        ("sharpness_power", MNIST_S),
        ("sharpness_power", REF),
        ("sharpness_lanczos", DIGITS),
        ("sharpness_lanczos", MNIST_S),
        ("sharpness_lanczos", REF),
        ("hutchinson", DIGITS),
        ("hutchinson", MNIST_S),
        ("hutchinson", REF),
        ("per_sample_norms", DIGITS),
        ("per_sample_norms", MNIST_S),
        ("per_sample_norms", (1024, 3, 256, 784)),
        ("per_sample_norms", WIDE),  # vmap(grad) would need ~50 GiB: skipped
        ("ntk", (64, 3, 500, 64)),
        ("ntk", (512, 3, 100, 784)),
        ("ntk", (256, 4, 200, 784)),
        ("gd_run", TINY),
        ("gd_run", DIGITS),
        ("gd_run", (256, 3, 1000, 784)),
    ],
    # ~20 minutes on 2 cores with --rounds 2: the convolutional presets.
    # ResNet-20 at batch 100 (lmech's HVP at batch 1000 needs more than
    # 24 GiB, its training step ~55 s); sharpness at batch 100 (CNN) and
    # 32 (ResNet): a run is 15-50 HVPs.
    "conv": conv_rows(CNN, 100) + conv_rows(RESNET, 32) + conv_rows(RESNET_BN, 32),
    # The transformer rows (d_model 128 and 512, 2 blocks, T 64,
    # batch 256): minutes for d 128, hours for d 512 on 2 cores (give a
    # --row-timeout of an hour or more; meant for a quiet, bigger machine).
    "transformer": transformer_rows(TRANSFORMER_128) + transformer_rows(TRANSFORMER_512),
}
# --full: every workload on the whole grid below (108 sizes): hours to days
# on a small CPU; meant for big machines and GPUs, or to be cut down with
# --workloads / --widths / --depths / --batches / --inputs.
FULL_AXES = {
    "widths": [64, 256, 1024, 4096],
    "depths": [2, 4, 8],
    "batches": [100, 1000, 5000],
    "inputs": [40, 784, 3072],
}


def split_size(size):
    """(width, depth, batch, input, arch, norm) of a grid size."""
    width, depth, batch, inp = size[:4]
    model = size[4] if len(size) > 4 else "mlp"
    arch, _, norm = model.partition("/")
    return width, depth, batch, inp, arch, norm or ARCH_NORMS[arch][0]


def model_name(size):
    _, _, _, _, arch, norm = split_size(size)
    return arch if norm == ARCH_NORMS[arch][0] else f"{arch}/{norm}"


def transformer_params(width, depth, tokens, vocab, norm="layer"):
    """src/nn/transformer_preset.rs: embedding and positions, per block
    q, k, v, o (d x d and a bias each) and the MLP d -> 4d -> d with biases,
    a norm before each sub-block and one at the end (LayerNorm: gain and
    shift; RMSNorm: gain), the readout d -> vocab at every position."""
    per_norm = {"none": 0, "layer": 2, "rms": 1}[norm] * width
    block = 4 * (width * width + width) + 2 * (4 * width * width) + 5 * width + 2 * per_norm
    return (vocab + tokens) * width + depth * block + per_norm + width * vocab + vocab


def param_count(width, depth, inp, classes=CLASSES, arch="mlp", norm="none", vocab=64):
    if arch == "transformer":
        return transformer_params(width, depth, inp, vocab, norm)
    if arch == "mlp":
        sizes = [inp] + [width] * (depth - 1) + [classes]
        return sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    # src/nn/presets.rs: 3x3 convolutions, no bias before BatchNorm; norm
    # parameters per channel (gain and shift; RMSNorm: gain only).
    side = round((inp / 3) ** 0.5)
    per_norm = {"none": 0, "batch": 2, "layer": 2, "rms": 1}[norm]

    def conv(cin, cout, k=3, bias=True):
        return cout * cin * k * k + (cout if bias and norm != "batch" else 0)

    if arch == "cnn":
        n, c = 0, 3
        for _ in range(depth):
            n += conv(c, width) + per_norm * width
            c, side = width, side // 2
        return n + c * side * side * classes + classes
    blocks = (depth - 2) // 6
    n, c = conv(3, width) + per_norm * width, width
    for stage in range(3):
        for b in range(blocks):
            out = width << stage
            n += conv(c, out) + conv(out, out) + 2 * per_norm * out
            if out != c or (stage > 0 and b == 0):
                n += conv(c, out, 1, bias=False)
            c = out
    return n + c * classes + classes


def size_params(size, vocab):
    width, depth, _, inp, arch, norm = split_size(size)
    return param_count(width, depth, inp, arch=arch, norm=norm, vocab=vocab)


def full_grid(axes, workloads):
    return [(w, (wd, d, b, i)) for w in workloads for wd in axes["widths"]
            for d in axes["depths"] for b in axes["batches"] for i in axes["inputs"]]


def mem_available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def torch_memory_estimate(workload, size, vocab):
    """Bytes PyTorch's side is sure to need beyond its baseline, for the
    workloads that materialize per-example objects (None: not estimated)."""
    batch = size[2]
    p = size_params(size, vocab)
    if workload == "per_sample_norms":
        return 4 * batch * p * 2  # vmap(grad): batch x params, and its square
    if workload == "ntk":
        return 4 * batch * CLASSES * p * 2  # vmap(jacrev): batch x classes x params
    return None


def fmt_ms(x):
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def fmt_mib(side):
    peak = side.get("peak_rss_mib")
    if peak is None:
        return "—"
    s = f"{peak:.0f}"
    base = side.get("rss_before_setup_mib")
    if base is not None:
        s += f" (+{peak - base:.0f})"
    if side.get("peak_device_mib") is not None:
        s += f"; GPU {side['peak_device_mib']:.0f}"
    return s


def fmt_value(v):
    if v is None:
        return "?"
    return f"{v:.4g}"


def git_describe():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def cmd_version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip() or None
    except OSError:
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


class Runner:
    def __init__(self, args):
        self.args = args
        self.env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "RAYON_NUM_THREADS"):
            self.env[var] = str(args.threads)
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"

    def limit(self, side):
        """Address-space cap of each child (CPU only: CUDA reserves huge
        virtual ranges), so that a size too big for the machine fails in
        its own row instead of waking the OOM killer. PyTorch's gets 3 GiB
        more: its libraries map that much address space (only ~0.5 GiB of
        it resident) before any tensor exists."""
        lim = self.args.mem_limit_bytes
        if lim and not self.args.device.startswith("cuda"):
            if side == "torch":
                lim += 3 * 2**30
            return lambda: resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
        return None

    def common(self, workload, size, warmup, reps):
        width, depth, batch, inp, arch, norm = split_size(size)
        a = self.args
        return ["--workload", workload, "--width", str(width), "--depth", str(depth),
                "--arch", arch, "--norm", norm,
                "--batch", str(batch), "--input", str(inp), "--classes", str(CLASSES),
                "--vocab", str(a.vocab),
                "--threads", str(a.threads), "--reps", str(reps), "--warmup", str(warmup),
                "--device", a.device, "--seed", str(a.seed), "--tol", str(a.tol),
                "--max-iter", str(a.max_iter), "--probes", str(a.probes),
                "--steps", str(a.steps), "--lr", str(a.lr),
                "--time-budget", str(a.time_budget), "--gemm", a.gemm]

    def run_side(self, side, workload, size, warmup, reps, opts, extra=()):
        if side == "lmech":
            cmd = [self.args.lmech_bin] + self.common(workload, size, warmup, reps)
            if self.args.split:
                cmd.append("--split")
        elif side == "before":
            # An older binary may lack --split; it runs the same workload.
            cmd = [self.args.lmech_before] + self.common(workload, size, warmup, reps)
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--torch-child"]
            cmd += self.common(workload, size, warmup, reps)
            cmd += ["--hvp-method", opts.get("hvp_method", self.args.hvp_method[0]),
                    "--psn-method", opts.get("psn_method", self.args.psn_method[0])]
        cmd += list(extra)
        started = time.time()
        load = os.getloadavg()[0]  # the machine may be shared: say how busy it was
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=self.env,
                               cwd=ROOT, timeout=self.args.row_timeout,
                               preexec_fn=self.limit(side))
        except subprocess.TimeoutExpired:
            return {"status": "timeout",
                    "reason": f"killed after {self.args.row_timeout:.0f} s (--row-timeout)",
                    "wall_s": time.time() - started}
        wall = time.time() - started
        line = None
        for candidate in reversed(p.stdout.strip().splitlines()):
            if candidate.startswith("{"):
                try:
                    line = json.loads(candidate)
                    break
                except json.JSONDecodeError:
                    pass
        err_lines = p.stderr.strip().splitlines()
        oom = [x for x in err_lines if "memory allocation of" in x]
        tail = oom[0] if oom else " | ".join(err_lines[-3:])
        if line is not None and "unavailable" in line:
            return {"status": "unavailable", "reason": line["unavailable"], "wall_s": wall}
        if line is not None and "error" in line:
            return {"status": "error", "reason": line["error"], "wall_s": wall}
        if p.returncode != 0 or line is None:
            why = f"exit status {p.returncode}"
            if p.returncode in (-9, 137):
                why += " (killed: out of memory?)"
            if "memory allocation" in p.stderr or "can't allocate memory" in p.stderr:
                why += " (out of memory)"
            return {"status": "error", "reason": f"{why}: {tail}"[:1000], "wall_s": wall}
        line["status"] = "ok"
        line["wall_s"] = wall
        line["load_average_1min"] = load
        return line

    def check_twin(self, size):
        """Whether PyTorch's twin of a transformer is lmech's model: lmech-bench
        writes the model at init (a forward_backward call at batch 4 with
        --save-model), and workloads.py --check-twin loads that checkpoint
        into the twin and compares logits, losses at init and parameter
        counts (transformer_twin.check_twin)."""
        small = size[:2] + (4,) + size[3:]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.safetensors")
            lm = self.run_side("lmech", "forward_backward", small, 0, 1, {},
                               ["--save-model", path])
            if lm.get("status") != "ok":
                return {"ok": False, "status": lm.get("status"),
                        "reason": f"lmech-bench --save-model: {lm.get('reason', '?')}"}
            out = self.run_side("torch", "forward_backward", small, 0, 1, {},
                                ["--check-twin", path])
        if out.get("status") != "ok":
            return {"ok": False, "status": out.get("status"),
                    "reason": f"--check-twin: {out.get('reason', '?')}"}
        return out

    def skip_reason(self, side, workload, size, opts):
        a = self.args
        arch, norm = split_size(size)[4:]
        if workload in ("per_sample_norms", "ntk") and norm == "batch":
            return "undefined with BatchNorm (it mixes the examples; lmech refuses it)"
        if workload == "ntk" and arch == "transformer":
            return ("not compared on sequences: the NTK workload is a classifier's per-output "
                    "kernels, and a transformer has T*vocab outputs per example")
        if (side == "torch" and workload == "per_sample_norms" and arch == "transformer"
                and opts.get("psn_method") == "hooks"):
            return ("the Opacus-style hooks here know Linear and Conv2d layers only (not "
                    "Embedding, LayerNorm, positions or 3-D Linear inputs)")
        if side == "torch" and workload == "sharpness_lanczos" and not a.have_scipy:
            return "scipy not installed (PyTorch has no Lanczos; the twin uses scipy eigsh)"
        if side == "torch" and not a.device.startswith("cuda") and a.mem_limit_bytes:
            need = torch_memory_estimate(workload, size, a.vocab)
            if need is not None and need > a.mem_limit_bytes:
                return (f"needs about {need / 2**30:.0f} GiB "
                        f"(> the {a.mem_limit_bytes / 2**30:.0f} GiB limit)")
        return None


def merge_rounds(rounds):
    """One side's result over rounds: the median of the per-round medians."""
    ok = [r for r in rounds if r.get("status") == "ok"]
    if not ok:
        out = dict(rounds[-1]) if rounds else {"status": "skipped"}
        if len(rounds) > 1:
            out["rounds"] = rounds
        return out
    out = dict(ok[-1])
    if len(rounds) > 1:
        out["median_ms"] = statistics.median(r["median_ms"] for r in ok)
        out["min_ms"] = min(r["min_ms"] for r in ok)
        out["max_ms"] = max(r["max_ms"] for r in ok)
        out["peak_rss_mib"] = max(r["peak_rss_mib"] or 0 for r in ok)
        out["round_medians_ms"] = [r["median_ms"] for r in ok]
        out["rounds"] = rounds
    return out


def add_before(row, before, differ):
    """The older binary's result of a row (--lmech-before), its time over
    lmech's (the speedup) and PyTorch's time over its (the ratio before)."""
    row["before"] = before
    row["speedup"] = row["ratio_before"] = None
    if before.get("status") != "ok" or before["median_ms"] <= 0 or differ:
        return
    lm, pt = row["lmech"], row["torch"]
    if lm.get("status") == "ok" and lm["median_ms"] > 0:
        row["speedup"] = before["median_ms"] / lm["median_ms"]
    if pt.get("status") == "ok":
        row["ratio_before"] = pt["median_ms"] / before["median_ms"]


def before_after_table(results):
    """The rows with the older binary beside lmech and PyTorch, and each
    row's FLOP-bound time when the GEMM peak was measured (--peak)."""
    m = results["meta"]
    peak = m.get("peak_gflops")
    lines = [
        f"lmech before: {m['before']}; lmech after: {m['lmech_commit']}."
        + (f" FLOP-bound: the row's matrix-product FLOPs (bench/split.py) at the measured "
           f"GEMM peak, {peak:.0f} GFLOP/s." if peak else ""),
        "",
        "| workload | width x depth | batch | input | FLOP-bound ms | lmech before ms "
        "| lmech after ms | speedup (before / after) | PyTorch ms | PyTorch / lmech before "
        "| PyTorch / lmech after | peak MiB before / after / PyTorch | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lm, pt, bf = r["lmech"], r["torch"], r.get("before", {})
        _, _, batch, inp, arch, _ = split_size(r["size"])
        ms = lambda s: fmt_ms(s.get("median_ms")) if s.get("status") == "ok" \
            else s.get("status", "—")  # noqa: E731
        mib = lambda s: str(round(s["peak_rss_mib"])) if s.get("status") == "ok" \
            and s.get("peak_rss_mib") is not None else "—"  # noqa: E731
        num = lambda x, f: f.format(x) if x is not None else "—"  # noqa: E731
        bound = None
        if peak and arch == "mlp":
            flops = split.product_flops(r["workload"], r["width"], r["depth"], r["batch"],
                                        r["input"], hvps=lm.get("hvps"),
                                        steps=r.get("gd_steps"))
            bound = flops / (peak * 1e9) * 1e3 if flops else None
        lines.append(
            f"| {r['workload']} | {shape_name(r)} | {batch} | {inp} | {num(bound, '{:.3g}')} "
            f"| {ms(bf)} | {ms(lm)} | {num(r.get('speedup'), '{:.2f}x')} | {ms(pt)} "
            f"| {num(r.get('ratio_before'), '{:.2f}')} | {num(r.get('ratio'), '{:.2f}')} "
            f"| {mib(bf)} / {mib(lm)} / {mib(pt)} | {before_notes(r)} |")
    return lines


def before_notes(row):
    """A before/after row's notes: the row's own, and how many HVPs the
    older binary took where that is what its time is made of."""
    notes = row_notes(row)
    bf = row.get("before", {})
    if bf.get("status") == "ok" and bf.get("hvps") and row["workload"] in (
            "sharpness_power", "sharpness_lanczos", "hutchinson"):
        notes += f"; before {bf['hvps']} HVPs, value {fmt_value(bf.get('value'))}"
    elif bf.get("status") not in ("ok", None):
        notes += f"; before {bf['status']}: {bf.get('reason', '')}"
    return notes


def row_notes(row):
    w = row["workload"]
    lm, pt = row["lmech"], row["torch"]
    notes = []
    if row.get("params_differ"):
        notes.append(f"PARAMETER COUNTS DIFFER (lmech {row.get('params_lmech')}, PyTorch "
                     f"{row.get('params_torch')}, expected {row['params']}): not the same "
                     "model, no ratio")
    if row.get("hvp_method") and (row["hvp_method"] != "double_backward"
                                  or row.get("show_method")):
        notes.append(f"PyTorch {row['hvp_method']}")
    if row.get("psn_method") and (row["psn_method"] != "vmap" or row.get("show_method")):
        notes.append(f"PyTorch {row['psn_method']}")
    both = lm.get("status") == pt.get("status") and lm.get("reason") == pt.get("reason")
    for name, side in (("lmech", lm), ("PyTorch", pt)):
        # "unavailable" (a missing device) is said once, under the table.
        if side.get("status") not in ("ok", "unavailable", None):
            who = "both" if both else name
            notes.append(f"{who} {side['status']}: {side.get('reason', '')}")
            if both:
                break
    ok = lm.get("status") == "ok" and pt.get("status") == "ok"
    if w in ("sharpness_power", "sharpness_lanczos", "hutchinson"):
        for name, side in (("lmech", lm), ("PyTorch", pt)):
            if side.get("status") == "ok" and side.get("hvps"):
                per = side["median_ms"] / side["hvps"]
                notes.append(f"{name} {side['hvps']} HVPs ({fmt_ms(per)} ms each), "
                             f"value {fmt_value(side.get('value'))}"
                             + (" (not converged)" if side.get("converged") is False else ""))
    elif w == "gemm":
        for name, side in (("lmech", lm), ("PyTorch", pt)):
            if side.get("status") == "ok" and side.get("tflops") is not None:
                notes.append(f"{name} {side['tflops']:.1f} TFLOP/s")
        notes.append(f"gemm {row.get('gemm', '?')}")
    elif ok and lm.get("value") is not None and pt.get("value") is not None:
        notes.append(f"value {fmt_value(lm['value'])} / {fmt_value(pt['value'])}")
    for name, side in (("lmech", lm), ("PyTorch", pt)):
        if side.get("status") == "ok" and side.get("reps", 0) < row.get("reps_asked", 0):
            notes.append(f"{name} {side['reps']} reps (time budget)")
    return "; ".join(notes)


def markdown(results):
    m = results["meta"]
    lines = [
        f"Machine: {m['cpu']} ({m['cpus']} CPUs visible), "
        f"{m['mem_total_gib']:.0f} GiB; device {m['device']}"
        + (f" ({m['torch_device_name']})" if m.get("torch_device_name") else "")
        + f"; {m['threads']} threads on both sides. lmech {m['lmech_commit']} "
        f"({m['rustc']}), torch {m.get('torch') or '?'}, Python {m['python']}. "
        f"{m['date']}, grid `{m['grid']}`, {m['rounds']} round(s).",
        "",
        f"Command: `{m['command']}`",
        "",
        "| workload | width x depth | batch | input | params | lmech ms | PyTorch ms "
        "| PyTorch / lmech | lmech peak MiB | PyTorch peak MiB | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lm, pt = r["lmech"], r["torch"]
        _, _, batch, inp, _, _ = split_size(r["size"])
        shape = shape_name(r)
        lms = fmt_ms(lm.get("median_ms")) if lm.get("status") == "ok" else lm.get("status", "—")
        pts = fmt_ms(pt.get("median_ms")) if pt.get("status") == "ok" else pt.get("status", "—")
        ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else "—"
        lmm = fmt_mib(lm) if lm.get("status") == "ok" else "—"
        ptm = fmt_mib(pt) if pt.get("status") == "ok" else "—"
        lines.append(
            f"| {r['workload']} | {shape} | {batch} | {inp} | {r['params']:,} "
            f"| {lms} | {pts} | {ratio} | {lmm} | {ptm} | {row_notes(r)} |")
    unavailable = {}
    for r in results["rows"]:
        for name, key in (("lmech", "lmech"), ("PyTorch", "torch")):
            if r[key].get("status") == "unavailable":
                unavailable.setdefault((name, r[key].get("reason", "")), []).append(r)
    checks = m.get("twin_checks") or []
    if checks:
        lines.append("")
    for c in checks:
        lines.append(twin_line(c))
    if unavailable:
        lines.append("")
    for (name, reason), rows in unavailable.items():
        lines.append(f"{name} unavailable on {m['device']} in {len(rows)} of "
                     f"{len(results['rows'])} rows: {reason}")
    lines += [
        "",
        "Times are medians over repetitions after warm-up, each side in its own process "
        "(rounds: the median of the rounds' medians). Peak MiB is the process's peak "
        "resident set (VmHWM) and, in parentheses, its growth over the resident set "
        "before the model and data were built (PyTorch's baseline is its import, "
        "about 0.5 GiB). Ratio > 1: lmech is faster. Values are from different random "
        "draws of the same model and data distributions, so they agree only roughly "
        "(train_step, forward_backward: the loss).",
    ]
    if any(split_size(r["size"])[4] == "transformer" for r in results["rows"]):
        lines += [
            "",
            "Transformer input: T tokens per example; next-token cross-entropy over all "
            "batch x T positions. PyTorch's attention: F.scaled_dot_product_attention for "
            "train_step and forward_backward, written out (softmax(q k^T) v) for the "
            "curvature and per-example workloads (torch's CPU SDPA has no forward-mode AD "
            "nor double backward).",
        ]
    if m.get("before"):
        lines += ["", "Before and after, in the same run (each row's three sides alternate):",
                  ""]
        lines += before_after_table(results)
    if any(r["lmech"].get("split") for r in results["rows"]):
        peak = m.get("peak_gflops")
        lines += ["", "Where lmech's time goes (ms per call; lmech-bench --split, "
                  "bench/split.py)" + (f"; FLOP-bound: the products' FLOPs at the measured "
                                       f"GEMM peak, {peak:.0f} GFLOP/s" if peak else "")
                  + ":", ""]
        lines += split.split_table(results["rows"], peak, shape_name)
    return "\n".join(lines)


def shape_name(r):
    """A row's model in the tables: width x depth, and the arch when not an MLP."""
    width, depth, _, _, arch, _ = split_size(r["size"])
    shape = f"{width} x {depth}" if arch == "mlp" else f"{model_name(r['size'])} {width} x {depth}"
    if arch == "transformer":
        shape += f", vocab {r.get('vocab', '?')}"
    return shape


def twin_line(c):
    """One twin check, for the table's notes and the progress lines."""
    model = (f"{c['model']} {c['width']} x {c['depth']}, T {c['tokens']}, "
             f"vocab {c['vocab']}")
    if "max_abs_diff" not in c:
        return f"Twin check of {model}: FAILED to run: {c.get('reason', '?')}"
    verdict = "the same model" if c.get("ok") else "NOT THE SAME MODEL"
    return (f"Twin check of {model}: {verdict}: lmech's checkpoint (rebuilt by "
            f"bench/pytorch/lmech_checkpoint.py) and PyTorch's twin with its weights, "
            f"max |logit difference| {c['max_abs_diff']:.2g} (logits up to "
            f"{c['max_abs_logit']:.3g}; at init and with every weight moved), loss at init "
            f"{c['loss_lmech']:.4f} / {c['loss_torch']:.4f} (ln {c['vocab']} = "
            f"{c['ln_vocab']:.4f}), {c['params_lmech']:,} / {c['params_torch']:,} parameters.")


def show_path(path):
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


def write_json(path, results):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def default_out(device):
    day = datetime.date.today().isoformat()
    dev = device.replace(":", "")
    base = os.path.join(HERE, "results", f"compare-{dev}-{day}")
    path, n = base + ".json", 2
    while os.path.exists(path):
        path, n = f"{base}-{n}.json", n + 1
    return path


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="lmech vs PyTorch, side by side (see bench/compare.sh).")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smoke-test grid (~2 min on 2 cores)")
    g.add_argument("--full", action="store_true",
                   help="every workload on the whole grid (hours on a small CPU)")
    g.add_argument("--conv", action="store_true",
                   help="CNN and ResNet-20 grid (~20 min on 2 cores with --rounds 2)")
    g.add_argument("--transformer", action="store_true",
                   help="the 2-block transformer at d_model 128 and 512, T 64, batch 256 "
                   "(hours on 2 cores)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="threads of both sides (default: the CPUs this process may use)")
    ap.add_argument("--reps", type=int, default=None,
                    help="timed repetitions per side (default 5; 3 for slow workloads)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed calls first (default 2; 1 for slow workloads)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternating rounds per row (lmech first, then PyTorch first, ...)")
    ap.add_argument("--workloads", default=None, help="comma-separated subset of: "
                    + ",".join(WORKLOADS))
    ap.add_argument("--sizes", default=None,
                    help="explicit sizes [MODEL:]WxDxBxI[,...] (width x depth x batch x "
                    "input; MODEL e.g. cnn, resnet/batch, transformer (input: T tokens), "
                    "default --arch/--norm) instead of the grid's, for every selected "
                    "workload")
    ap.add_argument("--arch", default="mlp", choices=ARCHS,
                    help="model of the --sizes without a MODEL: prefix (default mlp)")
    ap.add_argument("--norm", default=None, choices=["none", "batch", "layer", "rms"],
                    help="normalization of the --sizes without a MODEL: prefix (default: "
                    "the architecture's, none; a transformer's: layer)")
    ap.add_argument("--vocab", type=int, default=64,
                    help="tokens of the transformer's vocabulary, both sides (default 64)")
    for axis, vals in FULL_AXES.items():
        ap.add_argument(f"--{axis}", default=None,
                        help=f"with --full: this axis's values (default "
                        f"{','.join(map(str, vals))})")
    ap.add_argument("--time-budget", type=float, default=60.0,
                    help="seconds of timed calls per side and row; after the first call, "
                    "repetitions are cut to fit (default 60; 0: no cap)")
    ap.add_argument("--row-timeout", type=float, default=900.0,
                    help="kill a side after this many seconds (default 900)")
    ap.add_argument("--mem-limit-gib", type=float, default=None,
                    help="address-space cap per child on CPU (default: 80%% of "
                    "MemAvailable at start, PyTorch's side 3 GiB more for its "
                    "libraries; 0: none)")
    ap.add_argument("--tol", type=float, default=1e-3, help="sharpness tolerance (1e-3)")
    ap.add_argument("--max-iter", type=int, default=200, help="most HVPs per sharpness run")
    ap.add_argument("--probes", type=int, default=10, help="Hutchinson probes (10)")
    ap.add_argument("--steps", type=int, default=100, help="steps of gd_run (100)")
    ap.add_argument("--lr", type=float, default=0.05, help="learning rate of gd_run (0.05)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hvp-method", default="double_backward",
                    help="PyTorch's cold HVP: double_backward (default), fwd_over_rev, "
                    "rev_over_rev, or several, comma-separated: one hvp row each "
                    "(rows whose grid names a method keep it)")
    ap.add_argument("--psn-method", default="vmap",
                    help="PyTorch's per-sample norms: vmap (default), hooks (Opacus-style), "
                    "or both, comma-separated: one row each")
    ap.add_argument("--gemm", default="simt", choices=["simt", "tc-tf32", "tc-bf16", "cublas"],
                    help="GEMM kind of the gemm workload (lmech's CUDA kernel; PyTorch: "
                    "torch.mm in fp32, TF32 or BF16)")
    ap.add_argument("--split", action="store_true",
                    help="also record where lmech's time goes (lmech-bench --split) and add "
                         "a second table (bench/split.py)")
    ap.add_argument("--peak", action="store_true",
                    help="measure the machine's GEMM peak first (lmech-bench gemm 1024^3) and "
                         "give each MLP row's FLOP-bound time in the --split table")
    ap.add_argument("--lmech-bin", default=os.path.join(ROOT, "target", "release",
                                                          "lmech-bench"))
    ap.add_argument("--lmech-before", default=None, metavar="BIN",
                    help="an older lmech-bench run as a third side of every row (before / "
                         "after in the same run, alternating with the others); the table "
                         "gains its times, the speedup and its ratio to PyTorch")
    ap.add_argument("--before-label", default=None,
                    help="what --lmech-before is, for the table (default: its path)")
    ap.add_argument("--out", default=None,
                    help="JSON path (default bench/results/compare-<device>-<date>.json)")
    ap.add_argument("--list", action="store_true", help="print the grid and exit")
    return ap.parse_args(argv)


def expand_rows(rows, args):
    """(workload, size, opts) rows: every hvp / per_sample_norms row without
    a method in its opts, once per method of --hvp-method / --psn-method."""
    out = []
    for row in rows:
        w, size, opts = row[0], tuple(row[1]), dict(row[2]) if len(row) > 2 else {}
        if w == "hvp" and "hvp_method" not in opts:
            out += [(w, size, dict(opts, hvp_method=m)) for m in args.hvp_method]
        elif w == "per_sample_norms" and "psn_method" not in opts:
            out += [(w, size, dict(opts, psn_method=m)) for m in args.psn_method]
        else:
            out.append((w, size, opts))
    return out


def build_grid(args):
    name, rows = build_rows(args)
    return name, expand_rows(rows, args)


def build_rows(args):
    workloads = WORKLOADS
    if args.workloads:
        workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
        bad = [w for w in workloads if w not in WORKLOADS]
        if bad:
            sys.exit(f"unknown workload(s) {bad}; choose from {WORKLOADS}")
    if args.sizes:
        sizes = []
        default_model = args.arch if args.norm is None else f"{args.arch}/{args.norm}"
        for s in args.sizes.split(","):
            model, _, dims = s.strip().lower().rpartition(":")
            model = model or default_model
            arch, _, norm = model.partition("/")
            try:
                w, d, b, i = (int(x) for x in dims.split("x"))
            except ValueError:
                sys.exit(f"size {s!r}: expected [MODEL:]WIDTHxDEPTHxBATCHxINPUT, "
                         "e.g. 1024x3x1000x784, resnet/batch:16x20x100x3072 or "
                         "transformer:128x2x256x64")
            if arch not in ARCHS or (norm and norm not in ARCH_NORMS[arch]):
                sys.exit(f"size {s!r}: MODEL is ARCH[/NORM], ARCH one of {ARCHS}, NORM "
                         + "; ".join(f"{a}: {', '.join(n)}" for a, n in ARCH_NORMS.items()))
            if arch == "transformer" and w % 4:
                sys.exit(f"size {s!r}: a transformer's width splits into 4 heads: "
                         "expected a multiple of 4")
            sizes.append((w, d, b, i) if model == "mlp" else (w, d, b, i, model))
        return "custom", [(w, s) for w in workloads for s in sizes]
    if args.full:
        axes = {k: ([int(x) for x in getattr(args, k).split(",")] if getattr(args, k)
                    else v) for k, v in FULL_AXES.items()}
        return "full", full_grid(axes, workloads)
    name = ("quick" if args.quick else "conv" if args.conv
            else "transformer" if args.transformer else "default")
    return name, [row for row in GRIDS[name] if row[0] in workloads]


def check_twins(runner, grid, results):
    """Runs the twin check (Runner.check_twin) once per transformer model of
    the grid (width, depth, T, norm; the batch does not change the model),
    records it in the results' meta and says it on stderr."""
    seen = set()
    for _, size, _ in grid:
        width, depth, _, inp, arch, norm = split_size(size)
        if arch != "transformer" or (width, depth, inp, norm) in seen:
            continue
        seen.add((width, depth, inp, norm))
        check = {"model": model_name(size), "width": width, "depth": depth,
                 "tokens": inp, "vocab": runner.args.vocab, "norm": norm}
        check.update(runner.check_twin(size))
        results["meta"]["twin_checks"].append(check)
        print(twin_line(check), file=sys.stderr, flush=True)


def main(argv):
    if argv and argv[0] == "--torch-child":
        sys.path.insert(0, os.path.join(HERE, "pytorch"))
        import workloads
        return workloads.main(argv[1:])
    args = parse_args(argv)
    methods = {"hvp_method": ["double_backward", "fwd_over_rev", "rev_over_rev"],
               "psn_method": ["vmap", "hooks"]}
    for key, allowed in methods.items():
        chosen = [m.strip() for m in getattr(args, key).split(",") if m.strip()]
        bad = [m for m in chosen if m not in allowed]
        if bad or not chosen:
            sys.exit(f"--{key.replace('_', '-')}: {bad or 'none given'}; choose from {allowed}")
        setattr(args, key, chosen)
    grid_name, grid = build_grid(args)
    if args.list:
        for w, size, opts in grid:
            width, depth, batch, inp, _, _ = split_size(size)
            method = opts.get("hvp_method") or opts.get("psn_method") or ""
            print(f"{w:18s} {model_name(size):12s} width {width:5d} depth {depth:2d} "
                  f"batch {batch:5d} input {inp:5d} params {size_params(size, args.vocab):,} "
                  f"{method}")
        print(f"{len(grid)} rows", file=sys.stderr)
        return 0
    if not os.path.exists(args.lmech_bin):
        sys.exit(f"{args.lmech_bin} not found: run bench/compare.sh, or "
                 "`cargo build --release --bins` first")
    if args.mem_limit_gib is None:
        avail = mem_available_bytes()
        args.mem_limit_bytes = int(0.8 * avail) if avail else None
    else:
        args.mem_limit_bytes = int(args.mem_limit_gib * 2**30) or None
    args.have_scipy = importlib.util.find_spec("scipy") is not None
    out = args.out or default_out(args.device)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    mem_total = None
    try:
        with open("/proc/meminfo") as f:
            mem_total = int(f.readline().split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    results = {
        "meta": {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["bench/compare.sh"] + argv),
            "grid": grid_name,
            "device": args.device,
            "threads": args.threads,
            "rounds": args.rounds,
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "mem_total_gib": mem_total or 0.0,
            "mem_limit_gib": (args.mem_limit_bytes / 2**30) if args.mem_limit_bytes else None,
            "hostname": platform.node(),
            "python": platform.python_version(),
            "rustc": cmd_version(["rustc", "--version"]),
            "lmech_commit": git_describe(),
            "torch": None,
            "scipy": args.have_scipy,
            "vocab": args.vocab,
            "twin_checks": [],
            "hvp_method": ",".join(args.hvp_method),
            "psn_method": ",".join(args.psn_method),
            "tol": args.tol,
            "max_iter": args.max_iter,
            "probes": args.probes,
            "gd_steps": args.steps,
            "gd_lr": args.lr,
            "time_budget_s": args.time_budget,
            "load_average_start": os.getloadavg(),
            "before": (args.before_label or args.lmech_before) if args.lmech_before else None,
        },
        "rows": [],
    }
    if args.peak:
        results["meta"]["peak_gflops"] = split.measure_peak(args.lmech_bin, args.threads)
        print(f"GEMM peak: {results['meta']['peak_gflops']:.0f} GFLOP/s "
              f"({args.threads} threads, 1024^3)", file=sys.stderr, flush=True)
    runner = Runner(args)
    started = time.time()
    print(f"{len(grid)} rows, grid {grid_name}, device {args.device}, {args.threads} threads; "
          f"results -> {show_path(out)}", file=sys.stderr, flush=True)
    check_twins(runner, grid, results)
    write_json(out, results)
    for n, (workload, size, opts) in enumerate(grid, 1):
        slow = workload in SLOW
        warmup = args.warmup if args.warmup is not None else opts.get("warmup", 1 if slow else 2)
        reps = args.reps if args.reps is not None else opts.get("reps", 3 if slow else 5)
        if args.quick and args.reps is None:
            reps = min(reps, 3)
        if args.quick and args.warmup is None:
            warmup = 1
        sides = ["before", "lmech", "torch"] if args.lmech_before else ["lmech", "torch"]
        rounds = {side: [] for side in sides}
        for rnd in range(max(1, args.rounds)):
            # Each round starts with another side, so none always runs first.
            order = sides[rnd % len(sides):] + sides[:rnd % len(sides)]
            for side in order:
                why = runner.skip_reason(side, workload, size, opts)
                if why:
                    rounds[side].append({"status": "skipped", "reason": why})
                else:
                    rounds[side].append(runner.run_side(side, workload, size, warmup, reps,
                                                        opts))
        lm, pt = merge_rounds(rounds["lmech"]), merge_rounds(rounds["torch"])
        params = size_params(size, args.vocab)
        counts = {side: r["params"] for side, r in (("lmech", lm), ("torch", pt))
                  if r.get("status") == "ok" and r.get("params") is not None}
        differ = any(c != params for c in counts.values())
        ratio = None
        if (lm.get("status") == "ok" and pt.get("status") == "ok" and lm["median_ms"] > 0
                and not differ):
            ratio = pt["median_ms"] / lm["median_ms"]
        if pt.get("torch") and not results["meta"]["torch"]:
            results["meta"]["torch"] = pt["torch"]
        if pt.get("device_name") and not results["meta"].get("torch_device_name"):
            results["meta"]["torch_device_name"] = pt["device_name"]
        width, depth, batch, inp, arch, norm = split_size(size)
        row = {
            "workload": workload,
            "size": list(size),
            "width": width, "depth": depth, "batch": batch, "input": inp,
            "arch": arch, "norm": norm,
            "classes": CLASSES,
            "params": params,
            "params_lmech": counts.get("lmech"),
            "params_torch": counts.get("torch"),
            "params_differ": differ,
            "warmup_asked": warmup,
            "reps_asked": reps,
            "lmech": lm,
            "torch": pt,
            "ratio": ratio,
            "gd_steps": args.steps,
        }
        if arch == "transformer":
            row["vocab"] = args.vocab
        if workload == "gemm":
            row["gemm"] = args.gemm
        if args.lmech_before:
            add_before(row, merge_rounds(rounds["before"]), differ)
        if workload == "hvp":
            row["hvp_method"] = opts["hvp_method"]
        if workload == "per_sample_norms":
            row["psn_method"] = opts["psn_method"]
        # Say the method in the notes when this run compares more than one.
        row["show_method"] = len(args.hvp_method) > 1 or len(args.psn_method) > 1 or any(
            o.get("hvp_method", "double_backward") != "double_backward"
            or o.get("psn_method", "vmap") != "vmap" for _, _, o in grid)
        results["rows"].append(row)
        results["meta"]["elapsed_s"] = time.time() - started
        write_json(out, results)
        show = lambda s: fmt_ms(s["median_ms"]) + " ms" if s.get("status") == "ok" \
            else s.get("status", "?")  # noqa: E731
        print(f"[{n}/{len(grid)}] {workload} "
              + ("" if arch == "mlp" else model_name(size) + " ")
              + f"{width}x{depth} b{batch} in{inp}: "
              f"lmech {show(lm)}, PyTorch {show(pt)}"
              + (f", ratio {ratio:.2f}" if ratio is not None else "")
              + (f"  ({row_notes(row)})" if row_notes(row) else "")
              + f"  [{time.time() - started:.0f} s]", file=sys.stderr, flush=True)
    results["meta"]["elapsed_s"] = time.time() - started
    results["meta"]["load_average_end"] = os.getloadavg()
    results["markdown"] = markdown(results)
    write_json(out, results)
    md_path = out[:-5] + ".md" if out.endswith(".json") else out + ".md"
    with open(md_path, "w") as f:
        f.write(results["markdown"] + "\n")
    print(results["markdown"])
    print(f"\n{len(grid)} rows in {time.time() - started:.0f} s; JSON: "
          f"{show_path(out)}, table: {show_path(md_path)}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
