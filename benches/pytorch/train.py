"""PyTorch eager timing of the same training step as `cargo bench --bench train`.

One step: gather the batch by index from data already on the device, forward (Linear + ReLU,
last layer logits), cross-entropy, backward, Adam update. Prints samples/s per model.

    python benches/pytorch/train.py [--device cpu|cuda] [--threads N]
"""

import argparse
import time

import torch

MODELS = [("784-256-10", [784, 256, 10], 128), ("1024-1024-1024-10", [1024, 1024, 1024, 10], 512)]


def mlp(widths):
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i + 2 < len(widths):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def bench(device, widths, batch, seconds=3.0):
    torch.manual_seed(1)
    n = 4 * batch
    x = torch.rand(n, widths[0], device=device) * 2 - 1
    y = torch.randint(0, widths[-1], (n,), device=device)
    model = mlp(widths).to(device)
    fused = device == "cuda"
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    loss_fn = torch.nn.CrossEntropyLoss()
    order = torch.randperm(n, device=device)

    def step(i):
        idx = order[(i % 4) * batch : (i % 4 + 1) * batch]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()

    for i in range(5):
        step(i)
    sync(device)
    iters, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(iters)
        iters += 1
    sync(device)
    elapsed = time.perf_counter() - start
    return elapsed / iters, batch * iters / elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}")
    for label, widths, batch in MODELS:
        per_step, rate = bench(args.device, widths, batch)
        print(f"{label} batch {batch}: {per_step * 1e3:.3f} ms/step, {rate / 1e3:.2f} Ksamples/s")


if __name__ == "__main__":
    main()
