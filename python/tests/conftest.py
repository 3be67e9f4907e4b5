"""Shared fixtures: the bundled digits as arrays, and one small trained run
(a width-8 tanh MLP in f64, seconds to train) that the measurement tests
share."""

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
