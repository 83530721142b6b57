#!/usr/bin/env bash
# Runs on the lent GPU machine, from what benches/device/stage.sh put in .devcarry/: in about
# three minutes (159 s on an H200, tenth session), on one card, the reference probe and
# PyTorch's, the GPU report's products and its PyTorch twin's, what the driver compiled each
# kernel into, every test binary, the probe's training rows alone (with the in-flight bound
# and without), the report's training rows (alternated with the baseline's, when staged), the
# optimizer steps and training rows with parameter groups beside PyTorch's,
# staged experiments beside it (about 20 s each, and their tests), its products and training rows profiled op
# by op, and every tiling at the MLPs' shapes.
# Most important first: a run cut short by the call's time limit loses the last. Everything
# printed is also kept, as results.tgz in $OUT (or .devcarry/out): the device call brings back
# at most 8 files, so the outputs travel as one archive, written anew after each step.
#   bash go.sh                # everything
#   bash go.sh experiments    # only the staged experiments: timed, their kernels, their tests
set -uo pipefail
everything=true
case "${1:-}" in
  '') ;;
  experiments) everything=false ;;
  *) echo "usage: go.sh [experiments]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")"
DEST=${OUT:-$PWD/out}; mkdir -p "$DEST"
OUT=/tmp/steepest-results; rm -rf "$OUT"; mkdir -p "$OUT"
keep() { tar czf "$DEST/results.tgz.part" -C "$OUT" . && mv "$DEST/results.tgz.part" "$DEST/results.tgz"; }
clocks=
trap 'keep; kill $clocks 2>/dev/null' EXIT
# The Vulkan loader and glvnd (NVIDIA's Vulkan driver lives in libGLX_nvidia, which needs
# glvnd's dispatch libraries; some machine images lack them).
for f in gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export __EGL_VENDOR_LIBRARY_FILENAMES=${__EGL_VENDOR_LIBRARY_FILENAMES:-/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json}
export XDG_RUNTIME_DIR=/tmp/xdg; mkdir -p -m 700 "$XDG_RUNTIME_DIR"
export PYTHONUNBUFFERED=1
echo "steepest $(cat commit); baseline $(cat baseline 2>/dev/null || echo none)"
# The SM clock, every 250 ms: a GPU left idle drops it to a third, which shows as slow rows.
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw --format=csv -lms 250 > "$OUT/clocks.csv" &
clocks=$!
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/card.txt"; keep

if $everything; then
  timeout 240 ./gpu_probe 2>&1 | tee "$OUT/probe.txt"; keep
  # No adapter: nothing below can run, and the lease's time is better kept.
  grep -q 'no GPU adapter found' "$OUT/probe.txt" && exit 1
  timeout 120 python3 torch_probe.py 2>&1 | tee "$OUT/torch.txt"; keep
  # The report's products and the same from PyTorch, both in long runs (and runs of three):
  # what the speed targets are read from, so they come before anything that could run long.
  timeout 150 ./gpu_report --sections matmul,shapes,waves,copy 2>&1 | tee "$OUT/report_matmul.txt"; keep
  timeout 150 python3 torch_report.py --sections matmul,shapes,waves,copy,host 2>&1 | tee "$OUT/torch_report.txt"; keep
  # What the driver compiled each of the report's kernels into (registers, spills,
  # instructions): seconds, and what no timing shows directly (with the register count, how
  # many workgroups of a kernel fit on a compute unit at once).
  timeout 90 ./gpu_report --sections kernels --ir-dir "$OUT/kernel_ir" 2>&1 | tee "$OUT/kernels.txt"; keep

  mkdir -p /tmp/tests && tar xJf t.txz -C /tmp/tests
  for t in /tmp/tests/t/*; do
    echo "-- $(basename "$t")"
    timeout 120 "$t" --test-threads 8 > "/tmp/$(basename "$t").log" 2>&1; echo "exit $?"
    grep -E '^test result|FAILED|panicked' "/tmp/$(basename "$t").log" | head -20
  done 2>&1 | tee "$OUT/tests.txt"; keep

  # The probe's training rows as their own process, the GPU busy just before (full clock); then
  # with the in-flight bound out of reach: where the GPU is slower than the host, the probe's
  # 500 steps in a row wait for it once the bound is reached, and its host line reads the GPU's
  # pace (the report's host lines are timed in bursts, and do not).
  timeout 60 ./gpu_probe train 2>&1 | tee "$OUT/probe_train.txt"; keep
  STEEPEST_MAX_DISPATCHES_IN_FLIGHT=1000000000 timeout 60 ./gpu_probe train 2>&1 |
    tee "$OUT/probe_train_unbounded.txt"; keep

  report() {
    for r in "$@"; do
      echo "== $r --sections host,train"
      timeout 90 "./$r" --sections host,train 2>&1
    done
  }
  if [ -x gpu_report_baseline ]; then
    report gpu_report_baseline gpu_report gpu_report_baseline gpu_report 2>&1 | tee "$OUT/report_train.txt"; keep
  else
    report gpu_report gpu_report 2>&1 | tee "$OUT/report_train.txt"; keep
  fi
  # Optimizer steps over 1e8 parameters (Adam also as 100 tensors in two parameter groups) and
  # the training rows (the 784 model also with AdamW and a parameter group), PyTorch's beside.
  timeout 90 ./gpu_report --sections optim 2>&1 | tee "$OUT/report_optim.txt"; keep
  timeout 120 python3 torch_report.py --sections optim,train 2>&1 | tee "$OUT/torch_optim_train.txt"; keep
  # Waits that poll instead of sleeping in the driver: the round trip of one small op, the
  # predictions, and the products' runs of three against their long runs (where a run's fixed
  # costs show), beside the sleeping waits' lines above.
  STEEPEST_SPIN_WAIT=1 timeout 90 ./gpu_report --sections shapes,host 2>&1 | tee "$OUT/report_spin.txt"; keep
  if [ -x gpu_report_baseline ]; then
    for r in gpu_report_baseline gpu_report; do
      echo "== $r --sections shapes"
      timeout 60 "./$r" --sections shapes 2>&1
    done | tee "$OUT/report_shapes.txt"; keep
  fi
fi
# Staged experiments (stage.sh's EXPERIMENTS: a name, a report and matmul tests built
# elsewhere, an environment), each beside this report's own, in turn and then in reverse;
# then what the driver compiled each into (seconds). Their tests come after the profile: a
# variant's speed decides whether it is worth merging, and its bits are checked before.
if [ -s experiments.txt ]; then
  # PyTorch's products in this call, for compare.py --torch (the whole run has them already).
  if ! $everything; then
    timeout 150 python3 torch_report.py --sections matmul,shapes,waves,copy 2>&1 | tee "$OUT/torch_report.txt"; keep
  fi
  tar xJf exp.txz
  for pass in forward reverse; do
    if [ $pass = forward ]; then order=cat; else order=tac; fi
    { echo "main ./gpu_report -"; cat experiments.txt; } | $order | while read -r name bin tests vars; do
      echo "== $pass $name: ${vars:-(no environment)}"
      env $vars timeout 90 "./$bin" --sections matmul,shapes,waves,copy < /dev/null 2>&1
    done
  done | tee "$OUT/experiments.txt"; keep
  while read -r name bin tests vars; do
    echo "== $name: ${vars:-(no environment)}"
    env $vars timeout 60 "./$bin" --sections kernels < /dev/null 2>&1 | grep -E '^kernel.*(matmul|transpose)'
  done < experiments.txt | tee "$OUT/experiments_kernels.txt"; keep
fi
if $everything; then
  # Where each row's GPU time goes, op by op (GPU timestamps; every submit then waits).
  STEEPEST_PROFILE=1 timeout 120 ./gpu_report --sections shapes,train 2>&1 |
    grep -E '^(note|profile_)' | tee "$OUT/report_profile.txt"; keep
fi
# Each experiment's matmul tests, built at its commit, with its environment: its bits here.
if [ -s experiments.txt ]; then
  while read -r name bin tests vars; do
    echo "== $name: ${vars:-(no environment)}"
    env $vars timeout 120 "./$tests" --test-threads 8 < /dev/null 2>&1 |
      grep -E '^test result|FAILED|panicked' | head -20
  done < experiments.txt | tee "$OUT/experiments_tests.txt"; keep
fi
if $everything; then
  # Every tiling at the MLPs' shapes (the 4096 model's: the large tiles, whole and with the
  # K-contiguous operands transposed first): what Tiling::choose should pick there, if not its
  # pick. Last: the least needed.
  timeout 90 ./gpu_report --sections shapes --tilings 2>&1 | tee "$OUT/report_tilings.txt"; keep
fi
