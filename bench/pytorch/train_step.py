"""PyTorch's time for the training step lmech's `benches/train_step.rs` times:
an MLP 784-1024-1024-10 (tanh), batch 1000, f32, softmax cross-entropy,
forward + backward, and forward + backward + SGD update.

Usage: python bench/pytorch/train_step.py [--threads N] [--reps R]
Prints the median over R repetitions after warm-up, as JSON.
"""

import argparse
import json
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 1024), torch.nn.Tanh(),
        torch.nn.Linear(1024, 1024), torch.nn.Tanh(),
        torch.nn.Linear(1024, 10),
    )
    x = torch.randn(1000, 784)
    y = torch.randint(0, 10, (1000,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()

    def step():
        fwd_bwd()
        opt.step()

    results = {}
    for name, fn in [("forward_backward", fwd_bwd), ("train_step_sgd", step)]:
        for _ in range(5):
            fn()
        times = []
        for _ in range(args.reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        results[name] = {"median_ms": 1e3 * statistics.median(times), "reps": args.reps}
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "results": results}, indent=1))


if __name__ == "__main__":
    main()
