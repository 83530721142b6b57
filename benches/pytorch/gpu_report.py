"""PyTorch eager on the same work as `cargo run --release --example gpu_report`, line for line
(same keys, prefixed `torch_`), so the two pair up when run on the same card.

    python benches/pytorch/gpu_report.py [--quick] [--sections matmul,shapes,waves,copy,optim,train,host]

TF32 is off (steepest computes in plain f32); Adam is `fused=True`, PyTorch's fastest.
Times are medians of three timed runs after a warm-up, synchronised before the clock stops.
"""

import argparse
import time

import torch

SECTIONS = ["matmul", "shapes", "waves", "copy", "optim", "train", "host"]


def timed(fn, iters, warm=2):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
        runs.append((time.perf_counter() - start) / iters)
    return sorted(runs)[1]


def rand(*shape):
    return torch.rand(*shape, device="cuda") * 2 - 1


# Floating-point operations in one timed run of products (the report's RUN_FLOPS): about
# 30 ms of work, so a run's fixed costs weigh about 1%.
RUN_FLOPS = 1.35e12


def products_per_run(flops, most):
    return int(min(most, max(3, RUN_FLOPS / flops)))


def product(key, op, a_shape, b_shape, quick):
    """Times one product in long runs, and in runs of three (as the report does)."""
    a, b = rand(*a_shape), rand(*b_shape)
    m = a_shape[1] if op == "tn" else a_shape[0]
    k = a_shape[0] if op == "tn" else a_shape[1]
    n = b_shape[0] if op == "nt" else b_shape[1]
    fn = {"nn": lambda: a @ b, "nt": lambda: a @ b.T, "tn": lambda: a.T @ b}[op]
    flops = 2 * m * n * k
    iters = products_per_run(flops, 400)
    if quick:
        iters = min(iters, 5)
    dt = timed(fn, iters)
    dt_of_three = dt if iters == 3 else timed(fn, 3)
    print(f"torch_{key} {flops / dt / 1e9:.1f} GFLOP/s ({dt * 1e6:.1f} us; {dt_of_three * 1e6:.1f} us in runs of 3)")


def matmul(quick):
    for size in [128, 256] if quick else [1024, 2048, 4096, 8192]:
        for op in ("nn", "nt", "tn"):
            product(f"matmul_{op}_{size}", op, (size, size), (size, size), quick)
    m, k, n = (64, 128, 128) if quick else (512, 1024, 1024)
    x = rand(m, k)
    lin = torch.nn.Linear(k, n).cuda()
    dt = timed(lambda: torch.relu(lin(x)), 5 if quick else 200)
    print(f"torch_linear_relu_{m}x{k}x{n} {2 * m * n * k / dt / 1e9:.1f} GFLOP/s ({dt * 1e6:.1f} us)")


def shapes(quick):
    layers = [("784", 128, 784, 256)]
    if not quick:
        layers += [("1024", 512, 1024, 1024), ("4096", 1024, 4096, 4096)]
    for model, batch, fan_in, fan_out in layers:
        product(f"shape_{model}_fwd_nt_{batch}x{fan_out}x{fan_in}", "nt", (batch, fan_in), (fan_out, fan_in), quick)
        product(f"shape_{model}_dw_tn_{fan_out}x{fan_in}x{batch}", "tn", (batch, fan_out), (batch, fan_in), quick)
        product(f"shape_{model}_dx_nn_{batch}x{fan_in}x{fan_out}", "nn", (batch, fan_out), (fan_out, fan_in), quick)


def waves(quick):
    """The report's `waves` products, TN (aᵀ·b with a stored K×M), in runs of about 30 ms
    (the first shape also in runs of three): cuBLAS's rate over the same shapes."""
    shapes = [
        (1024, 4096, 4096), (1024, 4224, 4096), (2048, 4096, 4096), (4096, 4096, 4096),
        (8192, 4096, 4096), (1024, 4096, 1024), (1024, 4096, 16384), (4096, 4096, 1024),
        (4096, 4096, 2048), (4096, 4096, 8192),
    ]
    scale = 16 if quick else 1
    for i, (m, n, k) in enumerate(shapes):
        m, n, k = m // scale, n // scale, k // scale
        a, b = rand(k, m), rand(k, n)
        flops = 2 * m * n * k
        long = products_per_run(flops, 200)
        for iters in [2] if quick else ([long, 3] if i == 0 else [long]):
            dt = timed(lambda: a.T @ b, iters)
            print(f"torch_waves_tn_{m}x{n}x{k}_x{iters} {flops / dt / 1e9:.1f} GFLOP/s ({dt * 1e6:.1f} us)")
        del a, b


def label(n):
    return f"1e{len(str(n)) - 1}_f32"


def copy(quick):
    n = 1_000_000 if quick else 100_000_000
    src = torch.ones(n, device="cuda")
    dst = torch.empty_like(src)
    dt = timed(lambda: dst.copy_(src), 20)
    print(f"torch_copy_{label(n)} {2 * 4 * n / dt / 1e9:.1f} GB/s read+write ({dt * 1e3:.3f} ms)")
    for rows, cols in [(256, 256)] if quick else [(4096, 4096), (1024, 4096)]:
        src = rand(rows, cols)
        out = torch.empty(cols, rows, device="cuda")
        dt = timed(lambda: out.copy_(src.t()), 20)
        print(f"torch_transpose_{rows}x{cols} {8 * rows * cols / dt / 1e9:.1f} GB/s read+write ({dt * 1e6:.1f} us)")


def optim(quick):
    n = 1_000_000 if quick else 100_000_000
    for name, make, bytes_per in (
        ("adam", lambda p: torch.optim.Adam([p], lr=1e-3, fused=True), 28),
        ("sgd_momentum", lambda p: torch.optim.SGD([p], lr=0.01, momentum=0.9), 20),
        # No fused kernels for these: foreach (CUDA's default) is PyTorch's fastest.
        ("nadam", lambda p: torch.optim.NAdam([p], foreach=True), 28),
        ("radam", lambda p: torch.optim.RAdam([p], foreach=True), 28),
        ("adamax", lambda p: torch.optim.Adamax([p], foreach=True), 28),
        ("adadelta", lambda p: torch.optim.Adadelta([p], foreach=True), 28),
    ):
        p = torch.nn.Parameter(torch.full((n,), 0.5, device="cuda"))
        p.grad = (torch.arange(n, device="cuda") % 101 - 50).float() * 1e-3
        opt = make(p)
        dt = timed(opt.step, 20)
        print(f"torch_optim_{name}_{label(n)} {bytes_per * n / dt / 1e9:.1f} GB/s ({dt * 1e3:.3f} ms/step)")
        del opt, p
    # The same elements as a model of 100 tensors, every other one in a parameter group at
    # half the rate (the report's optim_adam_groups line); the last tensor takes the rest.
    per = n // 100 // 64 * 64
    sizes = [per] * 99 + [n - 99 * per]
    params = [torch.nn.Parameter(torch.full((k,), 0.5, device="cuda")) for k in sizes]
    for p in params:
        p.grad = (torch.arange(p.numel(), device="cuda") % 101 - 50).float() * 1e-3
    groups = [dict(params=params[0::2]), dict(params=params[1::2], lr=0.5e-3)]
    opt = torch.optim.Adam(groups, lr=1e-3, fused=True)
    dt = timed(opt.step, 20)
    print(f"torch_optim_adam_groups_{label(n)} {28 * n / dt / 1e9:.1f} GB/s ({dt * 1e3:.3f} ms/step)")
    del opt, params


def train(quick):
    # (widths, batch, steps, grouped: AdamW with its decay off for the 1-D parameters (a
    # parameter group), batches a step sums: each loss / k, then one update).
    models = [
        ([784, 256, 10], 128, 5, False, 1),
        ([784, 256, 10], 128, 5, True, 1),
        ([2, 64, 64, 2], 64, 50, False, 1),
        ([2, 64, 64, 2], 16, 12, False, 4),
    ] if quick else [
        ([784, 256, 10], 128, 300, False, 1),
        ([784, 256, 10], 128, 300, True, 1),
        ([1024, 1024, 1024, 10], 512, 100, False, 1),
        ([4096, 4096, 4096, 10], 1024, 20, False, 1),
        ([4096, 4096, 4096, 10], 256, 20, False, 4),
        ([2, 64, 64, 2], 64, 500, False, 1),
    ]
    for widths, batch, iters, grouped, accumulate in models:
        torch.manual_seed(1)
        n = 16 * batch * accumulate
        x = rand(n, widths[0])
        y = torch.randint(0, widths[-1], (n,), device="cuda")
        layers = []
        for i in range(len(widths) - 1):
            layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
            if i + 2 < len(widths):
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers).cuda()
        if grouped:
            params = list(model.parameters())
            groups = [
                dict(params=[p for p in params if p.ndim == 1], weight_decay=0.0),
                dict(params=[p for p in params if p.ndim != 1]),
            ]
            opt = torch.optim.AdamW(groups, lr=1e-3, fused=True)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
        loss_fn = torch.nn.CrossEntropyLoss()
        order = torch.randperm(n, device="cuda")
        state = {"i": 0}

        def step():
            opt.zero_grad(set_to_none=True)
            for _ in range(accumulate):
                i = state["i"] % (16 * accumulate)
                state["i"] += 1
                idx = order[i * batch:(i + 1) * batch]
                loss = loss_fn(model(x[idx]), y[idx])
                (loss / accumulate if accumulate > 1 else loss).backward()
            opt.step()

        host = []

        def host_step():
            start = time.perf_counter()
            step()
            host.append(time.perf_counter() - start)

        dt = timed(host_step, iters, warm=5)
        key = "-".join(map(str, widths)) + f"_b{batch}"
        key += (f"_acc{accumulate}" if accumulate > 1 else "") + ("_groups" if grouped else "")
        print(f"torch_train_{key}_host {sorted(host)[len(host) // 2] * 1e6:.1f} us/step launched before the sync")
        print(f"torch_train_{key} {batch * accumulate / dt:.0f} samples/s ({dt * 1e3:.3f} ms/step)")


def host(quick):
    """The report's prediction line: a 64-row prediction of the small model, host array in,
    host array out (the report's other host lines take steepest's own step apart)."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2)
    ).cuda()
    x = (torch.rand(64, 2) * 2 - 1).numpy()

    def predict():
        with torch.no_grad():
            model(torch.from_numpy(x).cuda()).cpu().numpy()

    dt = timed(predict, 20 if quick else 500)
    print(f"torch_host_predict_2-64-64-2_b64 {dt * 1e6:.1f} us per 64-row prediction, host to host")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    args = parser.parse_args()
    wanted = [s.strip() for s in args.sections.split(",")]
    for s in wanted:
        if s not in SECTIONS:
            parser.error(f"unknown section {s!r}; sections: {', '.join(SECTIONS)}")
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    for s in SECTIONS:
        if s in wanted:
            globals()[s](args.quick)


if __name__ == "__main__":
    main()
