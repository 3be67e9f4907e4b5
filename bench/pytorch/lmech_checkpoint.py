"""Rebuild an lmech model in PyTorch from its `model.safetensors` alone.

lmech stores every parameter under the name the equivalent PyTorch module
gives it (`layers.3.weight`, `layers.5.body.0.weight`,
`layers.5.projection.weight`) and in that module's layout (`[out, in]` for
`nn.Linear`, `[out, in, kh, kw]` for `nn.Conv2d`, `[out, in, k]` for
`nn.Conv1d`). The metadata holds the rest of the function: the input shape
(channels first), the layer list (JSON, the `[[model.layers]]` tables with
a "kind" tag) and each dense or convolution layer's forward multipliers, in
walk order (a residual block's body, then its projection), so that such a
layer computes `z = multiplier * (x W^T) + bias_multiplier * b` (the
convolution in place of the product) and then its activation. MLP
checkpoints also carry `layer_sizes`, `activation` and `bias`; older ones
carry only those. BatchNorm layers are PyTorch's own `nn.BatchNorm1d/2d`
with the stored running statistics (`running_mean`, `running_var`);
`attention` layers are `Attention` modules with `q`, `k`, `v`, `o`
projections (their multipliers in that order); `embedding` layers are
`nn.Embedding` (`[vocab, width]`) on the ids, `position_embedding` a
`[T, width]` table, `pick_position` an index into the positions;
`unembedding` layers are `nn.Linear(width, vocab)` at every position
(`Unembedding`), or with `tied` the embedding's own weight read again
(`TiedUnembedding`: the checkpoint stores that weight once, under the
embedding's name, as a tied PyTorch model's state_dict does).

    from lmech_checkpoint import load_model
    model = load_model("runs/cnn/model.safetensors")   # a torch.nn.Module
    model.load_state_dict(safetensors.torch.load_file(path))  # strict: same names

The module takes inputs as lmech's data gives them, `[N, prod(input_shape)]`
in channels-first order, or already shaped `[N, *input_shape]`.
`load_mlp(path)` is `load_model` for MLP checkpoints only.

Run as a script to check a run directory: it recomputes the final training
loss on the bundled digits (for configs whose data is digits) and prints it
beside lmech's value from summary.json.
"""

import json
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

ACTIVATIONS = {
    "identity": torch.nn.Identity,
    "relu": torch.nn.ReLU,
    "tanh": torch.nn.Tanh,
    "gelu": torch.nn.GELU,  # exact erf form, as lmech
    "silu": torch.nn.SiLU,
    "swish": torch.nn.SiLU,
    "elu": torch.nn.ELU,  # alpha 1
    "softplus": torch.nn.Softplus,  # beta 1
}


def activation(name):
    """The activation module lmech names `name` (none: the identity)."""
    return ACTIVATIONS[name or "identity"]()


def _param(t):
    return None if t is None else torch.nn.Parameter(t)


class ScaledLinear(torch.nn.Module):
    """`act(multiplier * h W^T + bias_multiplier * b)`, lmech's dense layer."""

    def __init__(self, weight, bias, multiplier, bias_multiplier, act=None):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)
        self.bias = _param(bias)
        self.multiplier = multiplier
        self.bias_multiplier = bias_multiplier
        self.act = act if act is not None else torch.nn.Identity()

    def forward(self, h):
        z = self.multiplier * (h @ self.weight.T)
        if self.bias is not None:
            z = z + self.bias_multiplier * self.bias
        return self.act(z)

    def extra_repr(self):
        out, inp = self.weight.shape
        return f"{inp} -> {out}, bias={self.bias is not None}, multiplier={self.multiplier:.6g}, bias_multiplier={self.bias_multiplier:.6g}"


class ScaledConv(torch.nn.Module):
    """lmech's conv1d/conv2d layer: `nn.Conv1d/2d` (square kernel, zero
    padding) with the forward multipliers, then the activation."""

    def __init__(self, weight, bias, multiplier, bias_multiplier, stride=1, padding=0, act=None):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)
        self.bias = _param(bias)
        self.multiplier = multiplier
        self.bias_multiplier = bias_multiplier
        self.stride = stride
        self.padding = padding
        self.act = act if act is not None else torch.nn.Identity()

    def forward(self, x):
        conv = F.conv1d if self.weight.dim() == 3 else F.conv2d
        # Contiguous (NCHW) input: oneDNN's float32 weight gradient of a 1x1
        # stride-2 convolution on channels-last input is wrong when the input
        # has few channels (oneDNN issue #6035; torch 2.15 on x86 CPUs), and
        # a norm's output (movedim) is channels-last.
        x = x.contiguous()
        z = self.multiplier * conv(x, self.weight, None, self.stride, self.padding)
        if self.bias is not None:
            shape = (-1,) + (1,) * (self.weight.dim() - 2)
            z = z + self.bias_multiplier * self.bias.reshape(shape)
        return self.act(z)

    def extra_repr(self):
        out, inp, *k = self.weight.shape
        return (
            f"{inp} -> {out}, kernel={k[0]}, stride={self.stride}, padding={self.padding}, "
            f"bias={self.bias is not None}, multiplier={self.multiplier:.6g}, bias_multiplier={self.bias_multiplier:.6g}"
        )


class ChannelNorm(torch.nn.Module):
    """LayerNorm (`center=True`) or RMSNorm over the channels at each
    position (over the features of a vector), with an optional gain
    (`weight`) and bias. RMSNorm is written out: `nn.RMSNorm` has no bias."""

    def __init__(self, center, eps, weight=None, bias=None):
        super().__init__()
        self.center = center
        self.eps = eps
        self.weight = _param(weight)
        self.bias = _param(bias)

    def normalize(self, x):
        if self.center:
            return F.layer_norm(x, x.shape[-1:], None, None, self.eps)
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        h = x.movedim(1, -1) if x.dim() > 2 else x  # channels last
        y = self.normalize(h)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.movedim(-1, 1) if x.dim() > 2 else y

    def extra_repr(self):
        kind = "layer_norm" if self.center else "rms_norm"
        return f"{kind}, eps={self.eps:g}, gain={self.weight is not None}, bias={self.bias is not None}"


def batch_norm(dims, channels, eps, momentum, weight, bias, running_mean, running_var):
    """lmech's `batch_norm` layer as PyTorch's own `nn.BatchNorm1d` (vectors,
    1-D signals) or `nn.BatchNorm2d` (images), with the checkpoint's running
    statistics. lmech may drop the gain or the bias alone; the missing one is
    then a constant (ones or zeros), a non-persistent buffer rather than a
    parameter: not `None`, whose double backward PyTorch cannot take.
    lmech does not count batches: `num_batches_tracked` starts at 0 (it only
    matters with `momentum=None`, which lmech does not have)."""
    module = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)[max(dims, 1) - 1](
        channels, eps=eps, momentum=momentum, dtype=running_mean.dtype
    )
    with torch.no_grad():
        for name, t, fill in (("weight", weight, 1.0), ("bias", bias, 0.0)):
            if t is None:
                constant = torch.full((channels,), fill, dtype=running_mean.dtype)
                del module._parameters[name]
                module.register_buffer(name, constant, persistent=False)
            else:
                getattr(module, name).copy_(t)
        module.running_mean.copy_(running_mean)
        module.running_var.copy_(running_var)
    return module


class Attention(torch.nn.Module):
    """lmech's `attention` layer on `[N, d, T]` sequences (channels first):
    multi-head self-attention over the T positions with the scaled
    projections `q`, `k`, `v` (d -> heads * head_dim) and `o` (back to d),
    scores `score_scale * q k^T` per head (1/sqrt(head_dim), or 1/head_dim
    under muP and mean field), an optional causal mask."""

    def __init__(self, q, k, v, o, heads, head_dim, causal, score_scale):
        super().__init__()
        self.q, self.k, self.v, self.o = q, k, v, o
        self.heads, self.head_dim = heads, head_dim
        self.causal, self.score_scale = causal, score_scale

    def forward(self, x):
        h = x.movedim(1, -1)  # [N, T, d]
        n, t, _ = h.shape

        def split(z):  # [N, T, H * dh] -> [N, H, T, dh]
            return z.reshape(n, t, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        scores = self.score_scale * (q @ k.transpose(-1, -2))
        if self.causal:
            later = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(later, float("-inf"))
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, t, self.heads * self.head_dim)
        return self.o(ctx).movedim(-1, 1)

    def extra_repr(self):
        return f"heads={self.heads}, head_dim={self.head_dim}, causal={self.causal}, score_scale={self.score_scale:.6g}"


class TokenEmbedding(torch.nn.Embedding):
    """lmech's `embedding`: PyTorch's `nn.Embedding(vocab, width)` on token
    ids given as numbers (`[N, T]`, as lmech's data holds them), times the
    layer's multiplier, out as a `[N, width, T]` sequence (channels first)."""

    def __init__(self, weight, multiplier):
        super().__init__(*weight.shape, _weight=weight)
        self.multiplier = multiplier

    def forward(self, ids):
        return (self.multiplier * super().forward(ids.round().long())).movedim(-1, 1)


class PositionEmbedding(torch.nn.Module):
    """lmech's `position_embedding`: a learned `[T, width]` table added to a
    `[N, width, T]` sequence."""

    def __init__(self, weight):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)

    def forward(self, x):
        return x + self.weight.T


class PickPosition(torch.nn.Module):
    """lmech's `pick_position`: `x[:, :, index]` of a `[N, c, T]` sequence."""

    def __init__(self, index):
        super().__init__()
        self.index = index

    def forward(self, x):
        return x[:, :, self.index]

    def extra_repr(self):
        return f"index={self.index}"


def _positions_last(x, f):
    """`f` on the channels of a `[N, c, T]` sequence (or a `[N, c]` vector)."""
    return f(x) if x.dim() == 2 else f(x.movedim(1, -1)).movedim(-1, 1)


class Unembedding(ScaledLinear):
    """lmech's untied `unembedding`: `nn.Linear(width, vocab)` (scaled) at
    every position of a `[N, width, T]` sequence, or on a `[N, width]`
    vector."""

    def forward(self, h):
        return _positions_last(h, super().forward)


class TiedUnembedding(torch.nn.Module):
    """lmech's `unembedding` with `tied = true`: logits `multiplier * h E^T`
    through the embedding module's weight E. The embedding is held outside
    the module tree, so the weight has one name (the embedding's) in the
    state_dict, and is read at every call (torch.func's functional_call
    swaps it there)."""

    def __init__(self, embedding, multiplier):
        super().__init__()
        self._tied_to = (embedding,)
        self.multiplier = multiplier

    def forward(self, h):
        weight = self._tied_to[0].weight
        return _positions_last(h, lambda z: self.multiplier * F.linear(z, weight))

    def extra_repr(self):
        return f"tied, multiplier={self.multiplier:.6g}"


class GlobalAvgPool(torch.nn.Module):
    """The mean over all positions: `[N, c, ...]` -> `[N, c]`."""

    def forward(self, x):
        return x.flatten(2).mean(-1)


class Residual(torch.nn.Module):
    """`act(body(x) + skip(x))`; skip is the identity or `projection`."""

    def __init__(self, body, projection, act):
        super().__init__()
        self.body = torch.nn.Sequential(*body)
        self.projection = projection
        self.act = act

    def forward(self, x):
        skip = x if self.projection is None else self.projection(x)
        return self.act(self.body(x) + skip)


class LmechModel(torch.nn.Module):
    """The rebuilt model: `layers[i]` is lmech's layer i."""

    def __init__(self, input_shape, layers):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, x):
        if len(self.input_shape) > 1 and x.dim() == 2:
            x = x.reshape(x.shape[0], *self.input_shape)
        for layer in self.layers:
            x = layer(x)
        return x


# --------------------------------------------------------------------------
# building


def read_metadata(path):
    with safe_open(path, framework="pt") as f:
        return f.metadata() or {}


def mlp_layer_specs(meta):
    """The layer list of an MLP checkpoint that predates `layers`."""
    sizes = json.loads(meta["layer_sizes"])
    bias = meta["bias"] == "true"
    last = len(sizes) - 2
    return [
        {"kind": "dense", "width": w, "bias": bias, **({} if i == last else {"activation": meta["activation"]})}
        for i, w in enumerate(sizes[1:])
    ]


class Builder:
    """Turns layer specs into modules, taking tensors by name and the
    multipliers in walk order."""

    def __init__(self, tensors, multipliers, bias_multipliers, parametrization="sp"):
        self.tensors = tensors
        self.parametrization = parametrization
        self.scales = list(zip(multipliers, bias_multipliers))
        self.used = 0
        # The first layer's embedding module, for a tied unembedding.
        self.embedding = None

    def take(self, name):
        if name not in self.tensors:
            raise ValueError(f"checkpoint has no tensor `{name}`")
        return self.tensors[name]

    def next_scale(self):
        if self.used >= len(self.scales):
            raise ValueError("more weight layers than multipliers")
        self.used += 1
        return self.scales[self.used - 1]

    def weight_layer(self, spec, path, stride=1, padding=0):
        """A dense or convolution layer; shape, input size and channels come
        from the stored weight."""
        m, mb = self.next_scale()
        weight = self.take(f"{path}.weight")
        bias = self.take(f"{path}.bias") if spec.get("bias", True) else None
        act = activation(spec.get("activation"))
        if spec["kind"] == "dense":
            return ScaledLinear(weight, bias, m, mb, act)
        return ScaledConv(weight, bias, m, mb, stride, padding, act)

    def pool(self, spec, dims):
        kernel, stride = spec["kernel"], spec.get("stride") or spec["kernel"]
        if spec["kind"] == "max_pool":
            return (torch.nn.MaxPool1d, torch.nn.MaxPool2d)[dims - 1](kernel, stride)
        padding = spec.get("padding", 0)
        return (torch.nn.AvgPool1d, torch.nn.AvgPool2d)[dims - 1](kernel, stride, padding, count_include_pad=True)

    def norm(self, spec, path):
        center = spec["kind"] == "layer_norm"
        gain = self.take(f"{path}.weight") if spec.get("gain", True) else None
        bias = self.take(f"{path}.bias") if spec.get("bias", center) else None
        return ChannelNorm(center, spec.get("eps", 1e-5), gain, bias)

    def batch_norm(self, spec, path, shape):
        gain = self.take(f"{path}.weight") if spec.get("gain", True) else None
        bias = self.take(f"{path}.bias") if spec.get("bias", True) else None
        mean, var = self.take(f"{path}.running_mean"), self.take(f"{path}.running_var")
        eps, momentum = spec.get("eps", 1e-5), spec.get("momentum", 0.1)
        return batch_norm(len(shape) - 1, shape[0], eps, momentum, gain, bias, mean, var)

    def attention(self, spec, path, shape):
        heads = spec["heads"]
        head_dim = spec.get("head_dim") or shape[0] // heads
        bias = spec.get("bias", False)
        proj = [self.weight_layer({"kind": "dense", "bias": bias}, f"{path}.{p}") for p in "qkvo"]
        mu = self.parametrization in ("mup", "mf")
        scale = 1.0 / head_dim if mu else head_dim**-0.5
        return Attention(*proj, heads, head_dim, spec.get("causal", True), scale)

    def layer(self, spec, path, shape):
        """(module, output shape) of one layer on input `shape` (channels first)."""
        kind, dims = spec["kind"], len(shape) - 1
        if kind in ("dense", "conv1d", "conv2d"):
            stride, padding = spec.get("stride", 1), spec.get("padding", 0)
            module = self.weight_layer(spec, path, stride, padding)
        elif kind in ("max_pool", "avg_pool"):
            module = self.pool(spec, dims)
        elif kind == "global_avg_pool":
            module = GlobalAvgPool()
        elif kind == "flatten":
            module = torch.nn.Flatten()
        elif kind == "activation":
            module = activation(spec["activation"])
        elif kind in ("layer_norm", "rms_norm"):
            module = self.norm(spec, path)
        elif kind == "attention":
            module = self.attention(spec, path, shape)
        elif kind == "embedding":
            module = TokenEmbedding(self.take(f"{path}.weight"), self.next_scale()[0])
            self.embedding = module
        elif kind == "unembedding":
            module = self.unembedding(spec, path)
        elif kind == "position_embedding":
            module = PositionEmbedding(self.take(f"{path}.weight"))
        elif kind == "pick_position":
            module = PickPosition(spec.get("index", -1))
        elif kind == "batch_norm":
            module = self.batch_norm(spec, path, shape)
        elif kind == "residual":
            module = self.residual(spec, path, shape)
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
        return module, output_shape(module, shape)

    def unembedding(self, spec, path):
        m, mb = self.next_scale()
        if spec.get("tied", False):
            if self.embedding is None:
                raise ValueError(f"{path}: a tied unembedding without an embedding")
            return TiedUnembedding(self.embedding, m)
        bias = self.take(f"{path}.bias") if spec.get("bias", False) else None
        return Unembedding(self.take(f"{path}.weight"), bias, m, mb)

    def sequence(self, specs, path, shape):
        modules = []
        for i, spec in enumerate(specs):
            module, shape = self.layer(spec, f"{path}.{i}", shape)
            modules.append(module)
        return modules, shape

    def residual(self, spec, path, shape):
        body, out = self.sequence(spec["layers"], f"{path}.body", shape)
        projection = None
        if spec.get("projection", False) or out != shape:
            projection = self.projection(f"{path}.projection", shape, out)
        return Residual(body, projection, activation(spec.get("activation")))

    def projection(self, path, shape, out):
        """The skip path's bias-free projection: a dense layer for vectors, else
        a 1x1 convolution with the smallest stride that gives `out`'s grid."""
        if len(shape) == 1:
            return self.weight_layer({"kind": "dense", "bias": False}, path)
        stride = next(s for s in range(1, shape[-1] + 1) if all((n - 1) // s + 1 == o for n, o in zip(shape[1:], out[1:])))
        return self.weight_layer({"kind": f"conv{len(shape) - 1}d", "bias": False}, path, stride)


def output_shape(module, shape):
    """The shape of one example's output of `module`, by a forward pass on zeros."""
    dtype = next((p.dtype for p in module.parameters()), torch.get_default_dtype())
    # In eval mode: BatchNorm in training mode refuses one example and would
    # move its running statistics.
    training = module.training
    module.eval()
    with torch.no_grad():
        out = tuple(module(torch.zeros((1, *shape), dtype=dtype)).shape[1:])
    module.train(training)
    return out


def load_model(path):
    """Any lmech checkpoint (MLP or layer graph) as an `LmechModel` whose
    state_dict has the checkpoint's tensor names."""
    meta = read_metadata(path)
    if "parametrization" not in meta or "multipliers" not in meta:
        raise ValueError(f"{path}: not an lmech checkpoint")
    if meta.get("ensemble", "1") != "1":
        raise ValueError(f"{path}: ensemble checkpoints carry a leading E dimension; index one member first")
    tensors = load_file(path)
    dtype = next(iter(tensors.values())).dtype
    if "layers" in meta:
        specs, input_shape = json.loads(meta["layers"]), json.loads(meta["input_shape"])
    else:
        specs, input_shape = mlp_layer_specs(meta), json.loads(meta["layer_sizes"])[:1]
    b = Builder(tensors, json.loads(meta["multipliers"]), json.loads(meta["bias_multipliers"]), meta["parametrization"])
    layers, _ = b.sequence(specs, "layers", tuple(input_shape))
    if b.used != len(b.scales):
        raise ValueError(f"{path}: {len(b.scales)} multipliers for {b.used} weight layers")
    model = LmechModel(input_shape, layers).to(dtype)
    # strict: every tensor of the file has its place and every parameter and
    # buffer is in the file (BatchNorm's num_batches_tracked excepted:
    # PyTorch fills it in when a state dict lacks it).
    model.load_state_dict(tensors, strict=True)
    return model


def load_mlp(path):
    """`load_model` for MLP checkpoints (refuses any other)."""
    if read_metadata(path).get("architecture") != "mlp":
        raise ValueError(f"{path}: not an lmech MLP checkpoint")
    return load_model(path)


# --------------------------------------------------------------------------
# the script


def main(run_dir):
    import numpy as np
    import tomllib

    model = load_model(f"{run_dir}/model.safetensors")
    cfg = tomllib.load(open(f"{run_dir}/config.toml", "rb"))
    summary = json.load(open(f"{run_dir}/summary.json"))
    data = cfg.get("data", {})
    if data.get("source", "digits") != "digits" or data.get("standardize") or data.get("test_fraction") or data.get("shuffle"):
        print("this check handles the plain bundled digits only (no split, shuffle or standardization)")
        return
    here = __file__.rsplit("/", 3)[0]
    x = np.load(f"{here}/data/digits/x.npy").astype(np.float64)
    y = np.load(f"{here}/data/digits/y.npy").astype(np.int64)
    n = data.get("n_train") or len(x)
    x, y = x[:n].reshape(n, -1) * data.get("scale", 1.0), y[:n]
    dtype = torch.float64 if cfg.get("dtype") == "f64" else torch.float32
    model = model.to(dtype)
    with torch.no_grad():
        f = model(torch.tensor(x, dtype=dtype))
        loss = cfg.get("train", {}).get("loss", "xent")
        if loss == "xent":
            value = torch.nn.functional.cross_entropy(f, torch.tensor(y)).item()
        else:
            onehot = torch.nn.functional.one_hot(torch.tensor(y), f.shape[1]).to(dtype)
            value = (0.5 * ((f - onehot) ** 2).sum(1).mean() if loss == "mse" else ((f - onehot) ** 2).mean()).item()
    lm = summary["final"]["loss"]
    print(json.dumps({"pytorch_loss": value, "lmech_loss": lm, "relative_difference": abs(value - lm) / abs(lm)}))


if __name__ == "__main__":
    main(sys.argv[1])
