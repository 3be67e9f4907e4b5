"""lmech.Model's measurements on numpy arrays, checked against dense
matrices built from the model's own products and gradients (f64)."""

import numpy as np
import pytest

import lmech


def dense(model, x, y, gauss_newton=False):
    """The full [P, P] matrix from products with the unit vectors."""
    p = model.param_count
    cols = [model.hvp(x, y, np.eye(p)[i], gauss_newton=gauss_newton).product for i in range(p)]
    return np.stack(cols, axis=1)


@pytest.fixture(scope="module")
def data(digits):
    x, y = digits
    return x[:100], y[:100]


@pytest.fixture(scope="module")
def hessian(small_model, data):
    return dense(small_model, *data)


def test_load_and_forward(small_run, small_model, data):
    x, y = data
    assert small_model.param_count == 64 * 8 + 8 + 8 * 10 + 10
    assert small_model.loss == "xent" and small_model.dtype == "f64"
    assert small_model.input_shape == [64]
    assert small_model.param_names()[0] == "layers.0.weight"
    out = small_model(x)
    assert out.shape == (100, 10) and out.dtype == np.float64
    # The mean cross-entropy of the outputs is the gradient pass's loss.
    logp = out - out.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    xent = -logp[np.arange(100), y].mean()
    assert small_model.gradient(x, y).loss == pytest.approx(xent, rel=1e-12)
    # A run directory loads as its model.safetensors.
    again = lmech.Model.load(small_run.path)
    np.testing.assert_array_equal(again(x), out)


def test_hessian_is_symmetric_and_hvp_costs_one_product(small_model, data, hessian):
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-10)
    v = np.random.default_rng(0).standard_normal(small_model.param_count)
    hv = small_model.hvp(*data, v)
    np.testing.assert_allclose(hv.product, hessian @ v, rtol=1e-9, atol=1e-12)
    assert hv.cost.hvps == 1 and hv.cost.seconds > 0


def test_hessian_eigs_against_the_dense_hessian(small_model, data, hessian):
    exact = np.linalg.eigvalsh(hessian)[::-1]
    e = small_model.hessian_eigs(*data, k=3, tol=1e-10, vectors=True, max_iter=300)
    assert e.converged
    np.testing.assert_allclose(e.values, exact[:3], rtol=1e-8)
    assert e.vectors.shape == (3, small_model.param_count)
    for lam, u in zip(e.values, e.vectors):
        np.testing.assert_allclose(hessian @ u, lam * u, atol=1e-6 * abs(lam))
    assert 0 < e.cost.hvps <= 300
    assert e.vectors is not None and small_model.hessian_eigs(*data, k=1).vectors is None


def test_gauss_newton_eigs_against_the_dense_matrix(small_model, data):
    g = dense(small_model, *data, gauss_newton=True)
    exact = np.linalg.eigvalsh(g)[::-1]
    assert exact[-1] > -1e-10  # positive semidefinite, as a Gauss-Newton matrix is
    e = small_model.gauss_newton_eigs(*data, k=2, tol=1e-10, max_iter=300)
    np.testing.assert_allclose(e.values, exact[:2], rtol=1e-8)


def test_hessian_trace_against_the_dense_trace(small_model, data, hessian):
    t = small_model.hessian_trace(*data, probes=200, seed=1)
    assert t.cost.hvps == 200 and t.probes == 200
    assert abs(t.estimate - np.trace(hessian)) < 4 * t.std_error


def test_spectral_density_moments(small_model, data, hessian):
    d = small_model.spectral_density(*data, probes=20, steps=40, seed=2)
    assert d.cost.hvps == 20 * 40
    assert d.weights.sum() == pytest.approx(1.0, rel=1e-12)
    eig = np.linalg.eigvalsh(hessian)
    assert eig[0] - 1e-8 <= d.nodes.min() and d.nodes.max() <= eig[-1] + 1e-8
    # The top Ritz values of 40 steps find the top eigenvalue.
    assert d.nodes.max() == pytest.approx(eig[-1], rel=1e-6)
    # Each probe's rule gives z^T H^2 z / P exactly (2 < 2 * steps): their
    # mean is Hutchinson's estimate of tr(H^2) / P, within its standard error.
    p = small_model.param_count
    h2 = hessian @ hessian
    std_error = np.sqrt(2 * (np.sum(h2**2) - np.sum(np.diag(h2) ** 2)) / 20) / p
    assert abs(d.moment(2) - np.trace(h2) / p) < 4 * std_error
    grid = np.linspace(eig[0] - 1, eig[-1] + 1, 4001)
    integral = np.sum(d.density(grid, 0.05)) * (grid[1] - grid[0])
    assert integral == pytest.approx(1.0, rel=1e-3)


def test_per_sample_grad_norms_against_single_example_gradients(small_model, data):
    x, y = data
    n = small_model.per_sample_grad_norms(x[:10], y[:10])
    assert n.total.shape == (10,) and n.per_layer.shape == (2, 10)
    assert n.layer_names == ["layers.0", "layers.1"]
    for i in range(10):
        g = small_model.gradient(x[i:i + 1], y[i:i + 1]).gradient
        assert n.total[i] == pytest.approx(np.linalg.norm(g), rel=1e-10)
    np.testing.assert_allclose((n.per_layer**2).sum(0), n.total**2, rtol=1e-12)
    mean = small_model.gradient(x[:10], y[:10]).gradient
    assert n.mean_grad_sq == pytest.approx(mean @ mean, rel=1e-10)


def test_ntk_is_a_gram_matrix(small_model, data):
    x, _ = data
    k = small_model.ntk(x[:6])
    assert k.kernel.shape == (6, 6) and k.per_output.shape == (10, 6, 6)
    np.testing.assert_allclose(k.kernel, k.kernel.T, rtol=1e-12)
    np.testing.assert_allclose(k.per_output.sum(0), k.kernel, rtol=1e-12)
    assert np.linalg.eigvalsh(k.kernel).min() > -1e-9


def test_bad_shapes_raise_lmech_errors(small_model, data):
    x, y = data
    with pytest.raises(lmech.LmechError, match="do not fit the model"):
        small_model(np.zeros((3, 5)))
    with pytest.raises(lmech.LmechError, match="5 values for a 610-parameter model"):
        small_model.hvp(x, y, np.ones(5))
    with pytest.raises(lmech.LmechError, match="targets"):
        small_model.hessian_trace(x, y[:7], probes=2)
    with pytest.raises(lmech.LmechError, match="labels out of range"):
        small_model.hessian_eigs(x, np.full(100, 10), k=1)
    with pytest.raises(lmech.LmechError, match="integer class labels"):
        small_model.hessian_eigs(x, y + 0.5, k=1)
    with pytest.raises(lmech.LmechError, match="no such file|No such file"):
        lmech.Model.load("/nonexistent/model.safetensors")


def test_f32_and_the_loss_override(small_run, data):
    m = small_run.model(dtype="f32")
    assert m.dtype == "f32"
    np.testing.assert_allclose(m(data[0]), small_run.model()(data[0]), rtol=1e-5, atol=1e-6)
    mse = lmech.Model.load(small_run.path, loss="mse")
    onehot = np.eye(10)[data[1]]
    assert mse.gradient(data[0], onehot).loss > 0
