"""The PyTorch side of lmech's sweep benchmark (bench/sweep/ensemble64.toml):
the same 64 runs as a Python loop, one model after another, as a sweep
script usually does it. Each run: an MLP 64-256-256-10 (tanh, nn.Linear
init) on the 1,797 bundled digits scaled to [0, 1], softmax cross-entropy,
torch.optim.SGD for 200 steps of mini-batches of 128 drawn without
replacement and reshuffled every epoch, with the full training loss and
accuracy evaluated every 50 steps and at the end (as lmech logs them).

Usage: python bench/pytorch/sweep_loop.py [--threads N] [--runs 64]
Prints the wall time of the whole loop and per run, as JSON.
"""

import argparse
import json
import os
import time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    here = os.path.dirname(os.path.abspath(__file__))
    x = torch.tensor(np.load(f"{here}/../../data/digits/x.npy"), dtype=torch.float32) * 0.0625
    y = torch.tensor(np.load(f"{here}/../../data/digits/y.npy"), dtype=torch.long)
    n = x.shape[0]
    lrs = np.logspace(-2, -0.5, 8)
    grid = [(float(lr), seed) for lr in lrs for seed in range(8)][: args.runs]
    loss_fn = torch.nn.CrossEntropyLoss()

    def evaluate(model):
        with torch.no_grad():
            out = model(x)
            return loss_fn(out, y).item(), (out.argmax(1) == y).float().mean().item()

    start = time.perf_counter()
    finals = []
    for lr, seed in grid:
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Linear(64, 256), torch.nn.Tanh(),
            torch.nn.Linear(256, 256), torch.nn.Tanh(),
            torch.nn.Linear(256, 10),
        )
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(0)
        order, pos = torch.randperm(n, generator=gen), 0
        for step in range(args.steps + 1):
            if pos + 128 > n:
                order, pos = torch.randperm(n, generator=gen), 0
            rows = order[pos : pos + 128]
            pos += 128
            if step % 50 == 0 or step == args.steps:
                evaluate(model)
            if step == args.steps:
                break
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[rows]), y[rows]).backward()
            opt.step()
        finals.append(evaluate(model)[0])
    wall = time.perf_counter() - start
    print(json.dumps({
        "torch": torch.__version__,
        "threads": args.threads,
        "runs": len(grid),
        "wall_s": wall,
        "per_run_s": wall / len(grid),
        "final_loss_median": float(np.median(finals)),
    }, indent=1))


if __name__ == "__main__":
    main()
