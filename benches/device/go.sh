#!/usr/bin/env bash
# Runs on the lent GPU machine, from what benches/device/stage.sh put in .devcarry/: in about
# seven minutes, on one card, the reference probe and PyTorch's, what the driver compiled each
# kernel into, every test binary, the probe's training rows alone (with the in-flight bound
# and without), the GPU report (alternated with the baseline's, when staged), its products and
# training rows profiled op by op, its PyTorch twin, and every tiling at the MLPs' shapes.
# Most important first: a run cut short by the call's time limit loses the last. Everything
# printed is also kept in $OUT (or .devcarry/out).
set -uo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-$PWD/out}; mkdir -p "$OUT"
for f in gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export XDG_RUNTIME_DIR=/tmp/xdg; mkdir -p -m 700 "$XDG_RUNTIME_DIR"
export PYTHONUNBUFFERED=1
echo "steepest $(cat commit); baseline $(cat baseline 2>/dev/null || echo none)"
# The SM clock, every 250 ms: a GPU left idle drops it to a third, which shows as slow rows.
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw --format=csv -lms 250 > "$OUT/clocks.csv" &
clocks=$!
trap 'kill $clocks 2>/dev/null' EXIT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/card.txt"

timeout 240 ./gpu_probe 2>&1 | tee "$OUT/probe.txt"
timeout 120 python3 torch_probe.py 2>&1 | tee "$OUT/torch.txt"
# What the driver compiled each of the report's kernels into (registers, spills,
# instructions): seconds, and what no timing shows directly (with the register count, how
# many workgroups of a kernel fit on a compute unit at once).
timeout 90 ./gpu_report --sections kernels --ir-dir "$OUT/kernel_ir" 2>&1 | tee "$OUT/kernels.txt"

mkdir -p /tmp/tests && tar xJf t.txz -C /tmp/tests
for t in /tmp/tests/t/*; do
  echo "-- $(basename "$t")"
  timeout 120 "$t" --test-threads 8 > "/tmp/$(basename "$t").log" 2>&1; echo "exit $?"
  grep -E '^test result|FAILED|panicked' "/tmp/$(basename "$t").log" | head -20
done 2>&1 | tee "$OUT/tests.txt"

# The probe's training rows as their own process, the GPU busy just before (full clock); then
# with the in-flight bound out of reach: where the GPU is slower than the host, the probe's
# 500 steps in a row wait for it once the bound is reached, and its host line reads the GPU's
# pace (the report's host lines are timed in bursts, and do not).
timeout 60 ./gpu_probe train 2>&1 | tee "$OUT/probe_train.txt"
STEEPEST_MAX_DISPATCHES_IN_FLIGHT=1000000000 timeout 60 ./gpu_probe train 2>&1 |
  tee "$OUT/probe_train_unbounded.txt"

report() {
  for r in "$@"; do
    echo "== $r --sections host,train"
    timeout 90 "./$r" --sections host,train 2>&1
  done
}
if [ -x gpu_report_baseline ]; then
  report gpu_report_baseline gpu_report gpu_report_baseline gpu_report 2>&1 | tee "$OUT/report_train.txt"
else
  report gpu_report gpu_report 2>&1 | tee "$OUT/report_train.txt"
fi
timeout 150 ./gpu_report --sections matmul,shapes,copy 2>&1 | tee "$OUT/report_matmul.txt"
if [ -x gpu_report_baseline ]; then
  for r in gpu_report_baseline gpu_report; do
    echo "== $r --sections shapes"
    timeout 60 "./$r" --sections shapes 2>&1
  done | tee "$OUT/report_shapes.txt"
fi
# Where each row's GPU time goes, op by op (GPU timestamps; every submit then waits).
STEEPEST_PROFILE=1 timeout 120 ./gpu_report --sections shapes,train 2>&1 |
  grep -E '^(note|profile_)' | tee "$OUT/report_profile.txt"
timeout 90 python3 torch_report.py --sections shapes,copy,host 2>&1 | tee "$OUT/torch_report.txt"
# Every tiling at the MLPs' shapes (the 4096 model's: the large tiles, whole and with the
# K-contiguous operands transposed first): what Tiling::choose should pick there, if not its
# pick. Last: the least needed.
timeout 90 ./gpu_report --sections shapes --tilings 2>&1 | tee "$OUT/report_tilings.txt"
