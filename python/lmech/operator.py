"""The Hessian (or Gauss-Newton matrix) of a model's mean loss on a data
set as a :class:`scipy.sparse.linalg.LinearOperator`, as curvlinops'
``HessianLinearOperator`` is, so that scipy's solvers (``eigsh``, ``cg``,
``lobpcg``) run on lmech's products. scipy is imported only when an
operator is made."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._arrays import from_native, to_native
from .results import Cost


@functools.cache
def _operator_class() -> type:
    """The ``LinearOperator`` subclass, made on first use so that importing
    lmech does not need scipy."""
    try:
        from scipy.sparse.linalg import LinearOperator  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(
            "Model.hessian_operator needs scipy (pip install scipy); "
            "Model.hvp gives the same products without it"
        ) from e

    class HessianOperator(LinearOperator):
        __doc__ = _DOC

        def __init__(self, model: Any, x: Any, y: Any, gauss_newton: bool) -> None:
            p = model.param_count
            super().__init__(dtype=np.dtype(np.float64), shape=(p, p))
            self.model = model
            self.gauss_newton = gauss_newton
            # Converted once: each product reads these buffers as they are.
            self._x = to_native(x)
            self._y = to_native(y)
            self.cost = Cost(0, 0.0)
            self.calls = 0

        def _matmat(self, v: np.ndarray) -> np.ndarray:
            if np.iscomplexobj(v):
                return self._matmat(v.real) + 1j * self._matmat(v.imag)
            d = self.model._native.products(self._x, self._y, to_native(v.T), self.gauss_newton)
            self.cost = Cost(self.cost.hvps + int(d["cost"]["hvps"]),
                             self.cost.seconds + float(d["cost"]["seconds"]))
            self.calls += 1
            return from_native(d["products"]).T

        def _matvec(self, v: np.ndarray) -> np.ndarray:
            return self._matmat(np.reshape(v, (-1, 1))).reshape(-1)

        # Symmetric: the adjoint is the operator itself.
        def _rmatvec(self, v: np.ndarray) -> np.ndarray:
            return self._matvec(v)

        def _rmatmat(self, v: np.ndarray) -> np.ndarray:
            return self._matmat(v)

        def _adjoint(self) -> "HessianOperator":
            return self

        def __repr__(self) -> str:
            what = "Gauss-Newton" if self.gauss_newton else "Hessian"
            return (f"<{self.shape[0]}x{self.shape[1]} lmech {what} operator on "
                    f"{self._x.shape[0]} examples, {self.cost.hvps} products so far>")

    return HessianOperator


_DOC = """The ``[P, P]`` Hessian ``H`` of a model's mean loss over ``(x, y)``
(``G``, the Gauss-Newton matrix, with ``gauss_newton``), float64, as a
``scipy.sparse.linalg.LinearOperator``: ``op @ v`` is lmech's product
(Pearlmutter's R-op), ``op @ V`` for ``V`` ``[P, k]`` the k products
together; symmetric, so ``op.T`` is ``op``.

Cost: each call (``matvec`` or ``matmat``) uploads the data and makes one
``LossOnData``, so its first product is cold (a forward pass with tangents
and a backward pass, about twice a gradient); the other columns of a
``matmat`` are warm when ``(x, y)`` fits one chunk (4096 examples): they
reuse the first product's tape and recompute only the tangents. scipy's
``eigsh`` calls ``matvec`` one vector at a time, so every product it asks
for is cold; :meth:`lmech.Model.hessian_eigs` keeps one warm tape for all
of them. ``op.cost`` (:class:`lmech.Cost`) adds up the products and
seconds of every call so far, ``op.calls`` counts the calls."""


def hessian_operator(model: Any, x: Any, y: Any, gauss_newton: bool = False) -> Any:
    """See :meth:`lmech.Model.hessian_operator`."""
    return _operator_class()(model, x, y, gauss_newton)
