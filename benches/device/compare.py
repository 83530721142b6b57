"""Tabulates go.sh's experiments.txt: one row per report line (a product's GFLOP/s), one column
per experiment, each the mean of its passes (in turn and in reverse) with its ratio to main's.

    python3 benches/device/compare.py experiments.txt [--keys REGEX] [--torch torch_report.txt]

Reads the blocks `== forward NAME: ...` / `== reverse NAME: ...` and, in each, the report's
`key value unit (...)` lines; prints a Markdown table. With --torch (the PyTorch report of the
same call), a second table: each line's mean against PyTorch's `torch_KEY` (issue 8's
targets are read that way: 0.9 for the 4096 model's products). Standard library only.
"""

import argparse
import re
import statistics
from collections import defaultdict

HEADER = re.compile(r"^== (forward|reverse) (\S+):")
LINE = re.compile(r"^(\S+) ([0-9.]+) (GFLOP/s|GB/s)")


def read(path):
    values = defaultdict(lambda: defaultdict(list))  # key -> name -> [value per pass]
    names = []
    name = None
    with open(path) as f:
        for line in f:
            header = HEADER.match(line)
            if header:
                name = header.group(2)
                if name not in names:
                    names.append(name)
                continue
            found = LINE.match(line)
            if found and name:
                values[found.group(1)][name].append(float(found.group(2)))
    return names, values


def torch_values(path):
    """{key: value} of a PyTorch report's `torch_KEY value unit` lines (the last of each)."""
    found = {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if m and m.group(1).startswith("torch_"):
                found[m.group(1)[len("torch_"):]] = float(m.group(2))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="experiments.txt from go.sh's results")
    parser.add_argument("--keys", default=".", help="only report lines whose key matches this regex")
    parser.add_argument("--torch", help="torch_report.txt of the same call: each line against PyTorch's")
    args = parser.parse_args()
    names, values = read(args.path)
    if "main" not in names:
        raise SystemExit(f"{args.path}: no `main` block, nothing to compare against")
    names = ["main"] + [n for n in names if n != "main"]
    print("| line | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for key, by_name in values.items():
        if not re.search(args.keys, key) or "main" not in by_name:
            continue
        base = statistics.mean(by_name["main"])
        cells = []
        for n in names:
            if n not in by_name:
                cells.append("")
                continue
            v = statistics.mean(by_name[n])
            cells.append(f"{v:.0f}" if n == "main" else f"{v:.0f} ({v / base:.3f})")
        print(f"| {key} | " + " | ".join(cells) + " |")
    if not args.torch:
        return
    torch = torch_values(args.torch)
    print()
    print("| line, against PyTorch | PyTorch | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for key, by_name in values.items():
        if not re.search(args.keys, key) or key not in torch:
            continue
        cells = [f"{statistics.mean(by_name[n]) / torch[key]:.3f}" if n in by_name else ""
                 for n in names]
        print(f"| {key} | {torch[key]:.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
