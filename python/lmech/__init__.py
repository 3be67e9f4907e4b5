"""lmech from Python: train and sweep from TOML configs or dicts, read run
directories into DataFrames, and measure trained models (Hessian-vector
products, top eigenvalues, traces and diagonals, spectral densities,
Gauss-Newton eigenvalues, per-sample gradients and their norms, the
empirical NTK, the Hessian as a scipy LinearOperator) on numpy arrays.

The engine is the lmech Rust crate, compiled into ``lmech._lmech``; every
long call releases the GIL. Errors from the engine raise
:class:`LmechError` with lmech's message.

>>> import lmech
>>> run = lmech.train("examples/digits_gd.toml", out="runs/py", overrides={"train.steps": 50})
>>> run.metrics().tail()
>>> model = run.model()
>>> eigs = model.hessian_eigs(x, y, k=3)
"""

from ._lmech import LmechError, __version__
from .results import (Cost, Density, Diagonal, Eigs, Gradient, Hvp, Ntk, PerSampleGrads,
                      PerSampleNorms, Trace)
from .model import Model
from .runs import Run, Sweep, measure, sweep, train
from .torch_bridge import from_torch

__all__ = [
    "Cost",
    "Density",
    "Diagonal",
    "Eigs",
    "Gradient",
    "Hvp",
    "LmechError",
    "Model",
    "Ntk",
    "PerSampleGrads",
    "PerSampleNorms",
    "Run",
    "Sweep",
    "Trace",
    "__version__",
    "from_torch",
    "measure",
    "sweep",
    "train",
]
