"""PyTorch modules for the shapes lmech has beyond a plain sequence, for
models meant to cross the bridge (``lmech.from_torch``): ``Residual``,
lmech's residual block. Importing this module imports torch."""

from __future__ import annotations

from typing import Optional

import torch


class Residual(torch.nn.Module):
    """``activation(body(x) + projection(x))``, lmech's residual block: the
    body is an ``nn.Sequential`` of the layers ``from_torch`` takes, the
    projection (when the body changes the shape) a bias-free 1x1
    ``Conv1d``/``Conv2d`` with the body's stride or a bias-free ``Linear``,
    the activation one of lmech's (or None)."""

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
