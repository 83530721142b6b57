"""Issue 8's speed targets from one go.sh run: a Markdown table of each measure, steepest's
value, PyTorch's, their ratio and the target, read from the unpacked results.tgz.

    python3 benches/device/targets.py RESULTS_DIR

Reads report_matmul.txt (the report's products and copy), torch_report.txt (its PyTorch
twin), torch.txt and probe.txt (the reference probes: PyTorch's training rows, fused Adam
and copy; steepest's Adam, beside report_optim.txt's), and report_train.txt (the report's training rows, the current
build's runs only, not a baseline's: the median of its runs); then, from report_spin.txt,
the same products and host lines with waits that poll (`STEEPEST_SPIN_WAIT=1`). Products are compared in long
runs (the report's first figure) and, where both lines give it, in runs of three. Standard
library only.
"""

import argparse
import re
import statistics
from pathlib import Path

LINE = re.compile(r"^(\S+) ([0-9.]+) \S+(.*)$")
DETAIL = re.compile(r"\((.*)\)\s*$")
OF_THREE = re.compile(r"([0-9.]+) us in runs of 3")
HEADER = re.compile(r"^== (\S+) --sections")

# Burn 0.21's wgpu backend on the same card (issue 8's table), samples/s.
BURN = {"784-256-10_b128": 107e3, "1024-1024-1024-10_b512": 112e3,
        "4096-4096-4096-10_b1024": 80e3, "2-64-64-2_b64": 36e3}


def lines(path, only_build=None):
    """{key: [(value, detail)]} of a report's `key value unit (detail)` lines; with
    `only_build`, only those under `== only_build --sections` headers (or before any)."""
    found = {}
    build = None
    if not path.exists():
        return found
    for text in path.read_text(errors="replace").splitlines():
        header = HEADER.match(text)
        if header:
            build = header.group(1)
            continue
        if only_build and build not in (None, only_build):
            continue
        m = LINE.match(text.strip())
        if m:
            try:
                value = float(m.group(2))
            except ValueError:
                continue
            detail = DETAIL.search(m.group(3))
            found.setdefault(m.group(1), []).append((value, detail.group(1) if detail else ""))
    return found


def median(found, key):
    values = [v for v, _ in found.get(key, [])]
    return statistics.median(values) if values else None


def of_three(found, key):
    """The runs-of-three µs a product line gives in its detail, if any."""
    for _, detail in found.get(key, []):
        m = OF_THREE.search(detail)
        if m:
            return float(m.group(1))
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the unpacked results.tgz of a go.sh run")
    dir_ = parser.parse_args().results
    ours = lines(dir_ / "report_matmul.txt")
    theirs = lines(dir_ / "torch_report.txt")
    theirs_probe = lines(dir_ / "torch.txt")
    probe = lines(dir_ / "probe.txt")
    train = lines(dir_ / "report_train.txt", only_build="gpu_report")

    rows = []

    def row(name, mine, other, target):
        if mine is None or other is None:
            rows.append((name, mine, other, None, target, "not measured"))
            return
        ratio = mine / other
        rows.append((name, mine, other, ratio, target, "✓" if ratio >= target else "✗"))

    def product(key, target):
        torch = median(theirs, f"torch_{key}") or median(theirs_probe, f"torch_{key}")
        row(key + " GFLOP/s", median(ours, key), torch, target)
        mine3, torch3 = of_three(ours, key), of_three(theirs, f"torch_{key}")
        if mine3 and torch3:
            # Times, not rates: PyTorch's time over ours is our rate over theirs.
            rows.append((key + " in runs of 3, µs", mine3, torch3, torch3 / mine3, target,
                         "(runs of three)"))

    for size in (4096, 8192):
        for op in ("nn", "nt", "tn"):
            product(f"matmul_{op}_{size}", 0.9)
    product("linear_relu_512x1024x1024", 0.6)
    for key in sorted(k for k in ours if k.startswith("shape_")):
        product(key, 0.9 if key.startswith("shape_4096") else 0.5)
    copy = median(theirs_probe, "torch_copy_1e8_f32") or median(theirs, "torch_copy_1e8_f32")
    # Adam from the probe's line and the report's own (report_optim.txt), the faster: the
    # probe runs first, and an idle card's clock can still be falling then (nineteenth
    # session: 1.757 ms at 345 MHz against the report's 0.736).
    adam = [v for v in (median(probe, "optim_adam_1e8"),
                        median(lines(dir_ / "report_optim.txt"), "optim_adam_1e8_f32"))
            if v is not None]
    row("Adam over 1e8 parameters, GB/s (PyTorch: its copy)", max(adam, default=None), copy,
        0.9)
    # Not issue targets: the arena copy's kernel (twenty-seventh session) against PyTorch's
    # copy, and wgpu's copy command it replaced (824 GB/s on the H200, a fifth of PyTorch's).
    row("copy_arena over 1e8 f32, GB/s (PyTorch: its copy; no issue target)",
        median(ours, "copy_arena_1e8_f32"), copy, 0.9)
    row("wgpu's copy command, 1e8 f32, GB/s (what copy_arena replaced)",
        median(ours, "copy_1e8_f32"), copy, 0.9)
    for model, target in (("784-256-10_b128", 3.0), ("1024-1024-1024-10_b512", 1.2),
                          ("4096-4096-4096-10_b1024", 0.8), ("2-64-64-2_b64", 3.0)):
        mine = median(train, f"train_{model}")
        row(f"train {model} samples/s", mine, median(theirs_probe, f"torch_train_{model}"),
            target)
        row(f"train {model} samples/s against Burn", mine, BURN[model], 1.0)
    host = median(train, "train_2-64-64-2_b64_host")
    rows.append(("host µs a step, 2-64-64-2 (target ≤ 50)", host, None, None, 50.0,
                 "not measured" if host is None else ("✓" if host <= 50 else "✗")))

    print("| measure | steepest | PyTorch | ratio | target | |")
    print("|---|---:|---:|---:|---:|---|")
    fmt = lambda v: "" if v is None else f"{v:,.1f}"
    for name, mine, other, ratio, target, verdict in rows:
        ratio_text = "" if ratio is None else f"{ratio:.3f}"
        print(f"| {name} | {fmt(mine)} | {fmt(other)} | {ratio_text} | {target} | {verdict} |")

    # Waits that poll (report_spin.txt, STEEPEST_SPIN_WAIT=1) against waits that sleep: the
    # products' runs of three and the host-to-host lines.
    spin = lines(dir_ / "report_spin.txt")
    if spin:
        print()
        print("| with waits that poll | sleeping | polling |")
        print("|---|---:|---:|")
        for key in sorted(k for k in spin if k.startswith("shape_")):
            print(f"| {key} in runs of 3, µs | {fmt(of_three(ours, key))} | {fmt(of_three(spin, key))} |")
            print(f"| {key} in long runs, GFLOP/s | {fmt(median(ours, key))} | {fmt(median(spin, key))} |")
        for key in ("host_roundtrip_add", "host_predictor_2-64-64-2_b64",
                    "host_predict_2-64-64-2_b64"):
            print(f"| {key}, µs | {fmt(median(train, key))} | {fmt(median(spin, key))} |")


if __name__ == "__main__":
    main()
