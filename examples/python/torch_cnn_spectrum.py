"""The Hessian spectrum of a PyTorch CNN through the bridge.

    python examples/python/torch_cnn_spectrum.py [OUT_DIR]

Trains a small CNN on the 8x8 digits in PyTorch (float64, 100 Adam steps),
turns it into an lmech model with lmech.from_torch, and measures what
PyHessian measures: the top Hessian eigenvalues, the trace and the
spectral density by stochastic Lanczos quadrature, plotted as
OUT_DIR/spectrum.png (default runs/python-spectrum).
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import lmech  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = sys.argv[1] if len(sys.argv) > 1 else "runs/python-spectrum"
os.makedirs(out, exist_ok=True)

x = np.load(os.path.join(ROOT, "data", "digits", "x.npy"))[:500] / 16.0
y = np.load(os.path.join(ROOT, "data", "digits", "y.npy"))[:500]
images = torch.from_numpy(x).reshape(-1, 1, 8, 8)
labels = torch.from_numpy(y).long()

torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
    torch.nn.Flatten(), torch.nn.Linear(16, 10),
).double()
opt = torch.optim.Adam(net.parameters(), lr=0.01)
for step in range(100):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(images), labels).backward()
    opt.step()
with torch.no_grad():
    loss = torch.nn.functional.cross_entropy(net(images), labels)
print(f"PyTorch: training loss {loss.item():.6f} after 100 steps")

model = lmech.from_torch(net, images)
g = model.gradient(x, y)
print(f"lmech:   training loss {g.loss:.6f} ({model.param_count} parameters)")
eigs = model.hessian_eigs(x, y, k=5, tol=1e-6)
trace = model.hessian_trace(x, y, probes=20)
density = model.spectral_density(x, y, probes=5, steps=60)
print("top eigenvalues:", np.round(eigs.values, 4), f"({eigs.cost.hvps} HVPs, "
      f"{eigs.cost.seconds:.2f} s)")
print(f"trace: {trace.estimate:.3f} +- {trace.std_error:.3f}")

grid = np.linspace(density.nodes.min() - 0.5, density.nodes.max() + 0.5, 1000)
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.semilogy(grid, density.density(grid, sigma=0.02) + 1e-8)
ax.set(xlabel="eigenvalue", ylabel="density", title="Hessian spectrum of a PyTorch CNN")
fig.tight_layout()
fig.savefig(os.path.join(out, "spectrum.png"), dpi=120)
print(f"wrote {os.path.join(out, 'spectrum.png')}")
