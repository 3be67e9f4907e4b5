"""A small muP sweep from Python, and the learning-rate transfer plot from
its report.

    python examples/python/mup_transfer.py [OUT_DIR]

Adam on the bundled digits, SP against muP, 3 widths x 5 learning rates
(150 steps each; under a minute on 2 cores). The report (one row per run)
comes back as a DataFrame; the plot (OUT_DIR/transfer.png, default
runs/python-mup) has one curve per width: under muP the best learning rate
stays put as the width grows (examples/mup_transfer.toml is the full
version).
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import lmech  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "runs/python-mup"
spec = {
    "name": "python_mup",
    "base": {
        "dtype": "f32",
        "model": {"depth": 3, "activation": "relu", "base_width": 32},
        "data": {"source": "digits", "scale": 0.0625, "seed": 0},
        "optim": {"name": "adam"},
        "train": {"steps": 150, "batch_size": 128, "loss": "xent", "log_every": 50,
                  "checkpoint": False},
    },
    "axes": {
        "model.parametrization": ["sp", "mup"],
        "model.width": [32, 128, 512],
        "optim.lr": {"logspace": [-3.5, -1.0, 5]},
    },
}
sweep = lmech.sweep(spec, out=os.path.join(out, "sweep"))
report = sweep.report()
print(report.groupby(["model.parametrization", "model.width"])["final_train_loss"].min())

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
for ax, (param, rows) in zip(axes, report.groupby("model.parametrization")):
    for width, curve in rows.groupby("model.width"):
        curve = curve.sort_values("optim.lr")
        ax.plot(curve["optim.lr"], curve["final_train_loss"], marker="o", label=f"width {width}")
    ax.set(xscale="log", yscale="log", xlabel="learning rate", title=param)
axes[0].set_ylabel("final training loss")
axes[1].legend()
fig.tight_layout()
fig.savefig(os.path.join(out, "transfer.png"), dpi=120)
print(f"{len(report)} runs; wrote {os.path.join(out, 'transfer.png')}")
