"""lmech from Python: train and sweep from TOML configs or dicts, read run
directories into DataFrames, and measure trained models (Hessian-vector
products, top eigenvalues, traces, spectral densities, Gauss-Newton
eigenvalues, per-sample gradient norms, the empirical NTK) on numpy arrays.

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
from .results import Cost, Density, Eigs, Gradient, Hvp, Ntk, PerSampleNorms, Trace
from .model import Model
from .runs import Run, Sweep, measure, sweep, train
from .torch_bridge import from_torch

__all__ = [
    "Cost",
    "Density",
    "Eigs",
    "Gradient",
    "Hvp",
    "LmechError",
    "Model",
    "Ntk",
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
