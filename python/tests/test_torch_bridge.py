"""The PyTorch bridge round trip in f64: every supported layer kind gives
the same outputs, loss and gradient in lmech as in PyTorch, and back;
hessian_eigs against PyTorch's dense Hessian; unsupported layers refused."""

import copy

import numpy as np
import pytest

import lmech

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the bridge is untested")
nn = torch.nn
F = torch.nn.functional
from lmech.torch_modules import Residual  # noqa: E402


def _seeded(build):
    torch.manual_seed(0)
    return build().to(torch.float64)


def _with_stats(m, x):
    """BatchNorm layers with running statistics that are not the defaults."""
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(x + 0.3 * torch.randn_like(x))
    return m.eval()


CASES = {
    "mlp": (lambda: nn.Sequential(nn.Linear(12, 7), nn.Tanh(), nn.Linear(7, 5)), (12,)),
    "activations": (lambda: nn.Sequential(
        nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6), nn.GELU(), nn.Linear(6, 6), nn.SiLU(),
        nn.Linear(6, 6), nn.ELU(), nn.Linear(6, 6), nn.Softplus(), nn.Identity(),
        nn.Linear(6, 4, bias=False)), (6,)),
    "conv2d_pools": (lambda: nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 3, 3, stride=2),
        nn.Tanh(), nn.Flatten(), nn.Linear(3, 5)), (2, 8, 8)),
    "conv2d_avg_global": (lambda: nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.AvgPool2d(2, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(3, 4)), (1, 7, 7)),
    "conv1d": (lambda: nn.Sequential(
        nn.Conv1d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool1d(2), nn.Conv1d(4, 2, 2),
        nn.MaxPool1d(2), nn.Flatten(), nn.Linear(6, 3)), (3, 16)),
    "norms": (lambda: nn.Sequential(
        nn.Linear(5, 6), nn.LayerNorm(6), nn.Tanh(), nn.Linear(6, 6), nn.RMSNorm(6, eps=1e-6),
        nn.Linear(6, 3)), (5,)),
    "batch_norm": (lambda: nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 8),
        nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 4)), (2, 6, 6)),
    "resnet_blocks": (lambda: nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
        Residual(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                 nn.Conv2d(4, 4, 3, padding=1), activation=nn.ReLU()),
        Residual(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.Tanh(), nn.Conv2d(6, 6, 3, padding=1),
                 projection=nn.Conv2d(4, 6, 1, stride=2, bias=False)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5)), (2, 8, 8)),
    "mlp_residual": (lambda: nn.Sequential(
        nn.Linear(6, 8), Residual(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8)),
        Residual(nn.Linear(8, 5), nn.GELU(), projection=nn.Linear(8, 5, bias=False),
                 activation=nn.Tanh()),
        nn.Linear(5, 3)), (6,)),
}


def _flat_grad(module):
    return torch.cat([p.grad.reshape(-1) for p in module.parameters()]).numpy()


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("loss", ["xent", "mse", "mse_mean"])
def test_round_trip_outputs_loss_gradient(name, loss):
    build, shape = CASES[name]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((10,) + shape, generator=gen, dtype=torch.float64)
    m = _with_stats(_seeded(build), x)
    outputs = m(x).shape[1]
    if loss == "xent":
        y = torch.randint(0, outputs, (10,), generator=gen)
    else:
        y = torch.randn((10, outputs), generator=gen, dtype=torch.float64)
    lm = lmech.from_torch(m, x, loss=loss)
    assert lm.param_count == sum(p.numel() for p in m.parameters())
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(lm(x.numpy()), want, rtol=1e-12, atol=1e-12)

    # The loss and gradient: training mode (batch statistics), as lmech's
    # curvature and gradients use.
    t = copy.deepcopy(m).train()
    f = t(x)
    if loss == "xent":
        value = F.cross_entropy(f, y)
    elif loss == "mse":
        value = 0.5 * ((f - y) ** 2).sum(1).mean()
    else:
        value = F.mse_loss(f, y)
    value.backward()
    g = lm.gradient(x.numpy(), y.numpy())
    assert g.loss == pytest.approx(value.item(), rel=1e-12)
    np.testing.assert_allclose(g.gradient, _flat_grad(t), rtol=1e-10, atol=1e-12)

    # And back: the same function in PyTorch again.
    back = lm.to_torch().eval()
    with torch.no_grad():
        np.testing.assert_allclose(back(x).numpy(), want, rtol=1e-12, atol=1e-12)
    assert [p.shape for p in back.parameters()] == [p.shape for p in m.parameters()]


def test_hessian_eigs_against_torchs_dense_hessian():
    torch.manual_seed(3)
    m = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).to(torch.float64)
    x = torch.randn(20, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))
    shapes = [p.shape for p in m.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in m.parameters()])

    def loss_of(theta):
        params, at = [], 0
        for s in shapes:
            n = int(np.prod(s))
            params.append(theta[at:at + n].reshape(s))
            at += n
        h = torch.tanh(x @ params[0].T + params[1])
        return F.cross_entropy(h @ params[2].T + params[3], y)

    hessian = torch.autograd.functional.hessian(loss_of, flat).numpy()
    exact = np.linalg.eigvalsh(hessian)[::-1]
    lm = lmech.from_torch(m, x)
    e = lm.hessian_eigs(x.numpy(), y.numpy(), k=4, tol=1e-10, max_iter=200, vectors=True)
    np.testing.assert_allclose(e.values, exact[:4], rtol=1e-8, atol=1e-12)
    v = np.random.default_rng(0).standard_normal(lm.param_count)
    np.testing.assert_allclose(lm.hvp(x.numpy(), y.numpy(), v).product, hessian @ v,
                               rtol=1e-9, atol=1e-12)


def test_trained_lmech_model_to_torch(small_model, digits):
    x, _ = digits
    back = small_model.to_torch()
    with torch.no_grad():
        out = back(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, small_model(x), rtol=1e-12, atol=1e-12)


def test_unsupported_layers_are_refused_by_path_and_type():
    x = torch.randn(4, 6, dtype=torch.float64)
    m = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.1), nn.Linear(6, 2))
    with pytest.raises(lmech.LmechError, match=r"layer `1` \(Dropout\) has no lmech equivalent"):
        lmech.from_torch(m, x)
    m = nn.Sequential(nn.Linear(6, 6), nn.GELU(approximate="tanh"))
    with pytest.raises(lmech.LmechError, match=r"`1` \(GELU\).*erf"):
        lmech.from_torch(m, x)
    img = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    m = nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(lmech.LmechError, match=r"`0` \(Conv2d\)"):
        lmech.from_torch(m, img)
    m = nn.Sequential(Residual(nn.Linear(6, 3), projection=nn.Linear(6, 3)))
    with pytest.raises(lmech.LmechError, match=r"`0.projection` \(Linear\).*bias-free"):
        lmech.from_torch(m, x)
    m = nn.Sequential(Residual(nn.Linear(6, 6), nn.Dropout()))
    with pytest.raises(lmech.LmechError, match=r"`0.body.1` \(Dropout\)"):
        lmech.from_torch(m, x)
    with pytest.raises(lmech.LmechError, match="expected an nn.Sequential"):
        lmech.from_torch(nn.Linear(6, 2), x)
    with pytest.raises(lmech.LmechError, match="output has shape"):
        lmech.from_torch(nn.Sequential(nn.Conv2d(1, 2, 3)), img)
