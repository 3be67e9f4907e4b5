"""The PyTorch twin of lmech-bench's `--arch transformer` (lmech's
`transformer` preset, src/nn/transformer_preset.rs, with the config's
defaults), written as a PyTorch user would: channels-last `[N, T, d]`
activations, `nn.Linear` for every projection (lmech's 1x1 convolutions
over positions are the same map), `nn.LayerNorm` / `nn.RMSNorm`.

    embedding (nn.Embedding, vocab -> d) + learned positions ([T, d], zero init)
    depth x [ x + attention(norm(x));  x + W2 act(W1 norm(x)) ]   (pre-norm)
    norm(x), readout nn.Linear(d -> vocab) at every position -> [N, T, vocab]

Attention: 4 heads of d / 4, `q`, `k`, `v`, `o` nn.Linear(d, d) with biases
(lmech's `bias = true`), scores q k^T / sqrt(head_dim) (SP), the causal mask,
the row softmax. The MLP is 4 d wide with the exact (erf) GELU, as
lmech-bench sets `activation = "gelu"`. The loss is the cross-entropy over all N*T
positions, mean (`criterion`), which is lmech's mean over examples of each
sequence's mean over its positions.

The parameter names are those of lmech's checkpoint (`layers.0.weight` the
embedding, `layers.2.body.1.q.weight`, ...), so `check_twin` can load a
checkpoint that `lmech-bench --save-model` wrote into this model and compare
its logits with lmech_checkpoint.py's rebuild of the same file (which
tests/pytorch_parity.rs holds to lmech's own outputs): the proof that both
sides of a benchmark row compute one function.

Attention is written out (`softmax(q k^T) v`) for the curvature and
per-example workloads: torch 2.15's CPU `scaled_dot_product_attention`
(flash) has neither forward-mode AD (`jvp(grad)`) nor a double backward, and
vmap falls back to a loop over examples. The first-order workloads
(`sdpa=True`) use `F.scaled_dot_product_attention`, PyTorch's fastest path
for a training step.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATION = "gelu"  # lmech-bench's transformer_spec; nn.GELU is the erf form, as lmech's
HEADS = 4  # ModelConfig's default `heads`
NORMS = ["layer", "rms", "none"]


def activation(name):
    return {"tanh": nn.Tanh, "gelu": nn.GELU, "relu": nn.ReLU}[name]()


class LinearAct(nn.Linear):
    """`act(x W^T + b)`: one module, so that the parameter names count the
    layers as lmech's list does (the activation is part of its conv1d)."""

    def __init__(self, fan_in, fan_out, act=None):
        super().__init__(fan_in, fan_out)
        self.act = act if act is not None else nn.Identity()

    def forward(self, x):
        return self.act(super().forward(x))


class Positions(nn.Module):
    """lmech's `position_embedding`: a learned `[T, d]` table, zero at init."""

    def __init__(self, t, d):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(t, d))

    def forward(self, x):
        return x + self.weight


class SelfAttention(nn.Module):
    def __init__(self, d, heads, causal, t):
        super().__init__()
        self.heads, self.head_dim, self.causal = heads, d // heads, causal
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.register_buffer("later", torch.ones(t, t, dtype=torch.bool).triu(1),
                             persistent=False)
        self.sdpa = False

    def forward(self, x):
        n, t, d = x.shape

        def split(z):  # [N, T, H dh] -> [N, H, T, dh]
            return z.reshape(n, t, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        if self.sdpa:
            ctx = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
            if self.causal:
                scores = scores.masked_fill(self.later[:t, :t], float("-inf"))
            ctx = scores.softmax(-1) @ v
        return self.o(ctx.transpose(1, 2).reshape(n, t, d))


class Residual(nn.Module):
    """`x + body(x)`, lmech's residual without a projection."""

    def __init__(self, *body):
        super().__init__()
        self.body = nn.Sequential(*body)

    def forward(self, x):
        return x + self.body(x)


class Transformer(nn.Module):
    """Token ids `[N, T]` -> logits `[N, T, vocab]`; `layers[i]` is lmech's
    layer i."""

    def __init__(self, vocab, width, depth, t, norm="layer", causal=True,
                 act=ACTIVATION, heads=HEADS):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"--norm {norm!r}: a transformer takes one of {NORMS} "
                             "(batch normalization mixes the examples)")
        if width % heads:
            raise ValueError(f"--width {width}: expected a multiple of the {heads} heads")

        def norms():
            if norm == "layer":
                return [nn.LayerNorm(width, eps=1e-5)]
            if norm == "rms":
                return [nn.RMSNorm(width, eps=1e-5)]
            return []

        layers = [nn.Embedding(vocab, width), Positions(t, width)]
        for _ in range(depth):
            layers.append(Residual(*norms(), SelfAttention(width, heads, causal, t)))
            layers.append(Residual(*norms(), LinearAct(width, 4 * width, activation(act)),
                                   LinearAct(4 * width, width)))
        layers += norms() + [LinearAct(width, vocab)]
        self.layers = nn.ModuleList(layers)

    def use_sdpa(self, on):
        for m in self.modules():
            if isinstance(m, SelfAttention):
                m.sdpa = on

    def forward(self, ids):
        x = ids
        for layer in self.layers:
            x = layer(x)
        return x


def build(a):
    """The twin of lmech-bench's model for workloads.py's arguments."""
    model = Transformer(a.vocab, a.width, a.depth, a.input, norm=a.norm)
    model.use_sdpa(a.workload in ("train_step", "forward_backward", "gd_run"))
    return model


def data(a, device, batch=None):
    """Uniform token streams of T + 1 (`batch`, default --batch, of them):
    the first T the input, the last T (the next tokens) the labels
    `[N, T]`, as lmech-bench draws them."""
    stream = torch.randint(0, a.vocab, (batch or a.batch, a.input + 1))
    return stream[:, :-1].contiguous().to(device), stream[:, 1:].contiguous().to(device)


def criterion(out, y, reduction="mean"):
    """Softmax cross-entropy; `[N, T, V]` logits against `[N, T]` labels as
    N*T rows (the mean over all positions). Class logits `[N, C]` pass as
    they are."""
    return F.cross_entropy(out.flatten(0, -2), y.flatten(), reduction=reduction)


def check_twin(a, path):
    """The twin against an lmech checkpoint of the same model (written by
    `lmech-bench --save-model`): load its tensors into the twin by name,
    run both on the same random sequences (the twin with each attention
    path), at init and again with every parameter moved by 0.1 N(0, 1) in
    both (so that the zero-initialized positions, unit gains and zero shifts
    are tested too), and report the largest logit difference, both losses
    at init (about ln vocab) and both parameter counts."""
    import lmech_checkpoint

    if a.arch != "transformer":
        raise ValueError(f"--check-twin compares the transformer's twin; got --arch {a.arch}")
    torch.manual_seed(a.seed)
    ref = lmech_checkpoint.load_model(path)
    twin = Transformer(a.vocab, a.width, a.depth, a.input, norm=a.norm)
    want = twin.state_dict()
    if set(want) != set(ref.state_dict()):
        got = set(ref.state_dict())
        raise ValueError(f"parameter names differ: only in lmech's checkpoint "
                         f"{sorted(got - set(want))}, only in the twin "
                         f"{sorted(set(want) - got)}")

    def copy_into_twin():
        # lmech's MLP and readout are 1x1 convolutions ([out, in, 1]).
        got = ref.state_dict()
        twin.load_state_dict({k: got[k].reshape(want[k].shape) for k in want}, strict=True)

    x, y = data(a, torch.device("cpu"), batch=8)
    diffs, scale = [], 0.0
    with torch.no_grad():
        for moved in (False, True):
            if moved:
                for p in ref.parameters():
                    p.add_(0.1 * torch.randn_like(p))
            copy_into_twin()
            # lmech's data holds ids as numbers; its rebuild gives [N, V, T].
            ref_logits = ref(x.float()).movedim(1, -1)
            scale = max(scale, ref_logits.abs().max().item())
            for sdpa in (False, True):
                twin.use_sdpa(sdpa)
                out = twin(x)
                diffs.append((out - ref_logits).abs().max().item())
                if not moved and not sdpa:
                    losses = (criterion(ref_logits, y).item(), criterion(out, y).item())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {
        "check": "twin",
        "params_lmech": count(ref),
        "params_torch": count(twin),
        "max_abs_diff": max(diffs),
        "max_abs_logit": scale,
        "loss_lmech": losses[0],
        "loss_torch": losses[1],
        "ln_vocab": math.log(a.vocab),
        "ok": count(ref) == count(twin) and max(diffs) <= 1e-5 * max(1.0, scale),
    }
