"""Reference values for lmech's numerical-parity tests, computed in PyTorch.

Given an lmech run directory (or a `model.safetensors` checkpoint), this
rebuilds the model (an MLP or any layer graph: convolutions, pooling,
normalization, residual blocks) with `lmech_checkpoint.load_model`, picks a
small batch of data, and computes in float64:

- the training loss on the batch and its gradient, flattened in lmech's
  parameter order (the checkpoint's: `layers.0.weight` row-major in PyTorch's
  layout, `[out, in]` or `[out, in, kh, kw]`, `layers.0.bias`, ..., a
  residual block's body parameters, then its projection's);
- the Hessian-vector product along a fixed direction v, both by forward-over-
  reverse (`torch.func.jvp` of `torch.func.grad`) and by double backward (the
  two must agree to 1e-12), and the Gauss-Newton-vector product
  `J^T H_loss J v` (jvp of the outputs, Hessian of the loss in the outputs,
  vjp back);
- the top-k Hessian eigenvalues from the dense Hessian
  (`torch.autograd.functional.hessian` on the flat parameter vector +
  `torch.linalg.eigvalsh`) and from scipy's `eigsh` (ARPACK) on HVPs, the
  way the edge-of-stability literature measures sharpness (they must agree
  to 1e-8);
- the exact Hessian trace (dense) and Hutchinson's estimate with stored
  Rademacher probes;
- per-example gradient squared norms (`vmap(grad)`; each example's own loss,
  not the batch mean);
- the empirical NTK Gram matrices per output and their trace over outputs
  (`jacrev`);
- for a model with BatchNorm: every quantity above with the batch's
  statistics (the training-mode function, running statistics untouched),
  except the per-example norms and the NTK, which are not defined for it
  (the fixture says `"mixes_examples": true` and lmech must refuse them);
  and the outputs in eval mode with the checkpoint's running statistics;
- a short full-batch gradient-descent run from the checkpoint's weights with
  `torch.optim.SGD` (no momentum), each parameter's learning rate being the
  base lr times the parametrization's SGD learning-rate scale (recomputed
  here from lmech's table): the loss before every update and after the last
  one, and the final flat parameters (with BatchNorm also its running
  statistics after the updates, `running_mean` then `running_var` per
  layer in walk order);
- 10 full-batch steps each of `torch.optim.Adam` (lmech's defaults, which
  are PyTorch's: betas (0.9, 0.999), eps 1e-8, no weight decay; lr 1e-3)
  and `torch.optim.AdamW` (the grokking example's lr 3e-3, betas
  (0.9, 0.98) and decoupled weight decay 1) from the same weights, each
  parameter's learning rate scaled by the parametrization's Adam column:
  the hyperparameters in lmech's [optim] keys, the losses, the final
  parameters (and running statistics), as for GD.

It writes one JSON fixture holding the inputs it used (x, targets, v, the
probes) and every reference value, for `tests/pytorch_parity.rs`.

Data (`--data`):

- `config` (the default when the run's `data.source` is `digits`): the
  bundled digits processed as lmech does for this config: first `n_train`
  rows, times `scale`, labels (xent) or one-hot targets (`one_hot`); the
  batch is the first `--n` of those rows, so it is a subset of what the run
  trained on. Preprocessing this script does not replicate (`shuffle`,
  `standardize`, `test_fraction`) and other sources are refused.
- `random` (the default for every other source): x ~ N(0, 1) with the
  checkpoint's input dimension (the product of its `input_shape`, read
  channels first), and targets consistent with the loss (labels
  uniform over the outputs for `xent`, N(0, 1) values otherwise), drawn from
  `--seed`. Parity is a property of the function, not of the data.

Inputs drawn here (random x and targets, v) are rounded to 6 decimals before
use, so that the fixture stores them exactly and compactly; probes are
stored as strings of '+' and '-'.

    python bench/pytorch/parity.py runs/digits_gd --out parity.json [--n 16] [--seed 0]

Requires torch, numpy, safetensors and scipy (bench/pytorch/requirements.txt).
"""

import argparse
import json
import math
import os
import sys
import tomllib
import warnings

import numpy as np
import scipy
import scipy.sparse.linalg
import torch
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lmech_checkpoint import (  # noqa: E402
    ChannelNorm,
    PositionEmbedding,
    ScaledConv,
    ScaledLinear,
    TiedUnembedding,
    TokenEmbedding,
    load_model,
)

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS_DIR = os.path.join(HERE, "..", "..", "data", "digits")
DTYPE = torch.float64
BatchNorm = torch.nn.modules.batchnorm._BatchNorm
# torch.func's forward-mode decompositions still go through torch.jit.script
# internally in torch 2.15 and warn about it on first use; nothing to act on.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated")


def fail(msg):
    print(f"parity.py: {msg}", file=sys.stderr)
    sys.exit(1)


def rel(a, b):
    """max |a - b| / max(|a|, |b|): the measure the Rust test uses."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-300)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def flat(t):
    vals = [float(a) for a in torch.as_tensor(t).reshape(-1)]
    assert all(math.isfinite(a) for a in vals), "a non-finite reference value"
    return vals


# --------------------------------------------------------------------------
# checkpoint and config


def resolve(path):
    """(checkpoint path, config dict, metadata) from a run dir or a checkpoint."""
    if os.path.isdir(path):
        ckpt = os.path.join(path, "model.safetensors")
        if not os.path.exists(ckpt):
            fail(f"{path} has no model.safetensors (a diverged or unfinished run?)")
    else:
        ckpt = path
    with safe_open(ckpt, framework="pt") as f:
        meta = f.metadata() or {}
    cfg_path = os.path.join(path, "config.toml") if os.path.isdir(path) else None
    if cfg_path and os.path.exists(cfg_path):
        with open(cfg_path, "rb") as f:
            cfg = tomllib.load(f)
    elif "config" in meta:
        cfg = tomllib.loads(meta["config"])
    else:
        fail(f"{ckpt}: no config.toml beside it and no config in its metadata")
    return ckpt, cfg, meta


def width_ratio(meta):
    """m = width / base_width; an MLP's width is its first hidden size (a
    linear model's is the base width), as older MLP checkpoints say."""
    if "width" in meta:
        return int(meta["width"]) / int(meta["base_width"])
    sizes = json.loads(meta["layer_sizes"])
    base = int(meta.get("base_width", sizes[1] if len(sizes) > 2 else sizes[-1]))
    width = sizes[1] if len(sizes) > 2 else base
    return width / base


def param_roles(model):
    """(role, weight-layer index) of each parameter in the module's order:
    dense, convolution and embedding weights and biases, norm gains and
    shifts, positional tables (shifts). Weight layers count in walk order, a
    residual's body before its projection, a tied unembedding too."""
    roles, layer = [], 0
    for mod in model.modules():
        if isinstance(mod, TokenEmbedding):
            roles.append(("weight", layer))
            layer += 1
        elif isinstance(mod, PositionEmbedding):
            roles.append(("shift", None))
        elif isinstance(mod, TiedUnembedding):
            # A weight layer (the readout) whose weight is the embedding's:
            # it takes a place in the walk but adds no parameter.
            layer += 1
        elif isinstance(mod, (ScaledLinear, ScaledConv)):
            roles.append(("weight", layer))
            if mod.bias is not None:
                roles.append(("bias", layer))
            layer += 1
        elif isinstance(mod, (ChannelNorm, BatchNorm)):
            # (a BatchNorm without gain or bias holds a constant buffer there)
            roles += [(r, None) for r, p in (("gain", mod.weight), ("shift", mod.bias)) if isinstance(p, torch.nn.Parameter)]
    return roles, layer


def weight_lr_scale(param, first, last, m):
    if param in ("sp", "ntk"):
        return 1.0
    if param == "mup":
        return m if first and not last else 1.0 / m if last and not first else 1.0
    return m  # mf


def sgd_lr_scales(meta, model):
    """Per-parameter SGD learning-rate scales in lmech's parameter order
    (README, Parametrizations and "Parametrizations by role"), recomputed
    independently of lmech: weights by position, biases, gains and shifts
    the vector-like scale (1 for sp and ntk, m for mup and mf)."""
    param = meta["parametrization"]
    if param not in ("sp", "ntk", "mup", "mf"):
        fail(f"unknown parametrization {param!r}")
    m = width_ratio(meta)
    roles, layers = param_roles(model)
    vector = 1.0 if param in ("sp", "ntk") else m
    return [
        weight_lr_scale(param, at == 0, at == layers - 1, m) if role == "weight" else vector
        for role, at in roles
    ]


def adam_lr_scales(meta, model):
    """Per-parameter Adam learning-rate scales in lmech's parameter order
    (the README's table, column "Adam lr scale"): mup's first weight layer 1
    and the others 1/m; mf's first sqrt(m) and the others 1/sqrt(m); biases,
    gains and shifts the vector-like scale (1 for sp, ntk and mup, sqrt(m)
    for mf)."""
    param = meta["parametrization"]
    m = width_ratio(meta)
    roles, _ = param_roles(model)
    first, rest, vector = {
        "sp": (1.0, 1.0, 1.0),
        "ntk": (1.0, 1.0, 1.0),
        "mup": (1.0, 1.0 / m, 1.0),
        "mf": (math.sqrt(m), 1.0 / math.sqrt(m), math.sqrt(m)),
    }[param]
    return [(first if at == 0 else rest) if role == "weight" else vector for role, at in roles]


def describe_model(meta):
    """The fixture's description of the model: the MLP keys for an MLP, the
    input shape and layer list for any other model."""
    if meta.get("architecture") == "mlp":
        return {"layer_sizes": json.loads(meta["layer_sizes"]), "activation": meta["activation"]}
    return {"architecture": meta["architecture"], "input_shape": json.loads(meta["input_shape"]), "layers": json.loads(meta["layers"])}


def model_bias(meta, model):
    if "bias" in meta:
        return meta["bias"] == "true"
    return any(role == "bias" for role, _ in param_roles(model)[0])


# --------------------------------------------------------------------------
# data


def round6(t):
    return torch.round(t * 1e6) / 1e6


def digits_data(cfg, n, loss, outputs, digits_dir):
    data = cfg.get("data", {})
    for key in ("shuffle", "standardize"):
        if data.get(key):
            fail(f"data.{key} = true is not replicated here; use --data random")
    if data.get("test_fraction") is not None:
        fail("data.test_fraction is not replicated here; use --data random")
    x = np.load(os.path.join(digits_dir, "x.npy")).astype(np.float64)
    y = np.load(os.path.join(digits_dir, "y.npy")).astype(np.int64)
    x = x.reshape(len(x), -1)
    n_train = data.get("n_train")
    if n_train is not None:
        x, y = x[:n_train], y[:n_train]
    if n > len(x):
        fail(f"--n {n} is more than the run's {len(x)} training examples")
    x, y = x[:n], y[:n]
    if data.get("scale") is not None:
        x = x * float(data["scale"])
    one_hot = bool(data.get("one_hot", False))
    if loss == "xent":
        if one_hot:
            fail("xent with one_hot targets is not an lmech configuration")
        target = torch.tensor(y, dtype=torch.int64)
    else:
        if not one_hot:
            fail(f"{loss} on digits labels needs data.one_hot = true")
        target = torch.nn.functional.one_hot(torch.tensor(y), outputs).to(DTYPE)
    desc = {
        "source": "digits",
        "rows": f"first {n} of the first {n_train if n_train is not None else 'all'}",
        "scale": data.get("scale"),
        "one_hot": one_hot,
    }
    return torch.tensor(x, dtype=DTYPE), target, desc


def random_data(n, d_in, outputs, loss, gen, vocab=None):
    """N(0, 1) inputs, or uniform token ids below `vocab` for a model that
    starts with an embedding."""
    if vocab is None:
        x = round6(torch.randn(n, d_in, generator=gen, dtype=DTYPE))
    else:
        x = torch.randint(0, vocab, (n, d_in), generator=gen).to(DTYPE)
    if loss == "xent":
        target = torch.randint(0, outputs, (n,), generator=gen)
    else:
        target = round6(torch.randn(n, outputs, generator=gen, dtype=DTYPE))
    desc_x = "N(0, 1) rounded to 1e-6" if vocab is None else f"token ids uniform in 0..{vocab}"
    return x, target, {"source": "random", "x": desc_x, "targets": "labels" if loss == "xent" else "N(0, 1) rounded to 1e-6"}


# --------------------------------------------------------------------------
# the computations


def make_loss(kind):
    def loss(f, t):
        if kind == "xent":
            return torch.nn.functional.cross_entropy(f, t)
        if kind == "mse":
            return 0.5 * ((f - t) ** 2).sum(-1).mean()
        if kind == "mse_mean":
            return ((f - t) ** 2).mean()
        fail(f"unknown loss {kind!r}")

    return loss


# The Adam runs replayed from the checkpoint's weights, in lmech's [optim]
# keys (the fixture records them so, and lmech's test reads them as a
# config). `adam` takes lmech's defaults for betas, eps and weight decay,
# which are torch.optim.Adam's, and its default lr 1e-3; `adamw` takes
# examples/grokking.toml's settings, decay decoupled (PyTorch's
# `param *= 1 - lr * weight_decay`, lr the parameter's own). No run has
# coupled weight decay: on a parameter the loss does not depend on (an
# attention's key bias) Adam's update is then lr * wd * p / eps, which
# overshoots when lr * wd / eps > 2 (any useful decay): the parameter's
# rounding noise grows by that factor each step until sqrt(v) outgrows
# eps, and PyTorch and lmech alike end on noise of size lr there.
ADAM_RUNS = {
    "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    "adamw": {"lr": 0.003, "beta1": 0.9, "beta2": 0.98, "eps": 1e-8, "weight_decay": 1.0},
}


def adam_optimizer(kind, hyper, scales):
    """A function from a model's parameters to torch.optim.Adam or AdamW with
    `hyper` (lmech's keys) and one group per parameter at lr times its
    scale. PyTorch's bias correction and eps placement,
    lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps), are
    lmech's (src/backend/cpu/optim.rs)."""
    cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
    lr = hyper["lr"]

    def make(params):
        groups = [{"params": [p], "lr": lr * s} for p, s in zip(params, scales)]
        return cls(
            groups,
            lr=lr,
            betas=(hyper["beta1"], hyper["beta2"]),
            eps=hyper["eps"],
            weight_decay=hyper["weight_decay"],
        )

    return make


def replay(ckpt, make_optimizer, x, target, loss_fn, steps, mixes):
    """Full-batch training from the checkpoint's weights: the loss before
    every update and after the last one, the final flat parameters and, with
    BatchNorm, the running statistics after the updates (`running_mean` then
    `running_var` per layer in walk order)."""
    model = load_model(ckpt).to(DTYPE)
    opt = make_optimizer(list(model.parameters()))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        l = loss_fn(model(x), target)
        losses.append(l.item())
        l.backward()
        opt.step()
    # Before the last forward pass, which in training mode moves them again.
    buffers = {}
    if mixes:
        stats = [t for m in model.modules() if isinstance(m, BatchNorm) for t in (m.running_mean, m.running_var)]
        buffers["final_buffers"] = flat(torch.cat([t.reshape(-1) for t in stats]))
    with torch.no_grad():
        losses.append(float(loss_fn(model(x), target)))
    final = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return {"losses": losses, "final_params": flat(final), **buffers}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="lmech run directory or model.safetensors")
    ap.add_argument("--out", required=True, help="fixture JSON to write")
    ap.add_argument("--n", type=int, default=16, help="examples in the batch (default 16)")
    ap.add_argument("--seed", type=int, default=0, help="seed of v, probes and random data")
    ap.add_argument("--data", choices=["auto", "config", "random"], default="auto")
    ap.add_argument("--k", type=int, default=3, help="top Hessian eigenvalues (default 3)")
    ap.add_argument("--probes", type=int, default=10, help="Hutchinson probes (default 10)")
    ap.add_argument("--gd-steps", type=int, default=10)
    ap.add_argument("--gd-lr", type=float, default=None, help="default: the config's optim.lr")
    ap.add_argument("--adam-steps", type=int, default=10)
    ap.add_argument("--adam-lr", type=float, default=None, help=f"default {ADAM_RUNS['adam']['lr']}")
    ap.add_argument("--adamw-lr", type=float, default=None, help=f"default {ADAM_RUNS['adamw']['lr']}")
    ap.add_argument("--name", default=None, help="fixture name (default: the output's stem)")
    ap.add_argument("--digits-dir", default=DIGITS_DIR)
    args = ap.parse_args()

    torch.set_default_dtype(DTYPE)
    ckpt, cfg, meta = resolve(args.run)
    if meta.get("ensemble", "1") != "1":
        fail("ensemble checkpoints are not supported (one model at a time)")
    model = load_model(ckpt).to(DTYPE)
    batch_norms = [m for m in model.modules() if isinstance(m, BatchNorm)]
    mixes = bool(batch_norms)
    for bn in batch_norms:
        # Batch statistics, running statistics neither used nor updated: the
        # function every curvature quantity is of (and torch.func refuses
        # in-place buffer updates under its transforms).
        bn.track_running_stats = False
    d_in = math.prod(model.input_shape)
    with torch.no_grad():
        outputs = model.eval()(torch.zeros(1, d_in)).shape[1]
    model.train()
    loss_kind = cfg.get("train", {}).get("loss", "xent")
    loss_fn = make_loss(loss_kind)
    gen = torch.Generator().manual_seed(args.seed)

    source = cfg.get("data", {}).get("source", "digits")
    mode = args.data if args.data != "auto" else ("config" if source == "digits" else "random")
    if mode == "config":
        if source != "digits":
            fail(f"data.source = {source!r} is not replicated here; use --data random")
        x, target, data_desc = digits_data(cfg, args.n, loss_kind, outputs, args.digits_dir)
    else:
        first = model.layers[0]
        vocab = first.num_embeddings if isinstance(first, TokenEmbedding) else None
        x, target, data_desc = random_data(args.n, d_in, outputs, loss_kind, gen, vocab)
    n = x.shape[0]

    # The model as a function of one flat parameter vector, in lmech's order.
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    numels = [p.numel() for _, p in model.named_parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()
    P = theta0.numel()

    def unflat(theta):
        out, at = {}, 0
        for name, shape, k in zip(names, shapes, numels):
            out[name] = theta[at : at + k].reshape(shape)
            at += k
        return out

    def f(theta, xb):
        return torch.func.functional_call(model, unflat(theta), (xb,))

    def L(theta):
        return loss_fn(f(theta, x), target)

    v = round6(torch.randn(P, generator=gen, dtype=DTYPE))
    probes = torch.randint(0, 2, (args.probes, P), generator=gen).to(DTYPE) * 2 - 1

    # loss and gradient
    theta = theta0.clone().requires_grad_(True)
    loss = L(theta)
    grad = torch.autograd.grad(loss, theta)[0].detach()
    grad_func = torch.func.grad(L)(theta0)
    assert rel(grad, grad_func) < 1e-13, "autograd and torch.func gradients disagree"

    # HVP two ways, GNVP
    def hvp(u):
        return torch.func.jvp(torch.func.grad(L), (theta0,), (u,))[1]

    hv = hvp(v)
    g = torch.autograd.grad(L(theta), theta, create_graph=True)[0]
    hv_db = torch.autograd.grad(g @ v, theta)[0].detach()
    hvp_agree = rel(hv, hv_db)
    assert hvp_agree < 1e-12, f"HVP by jvp(grad) and by double backward differ by {hvp_agree:.3g}"

    out0, jv = torch.func.jvp(lambda th: f(th, x), (theta0,), (v,))
    hl_jv = torch.func.jvp(torch.func.grad(lambda o: loss_fn(o, target)), (out0,), (jv,))[1]
    _, pull = torch.func.vjp(lambda th: f(th, x), theta0)
    gnv = pull(hl_jv)[0]

    # dense Hessian: eigenvalues, trace
    H = torch.autograd.functional.hessian(L, theta0, vectorize=True)
    H = 0.5 * (H + H.T)
    assert rel(H @ v, hv) < 1e-12, "dense Hessian and HVP disagree"
    evals = torch.linalg.eigvalsh(H)
    top = evals.flip(0)[: args.k]
    trace_exact = float(torch.diagonal(H).sum())
    hutch = [float(z @ hvp(z)) for z in probes]
    trace_hutch = sum(hutch) / len(hutch)
    # scipy eigsh (ARPACK) on HVPs, as the edge-of-stability papers do
    op = scipy.sparse.linalg.LinearOperator(
        (P, P), matvec=lambda u: hvp(torch.as_tensor(np.ravel(u), dtype=DTYPE)).numpy(), dtype=np.float64
    )
    v0 = np.random.default_rng(args.seed).standard_normal(P)
    ev_arpack = np.sort(scipy.sparse.linalg.eigsh(op, k=args.k, which="LA", tol=0, v0=v0, return_eigenvectors=False))[::-1]
    eigsh_agree = rel(ev_arpack, top.numpy())
    assert eigsh_agree < 1e-8, f"eigsh and the dense eigenvalues differ by {eigsh_agree:.3g}"

    # per-example gradient norms (each example's own loss)
    def example_loss(th, xi, ti):
        return loss_fn(f(th, xi[None]), ti[None])

    per_example = {}
    if not mixes:
        per_ex = torch.func.vmap(torch.func.grad(example_loss), in_dims=(None, 0, 0))(theta0, x, target)
        per_example["per_sample_sq_norms"] = flat((per_ex**2).sum(1))

        # empirical NTK
        J = torch.func.jacrev(lambda th: f(th, x))(theta0)  # [n, outputs, P]
        ntk_per_output = [J[:, k, :] @ J[:, k, :].T for k in range(outputs)]
        per_example["ntk_per_output"] = [flat(k) for k in ntk_per_output]
        per_example["ntk_trace"] = flat(sum(ntk_per_output))
    else:
        # Evaluation mode: the checkpoint's running statistics.
        with torch.no_grad():
            per_example["eval_outputs"] = flat(load_model(ckpt).to(DTYPE).eval()(x))

    # full-batch GD with torch.optim.SGD, then Adam and AdamW, each from the
    # checkpoint's weights
    lr = args.gd_lr if args.gd_lr is not None else float(cfg.get("optim", {}).get("lr", 0.1))
    scales = sgd_lr_scales(meta, model)
    assert len(scales) == len(names)

    def sgd(params):
        groups = [{"params": [p], "lr": lr * s} for p, s in zip(params, scales)]
        return torch.optim.SGD(groups, lr=lr, momentum=0.0)

    gd = replay(ckpt, sgd, x, target, loss_fn, args.gd_steps, mixes)
    adam_scales = adam_lr_scales(meta, model)
    assert len(adam_scales) == len(names)
    adam_runs = {}
    for kind, hyper in ADAM_RUNS.items():
        hyper = {**hyper, "lr": getattr(args, f"{kind}_lr") or hyper["lr"]}
        make = adam_optimizer(kind, hyper, adam_scales)
        adam_runs[kind] = {
            "optimizer": f"torch.optim.{'Adam' if kind == 'adam' else 'AdamW'}, full batch",
            "optim": {"name": kind, **hyper},
            "steps": args.adam_steps,
            "lr_scales": adam_scales,
            **replay(ckpt, make, x, target, loss_fn, args.adam_steps, mixes),
        }

    out_dir = os.path.dirname(os.path.abspath(args.out))
    fixture = {
        "name": args.name or os.path.splitext(os.path.basename(args.out))[0],
        "generated_by": "bench/pytorch/parity.py",
        "torch_version": torch.__version__,
        "scipy_version": scipy.__version__,
        "checkpoint": os.path.relpath(os.path.abspath(ckpt), out_dir),
        **describe_model(meta),
        "parametrization": meta["parametrization"],
        "bias": model_bias(meta, model),
        "mixes_examples": mixes,
        "loss": loss_kind,
        "params": P,
        "seed": args.seed,
        "data": data_desc,
        "inputs": {
            "n": n,
            "x_shape": list(x.shape),
            "x": flat(x),
            "target_shape": list(target.shape),
            "target": flat(target.to(DTYPE)),
            "v": flat(v),
            "probes": ["".join("+" if s > 0 else "-" for s in z.tolist()) for z in probes],
        },
        "reference": {
            "loss": loss.item(),
            "gradient": flat(grad),
            "hvp": flat(hv),
            "gnvp": flat(gnv),
            "top_eigenvalues": flat(top),
            "top_eigenvalues_eigsh": flat(torch.as_tensor(ev_arpack.copy())),
            "bottom_eigenvalue": float(evals[0]),
            "trace_exact": trace_exact,
            "trace_hutchinson": trace_hutch,
            **per_example,
            "gd": {
                "optimizer": "torch.optim.SGD, momentum 0, full batch",
                "lr": lr,
                "steps": args.gd_steps,
                "lr_scales": scales,
                **gd,
            },
            **adam_runs,
        },
        "pytorch_self_checks": {
            "hvp_jvp_vs_double_backward": hvp_agree,
            "eigsh_vs_dense": eigsh_agree,
        },
    }
    with open(args.out, "w") as fh:
        json.dump(fixture, fh, separators=(",", ":"))
        fh.write("\n")
    print(
        f"{fixture['name']}: {P} params, n={n}, loss {loss.item():.6g}, top eigenvalues "
        f"{', '.join(f'{e:.6g}' for e in top.tolist())}, trace {trace_exact:.6g}; "
        f"HVP jvp/double-backward {hvp_agree:.1e}, eigsh/dense {eigsh_agree:.1e} -> {args.out}"
    )


if __name__ == "__main__":
    main()
