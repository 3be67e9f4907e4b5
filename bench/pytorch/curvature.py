"""PyTorch's time (and peak memory) for the curvature workloads lmech's
`benches/curvature.rs` times: an MLP 784-1024-1024-10 (tanh), f32, softmax
cross-entropy, random data, on the CPU.

Workloads (batch 1000 unless noted):
  forward_backward          loss.backward() through nn.Module (the gradient)
  grad_func                 torch.func.grad of the functional loss
  hvp_fwd_over_rev          torch.func.jvp(grad(f), (params,), (v,))
  hvp_rev_over_rev          torch.func.vjp(grad(f), params)[1](v)
  hvp_double_backward       g = autograd.grad(loss, params, create_graph=True);
                            autograd.grad(g . v, params): forward, backward and
                            double backward, all from scratch
  hvp_double_backward_reuse the double backward alone, through a graph of g
                            built once (what each PyHessian iteration costs)
  per_sample_norms_b256     |g_i| of each example's own loss by
                            torch.func.vmap(grad(per-example loss)), batch 256
  sharpness_power_pyhessian PyHessian's power iteration (tol 1e-3 on the relative
                            change of the eigenvalue estimate, HVPs by double
                            backward through a retained graph of g), including
                            the graph's construction; reports its HVP count

Each HVP direction v is a fixed random Gaussian vector. Times are the median of
--reps repetitions after --warmup untimed ones (--sharpness-reps for the
power iteration, which takes tens of HVPs per run). Peak memory: each workload
also runs once in a fresh subprocess, which builds the model and data, resets
its peak resident set (VmHWM, by writing 5 to /proc/self/clear_refs), runs the
workload once and reports the peak's growth over the resident set before the
call (psutil has no peak on Linux, so /proc/self/status is read directly;
without the reset, the growth of VmHWM is reported, a lower bound).

Usage: python bench/pytorch/curvature.py [--threads N] [--reps R]
           [--sharpness-reps S] [--no-memory] [--only NAME[,NAME...]]
Prints JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp, vjp, vmap

BATCH = 1000
PER_SAMPLE_BATCH = 256
TOL = 1e-3
MAX_ITER = 200

WORKLOADS = [
    "forward_backward",
    "grad_func",
    "hvp_fwd_over_rev",
    "hvp_rev_over_rev",
    "hvp_double_backward",
    "hvp_double_backward_reuse",
    "per_sample_norms_b256",
    "sharpness_power_pyhessian",
]


def proc_status_kib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Setup:
    def __init__(self, seed=0):
        torch.manual_seed(seed)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(784, 1024), torch.nn.Tanh(),
            torch.nn.Linear(1024, 1024), torch.nn.Tanh(),
            torch.nn.Linear(1024, 10),
        )
        self.x = torch.randn(BATCH, 784)
        self.y = torch.randint(0, 10, (BATCH,))
        self.xs = torch.randn(PER_SAMPLE_BATCH, 784)
        self.ys = torch.randint(0, 10, (PER_SAMPLE_BATCH,))
        self.params = {k: p.detach() for k, p in self.model.named_parameters()}
        self.plist = list(self.model.parameters())
        self.v = {k: torch.randn_like(p) for k, p in self.params.items()}
        self.vlist = [self.v[k] for k, _ in self.model.named_parameters()]
        self._reuse_graph = None
        self.last_hvps = None
        self.last_value = None

    # -- the functional loss ------------------------------------------------
    def loss(self, params, x, y):
        return F.cross_entropy(functional_call(self.model, params, (x,)), y)

    def loss_one(self, params, xi, yi):
        return self.loss(params, xi.unsqueeze(0), yi.unsqueeze(0))

    # -- workloads ------------------------------------------------------------
    def forward_backward(self):
        self.model.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(self.x), self.y).backward()

    def grad_func(self):
        return grad(self.loss)(self.params, self.x, self.y)

    def hvp_fwd_over_rev(self):
        g = lambda p: grad(self.loss)(p, self.x, self.y)  # noqa: E731
        return jvp(g, (self.params,), (self.v,))[1]

    def hvp_rev_over_rev(self):
        g = lambda p: grad(self.loss)(p, self.x, self.y)  # noqa: E731
        _, vjp_fn = vjp(g, self.params)
        return vjp_fn(self.v)[0]

    def _grads_with_graph(self):
        loss = F.cross_entropy(self.model(self.x), self.y)
        return torch.autograd.grad(loss, self.plist, create_graph=True)

    def hvp_double_backward(self):
        g = self._grads_with_graph()
        gv = sum((gi * vi).sum() for gi, vi in zip(g, self.vlist))
        return torch.autograd.grad(gv, self.plist)

    def hvp_double_backward_reuse(self):
        if self._reuse_graph is None:
            self._reuse_graph = self._grads_with_graph()
        return torch.autograd.grad(
            self._reuse_graph, self.plist, grad_outputs=self.vlist,
            only_inputs=True, retain_graph=True)

    def per_sample_norms_b256(self):
        gs = vmap(grad(self.loss_one), in_dims=(None, 0, 0))(self.params, self.xs, self.ys)
        return sum(g.flatten(1).pow(2).sum(1) for g in gs.values())

    def sharpness_power_pyhessian(self):
        gen = torch.Generator().manual_seed(1)
        v = [torch.randn(p.size(), generator=gen) for p in self.plist]
        self.last_value, self.last_hvps = pyhessian_power(self._grads_with_graph(), self.plist, v, MAX_ITER, TOL)
        return self.last_value


def pyhessian_power(grads_h, plist, v, max_iter, tol):
    """PyHessian's hessian.eigenvalues(maxIter, tol, top_n=1) on one batch:
    power iteration by double backward through the gradient's graph
    (`grads_h`, built once, as in PyHessian's __init__), stopping when the
    estimate changes by less than tol relative. Returns (eigenvalue, HVPs)."""

    def normalization(v):
        s = torch.sqrt(sum(torch.sum(x * x) for x in v))
        return [x / (s + 1e-6) for x in v]

    def group_product(xs, ys):
        return sum(torch.sum(x * y) for x, y in zip(xs, ys))

    v = normalization(v)
    eigenvalue = None
    hvps = 0
    for _ in range(max_iter):
        hv = torch.autograd.grad(grads_h, plist, grad_outputs=v, only_inputs=True, retain_graph=True)
        hvps += 1
        tmp = group_product(hv, v).item()
        v = normalization(hv)
        if eigenvalue is not None and abs(eigenvalue - tmp) / (abs(eigenvalue) + 1e-6) < tol:
            eigenvalue = tmp
            break
        eigenvalue = tmp
    return eigenvalue, hvps


def time_workload(setup, name, reps, warmup):
    fn = getattr(setup, name)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    out = {"median_ms": 1e3 * statistics.median(times),
           "min_ms": 1e3 * min(times), "max_ms": 1e3 * max(times), "reps": reps}
    if name == "sharpness_power_pyhessian":
        out["hvps"] = setup.last_hvps
        out["lambda_max"] = setup.last_value
    return out


def memory_child(name):
    """Runs in a fresh process: one call of `name`, its peak RSS growth."""
    setup = Setup()
    fn = getattr(setup, name)
    if name == "hvp_double_backward_reuse":
        setup._reuse_graph = setup._grads_with_graph()  # the graph is setup here
    reset = reset_peak()
    before = proc_status_kib("VmRSS:")
    hwm_before = proc_status_kib("VmHWM:")
    fn()
    after = proc_status_kib("VmHWM:")
    base = before if reset else hwm_before
    print(json.dumps({
        "peak_growth_mib": (after - base) / 1024,
        "rss_before_mib": before / 1024,
        "peak_mib": after / 1024,
        "hwm_reset": reset,
    }))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--sharpness-reps", type=int, default=3)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--only", default=None,
                    help="comma-separated workload names (default: all)")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    names = WORKLOADS if args.only is None else args.only.split(",")
    setup = Setup()
    results = {}
    for name in names:
        if name == "sharpness_power_pyhessian":
            r = time_workload(setup, name, args.sharpness_reps, 0)
        else:
            r = time_workload(setup, name, args.reps, args.warmup)
        if not args.no_memory:
            child = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--threads", str(args.threads),
                 "--memory-child", name],
                capture_output=True, text=True, check=True)
            r["memory"] = json.loads(child.stdout.strip().splitlines()[-1])
        results[name] = r
        print(f"{name}: {r['median_ms']:.1f} ms", file=sys.stderr, flush=True)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": args.threads,
        "batch": BATCH,
        "per_sample_batch": PER_SAMPLE_BATCH,
        "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
