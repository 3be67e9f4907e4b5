"""The PyTorch bridge round trip in f64: every supported layer kind gives
the same outputs, loss and gradient in lmech as in PyTorch, and back
(transformers too, and lmech transformers from configs to PyTorch);
hessian_eigs against PyTorch's dense Hessian; unsupported layers refused."""

import copy

import numpy as np
import pytest

import lmech

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the bridge is untested")
nn = torch.nn
F = torch.nn.functional
from lmech.torch_modules import (  # noqa: E402
    PickPosition, PositionEmbedding, Residual, SelfAttention, SequenceLayerNorm, SequenceRMSNorm,
    TiedUnembedding, TokenEmbedding, Unembedding)


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


def test_hessian_eigs_against_torchs_dense_hessian(torch_mlp):
    lm, x, y, flat, loss_of = torch_mlp
    hessian = torch.autograd.functional.hessian(lambda t: loss_of(t, x, y), flat).numpy()
    exact = np.linalg.eigvalsh(hessian)[::-1]
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


VOCAB, WIDTH, LENGTH = 7, 8, 5


def _gpt(norm, attention, readout, per_position=False, depth=2):
    """A pre-norm GPT of lmech.torch_modules: embeddings, ``depth`` blocks
    of a normed attention and a normed MLP (1x1 convolutions) each around a
    residual, a final norm, then ``readout(embedding)`` at the last position
    (or at every position)."""
    torch.manual_seed(0)
    emb = TokenEmbedding(VOCAB, WIDTH)
    pos = PositionEmbedding(LENGTH, WIDTH)
    layers = [emb, pos]
    for _ in range(depth):
        layers += [Residual(norm(WIDTH), attention()),
                   Residual(norm(WIDTH), nn.Conv1d(WIDTH, 16, 1), nn.GELU(),
                            nn.Conv1d(16, WIDTH, 1))]
    layers += [norm(WIDTH)] + ([] if per_position else [PickPosition(-1)]) + [readout(emb)]
    m = nn.Sequential(*layers).to(torch.float64)
    with torch.no_grad():
        # Non-zero positions (they start at zero) and norm affines, so that
        # every parameter's gradient is tested away from a special point.
        for name, p in m.named_parameters():
            if name == "1.weight" or p.dim() == 1:
                p.add_(0.3 * torch.randn_like(p))
    return m


TRANSFORMERS = {
    "layer_norm_causal_linear": lambda: _gpt(
        SequenceLayerNorm, lambda: SelfAttention(WIDTH, 2), lambda e: nn.Linear(WIDTH, 3)),
    "rms_bias_bidirectional_tied": lambda: _gpt(
        lambda d: SequenceRMSNorm(d, eps=1e-6),
        lambda: SelfAttention(WIDTH, 4, causal=False, bias=True), TiedUnembedding),
    "head_dim_unembedding": lambda: _gpt(
        SequenceLayerNorm, lambda: SelfAttention(WIDTH, 3, head_dim=5, bias=True),
        lambda e: Unembedding(WIDTH, VOCAB, bias=True), depth=1),
    "per_position_tied": lambda: _gpt(
        SequenceLayerNorm, lambda: SelfAttention(WIDTH, 2), TiedUnembedding, per_position=True),
    "per_position_conv": lambda: _gpt(
        SequenceLayerNorm, lambda: SelfAttention(WIDTH, 2), lambda e: nn.Conv1d(WIDTH, 4, 1),
        per_position=True),
}


# Outputs at every position are scored by cross-entropy per position only.
@pytest.mark.parametrize("name,loss", [(n, l) for n in sorted(TRANSFORMERS)
                                       for l in ["xent", "mse"]
                                       if l == "xent" or not n.startswith("per_position")])
def test_transformer_round_trip_outputs_loss_gradient(name, loss):
    m = TRANSFORMERS[name]()
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, VOCAB, (9, LENGTH), generator=gen)
    x = ids.to(torch.float64)
    with torch.no_grad():
        f = m(x)
    per_position = f.dim() == 3
    lm = lmech.from_torch(m, x, loss=loss)
    assert lm.param_count == sum(p.numel() for p in m.parameters())
    # lmech gives a sequence's outputs position by position: [n, T * c].
    want = (f.transpose(1, 2) if per_position else f).reshape(9, -1).numpy()
    np.testing.assert_allclose(lm(x.numpy()), want, rtol=1e-12, atol=1e-12)

    if per_position:
        y = torch.randint(0, f.shape[1], (9, LENGTH), generator=gen)
        y[:, :2] = -1  # ignored positions, as the copy task's first half
    elif loss == "xent":
        y = torch.randint(0, f.shape[1], (9,), generator=gen)
    else:
        y = torch.randn(f.shape, generator=gen, dtype=torch.float64)
    m.zero_grad()
    out = m(x)
    if loss == "xent":
        value = F.cross_entropy(out, y, ignore_index=-1)
    else:
        value = 0.5 * ((out - y) ** 2).sum(1).mean()
    value.backward()
    g = lm.gradient(x.numpy(), y.numpy())
    assert g.loss == pytest.approx(value.item(), rel=1e-12)
    np.testing.assert_allclose(g.gradient, _flat_grad(m), rtol=1e-10, atol=1e-12)

    back = lm.to_torch()
    with torch.no_grad():
        np.testing.assert_allclose(back(x).numpy(), f.numpy(), rtol=1e-12, atol=1e-12)
    assert [p.shape for p in back.parameters()] == [p.shape for p in m.parameters()]


def _copy_config(**model):
    """examples/copy.toml's model and data, small, in f64, two steps of Adam
    (so no weight is at its init) with the model written."""
    return {
        "name": "py-copy", "seed": 0, "dtype": "f64",
        "model": dict({"arch": "transformer", "vocab": 9, "width": 8, "depth": 2, "heads": 2,
                       "norm": "layer", "causal": True, "activation": "gelu"}, **model),
        "data": {"source": "copy", "length": 3, "vocab": 8, "n": 64, "n_test": 16},
        "optim": {"name": "adam", "lr": 0.01},
        "train": {"steps": 2, "batch_size": 16, "loss": "xent", "log_every": 1,
                  "checkpoint": True},
    }


@pytest.mark.parametrize("model", [{}, {"norm": "rms", "bias": True, "causal": False}])
def test_lmech_transformer_from_a_config_to_torch(tmp_path, model):
    lm = lmech.train(_copy_config(**model), out=tmp_path / "copy", progress=False).model()
    back = lm.to_torch()
    assert sum(p.numel() for p in back.parameters()) == lm.param_count
    assert isinstance(back[2].body[1], SelfAttention) and back[2].body[1].causal == \
        model.get("causal", True)
    ids = np.random.default_rng(0).integers(0, 9, (6, 6)).astype(np.float64)
    with torch.no_grad():
        out = back(torch.from_numpy(ids))
    assert out.shape == (6, 8, 6)
    np.testing.assert_allclose(out.transpose(1, 2).reshape(6, -1).numpy(), lm(ids),
                               rtol=1e-12, atol=1e-12)


def test_lmech_tied_transformer_to_torch(tmp_path):
    cfg = _copy_config(tied=True, depth=1, vocab=6)
    cfg["data"] = {"source": "sort", "length": 4, "vocab": 6, "n": 64, "n_test": 16}
    lm = lmech.train(cfg, out=tmp_path / "sort", progress=False).model()
    back = lm.to_torch()
    assert isinstance(back[-1], TiedUnembedding) and back[-1].embedding is back[0]
    ids = np.random.default_rng(1).integers(0, 6, (5, 4)).astype(np.float64)
    with torch.no_grad():
        out = back(torch.from_numpy(ids))
    np.testing.assert_allclose(out.transpose(1, 2).reshape(5, -1).numpy(), lm(ids),
                               rtol=1e-12, atol=1e-12)


def test_lmech_mup_transformer_to_torch_scales_scores_by_one_over_head_dim(tmp_path):
    lm = lmech.train(_copy_config(parametrization="mup", base_width=4, width=16),
                     out=tmp_path / "mup", progress=False).model()
    back = lm.to_torch()
    assert back[2].body[1].scale == 1 / 8
    ids = np.random.default_rng(2).integers(0, 9, (6, 6)).astype(np.float64)
    with torch.no_grad():
        out = back(torch.from_numpy(ids))
    np.testing.assert_allclose(out.transpose(1, 2).reshape(6, -1).numpy(), lm(ids),
                               rtol=1e-12, atol=1e-12)


def test_unsupported_transformer_layers_are_refused_by_path_and_type():
    ids = torch.randint(0, VOCAB, (4, LENGTH)).to(torch.float64)
    emb = TokenEmbedding(VOCAB, WIDTH)
    m = nn.Sequential(nn.Embedding(VOCAB, WIDTH), nn.Flatten(), nn.Linear(WIDTH * LENGTH, 2))
    with pytest.raises(lmech.LmechError, match=r"`0` \(Embedding\).*TokenEmbedding"):
        lmech.from_torch(m, ids)
    m = nn.Sequential(emb, Residual(nn.MultiheadAttention(WIDTH, 2, batch_first=True)))
    with pytest.raises(lmech.LmechError, match=r"`1.body.0` \(MultiheadAttention\).*SelfAttention"):
        lmech.from_torch(m, ids)
    m = nn.Sequential(emb, nn.LayerNorm(WIDTH), PickPosition(), nn.Linear(WIDTH, 2))
    with pytest.raises(lmech.LmechError, match=r"`1` \(LayerNorm\).*vectors"):
        lmech.from_torch(m, ids)
    m = nn.Sequential(emb, SelfAttention(WIDTH, 2, scale=1 / 4), PickPosition(),
                      nn.Linear(WIDTH, 2))
    with pytest.raises(lmech.LmechError, match=r"`1` \(SelfAttention\).*1/sqrt\(head_dim\)"):
        lmech.from_torch(m, ids)
    other = TokenEmbedding(VOCAB, WIDTH)
    m = nn.Sequential(emb, PickPosition(), TiedUnembedding(other))
    with pytest.raises(lmech.LmechError, match=r"`2` \(TiedUnembedding\).*first layer"):
        lmech.from_torch(m, ids)
    m = nn.Sequential(emb, PickPosition(), PickPosition())
    with pytest.raises(lmech.LmechError, match=r"`2` \(PickPosition\).*sequence"):
        lmech.from_torch(m, ids)
