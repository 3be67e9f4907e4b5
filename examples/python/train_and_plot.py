"""Train a tanh MLP on the bundled digits from Python and plot its run.

    python examples/python/train_and_plot.py [OUT_DIR]

Trains examples/digits_gd.toml (300 full-batch GD steps, ~2 s), reads the
metrics into a DataFrame and saves the training and test loss against the
step as OUT_DIR/loss.png (default runs/python-train), then measures the
trained model's sharpness (top Hessian eigenvalue) on its training data.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import lmech  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = sys.argv[1] if len(sys.argv) > 1 else "runs/python-train"

run = lmech.train(os.path.join(ROOT, "examples", "digits_gd.toml"), out=os.path.join(out, "run"))
df = run.metrics()
print(df[["step", "loss", "test_loss", "train_acc", "test_acc"]].tail(3).to_string(index=False))

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(df["step"], df["loss"], label="train")
ax.plot(df["step"], df["test_loss"], label="test")
ax.set(xlabel="step", ylabel="cross-entropy", yscale="log", title=run.config["name"])
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(out, "loss.png"), dpi=120)

x = np.load(os.path.join(ROOT, "data", "digits", "x.npy")) * run.config["data"]["scale"]
y = np.load(os.path.join(ROOT, "data", "digits", "y.npy"))
eigs = run.model().hessian_eigs(x, y, k=1)
print(f"sharpness on all {len(y)} digits: {eigs.values[0]:.4f} "
      f"({eigs.cost.hvps} HVPs, {eigs.cost.seconds:.2f} s); 2/lr = "
      f"{2 / run.config['optim']['lr']:.1f}")
print(f"wrote {os.path.join(out, 'loss.png')}")
