"""The PyTorch bridge: ``from_torch(module, example_input)`` turns an
``nn.Sequential`` of layers lmech has (Linear, Conv1d/Conv2d, max and
average pooling, AdaptiveAvgPool to 1, Flatten, LayerNorm and RMSNorm on
vectors, BatchNorm1d/2d, the pointwise activations, and the modules of
``lmech.torch_modules``: residual blocks and the transformer's token and
position embeddings, self-attention, norms over a sequence's channels,
pick-position and unembeddings) into an
:class:`lmech.Model` with the same weights, and ``to_torch(model)`` builds
the ``nn.Sequential`` back. Weights go across under lmech's checkpoint
names (``layers.{i}.weight``, PyTorch's layouts), so the engine's own
checkpoint loader checks every shape. A layer lmech cannot express is
refused, naming its path in the module and its type."""

from __future__ import annotations

import copy
import json
import math
from typing import Any, Optional

import numpy as np

from . import _lmech
from .model import Model

_ACTIVATIONS = {
    "Identity": "identity",
    "ReLU": "relu",
    "Tanh": "tanh",
    "GELU": "gelu",
    "SiLU": "silu",
    "ELU": "elu",
    "Softplus": "softplus",
}


def _refuse(path: str, module: Any, why: str = "") -> _lmech.LmechError:
    detail = f": {why}" if why else ""
    return _lmech.LmechError(
        f"from_torch: layer `{path}` ({type(module).__name__}) has no lmech equivalent{detail}"
    )


def _square(path: str, m: Any, name: str) -> int:
    v = getattr(m, name)
    v = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    if len(set(v)) != 1:
        raise _refuse(path, m, f"{name} {v} is not square")
    return int(v[0])


def _activation(path: str, m: Any) -> Optional[str]:
    name = type(m).__name__
    if name not in _ACTIVATIONS:
        return None
    if name == "GELU" and m.approximate != "none":
        raise _refuse(path, m, "lmech's GELU is the exact (erf) form")
    if name == "ELU" and m.alpha != 1.0:
        raise _refuse(path, m, "lmech's ELU has alpha = 1")
    if name == "Softplus" and m.beta != 1.0:
        raise _refuse(path, m, "lmech's Softplus has beta = 1")
    return _ACTIVATIONS[name]


def _conv(path: str, m: Any, kind: str) -> dict:
    if m.groups != 1 or _square(path, m, "dilation") != 1 or m.padding_mode != "zeros":
        raise _refuse(path, m, "only groups = 1, dilation = 1 and zero padding")
    if isinstance(m.padding, str):
        raise _refuse(path, m, f"padding {m.padding!r}: give it as a number")
    return {"kind": kind, "channels": m.out_channels, "kernel": _square(path, m, "kernel_size"),
            "stride": _square(path, m, "stride"), "padding": _square(path, m, "padding"),
            "bias": m.bias is not None}


def _pool(path: str, m: Any, kind: str) -> dict:
    if _square(path, m, "padding") != 0 and kind == "max_pool":
        raise _refuse(path, m, "max pooling without padding only")
    if getattr(m, "ceil_mode", False):
        raise _refuse(path, m, "ceil_mode is not supported")
    if kind == "max_pool" and _square(path, m, "dilation") != 1:
        raise _refuse(path, m, "dilation must be 1")
    if kind == "avg_pool" and (not m.count_include_pad or getattr(m, "divisor_override", None) is not None):
        raise _refuse(path, m, "only count_include_pad=True without divisor_override")
    spec = {"kind": kind, "kernel": _square(path, m, "kernel_size"),
            "stride": _square(path, m, "stride")}
    if kind == "avg_pool":
        spec["padding"] = _square(path, m, "padding")
    return spec


def _layer(path: str, m: Any, x: Any) -> tuple[dict, dict]:
    """lmech's layer table for module ``m`` seeing input ``x``, and the
    module's tensors under their own names (weight, bias, buffers)."""
    import torch  # noqa: PLC0415

    name = type(m).__name__
    act = _activation(path, m)
    if act is not None:
        return {"kind": "activation", "activation": act}, {}
    state = {k: v for k, v in m.state_dict().items() if k != "num_batches_tracked"}
    sequence = _sequence_layer(path, m, x)
    if sequence is not None:
        return sequence, state
    if isinstance(m, torch.nn.Linear):
        if x.dim() != 2:
            raise _refuse(path, m, "lmech's dense layer takes vectors: flatten first")
        return {"kind": "dense", "width": m.out_features, "bias": m.bias is not None}, state
    if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)):
        return _conv(path, m, "conv1d" if isinstance(m, torch.nn.Conv1d) else "conv2d"), state
    if isinstance(m, (torch.nn.MaxPool1d, torch.nn.MaxPool2d)):
        return _pool(path, m, "max_pool"), {}
    if isinstance(m, (torch.nn.AvgPool1d, torch.nn.AvgPool2d)):
        return _pool(path, m, "avg_pool"), {}
    if isinstance(m, (torch.nn.AdaptiveAvgPool1d, torch.nn.AdaptiveAvgPool2d)):
        size = m.output_size if isinstance(m.output_size, (tuple, list)) else (m.output_size,)
        if any(s != 1 for s in size):
            raise _refuse(path, m, "only output size 1 (global average pooling)")
        raise _refuse(path, m, "follow it by Flatten, or use lmech's global_avg_pool")
    if isinstance(m, torch.nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise _refuse(path, m, "only Flatten(1, -1)")
        return {"kind": "flatten"}, {}
    if isinstance(m, (torch.nn.LayerNorm, getattr(torch.nn, "RMSNorm", ()))):
        if len(m.normalized_shape) != 1 or x.dim() != 2:
            raise _refuse(path, m, "lmech normalizes the features of vectors or the channels "
                                   "of signals; on vectors only here")
        kind = "layer_norm" if isinstance(m, torch.nn.LayerNorm) else "rms_norm"
        eps = m.eps if m.eps is not None else torch.finfo(x.dtype).eps
        affine = m.elementwise_affine
        bias = affine and getattr(m, "bias", None) is not None
        return {"kind": kind, "gain": affine, "bias": bias, "eps": eps}, state
    if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
        if not m.track_running_stats or m.momentum is None:
            raise _refuse(path, m, "needs running statistics with a momentum")
        return {"kind": "batch_norm", "gain": m.affine, "bias": m.affine, "eps": m.eps,
                "momentum": m.momentum}, state
    raise _refuse(path, m)


def _sequence_layer(path: str, m: Any, x: Any) -> Optional[dict]:
    """lmech's layer table for a transformer module (``lmech.torch_modules``'
    or one of PyTorch's that those stand for, refused with the reason), or
    None for any other module."""
    import torch  # noqa: PLC0415

    from . import torch_modules as tm  # noqa: PLC0415

    if isinstance(m, tm.TokenEmbedding):
        if m.padding_idx is not None or m.max_norm is not None or m.scale_grad_by_freq:
            raise _refuse(path, m, "no padding_idx, max_norm or scale_grad_by_freq")
        return {"kind": "embedding", "vocab": m.num_embeddings, "width": m.embedding_dim}
    if isinstance(m, torch.nn.Embedding):
        raise _refuse(path, m, "its sequences are [n, T, width]; lmech's are channels first: "
                               "use lmech.torch_modules.TokenEmbedding")
    if isinstance(m, torch.nn.MultiheadAttention):
        raise _refuse(path, m, "it takes [n, T, width] (query, key, value) and returns a "
                               "tuple; use lmech.torch_modules.SelfAttention")
    if isinstance(m, (tm.SequenceLayerNorm, tm.SequenceRMSNorm)):
        if x.dim() != 3 or len(m.normalized_shape) != 1:
            raise _refuse(path, m, "it normalizes the channels of a [n, width, T] sequence")
        kind = "layer_norm" if isinstance(m, tm.SequenceLayerNorm) else "rms_norm"
        eps = m.eps if m.eps is not None else torch.finfo(x.dtype).eps
        bias = m.elementwise_affine and getattr(m, "bias", None) is not None
        return {"kind": kind, "gain": m.elementwise_affine, "bias": bias, "eps": eps}
    if x.dim() != 3 and isinstance(m, (tm.PositionEmbedding, tm.SelfAttention,
                                       tm.PickPosition)):
        raise _refuse(path, m, f"it takes a [n, width, T] sequence, not {list(x.shape)}")
    if isinstance(m, tm.PositionEmbedding):
        return {"kind": "position_embedding"}
    if isinstance(m, tm.SelfAttention):
        if not math.isclose(m.scale, 1.0 / math.sqrt(m.head_dim), rel_tol=1e-12):
            raise _refuse(path, m, f"scale {m.scale}: a model from PyTorch is SP, whose "
                                   "scores are scaled by 1/sqrt(head_dim)")
        return {"kind": "attention", "heads": m.heads, "head_dim": m.head_dim,
                "causal": m.causal, "bias": m.bias}
    if isinstance(m, tm.PickPosition):
        return {"kind": "pick_position", "index": m.index}
    if isinstance(m, tm.Unembedding):
        return {"kind": "unembedding", "tied": False, "bias": m.bias is not None}
    if isinstance(m, tm.TiedUnembedding):
        return {"kind": "unembedding", "tied": True, "bias": False}
    return None


def _adaptive_then_flatten(children: list, i: int) -> bool:
    import torch  # noqa: PLC0415

    m = children[i][1]
    if not isinstance(m, (torch.nn.AdaptiveAvgPool1d, torch.nn.AdaptiveAvgPool2d)):
        return False
    size = m.output_size if isinstance(m.output_size, (tuple, list)) else (m.output_size,)
    nxt = children[i + 1][1] if i + 1 < len(children) else None
    return all(s == 1 for s in size) and isinstance(nxt, torch.nn.Flatten) and \
        nxt.start_dim == 1 and nxt.end_dim == -1


def _run(m: Any, h: Any) -> Any:
    """``m``'s output on ``h`` from a float64 copy in evaluation mode (the
    user's module and its running statistics stay as they are)."""
    import torch  # noqa: PLC0415

    with torch.no_grad():
        return copy.deepcopy(m).to(torch.float64).eval()(h)


def _projection(path: str, p: Any) -> None:
    import torch  # noqa: PLC0415

    conv = isinstance(p, (torch.nn.Conv1d, torch.nn.Conv2d))
    if conv and _square(path, p, "kernel_size") == 1 and p.bias is None and p.groups == 1 \
            and _square(path, p, "padding") == 0:
        return
    if isinstance(p, torch.nn.Linear) and p.bias is None:
        return
    raise _refuse(path, p, "a projection is a bias-free 1x1 convolution or Linear")


def _residual(path: str, m: Any, h: Any) -> tuple[dict, list, Any]:
    specs, named, _ = _sequence(list(m.body.named_children()), h, f"{path}.body.")
    tensors = [(f"body.{n}", t) for n, t in named]
    spec: dict = {"kind": "residual", "layers": specs, "projection": m.projection is not None}
    if m.projection is not None:
        _projection(f"{path}.projection", m.projection)
        tensors.append(("projection.weight", m.projection.weight))
    if m.activation is not None:
        act = _activation(f"{path}.activation", m.activation)
        if act is None:
            raise _refuse(f"{path}.activation", m.activation, "not an activation lmech has")
        spec["activation"] = act
    return spec, tensors, _run(m, h)


def _sequence(children: list, h: Any, prefix: str) -> tuple[list[dict], list, Any]:
    """lmech's layer tables for a sequence of ``(path, module)`` seeing
    input ``h``, the tensors named within the sequence (``{j}.weight``),
    and the sequence's output."""
    from .torch_modules import Residual  # noqa: PLC0415

    specs: list[dict] = []
    tensors: list = []
    i = 0
    while i < len(children):
        path, m = children[i]
        full = prefix + path
        if _adaptive_then_flatten(children, i):
            spec, named = {"kind": "global_avg_pool"}, []
            h = _run(children[i + 1][1], _run(m, h))
            i += 1
        elif isinstance(m, Residual):
            spec, named, h = _residual(full, m, h)
        else:
            spec, state = _layer(full, m, h)
            named = list(state.items())
            h = _run(m, h)
        tensors += [(f"{len(specs)}.{n}", t) for n, t in named]
        specs.append(spec)
        i += 1
    return specs, tensors, h


def _check_tie(module: Any) -> None:
    """A ``TiedUnembedding`` reads the model's first layer, its embedding."""
    from .torch_modules import TiedUnembedding  # noqa: PLC0415

    first = module[0] if len(module) else None
    for path, m in module.named_modules():
        if isinstance(m, TiedUnembedding) and m.embedding is not first:
            raise _refuse(path, m, "it must be tied to the model's first layer, its "
                                   "TokenEmbedding")


def describe(module: Any, example_input: Any) -> tuple[list[int], list[dict], list]:
    """lmech's input shape and layer tables for ``module`` (an
    ``nn.Sequential``), and its tensors under lmech's checkpoint names.
    Raises LmechError naming the first layer it cannot express."""
    import torch  # noqa: PLC0415

    if not isinstance(module, torch.nn.Sequential):
        raise _lmech.LmechError(
            f"from_torch: expected an nn.Sequential, got {type(module).__name__}")
    x = torch.as_tensor(example_input).to(torch.float64)
    _check_tie(module)
    specs, named, h = _sequence(list(module.named_children()), x, "")
    if h.dim() not in (2, 3):
        raise _lmech.LmechError(
            f"from_torch: the module's output has shape {list(h.shape)}; lmech models end "
            "in vectors [n, outputs] or in outputs at every position [n, outputs, T]")
    return list(x.shape[1:]), specs, [(f"layers.{n}", t) for n, t in named]


def _flat(layers: list[dict]) -> list[dict]:
    """Every layer table, a residual block's body included."""
    out = []
    for l in layers:
        out.append(l)
        out += _flat(l.get("layers", []))
    return out


# The forward multipliers each layer kind carries (one per weight matrix),
# in the engine's order (`Layer::weight_parts_mut`).
_SCALED = {"dense": 1, "conv1d": 1, "conv2d": 1, "embedding": 1, "unembedding": 1,
           "attention": 4}


def _multipliers(layers: list[dict]) -> int:
    """How many forward multipliers the layers carry (residual projections
    included)."""
    return sum(_SCALED.get(l["kind"], 0) + (1 if l.get("projection") else 0)
               for l in _flat(layers))


def from_torch(module: Any, example_input: Any, loss: str = "xent", device: str = "cpu",
               dtype: str = "f64") -> Model:
    """An :class:`lmech.Model` computing what ``module`` computes, with its
    weights (a copy), measuring ``loss`` (``xent``, ``mse``, ``mse_mean``).
    ``example_input`` is one batch ``[n, *input_shape]`` (channels first;
    token ids ``[n, T]`` for a model starting with a ``TokenEmbedding``).
    A module ending in outputs at every position ``[n, c, T]`` gives a
    model whose outputs are ``[n, T * c]``, position by position (lmech's
    order), and whose ``xent`` labels are ``[n, T]``."""
    input_shape, layers, named = describe(module, example_input)
    scaled = _multipliers(layers)
    width = max([l.get("width", l.get("channels", 1)) for l in _flat(layers)] + [1])
    meta = {
        "format": "pt",
        "architecture": "graph",
        "input_shape": json.dumps(input_shape),
        "layers": json.dumps(layers),
        "parametrization": "sp",
        "width": str(width),
        "base_width": str(width),
        "multipliers": json.dumps([1.0] * scaled),
        "bias_multipliers": json.dumps([1.0] * scaled),
        "ensemble": "1",
    }
    tensors = [(name, np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float64))
               for name, t in named]
    return Model(_lmech.Model.from_contents(meta, tensors, loss, device, dtype))


def _module(spec: dict, shape: list[int], tensors: dict, prefix: str) -> tuple[Any, list[int]]:
    """The PyTorch modules of one lmech layer table (a dense or convolution
    layer's fused activation is a module of its own), and its output shape."""
    import torch  # noqa: PLC0415

    kind = spec["kind"]
    get = lambda n: tensors.get(f"{prefix}.{n}")  # noqa: E731
    spatial = len(shape) - 1
    if kind == "dense":
        m = torch.nn.Linear(shape[0], spec["width"], bias=spec.get("bias", True))
        out = [spec["width"]]
    elif kind in ("conv1d", "conv2d"):
        cls = torch.nn.Conv1d if kind == "conv1d" else torch.nn.Conv2d
        m = cls(shape[0], spec["channels"], spec["kernel"], stride=spec.get("stride", 1),
                padding=spec.get("padding", 0), bias=spec.get("bias", True))
        k, s, p = spec["kernel"], spec.get("stride", 1), spec.get("padding", 0)
        out = [spec["channels"]] + [(n + 2 * p - k) // s + 1 for n in shape[1:]]
    elif kind in ("max_pool", "avg_pool"):
        k, s, p = spec["kernel"], spec.get("stride") or spec["kernel"], spec.get("padding", 0)
        cls = {("max_pool", 1): torch.nn.MaxPool1d, ("max_pool", 2): torch.nn.MaxPool2d,
               ("avg_pool", 1): torch.nn.AvgPool1d, ("avg_pool", 2): torch.nn.AvgPool2d}
        m = cls[(kind, spatial)](k, stride=s, padding=p) if kind == "avg_pool" else \
            cls[(kind, spatial)](k, stride=s)
        out = [shape[0]] + [(n + 2 * p - k) // s + 1 for n in shape[1:]]
    elif kind == "global_avg_pool":
        pool = torch.nn.AdaptiveAvgPool1d(1) if spatial == 1 else torch.nn.AdaptiveAvgPool2d(1)
        m, out = torch.nn.Sequential(pool, torch.nn.Flatten()), [shape[0]]
    elif kind == "flatten":
        m, out = torch.nn.Flatten(), [int(np.prod(shape))]
    elif kind == "activation":
        names = {v: k for k, v in _ACTIVATIONS.items()}
        if spec["activation"] not in names:
            raise _lmech.LmechError(f"to_torch: activation {spec['activation']!r} has no "
                                    "PyTorch module here")
        m, out = getattr(torch.nn, names[spec["activation"]])(), shape
    elif kind in _TRANSFORMER:
        m, out = _transformer_module(spec, shape)
    elif kind in ("layer_norm", "rms_norm") and spatial <= 1:
        from . import torch_modules as tm  # noqa: PLC0415

        affine = spec.get("gain", True)
        layer_norm = tm.SequenceLayerNorm if spatial else torch.nn.LayerNorm
        rms_norm = tm.SequenceRMSNorm if spatial else torch.nn.RMSNorm
        if kind == "layer_norm":
            m = layer_norm(shape[0], eps=spec.get("eps", 1e-5), elementwise_affine=affine,
                                   bias=spec.get("bias", True))
        else:
            if spec.get("bias", False):
                raise _lmech.LmechError("to_torch: nn.RMSNorm has no bias")
            m = rms_norm(shape[0], eps=spec.get("eps", 1e-5), elementwise_affine=affine)
        out = shape
    elif kind == "residual":
        block, out = _residual_module(spec, shape, tensors, prefix)
        return [block], out
    elif kind == "batch_norm":
        cls = torch.nn.BatchNorm1d if spatial <= 1 else torch.nn.BatchNorm2d
        m = cls(shape[0], eps=spec.get("eps", 1e-5), momentum=spec.get("momentum", 0.1),
                affine=spec.get("gain", True))
        out = shape
    else:
        raise _lmech.LmechError(f"to_torch: lmech layer `{prefix}` ({kind}) has no "
                                "nn.Sequential equivalent here")
    m = m.to(torch.float64)
    with torch.no_grad():
        for name, p in list(m.named_parameters()) + list(m.named_buffers()):
            t = get(name)
            if t is not None:
                p.copy_(torch.from_numpy(t))
    modules = [m]
    if spec.get("activation") and kind in ("dense", "conv1d", "conv2d"):
        modules += _module({"kind": "activation", "activation": spec["activation"]}, out, {},
                           prefix)[0]
    return modules, out


_TRANSFORMER = ("embedding", "position_embedding", "attention", "pick_position", "unembedding")


def _transformer_module(spec: dict, shape: list[int]) -> tuple[Any, list[int]]:
    """The ``lmech.torch_modules`` module of a transformer layer table (a
    tied unembedding is built by ``to_torch``, which holds the embedding),
    and its output shape."""
    from . import torch_modules as tm  # noqa: PLC0415

    kind = spec["kind"]
    if kind == "embedding":
        return tm.TokenEmbedding(spec["vocab"], spec["width"]), [spec["width"]] + shape
    if kind == "position_embedding":
        return tm.PositionEmbedding(shape[1], shape[0]), shape
    if kind == "attention":
        dh = spec.get("head_dim") or shape[0] // spec["heads"]
        scale = 1.0 / dh if spec.get("mu") else 1.0 / math.sqrt(dh)
        m = tm.SelfAttention(shape[0], spec["heads"], head_dim=dh,
                             causal=spec.get("causal", True), bias=spec.get("bias", False),
                             scale=scale)
        return m, shape
    if kind == "pick_position":
        return tm.PickPosition(spec.get("index", -1)), shape[:1]
    m = tm.Unembedding(shape[0], spec["vocab"], bias=spec.get("bias", False))
    return m, [spec["vocab"]] + shape[1:]


def _residual_module(spec: dict, shape: list[int], tensors: dict, prefix: str) -> Any:
    """``lmech.torch_modules.Residual`` for a residual layer table."""
    import torch  # noqa: PLC0415

    from .torch_modules import Residual  # noqa: PLC0415

    body, out = [], shape
    for j, s in enumerate(spec["layers"]):
        ms, out = _module(s, out, tensors, f"{prefix}.body.{j}")
        body += ms
    projection = None
    if spec.get("projection") or out != shape:
        if len(shape) == 1:
            projection = torch.nn.Linear(shape[0], out[0], bias=False)
        else:
            stride = next(s for s in range(1, shape[1] + 1) if (shape[1] - 1) // s + 1 == out[1])
            cls = torch.nn.Conv1d if len(shape) == 2 else torch.nn.Conv2d
            projection = cls(shape[0], out[0], 1, stride=stride, bias=False)
        projection = projection.to(torch.float64)
        with torch.no_grad():
            projection.weight.copy_(torch.from_numpy(tensors[f"{prefix}.projection.weight"]))
    act = None
    if spec.get("activation"):
        act = _module({"kind": "activation", "activation": spec["activation"]}, out, {},
                      prefix)[0][0]
    return Residual(*body, projection=projection, activation=act), out


def to_torch(model: Model) -> Any:
    """The ``nn.Sequential`` (float64) computing what ``model`` computes, its
    weights copied; for models whose layers have unit forward multipliers
    (SP, and every model from ``from_torch``). Transformer layers become
    ``lmech.torch_modules``' modules, attention scores scaled as the model's
    parametrization scales them."""
    import torch  # noqa: PLC0415

    pairs, meta = model._native.contents()
    tensors = {name: np.frombuffer(b, dtype=np.float64).reshape(shape)
               for name, (b, shape) in pairs}
    mults = json.loads(meta["multipliers"]) + json.loads(meta["bias_multipliers"])
    if any(m != 1.0 for m in mults):
        raise _lmech.LmechError(
            "to_torch: this model's layers have forward multipliers (muP, NTK or mean-field "
            "parametrization); bench/pytorch/lmech_checkpoint.py rebuilds it with them")
    from .torch_modules import TiedUnembedding  # noqa: PLC0415

    shape = json.loads(meta["input_shape"])
    layers = json.loads(meta["layers"])
    # The attention scores' factor is the parametrization's (attention.rs).
    mu = meta.get("parametrization") in ("mup", "mf")
    for l in _flat(layers):
        if l["kind"] == "attention":
            l["mu"] = mu
        if l["kind"] == "unembedding":
            l["vocab"] = layers[0].get("vocab")
    modules = []
    for i, spec in enumerate(layers):
        if spec["kind"] == "unembedding" and spec.get("tied"):
            modules.append(TiedUnembedding(modules[0]))
            shape = [spec["vocab"]] + shape[1:]
            continue
        ms, shape = _module(spec, shape, tensors, f"layers.{i}")
        modules += ms
    return torch.nn.Sequential(*modules)
