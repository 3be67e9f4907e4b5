"""PyTorch twins of `lmech-bench`'s workloads (src/bin/lmech-bench.rs) at any
size: a tanh MLP input -> width x (depth - 1) -> classes with biases and
nn.Linear's default init (lmech's standard parametrization draws the same
distribution), or with --arch cnn|resnet lmech's convolutional presets
(src/nn/presets.rs; see `build_model`) on 3 x s x s images (--input 3*s*s),
ReLU, --norm none|batch|layer|rms after each convolution, PyTorch's default
init; f32, softmax cross-entropy, random Gaussian inputs and
uniform random labels from a fixed seed. The model, the data and the HVP
code are those of bench/pytorch/curvature.py (its `Setup`, generalized to
any size and device); `bench/compare.py --torch-child` runs one workload at
one size in a fresh process, so that its peak memory is that workload's.

Workloads (each timed call includes what a user's call would do):
  train_step         forward, backward, torch.optim.SGD step (lr 1e-3)
  forward_backward   forward and loss.backward()
  hvp                one Hessian-vector product from scratch; --hvp-method
                     double_backward (default: autograd.grad with
                     create_graph, then the double backward, as PyHessian and
                     most research code do), fwd_over_rev (torch.func
                     jvp(grad)) or rev_over_rev (torch.func vjp(grad))
  hvp_warm           the double backward alone through a graph of the
                     gradient built once, untimed (each PyHessian iteration)
  sharpness_power    PyHessian's power iteration (stop when the eigenvalue
                     estimate changes by less than --tol, relatively),
                     including the gradient graph's construction
  sharpness_lanczos  scipy.sparse.linalg.eigsh (ARPACK's implicitly restarted
                     Lanczos, k=1, which='LA', tol=--tol) on double-backward
                     HVPs through host float64 vectors; needs scipy
  hutchinson         PyHessian's Hutchinson trace, --probes Rademacher probes
  per_sample_norms   |g_i| of each example's own loss by vmap(grad) over the
                     whole batch (materializes batch x params gradients);
                     --psn-method hooks: Opacus-style instead (forward hooks
                     keep each Linear/Conv2d input, tensor hooks its output
                     gradient of the summed loss, an einsum per layer (after
                     unfold for a convolution) gives the per-example weight
                     gradients, as Opacus's GradSampleModule does; models
                     with only Linear and Conv2d layers). Refused with
                     BatchNorm, as lmech refuses: it mixes the examples.
  ntk                the empirical NTK per output and its trace, by
                     vmap(jacrev) Jacobians (batch x classes x params) and
                     their contraction (the torch.func NTK tutorial's
                     'diagonal' variant)
  gd_run             --steps full-batch GD steps, loss.item() every step
  gemm               one width x width by width x width torch.mm; --gemm
                     simt or cublas: fp32 with TF32 off; tc-tf32: fp32
                     inputs with TF32 tensor cores allowed; tc-bf16: bf16
                     inputs (converted once, untimed), fp32 accumulate

Convolutional models (--arch, as lmech-bench's `model_spec`):
  cnn     Cohen et al.'s CNN: --depth x [Conv2d(3x3, --width channels,
          padding 1, bias unless norm=batch), norm, ReLU, MaxPool2d(2)],
          Flatten, Linear(-> --classes)
  resnet  CIFAR ResNet-(6n+2), --depth 6n+2: Conv2d 3x3 stem of --width
          channels, norm, ReLU; three stages of n basic blocks (width,
          2 width, 4 width channels, stride 2 into stages 2 and 3): conv3x3
          (stride), norm, ReLU, conv3x3, norm, + skip (a bias-free strided
          1x1 Conv2d when the shape changes), ReLU; AdaptiveAvgPool2d(1),
          Flatten, Linear
  norms   batch: nn.BatchNorm2d (train mode: batch statistics; running
          statistics updated by the training workloads only: for the
          curvature and per-example workloads the model goes through
          torch.func's replace_all_batch_norm_modules_, batch statistics
          and no buffer writes, the function lmech's HVPs differentiate);
          layer:
          nn.LayerNorm(C) channels-last (permute), over the channels at each
          position, as lmech's; rms: nn.RMSNorm(C) the same way, no bias

Transformer (--arch transformer, as lmech-bench's `transformer_spec`): the
twin in bench/pytorch/transformer_twin.py, on --input = T token ids of a
--vocab-token vocabulary per example with next-token labels [batch, T],
the cross-entropy over all batch*T positions; --norm layer (default), rms
or none. `ntk` is refused (T*vocab outputs per example; lmech-bench refuses
it too) and so is --psn-method hooks (Opacus-style hooks here know Linear and
Conv2d layers only). `--check-twin CHECKPOINT` runs no workload: it loads a
checkpoint of the same model from `lmech-bench --save-model` into the twin
and prints the comparison (transformer_twin.check_twin).

Usage (the same options as lmech-bench):
  python bench/pytorch/workloads.py --workload hvp --width 1024 --depth 3 \
      --batch 1000 --input 784 --threads 2 --reps 5 --warmup 2 [--device cuda]
Prints one JSON line: median_ms, min_ms, max_ms, reps, times_ms,
peak_rss_mib (VmHWM at the end), rss_before_setup_mib, params, value, hvps
(where applicable) and, on CUDA, peak_device_mib
(torch.cuda.max_memory_allocated). A device torch cannot use gives
{"unavailable": reason} and exit status 0; an error, {"error": message} and
exit status 1.
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

WORKLOADS = [
    "train_step",
    "forward_backward",
    "hvp",
    "hvp_warm",
    "sharpness_power",
    "sharpness_lanczos",
    "hutchinson",
    "per_sample_norms",
    "ntk",
    "gd_run",
    "gemm",
]
GEMMS = ["simt", "tc-tf32", "tc-bf16", "cublas"]
ARCHS = ["mlp", "cnn", "resnet", "transformer"]
NORMS = ["none", "batch", "layer", "rms"]
PSN_METHODS = ["vmap", "hooks"]


def image_side(inp):
    """s of a 3 x s x s input of --input 3*s*s (lmech-bench's rule)."""
    side = round((inp / 3) ** 0.5) if inp >= 3 else 0
    if 3 * side * side != inp:
        raise ValueError(f"a convolutional --arch needs --input 3*s*s "
                         f"(3-channel square images), got {inp}")
    return side


def build_model(a):
    """The benchmarked model as torch.nn modules, the same layers as
    lmech-bench's `model_spec` (src/nn/presets.rs)."""
    import torch
    from torch import nn

    if a.arch == "transformer":
        import transformer_twin
        return transformer_twin.build(a)
    if a.arch == "mlp":
        sizes = [a.input] + [a.width] * (a.depth - 1) + [a.classes]
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(nn.Tanh())
        return nn.Sequential(*layers)

    class ChannelsLast(nn.Module):
        """LayerNorm(C) / RMSNorm(C) over the channels at each position."""

        def __init__(self, norm):
            super().__init__()
            self.norm = norm

        def forward(self, x):
            return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    class Block(nn.Module):
        """relu(body(x) + skip(x)), skip a bias-free 1x1 projection with the
        body's stride when the shape changes."""

        def __init__(self, body, proj):
            super().__init__()
            self.body = body
            self.proj = proj

        def forward(self, x):
            skip = x if self.proj is None else self.proj(x)
            return torch.relu(self.body(x) + skip)

    def norm(c):
        if a.norm == "none":
            return []
        if a.norm == "batch":
            return [nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)]
        if a.norm == "layer":
            return [ChannelsLast(nn.LayerNorm(c, eps=1e-5))]
        return [ChannelsLast(nn.RMSNorm(c, eps=1e-5))]

    def conv(cin, cout, stride=1):
        # BatchNorm removes a per-channel constant: no bias before it.
        return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=a.norm != "batch")

    side = image_side(a.input)
    if a.arch == "cnn":
        layers, c, s = [], 3, side
        for _ in range(a.depth):
            layers += [conv(c, a.width)] + norm(a.width) + [nn.ReLU(), nn.MaxPool2d(2)]
            c, s = a.width, s // 2
        layers += [nn.Flatten(), nn.Linear(c * s * s, a.classes)]
        return nn.Sequential(*layers)
    if a.depth < 8 or (a.depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n+2 (8, 14, 20, ...), got {a.depth}")
    n = (a.depth - 2) // 6
    layers = [conv(3, a.width)] + norm(a.width) + [nn.ReLU()]
    c = a.width
    for stage in range(3):
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            out = a.width << stage
            body = nn.Sequential(conv(c, out, stride), *norm(out), nn.ReLU(),
                                 conv(out, out), *norm(out))
            proj = None
            if stride != 1 or out != c:
                proj = nn.Conv2d(c, out, 1, stride=stride, bias=False)
            layers.append(Block(body, proj))
            c = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, a.classes)]
    return nn.Sequential(*layers)


def proc_status_mib(field):
    import curvature  # after torch: run() has imported it already

    kib = curvature.proc_status_kib(field)
    return None if kib is None else kib / 1024


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", required=True, choices=WORKLOADS)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--depth", type=int, required=True)
    ap.add_argument("--arch", default="mlp", choices=ARCHS)
    ap.add_argument("--norm", default=None, choices=NORMS,
                    help="default: layer for the transformer, none otherwise")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--input", type=int, required=True)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--vocab", type=int, default=64, help="the transformer's tokens")
    ap.add_argument("--check-twin", default=None, metavar="CHECKPOINT",
                    help="compare the transformer twin with this lmech checkpoint")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--max-iter", type=int, default=200)
    ap.add_argument("--probes", type=int, default=10)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--time-budget", type=float, default=0.0)
    ap.add_argument("--hvp-method", default="double_backward",
                    choices=["double_backward", "fwd_over_rev", "rev_over_rev"])
    ap.add_argument("--gemm", default="simt", choices=GEMMS)
    ap.add_argument("--psn-method", default="vmap", choices=PSN_METHODS,
                    help="per_sample_norms: torch.func vmap(grad) or Opacus-style hooks")
    return ap


def make_bench(args):
    """The workload object; imported lazily so that --help needs no torch."""
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call, jacrev, vmap

    import curvature
    import transformer_twin
    from transformer_twin import criterion

    class Bench(curvature.Setup):
        """curvature.Setup at any size and on any device."""

        def __init__(self, a, device):
            # Not curvature.Setup.__init__: that one builds 784-1024-1024-10.
            torch.manual_seed(a.seed)
            self.a = a
            self.device = device
            self.model = build_model(a).to(device)
            self.batch_norm = a.norm == "batch" and a.arch != "mlp"
            if self.batch_norm and a.workload not in ("train_step", "gd_run",
                                                      "forward_backward"):
                # Curvature: the loss with batch statistics as a function of
                # the weights, no running-statistics writes (lmech's rule;
                # torch.func cannot write buffers inside its transforms).
                from torch.func import replace_all_batch_norm_modules_
                replace_all_batch_norm_modules_(self.model)
            if self.batch_norm and a.workload in ("per_sample_norms", "ntk"):
                raise ValueError(f"{a.workload} is not defined with BatchNorm (it mixes the "
                                 "examples of a batch); lmech refuses it too")
            self.model.train()
            if a.arch == "transformer":
                if a.workload == "ntk":
                    raise ValueError("ntk compares a classifier's per-output kernels; a "
                                     "sequence model has T*vocab outputs per example, so "
                                     "it is not run on the transformer (nor by lmech-bench)")
                self.x, self.y = transformer_twin.data(a, device)
            else:
                self.x = torch.randn(a.batch, a.input).to(device)
                if a.arch != "mlp":
                    side = image_side(a.input)
                    self.x = self.x.view(a.batch, 3, side, side)
                self.y = torch.randint(0, a.classes, (a.batch,)).to(device)
            # per_sample_norms_b256 of curvature.Setup reads xs, ys: here the
            # whole batch.
            self.xs, self.ys = self.x, self.y
            self.params = {k: p.detach() for k, p in self.model.named_parameters()}
            self.plist = list(self.model.parameters())
            self.v = {k: torch.randn_like(p) for k, p in self.params.items()}
            self.vlist = [self.v[k] for k, _ in self.model.named_parameters()]
            self._reuse_graph = None
            self.last_hvps = None
            self.last_value = None
            self.last_converged = None
            self.last = None
            self.opt = None

        def gen(self, offset):
            return torch.Generator(device=self.device).manual_seed(self.a.seed + offset)

        # -- the loss (curvature.Setup's, sequences read as batch*T rows) ----
        def loss(self, params, x, y):
            return criterion(functional_call(self.model, params, (x,)), y)

        def _grads_with_graph(self):
            loss = criterion(self.model(self.x), self.y)
            return torch.autograd.grad(loss, self.plist, create_graph=True)

        # -- training -------------------------------------------------------
        def forward_backward(self):
            self.model.zero_grad(set_to_none=True)
            self.last = criterion(self.model(self.x), self.y)
            self.last.backward()

        def train_step(self):
            self.forward_backward()
            self.opt.step()

        def gd_run(self):
            loss = None
            for _ in range(self.a.steps):
                self.opt.zero_grad(set_to_none=True)
                out = criterion(self.model(self.x), self.y)
                out.backward()
                self.opt.step()
                loss = out.item()
            self.last_value = loss

        # -- curvature ------------------------------------------------------
        def hvp(self):
            method = {
                "double_backward": self.hvp_double_backward,
                "fwd_over_rev": self.hvp_fwd_over_rev,
                "rev_over_rev": self.hvp_rev_over_rev,
            }[self.a.hvp_method]
            self.last = method()
            self.last_hvps = 1

        def hvp_warm(self):
            self.last = self.hvp_double_backward_reuse()
            self.last_hvps = 1

        def rayleigh(self):
            hv = self.last.values() if isinstance(self.last, dict) else self.last
            num = sum((h * v).sum() for h, v in zip(hv, self.vlist)).item()
            den = sum((v * v).sum() for v in self.vlist).item()
            return num / den

        def sharpness_power(self):
            # PyHessian's power iteration, with the start vector drawn on the
            # model's device.
            gen = self.gen(3)
            v = [torch.randn(p.size(), generator=gen, device=self.device) for p in self.plist]
            self.last_value, self.last_hvps = curvature.pyhessian_power(
                self._grads_with_graph(), self.plist, v, self.a.max_iter, self.a.tol)

        def sharpness_lanczos(self):
            import numpy as np
            from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

            grads_h = self._grads_with_graph()
            shapes = [p.shape for p in self.plist]
            numels = [p.numel() for p in self.plist]
            n = sum(numels)
            count = [0]

            def matvec(x):
                flat = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32).reshape(-1))
                flat = flat.to(self.device)
                vs = [c.view(s) for c, s in zip(flat.split(numels), shapes)]
                hv = torch.autograd.grad(grads_h, self.plist, grad_outputs=vs,
                                         only_inputs=True, retain_graph=True)
                count[0] += 1
                return torch.cat([h.reshape(-1) for h in hv]).double().cpu().numpy()

            op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
            v0 = np.random.default_rng(self.a.seed + 3).standard_normal(n)
            # ARPACK's maxiter counts restarts of ncv - 1 products each: cap
            # the products near --max-iter, as lmech's max_iter does.
            ncv = min(n, 20)
            try:
                vals = eigsh(op, k=1, which="LA", tol=self.a.tol, v0=v0, ncv=ncv,
                             maxiter=max(1, self.a.max_iter // (ncv - 1)),
                             return_eigenvectors=False)
                self.last_converged = True
            except ArpackNoConvergence as e:
                vals = e.eigenvalues
                self.last_converged = False
            self.last_hvps = count[0]
            self.last_value = float(vals[-1]) if len(vals) else None

        def hutchinson(self):
            # PyHessian's hessian.trace() with a fixed number of probes.
            grads_h = self._grads_with_graph()
            gen = self.gen(4)
            samples = []
            for _ in range(self.a.probes):
                v = [torch.randint(0, 2, p.size(), generator=gen, device=self.device,
                                   dtype=p.dtype) * 2 - 1 for p in self.plist]
                hv = torch.autograd.grad(grads_h, self.plist, grad_outputs=v,
                                         only_inputs=True, retain_graph=True)
                samples.append(sum(torch.sum(h * vi) for h, vi in zip(hv, v)).item())
            self.last_hvps = len(samples)
            self.last_value = sum(samples) / len(samples)

        # -- GEMM -------------------------------------------------------------
        def gemm_setup(self):
            n = self.a.width
            gen = self.gen(5)
            dtype = torch.bfloat16 if self.a.gemm == "tc-bf16" else torch.float32
            self.ga = torch.randn(n, n, generator=gen, device=self.device).to(dtype)
            self.gb = torch.randn(n, n, generator=gen, device=self.device).to(dtype)
            if self.device.type == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = self.a.gemm == "tc-tf32"

        def gemm(self):
            self.last = torch.mm(self.ga, self.gb)

        # -- per-example ----------------------------------------------------
        def per_sample_norms(self):
            if self.a.psn_method == "hooks":
                self.last = self.per_sample_norms_hooks()
            else:
                self.last = self.per_sample_norms_b256()

        def per_sample_norms_hooks(self):
            """Opacus's GradSampleModule, reduced to what the norms need:
            each Linear/Conv2d layer's per-example weight gradient
            materialized from its input and its output's gradient of the
            summed loss (= each example's own loss's), then squared and
            summed."""
            mods = [m for m in self.model.modules() if len(list(m.children())) == 0
                    and any(True for _ in m.parameters(recurse=False))]
            bad = [type(m).__name__ for m in mods
                   if not isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
            if bad:
                raise ValueError(f"--psn-method hooks: only Linear and Conv2d layers, not {bad}")
            acts, sq = {}, []

            def backprop_hook(m):
                def hook(gout):
                    x = acts.pop(m)
                    n = x.shape[0]
                    if isinstance(m, torch.nn.Conv2d):
                        cols = F.unfold(x, m.kernel_size, dilation=m.dilation,
                                        padding=m.padding, stride=m.stride)
                        b = gout.reshape(n, gout.shape[1], -1)
                        gw = torch.einsum("noq,npq->nop", b, cols)
                        gb = b.sum(2) if m.bias is not None else None
                    else:
                        gw = torch.einsum("no,np->nop", gout, x)
                        gb = gout if m.bias is not None else None
                    sq.append(gw.flatten(1).pow(2).sum(1))
                    if gb is not None:
                        sq.append(gb.pow(2).sum(1))
                return hook

            def forward_hook(m, inputs, output):
                acts[m] = inputs[0].detach()
                output.register_hook(backprop_hook(m))

            handles = [m.register_forward_hook(forward_hook) for m in mods]
            try:
                loss = criterion(self.model(self.x), self.y, reduction="sum")
                torch.autograd.grad(loss, self.plist)
            finally:
                for h in handles:
                    h.remove()
            return sum(sq)

        def ntk(self):
            def f_one(params, xi):
                return functional_call(self.model, params, (xi.unsqueeze(0),)).squeeze(0)

            jac = vmap(jacrev(f_one), (None, 0))(self.params, self.x)
            per_output = sum(torch.einsum("Naf,Maf->NMa", j.flatten(2), j.flatten(2))
                             for j in jac.values())
            self.last = (per_output, per_output.sum(-1))

        def value(self):
            name = self.a.workload
            if name in ("hvp", "hvp_warm"):
                return self.rayleigh()
            if name == "per_sample_norms":
                return self.last.sqrt().mean().item()
            if name in ("train_step", "forward_backward"):
                return self.last.item()  # the last call's loss, read after the timing
            if name == "ntk":
                return torch.diagonal(self.last[1]).mean().item()
            return self.last_value

    return Bench


def time_calls(args, call, sync):
    """Mirrors lmech-bench's time_calls: warm-up, then timed calls, cut to
    --time-budget seconds after the first call."""
    warmup, reps = args.warmup, max(1, args.reps)
    times, warm_done, first = [], 0, True
    while warm_done < warmup or len(times) < reps:
        t = time.perf_counter()
        call()
        sync()
        t = time.perf_counter() - t
        if warm_done < warmup:
            warm_done += 1
        else:
            times.append(t)
        if first and args.time_budget > 0:
            first = False
            fit = max(1, int(args.time_budget / max(t, 1e-9)))
            if fit < reps + (warmup - warm_done):
                warmup = warm_done
                reps = min(fit, reps)
    return times, warm_done


def run(args):
    import torch

    out = {"workload": args.workload}
    rss_before = proc_status_mib("VmRSS:")
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            out["device"] = args.device
            out["unavailable"] = "torch.cuda.is_available() is False"
            return out, 0
        if device.index is not None:
            torch.cuda.set_device(device)
    if args.threads:
        torch.set_num_threads(args.threads)
    Bench = make_bench(args)
    b = Bench(args, device)
    if args.workload in ("train_step", "gd_run"):
        lr = 1e-3 if args.workload == "train_step" else args.lr
        b.opt = torch.optim.SGD(b.model.parameters(), lr=lr)
    if args.workload == "gemm":
        b.gemm_setup()
    if args.workload == "hvp_warm":
        b._reuse_graph = b._grads_with_graph()  # set-up, as lmech's first product
        b.hvp_warm()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats(device)
    times, warm_done = time_calls(args, getattr(b, args.workload), sync)
    peak = proc_status_mib("VmHWM:")
    ms = sorted(1e3 * t for t in times)
    out.update({
        "median_ms": statistics.median(ms),
        "min_ms": ms[0],
        "max_ms": ms[-1],
        "reps": len(ms),
        "warmup": warm_done,
        "times_ms": [1e3 * t for t in times],
        "peak_rss_mib": peak,
        "rss_before_setup_mib": rss_before,
        "params": sum(p.numel() for p in b.plist),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "dtype": "f32",
        "torch": torch.__version__,
    })
    if device.type == "cuda":
        out["peak_device_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["device_name"] = torch.cuda.get_device_name(device)
    out["arch"], out["norm"] = args.arch, args.norm
    if args.arch == "transformer":
        out["vocab"] = args.vocab
        sdpa = any(getattr(m, "sdpa", False) for m in b.model.modules())
        out["attention"] = "sdpa" if sdpa else "explicit"
    if args.workload == "hvp":
        out["hvp_method"] = args.hvp_method
    if args.workload == "per_sample_norms":
        out["psn_method"] = args.psn_method
    if args.workload == "gemm":
        out["gemm"] = args.gemm
        out["tflops"] = 2.0 * args.width ** 3 / (out["median_ms"] * 1e-3) / 1e12
    value = b.value()
    if value is not None:
        out["value"] = value
    if b.last_hvps is not None:
        out["hvps"] = b.last_hvps
    if b.last_converged is not None:
        out["converged"] = b.last_converged
    return out, 0


def main(argv=None):
    args = parser().parse_args(argv)
    if args.norm is None:
        args.norm = "layer" if args.arch == "transformer" else "none"
    try:
        if args.check_twin:
            import transformer_twin
            out, code = transformer_twin.check_twin(args, args.check_twin), 0
        else:
            out, code = run(args)
    except Exception as e:  # recorded by the driver, never fatal to it
        why = str(e) or ("out of memory" if isinstance(e, MemoryError) else "")
        out = {"workload": args.workload, "error": f"{type(e).__name__}: {why}"[:2000]}
        code = 1
    print(json.dumps(out), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
