"""``lmech.Model``: a trained checkpoint on a backend, and the engine's
measurements on a data set given as numpy arrays ``x`` (inputs
``[n, features...]``, channels first) and ``y`` (class labels ``[n]`` or
``[n, t]`` for cross-entropy, values ``[n, k]`` for the squared losses)."""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from . import _lmech
from ._arrays import from_native, to_native
from .results import (Cost, Density, Diagonal, Eigs, Gradient, Hvp, Ntk, PerSampleGrads,
                      PerSampleNorms, Trace)


def _cost(d: dict) -> Cost:
    return Cost(hvps=int(d["hvps"]), seconds=float(d["seconds"]))


def checkpoint_path(path: "str | os.PathLike[str]") -> str:
    """A checkpoint file, or a run directory's ``model.safetensors``."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return os.path.join(path, "model.safetensors")
    return path


class Model:
    """A trained lmech model. ``Model.load(path)`` reads a checkpoint
    (``model.safetensors``, a step checkpoint, or a run directory);
    ``model(x)`` gives its outputs; the other methods measure the loss
    landscape on ``(x, y)``, each returning numpy arrays and its
    :class:`Cost`."""

    def __init__(self, native: Any) -> None:
        self._native = native

    @classmethod
    def load(
        cls,
        path: "str | os.PathLike[str]",
        device: str = "cpu",
        dtype: Optional[str] = None,
        loss: Optional[str] = None,
    ) -> "Model":
        """Load a checkpoint on ``device`` (``cpu``, ``wgpu``, ``cuda[:N]``
        or ``auto``), in ``dtype`` (``f32``/``f64``; default the run's),
        measuring ``loss`` (default the run's ``train.loss``)."""
        return cls(_lmech.Model.load(checkpoint_path(path), device, dtype, loss))

    @property
    def path(self) -> str:
        """The checkpoint file."""
        return os.fspath(self._native.path)

    @property
    def loss(self) -> str:
        """The loss the measurements use: ``xent``, ``mse`` or ``mse_mean``."""
        return self._native.loss

    @property
    def dtype(self) -> str:
        return self._native.dtype

    @property
    def device(self) -> str:
        return self._native.device

    @property
    def param_count(self) -> int:
        return self._native.param_count

    @property
    def outputs(self) -> int:
        return self._native.outputs

    @property
    def input_shape(self) -> list[int]:
        """One example's input shape, channels first."""
        return list(self._native.input_shape)

    def param_names(self) -> list[str]:
        """Parameter names (as the PyTorch module names them), in the order
        of every flattened vector (``hvp``'s ``v``, eigenvectors)."""
        return list(self._native.param_names())

    def layer_names(self) -> list[str]:
        """The layers ``per_sample_grad_norms`` gives norms for."""
        return list(self._native.layer_names())

    def parameters(self) -> np.ndarray:
        """All parameters, flattened."""
        return from_native(self._native.parameters())

    def __call__(self, x: Any) -> np.ndarray:
        """Outputs ``[n, outputs]`` on inputs ``x`` ``[n, features...]``
        (BatchNorm with its running statistics)."""
        return from_native(self._native.forward(to_native(x)))

    def __repr__(self) -> str:
        return f"lmech.Model({self.path!r}, {self.param_count} parameters, {self.device})"

    def to_torch(self) -> Any:
        """The ``torch.nn.Sequential`` (float64) computing what this model
        computes, with its weights (see :func:`lmech.from_torch`)."""
        from .torch_bridge import to_torch  # noqa: PLC0415: torch only when asked

        return to_torch(self)

    def gradient(self, x: Any, y: Any) -> Gradient:
        """The mean loss over ``(x, y)`` and its flattened gradient."""
        d = self._native.gradient(to_native(x), to_native(y))
        return Gradient(float(d["loss"]), from_native(d["gradient"]), _cost(d["cost"]))

    def hvp(self, x: Any, y: Any, v: Any, gauss_newton: bool = False) -> Hvp:
        """The Hessian-vector product ``H v`` of the mean loss over
        ``(x, y)`` (``G v`` with ``gauss_newton``), by Pearlmutter's R-op."""
        d = self._native.products(to_native(x), to_native(y), to_native(v), gauss_newton)
        return Hvp(from_native(d["products"]), _cost(d["cost"]))

    def hessian_operator(self, x: Any, y: Any, gauss_newton: bool = False) -> Any:
        """The Hessian of the mean loss over ``(x, y)`` (the Gauss-Newton
        matrix with ``gauss_newton``) as a ``scipy.sparse.linalg.LinearOperator``
        of shape ``(P, P)``, float64, whose products are :meth:`hvp`'s (as
        curvlinops' ``HessianLinearOperator``): each ``matvec`` is one cold
        product, a ``matmat`` of k columns one cold and k - 1 warm ones (see
        the operator's docstring); ``op.cost`` adds them up. Needs scipy."""
        from .operator import hessian_operator  # noqa: PLC0415: scipy only when asked

        return hessian_operator(self, x, y, gauss_newton)

    def _eigs(self, x: Any, y: Any, k: int, tol: float, max_iter: int, seed: int,
              vectors: bool, gauss_newton: bool) -> Eigs:
        d = self._native.eigs(to_native(x), to_native(y), k, tol, max_iter, seed, vectors,
                              gauss_newton)
        return Eigs(
            values=np.asarray(d["values"]),
            vectors=from_native(d["vectors"]) if vectors else None,
            residuals=np.asarray(d["residuals"]),
            bounds=np.asarray(d["bounds"]),
            converged=bool(d["converged"]),
            cost=_cost(d["cost"]),
        )

    def hessian_eigs(self, x: Any, y: Any, k: int = 1, tol: float = 1e-6,
                     vectors: bool = False, max_iter: int = 100, seed: int = 0) -> Eigs:
        """The ``k`` largest Hessian eigenvalues (descending) by Lanczos with
        full reorthogonalization, to relative error bound ``tol`` or
        ``max_iter`` products; eigenvectors ``[k, P]`` when ``vectors``."""
        return self._eigs(x, y, k, tol, max_iter, seed, vectors, False)

    def gauss_newton_eigs(self, x: Any, y: Any, k: int = 1, tol: float = 1e-6,
                          vectors: bool = False, max_iter: int = 100, seed: int = 0) -> Eigs:
        """``hessian_eigs`` of the Gauss-Newton matrix ``J^T H_loss J``."""
        return self._eigs(x, y, k, tol, max_iter, seed, vectors, True)

    def hessian_trace(self, x: Any, y: Any, probes: int = 100, seed: int = 0,
                      gauss_newton: bool = False) -> Trace:
        """Hutchinson's estimate of ``tr(H)`` (or ``tr(G)``) from ``probes``
        Rademacher probes."""
        d = self._native.trace(to_native(x), to_native(y), probes, seed, gauss_newton)
        return Trace(float(d["estimate"]), float(d["std_error"]), int(d["probes"]),
                     _cost(d["cost"]))

    def hessian_diagonal(self, x: Any, y: Any, probes: int = 100, seed: int = 0,
                         gauss_newton: bool = False) -> Diagonal:
        """Hutchinson's estimate of ``diag(H)`` (or ``diag(G)``): the mean
        of ``z * (H z)`` over ``probes`` Rademacher probes ``z`` (Bekas et
        al. 2007), with each entry's standard error; entry i's variance per
        probe is ``sum_{j != i} H_ij^2``. All products share one warm tape
        (one cold product, then ``probes - 1`` warm ones, when ``(x, y)``
        fits one chunk). The probes are :meth:`hessian_trace`'s for the same
        ``seed``, so the estimate sums to its trace estimate."""
        d = self._native.diagonal(to_native(x), to_native(y), probes, seed, gauss_newton)
        return Diagonal(from_native(d["estimate"]), from_native(d["std_error"]),
                        int(d["probes"]), _cost(d["cost"]))

    def spectral_density(self, x: Any, y: Any, probes: int = 10, steps: int = 80,
                         seed: int = 0) -> Density:
        """The Hessian's spectral density by stochastic Lanczos quadrature
        (``probes`` probes of ``steps`` Lanczos steps), as PyHessian's
        ``density``; :meth:`Density.density` broadens it on a grid."""
        d = self._native.density(to_native(x), to_native(y), probes, steps, seed)
        count = len(d["nodes"])
        nodes = np.concatenate([np.asarray(n, dtype=np.float64) for n in d["nodes"]])
        weights = np.concatenate([np.asarray(w, dtype=np.float64) for w in d["weights"]]) / count
        return Density(nodes, weights, _cost(d["cost"]))

    def per_sample_grad_norms(self, x: Any, y: Any) -> PerSampleNorms:
        """Each example's gradient norm, per layer and in total, without
        materializing per-example gradients (Goodfellow's trick and ghost
        norms); refused for models with BatchNorm, which mixes examples."""
        d = self._native.per_sample(to_native(x), to_native(y))
        return PerSampleNorms(
            total=np.sqrt(from_native(d["total_sq"])),
            per_layer=np.sqrt(from_native(d["per_layer_sq"])),
            layer_names=self.layer_names(),
            mean_grad_sq=float(d["mean_grad_sq"]),
            cost=_cost(d["cost"]),
        )

    def per_sample_grads(self, x: Any, y: Any, max_entries: int = 2**25) -> PerSampleGrads:
        """Each example's loss gradient, ``[n, P]`` (BackPACK's
        ``BatchGrad``), from one backward pass over the batch: row i is the
        gradient of example i's own loss, ``n`` times its term in the
        batch-mean loss, so the rows' mean is :meth:`gradient` (BackPACK's
        rows under a mean-reduced loss are these over ``n``). With labels
        ``[n, t]`` and ignored positions, example i's loss is the sum over
        its kept positions over the batch's mean kept count. Needs n >= 2;
        refused past ``max_entries`` values (``n * P``) and for models with
        BatchNorm, which mixes examples; :meth:`per_sample_grad_norms`
        gives the rows' norms without materializing them."""
        d = self._native.per_sample_grads(to_native(x), to_native(y), max_entries)
        return PerSampleGrads(from_native(d["grads"]), _cost(d["cost"]))

    def ntk(self, x: Any) -> Ntk:
        """The empirical neural tangent kernel ``J J^T`` on inputs ``x``."""
        d = self._native.ntk(to_native(x))
        return Ntk(from_native(d["trace"]), from_native(d["per_output"]), _cost(d["cost"]))
