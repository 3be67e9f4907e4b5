"""Rebuild an lmech MLP in PyTorch from its `model.safetensors` alone.

lmech stores each dense layer as `layers.{i}.weight` ([out, in], as
`nn.Linear`) and `layers.{i}.bias`, and in the file's metadata the layer
sizes, activation and each layer's forward multipliers, so that layer i
computes `z = multiplier[i] * h @ W.T + bias_multiplier[i] * b` with the
activation between layers and none after the last.

    from lmech_checkpoint import load_mlp
    model = load_mlp("runs/digits_gd/model.safetensors")   # a torch.nn.Module

Run as a script to check a run directory: it recomputes the final training
loss on the bundled digits (for configs whose data is digits) and prints it
beside lmech's value from summary.json.
"""

import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

ACTIVATIONS = {
    "identity": torch.nn.Identity,
    "relu": torch.nn.ReLU,
    "tanh": torch.nn.Tanh,
    "gelu": torch.nn.GELU,  # exact erf form, as lmech
    "silu": torch.nn.SiLU,
    "elu": torch.nn.ELU,
    "softplus": torch.nn.Softplus,
}


class ScaledLinear(torch.nn.Module):
    def __init__(self, weight, bias, multiplier, bias_multiplier):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)
        self.bias = None if bias is None else torch.nn.Parameter(bias)
        self.multiplier = multiplier
        self.bias_multiplier = bias_multiplier

    def forward(self, h):
        z = self.multiplier * (h @ self.weight.T)
        if self.bias is not None:
            z = z + self.bias_multiplier * self.bias
        return z


def load_mlp(path):
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    if meta.get("architecture") != "mlp":
        raise ValueError(f"{path}: not an lmech MLP checkpoint")
    if meta.get("ensemble", "1") != "1":
        raise ValueError(f"{path}: ensemble checkpoints carry a leading E dimension; index one member first")
    tensors = load_file(path)
    sizes = json.loads(meta["layer_sizes"])
    mults = json.loads(meta["multipliers"])
    bias_mults = json.loads(meta["bias_multipliers"])
    act = ACTIVATIONS[meta["activation"]]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(ScaledLinear(tensors[f"layers.{i}.weight"], tensors.get(f"layers.{i}.bias"), mults[i], bias_mults[i]))
        if i + 1 < len(sizes) - 1:
            layers.append(act())
    return torch.nn.Sequential(*layers)


def main(run_dir):
    import numpy as np
    import tomllib

    model = load_mlp(f"{run_dir}/model.safetensors")
    cfg = tomllib.load(open(f"{run_dir}/config.toml", "rb"))
    summary = json.load(open(f"{run_dir}/summary.json"))
    data = cfg.get("data", {})
    if data.get("source", "digits") != "digits" or data.get("standardize") or data.get("test_fraction") or data.get("shuffle"):
        print("this check handles the plain bundled digits only (no split, shuffle or standardization)")
        return
    here = __file__.rsplit("/", 3)[0]
    x = np.load(f"{here}/data/digits/x.npy").astype(np.float64)
    y = np.load(f"{here}/data/digits/y.npy").astype(np.int64)
    n = data.get("n_train") or len(x)
    x, y = x[:n] * data.get("scale", 1.0), y[:n]
    dtype = torch.float64 if cfg.get("dtype") == "f64" else torch.float32
    model = model.to(dtype)
    with torch.no_grad():
        f = model(torch.tensor(x, dtype=dtype))
        loss = cfg.get("train", {}).get("loss", "xent")
        if loss == "xent":
            value = torch.nn.functional.cross_entropy(f, torch.tensor(y)).item()
        else:
            onehot = torch.nn.functional.one_hot(torch.tensor(y), f.shape[1]).to(dtype)
            value = (0.5 * ((f - onehot) ** 2).sum(1).mean() if loss == "mse" else ((f - onehot) ** 2).mean()).item()
    lm = summary["final"]["loss"]
    print(json.dumps({"pytorch_loss": value, "lmech_loss": lm, "relative_difference": abs(value - lm) / abs(lm)}))


if __name__ == "__main__":
    main(sys.argv[1])
