"""Shared fixtures: the bundled digits as arrays, one small trained run
(a width-8 tanh MLP in f64, seconds to train) that the measurement tests
share, and a tiny PyTorch MLP with its loss as a function of the flat
parameters, for the checks against PyTorch."""

import os

import numpy as np
import pytest

import lmech

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")

# A small digits run: 64 -> 8 -> 10, 610 parameters.
SMALL = {
    "name": "py-small",
    "seed": 0,
    "dtype": "f64",
    "model": {"width": 8, "depth": 2, "activation": "tanh", "bias": True},
    "data": {"source": "digits", "scale": 0.0625, "test_fraction": 0.2},
    "optim": {"name": "gd", "lr": 0.5},
    "train": {"steps": 40, "batch_size": 0, "loss": "xent", "log_every": 10},
}


@pytest.fixture(scope="session")
def digits():
    """The first 200 bundled digits: inputs scaled to [0, 1], labels."""
    x = np.load(os.path.join(ROOT, "data", "digits", "x.npy"))[:200] / 16.0
    y = np.load(os.path.join(ROOT, "data", "digits", "y.npy"))[:200]
    return x.astype(np.float64), y.astype(np.int64)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    return lmech.train(SMALL, out=tmp_path_factory.mktemp("runs") / "small", progress=False)


@pytest.fixture(scope="session")
def small_model(small_run):
    return small_run.model()


@pytest.fixture(scope="session")
def torch_mlp():
    """A 6 -> 5 -> 3 tanh MLP (53 parameters) on 20 examples, in PyTorch
    and in lmech (``from_torch``), and its cross-entropy
    ``loss_of(theta, x, y)`` as a function of the flat parameters (lmech's
    order): ``(lm, x, y, flat, loss_of)``. Skips without PyTorch."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the checks need it")
    torch.manual_seed(3)
    m = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(),
                            torch.nn.Linear(5, 3)).to(torch.float64)
    x = torch.randn(20, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))
    shapes = [p.shape for p in m.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in m.parameters()])

    def loss_of(theta, xb, yb):
        params, at = [], 0
        for s in shapes:
            n = int(np.prod(s))
            params.append(theta[at:at + n].reshape(s))
            at += n
        h = torch.tanh(xb @ params[0].T + params[1])
        return torch.nn.functional.cross_entropy(h @ params[2].T + params[3], yb)

    return lmech.from_torch(m, x), x, y, flat, loss_of
