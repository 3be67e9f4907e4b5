"""What the measurements of :class:`lmech.Model` return: named tuples of
numpy arrays, each with the :class:`Cost` of computing it."""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np


class Cost(NamedTuple):
    """What a measurement cost: curvature (Hessian or Gauss-Newton) vector
    products, and wall-clock seconds including the data upload."""

    hvps: int
    seconds: float


class Hvp(NamedTuple):
    """A Hessian- (or Gauss-Newton-) vector product, flattened in the
    order of :meth:`lmech.Model.param_names`."""

    product: np.ndarray
    cost: Cost


class Gradient(NamedTuple):
    """The mean loss over a data set and its flattened gradient."""

    loss: float
    gradient: np.ndarray
    cost: Cost


class Eigs(NamedTuple):
    """Top-k eigenvalues by Lanczos, descending. ``vectors`` is ``[k, P]``
    when asked for, else None. ``bounds[i]`` is the relative error bound of
    ``values[i]``; ``converged`` says whether every bound reached ``tol``."""

    values: np.ndarray
    vectors: Optional[np.ndarray]
    residuals: np.ndarray
    bounds: np.ndarray
    converged: bool
    cost: Cost


class Trace(NamedTuple):
    """Hutchinson's estimate of the trace, with its standard error (NaN for
    one probe)."""

    estimate: float
    std_error: float
    probes: int
    cost: Cost


class Diagonal(NamedTuple):
    """Hutchinson's estimate of a curvature matrix's diagonal ``[P]`` (in
    the order of :meth:`lmech.Model.param_names`), with each entry's
    standard error (NaN for one probe)."""

    estimate: np.ndarray
    std_error: np.ndarray
    probes: int
    cost: Cost


class Density(NamedTuple):
    """The spectral density by stochastic Lanczos quadrature: Ritz values
    ``nodes`` and their ``weights`` over all probes (the weights sum to 1),
    a discrete measure whose moments estimate ``tr(H^p) / P``."""

    nodes: np.ndarray
    weights: np.ndarray
    cost: Cost

    def density(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """The measure broadened by a Gaussian of width ``sigma`` at the
        points of ``grid`` (it integrates to 1 over a grid covering the
        spectrum), as PyHessian plots it."""
        grid = np.asarray(grid, dtype=np.float64)
        gauss = np.exp(-((grid[:, None] - self.nodes[None, :]) ** 2) / (2 * sigma * sigma))
        return gauss @ self.weights / (sigma * np.sqrt(2 * np.pi))

    def moment(self, p: int) -> float:
        """The estimate of the p-th spectral moment ``tr(H^p) / P``."""
        return float(np.sum(self.weights * self.nodes**p))


class PerSampleNorms(NamedTuple):
    """Each example's gradient norm (of its own loss): ``total`` ``[n]`` and
    ``per_layer`` ``[layers, n]`` (rows named by ``layer_names``), plus the
    squared norm of the batch-mean gradient."""

    total: np.ndarray
    per_layer: np.ndarray
    layer_names: list[str]
    mean_grad_sq: float
    cost: Cost


class PerSampleGrads(NamedTuple):
    """Each example's loss gradient: ``grads`` ``[n, P]``, row i the
    gradient of example i's own loss (n times its term in the batch mean,
    so the rows' mean is the batch gradient), columns in the order of
    :meth:`lmech.Model.param_names`."""

    grads: np.ndarray
    cost: Cost


class Ntk(NamedTuple):
    """The empirical NTK on n inputs: ``kernel`` ``[n, n]`` summed over
    outputs, and ``per_output`` ``[outputs, n, n]``."""

    kernel: np.ndarray
    per_output: np.ndarray
    cost: Cost
