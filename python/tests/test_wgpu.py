"""The package's measurements and training on the wgpu backend against the
CPU at f32 tolerance (CI has Mesa's lavapipe; skipped, visibly, where no
wgpu adapter exists)."""

import numpy as np
import pytest

import lmech
from conftest import SMALL


@pytest.fixture(scope="module")
def both(small_run):
    try:
        gpu = small_run.model(device="wgpu", dtype="f32")
    except lmech.LmechError as e:
        if "no wgpu adapter" in str(e):
            pytest.skip(f"no wgpu adapter here: {e}")
        raise
    return gpu, small_run.model(dtype="f32")


def test_measurements_match_the_cpu(both, digits):
    gpu, cpu = both
    assert gpu.device.startswith("wgpu")
    x, y = digits[0][:60], digits[1][:60]
    np.testing.assert_allclose(gpu(x), cpu(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gpu.hessian_eigs(x, y, k=2).values,
                               cpu.hessian_eigs(x, y, k=2).values, rtol=1e-4)
    v = np.random.default_rng(0).standard_normal(cpu.param_count)
    np.testing.assert_allclose(gpu.hvp(x, y, v).product, cpu.hvp(x, y, v).product,
                               rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(gpu.per_sample_grad_norms(x, y).total,
                               cpu.per_sample_grad_norms(x, y).total, rtol=1e-4)
    np.testing.assert_allclose(gpu.ntk(x[:5]).kernel, cpu.ntk(x[:5]).kernel, rtol=1e-4)
    g, c = gpu.per_sample_grads(x, y).grads, cpu.per_sample_grads(x, y).grads
    np.testing.assert_allclose(g, c, rtol=1e-3, atol=1e-5 * np.abs(c).max())
    g, c = gpu.hessian_diagonal(x, y, probes=20), cpu.hessian_diagonal(x, y, probes=20)
    np.testing.assert_allclose(g.estimate, c.estimate, rtol=1e-3,
                               atol=1e-4 * np.abs(c.estimate).max())


def test_train_on_wgpu(both, tmp_path):
    cfg = dict(SMALL, dtype="f32")
    run = lmech.train(cfg, out=tmp_path / "wgpu", device="wgpu", progress=False)
    ref = lmech.train(cfg, out=tmp_path / "cpu", progress=False)
    assert run.summary["device"].startswith("wgpu")
    assert run.summary["final"]["loss"] == pytest.approx(ref.summary["final"]["loss"], rel=1e-4)
