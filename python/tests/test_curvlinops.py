"""The measurements that close the most-used gaps against BackPACK
(per-example gradients), PyHessian (the Hessian's diagonal) and curvlinops
(the Hessian as a scipy LinearOperator), checked in f64 against PyTorch's
per-example gradients and dense Hessian on a small MLP from the bridge."""

import sys

import numpy as np
import pytest

import lmech

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the checks need it")
nn = torch.nn


@pytest.fixture(scope="module")
def hessian(torch_mlp):
    _, x, y, flat, loss_of = torch_mlp
    return torch.autograd.functional.hessian(lambda t: loss_of(t, x, y), flat).numpy()


def test_per_sample_grads_against_torch_per_example_gradients(torch_mlp):
    lm, x, y, flat, loss_of = torch_mlp
    one = lambda t, xi, yi: loss_of(t, xi[None], yi[None])  # noqa: E731
    want = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(flat, x, y).numpy()
    g = lm.per_sample_grads(x.numpy(), y.numpy())
    assert g.grads.shape == (20, lm.param_count) == want.shape
    np.testing.assert_allclose(g.grads, want, rtol=1e-10, atol=1e-14)
    assert g.cost.hvps == 0 and g.cost.seconds > 0
    # The rows' norms are per_sample_grad_norms', their mean the batch gradient.
    norms = lm.per_sample_grad_norms(x.numpy(), y.numpy())
    np.testing.assert_allclose(np.linalg.norm(g.grads, axis=1), norms.total, rtol=1e-10)
    np.testing.assert_allclose(g.grads.mean(0), lm.gradient(x.numpy(), y.numpy()).gradient,
                               rtol=1e-10, atol=1e-14)


def test_per_sample_grads_refusals(torch_mlp):
    lm, x, y, _, _ = torch_mlp
    with pytest.raises(lmech.LmechError, match="20 examples x 53 parameters exceed the limit of 1000"):
        lm.per_sample_grads(x.numpy(), y.numpy(), max_entries=1000)
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3))
    bn = bn.to(torch.float64).eval()
    with pytest.raises(lmech.LmechError, match="not defined for a model with BatchNorm"):
        lmech.from_torch(bn, x).per_sample_grads(x.numpy(), y.numpy())


def test_hessian_diagonal_against_torchs_dense_hessian(torch_mlp, hessian):
    lm, x, y, _, _ = torch_mlp
    xs, ys = x.numpy(), y.numpy()
    d = lm.hessian_diagonal(xs, ys, probes=300, seed=4)
    exact = np.diag(hessian)
    assert d.estimate.shape == d.std_error.shape == (lm.param_count,)
    assert d.probes == 300 and d.cost.hvps == 300
    assert np.all(d.std_error > 0)
    assert np.all(np.abs(d.estimate - exact) < 5 * d.std_error)
    # Per probe, entry i's variance is sum_{j != i} H_ij^2.
    off = np.sqrt((hessian**2).sum(1) - exact**2)
    np.testing.assert_allclose(d.std_error * np.sqrt(300), off, rtol=0.25)
    # The probes are hessian_trace's: the diagonal sums to its estimate.
    t = lm.hessian_trace(xs, ys, probes=300, seed=4)
    assert d.estimate.sum() == pytest.approx(t.estimate, rel=1e-10)
    again = lm.hessian_diagonal(xs, ys, probes=300, seed=4)
    np.testing.assert_array_equal(again.estimate, d.estimate)
    other = lm.hessian_diagonal(xs, ys, probes=300, seed=5)
    assert not np.array_equal(other.estimate, d.estimate)
    assert np.all(np.isnan(lm.hessian_diagonal(xs, ys, probes=1).std_error))


def test_hessian_diagonal_is_exact_for_a_diagonal_hessian():
    # A bias-free linear model under the squared loss on inputs with
    # orthogonal columns: H = c I (x) X^T X is diagonal, so every probe
    # gives diag(H) exactly and the standard errors are zero.
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(4, 2, bias=False)).to(torch.float64)
    x = np.diag([1.0, 2.0, 3.0, 0.5])
    y = np.random.default_rng(0).standard_normal((4, 2))
    lm = lmech.from_torch(m, torch.from_numpy(x), loss="mse")
    dense = np.stack([lm.hvp(x, y, e).product for e in np.eye(lm.param_count)], axis=1)
    np.testing.assert_array_equal(dense, np.diag(np.diag(dense)))
    assert len(set(np.round(np.diag(dense), 12))) == 4
    for gauss_newton in (False, True):
        d = lm.hessian_diagonal(x, y, probes=3, seed=7, gauss_newton=gauss_newton)
        np.testing.assert_allclose(d.estimate, np.diag(dense), rtol=1e-13)
        np.testing.assert_allclose(d.std_error, 0.0, atol=1e-13)


def test_gauss_newton_diagonal_within_its_standard_errors(torch_mlp):
    lm, x, y, _, _ = torch_mlp
    xs, ys = x.numpy(), y.numpy()
    g = np.stack([lm.hvp(xs, ys, e, gauss_newton=True).product for e in np.eye(lm.param_count)])
    d = lm.hessian_diagonal(xs, ys, probes=300, seed=2, gauss_newton=True)
    assert np.all(np.abs(d.estimate - np.diag(g)) < 5 * d.std_error)


def test_hessian_operator_in_scipy(torch_mlp, hessian):
    sla = pytest.importorskip("scipy.sparse.linalg", reason="scipy is not installed")
    lm, x, y, _, _ = torch_mlp
    xs, ys = x.numpy(), y.numpy()
    op = lm.hessian_operator(xs, ys)
    p = lm.param_count
    assert isinstance(op, sla.LinearOperator)
    assert op.shape == (p, p) and op.dtype == np.float64
    top = sla.eigsh(op, k=1, which="LA", return_eigenvectors=False)[0]
    exact = np.linalg.eigvalsh(hessian)[-1]
    assert top == pytest.approx(exact, rel=1e-9)
    e = lm.hessian_eigs(xs, ys, k=1, tol=1e-10, max_iter=200)
    assert top == pytest.approx(e.values[0], rel=1e-9)
    assert op.cost.hvps == op.calls > 0 and op.cost.seconds > 0
    # matmat: k products in one call; the adjoint is the operator.
    v = np.random.default_rng(0).standard_normal((p, 3))
    before = op.cost.hvps
    np.testing.assert_allclose(op @ v, hessian @ v, rtol=1e-9, atol=1e-12)
    assert op.cost.hvps == before + 3
    np.testing.assert_allclose(op.T @ v[:, 0], hessian @ v[:, 0], rtol=1e-9, atol=1e-12)
    gn = lm.hessian_operator(xs, ys, gauss_newton=True)
    top_gn = sla.eigsh(gn, k=1, which="LA", return_eigenvectors=False)[0]
    assert top_gn == pytest.approx(lm.gauss_newton_eigs(xs, ys, tol=1e-10).values[0], rel=1e-9)


def test_hessian_operator_without_scipy_says_so(torch_mlp, monkeypatch):
    from lmech import operator  # noqa: PLC0415

    lm, x, y, _, _ = torch_mlp
    operator._operator_class.cache_clear()
    monkeypatch.setitem(sys.modules, "scipy.sparse.linalg", None)
    try:
        with pytest.raises(ImportError, match="hessian_operator needs scipy"):
            lm.hessian_operator(x.numpy(), y.numpy())
    finally:
        operator._operator_class.cache_clear()
