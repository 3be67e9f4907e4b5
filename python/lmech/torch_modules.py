"""PyTorch modules for the shapes lmech has beyond a plain sequence of
PyTorch's own modules, for models meant to cross the bridge
(``lmech.from_torch``, ``Model.to_torch``): ``Residual``, lmech's residual
block, and the transformer's layers. Each computes exactly what the lmech
layer of the same name computes. Sequences are ``[n, width, T]``, channels
first, as lmech (and ``Conv1d``) names them, so the MLP of a transformer
block is two 1x1 ``Conv1d`` and a 1x1 ``Conv1d`` reads out at every
position. Importing this module imports torch."""

from __future__ import annotations

import math
from typing import Optional

import torch

F = torch.nn.functional


class Residual(torch.nn.Module):
    """``activation(body(x) + projection(x))``, lmech's residual block: the
    body is an ``nn.Sequential`` of the layers ``from_torch`` takes, the
    projection (when the body changes the shape) a bias-free 1x1
    ``Conv1d``/``Conv2d`` with the body's stride or a bias-free ``Linear``,
    the activation one of lmech's (or None). A pre-norm transformer block
    is two of them: ``Residual(SequenceLayerNorm(d), SelfAttention(d, h))``
    and ``Residual(SequenceLayerNorm(d), Conv1d(d, 4d, 1), GELU(),
    Conv1d(4d, d, 1))``."""

    def __init__(self, *body: torch.nn.Module, projection: Optional[torch.nn.Module] = None,
                 activation: Optional[torch.nn.Module] = None) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(*body)
        self.projection = projection
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.projection is None else self.projection(x)
        h = self.body(x) + skip
        return h if self.activation is None else self.activation(h)


class TokenEmbedding(torch.nn.Embedding):
    """lmech's ``embedding``: token ids ``[n, T]`` (any dtype holding whole
    numbers: lmech's data carries ids as values) to the sequence ``[n,
    width, T]``, row ``ids[i, t]`` of the ``[vocab, width]`` weight
    (``nn.Embedding``'s layout) at position t. Only as a model's first
    layer."""

    def __init__(self, vocab: int, width: int) -> None:
        super().__init__(vocab, width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids.long()).transpose(1, 2)


class PositionEmbedding(torch.nn.Module):
    """lmech's ``position_embedding``: ``x + weight^T`` on ``[n, width,
    T]``, one learned ``width`` vector per position, ``weight`` ``[T,
    width]`` (GPT-2's ``wpe``); it starts at zero, as lmech's does."""

    def __init__(self, positions: int, width: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(positions, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight.t()


class SelfAttention(torch.nn.Module):
    """lmech's ``attention`` on ``[n, d, T]``: at each position the rows
    ``q = q(x_t)``, ``k = k(x_t)``, ``v = v(x_t)`` (``nn.Linear(d, heads *
    head_dim, bias)``), head h reading columns ``h * head_dim`` to ``(h + 1)
    * head_dim``; scores ``scale * q_t . k_s`` per head with ``scale =
    1/sqrt(head_dim)`` (lmech's SP and NTK; muP and mean field use
    ``1/head_dim``, Tensor Programs V), with ``causal`` position t seeing
    only ``s <= t``; the softmax over s; the heads' weighted values side by
    side through ``o`` (``nn.Linear(heads * head_dim, d, bias)``). lmech's
    default is causal and bias-free. ``head_dim`` defaults to ``d /
    heads``."""

    def __init__(self, width: int, heads: int, head_dim: Optional[int] = None,
                 causal: bool = True, bias: bool = False,
                 scale: Optional[float] = None) -> None:
        super().__init__()
        if head_dim is None:
            if width % heads:
                raise ValueError(f"{width} channels do not split into {heads} heads; "
                                 "give head_dim")
            head_dim = width // heads
        self.heads, self.head_dim, self.causal, self.bias = heads, head_dim, causal, bias
        self.scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
        inner = heads * head_dim
        self.q = torch.nn.Linear(width, inner, bias=bias)
        self.k = torch.nn.Linear(width, inner, bias=bias)
        self.v = torch.nn.Linear(width, inner, bias=bias)
        self.o = torch.nn.Linear(inner, width, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t = x.shape
        rows = x.transpose(1, 2)

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.reshape(n, t, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q(rows)), split(self.k(rows)), split(self.v(rows))
        scores = self.scale * q @ k.transpose(-1, -2)
        if self.causal:
            later = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(later, float("-inf"))
        ctx = scores.softmax(-1) @ v
        ctx = ctx.transpose(1, 2).reshape(n, t, self.heads * self.head_dim)
        return self.o(ctx).transpose(1, 2)


class SequenceLayerNorm(torch.nn.LayerNorm):
    """lmech's ``layer_norm`` on a sequence: ``nn.LayerNorm(width)`` over
    the channels of ``[n, width, T]`` at each position."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class SequenceRMSNorm(torch.nn.RMSNorm):
    """lmech's ``rms_norm`` on a sequence: ``nn.RMSNorm(width)`` over the
    channels of ``[n, width, T]`` at each position."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class PickPosition(torch.nn.Module):
    """lmech's ``pick_position``: ``x[:, :, index]``, the ``[n, width]``
    vector at one position of ``[n, width, T]`` (negative from the end;
    -1, the last, is lmech's default)."""

    def __init__(self, index: int = -1) -> None:
        super().__init__()
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, self.index]


class Unembedding(torch.nn.Linear):
    """lmech's untied ``unembedding``: ``nn.Linear(width, vocab, bias)`` on
    a ``[n, width]`` vector or at every position of ``[n, width, T]``
    (giving ``[n, vocab, T]``); vocab is the model's embedding's."""

    def __init__(self, width: int, vocab: int, bias: bool = False) -> None:
        super().__init__(width, vocab, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            return super().forward(x.transpose(1, 2)).transpose(1, 2)
        return super().forward(x)


class TiedUnembedding(torch.nn.Module):
    """lmech's ``unembedding`` with ``tied = true``: logits ``h E^T`` through
    the model's own ``TokenEmbedding`` weight E ``[vocab, width]`` (GPT-2's
    ``lm_head.weight = wte.weight``), no bias, on ``[n, width]`` or at every
    position of ``[n, width, T]``. It holds no parameter of its own."""

    def __init__(self, embedding: TokenEmbedding) -> None:
        super().__init__()
        # Not a submodule: the weight is the embedding's, counted there.
        self.__dict__["embedding"] = embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.embedding.weight
        if x.dim() == 3:
            return F.linear(x.transpose(1, 2), w).transpose(1, 2)
        return F.linear(x, w)
