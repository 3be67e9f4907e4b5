"""Issue 16's speed row: the top Hessian eigenvalue of a PyTorch model
through the bridge (``lmech.from_torch(...).hessian_eigs``) against
PyHessian's power iteration on the same model, weights and data, f32, on
the CPU, in one process (the same threads for both).

Models: the MLP 784-1024-1024-10 (tanh) of bench/pytorch/curvature.py on
1000 random examples (1.86M parameters: its CLI row is in BENCHMARKS.md),
and a small CNN on the 1797 digits (8x8, channels 1-32-64).

Each round times, alternating: PyHessian's ``eigenvalues(top_n=1, tol)``
(power iteration by double backward through a gradient graph built once,
the graph's construction included: ``pyhessian_power`` in curvature.py),
and lmech's ``hessian_eigs(k=1, tol)`` (Lanczos, its cost.seconds: data
upload and solve), plus once ``from_torch`` itself. A tight lmech solve
(tol 1e-6) gives each model's true top eigenvalue, so the table shows how
far each method's answer is from it.

Then PyHessian once at each of --pyhessian-tols (1e-4, 1e-5): the
tolerances its relative-change rule needs for a real error near lmech's
certified one.

Usage: python bench/pytorch/bridge_pyhessian.py [--threads 2] [--rounds 3] [--tol 1e-3]
           [--pyhessian-tols 1e-4 1e-5]
Prints JSON lines, one per model and round, a summary line per model, and
one per extra PyHessian tolerance.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import lmech

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from curvature import pyhessian_power  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mlp():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 784, generator=gen)
    y = torch.randint(0, 10, (1000,), generator=gen)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 1024), torch.nn.Tanh(),
        torch.nn.Linear(1024, 1024), torch.nn.Tanh(),
        torch.nn.Linear(1024, 10),
    )
    return "mlp 784-1024-1024-10", net, x, y


def cnn():
    x = np.load(os.path.join(ROOT, "data", "digits", "x.npy")) / 16.0
    y = np.load(os.path.join(ROOT, "data", "digits", "y.npy"))
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(64, 10),
    )
    images = torch.from_numpy(x).float().reshape(-1, 1, 8, 8)
    return "cnn digits 1-32-64", net, images, torch.from_numpy(y).long()


def pyhessian(net, x, y, tol):
    started = time.perf_counter()
    params = [p for p in net.parameters() if p.requires_grad]
    loss = F.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gen = torch.Generator().manual_seed(1)
    v = [torch.randn(p.size(), generator=gen) for p in params]
    value, hvps = pyhessian_power(grads, params, v, 200, tol)
    return value, hvps, time.perf_counter() - started


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--pyhessian-tols", type=float, nargs="*", default=[1e-4, 1e-5])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.environ.setdefault("RAYON_NUM_THREADS", str(a.threads))
    for name, net, x, y in (mlp(), cnn()):
        started = time.perf_counter()
        model = lmech.from_torch(net, x, dtype="f32")
        convert = time.perf_counter() - started
        xn, yn = x.numpy(), y.numpy()
        tight = model.hessian_eigs(xn, yn, k=1, tol=1e-6, max_iter=300)
        truth = float(tight.values[0])
        rows = []
        for r in range(a.rounds):
            pv, ph, ps = pyhessian(net, x, y, a.tol)
            e = model.hessian_eigs(xn, yn, k=1, tol=a.tol, max_iter=200)
            row = {
                "model": name, "round": r, "params": model.param_count,
                "pyhessian_s": ps, "pyhessian_hvps": ph, "pyhessian_value": pv,
                "lmech_s": e.cost.seconds, "lmech_hvps": e.cost.hvps,
                "lmech_value": float(e.values[0]), "lmech_bound": float(e.bounds[0]),
                "lmech_converged": bool(e.converged), "truth": truth,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
        print(json.dumps({
            "model": name, "summary": True, "from_torch_s": convert,
            "pyhessian_median_s": med("pyhessian_s"), "lmech_median_s": med("lmech_s"),
            "pyhessian_over_lmech": med("pyhessian_s") / med("lmech_s"),
            "pyhessian_rel_error": abs(rows[0]["pyhessian_value"] - truth) / truth,
            "lmech_rel_error": abs(rows[0]["lmech_value"] - truth) / truth,
        }), flush=True)
        # PyHessian at the tolerances that bring its real error to lmech's
        # certified one: what equal accuracy costs it.
        for tol in a.pyhessian_tols:
            pv, ph, ps = pyhessian(net, x, y, tol)
            print(json.dumps({
                "model": name, "pyhessian_tol": tol, "pyhessian_s": ps, "pyhessian_hvps": ph,
                "pyhessian_rel_error": abs(pv - truth) / truth,
            }), flush=True)


if __name__ == "__main__":
    main()
