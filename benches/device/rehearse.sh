#!/usr/bin/env bash
# Rehearses go.sh on this machine, with stand-ins for everything it runs (the probe, the
# report, PyTorch, the test binaries, the experiments, nvidia-smi), so that a script broken in
# an edit fails here, in CI, and not in a GPU session's few minutes. Each stand-in prints its
# name, arguments and the experiment environment it was given; the rehearsal then checks that
# every step's output file reached results.tgz and that each staged experiment (and main) was
# timed in both passes with its own environment, its kernels listed and its tests run, and
# that `go.sh experiments` runs those steps alone.
#   bash benches/device/rehearse.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
carry="$work/carry"
bin="$work/bin"
mkdir -p "$carry/gl" "$bin" "$work/t/t" "$work/exp/exp" "$work/out"

# A stand-in program: prints what it was asked to do and the experiment variables it saw.
stand_in() {
  cat > "$1" <<'EOF'
#!/usr/bin/env bash
# A test binary's lines reach go.sh's log only as result lines; the report's kernels only
# as lines naming a matmul or transpose kernel.
case "$(basename "$0")" in matmul* | train*) printf 'test result: ' ;; esac
echo "stand-in $(basename "$0") $* [$(env | grep '^STEEPEST_' | sort | tr '\n' ' ')]"
case "$*" in *kernels*) echo "kernel matmul (stand-in)" ;; esac
[ -z "${STEEPEST_PROFILE:-}" ] || echo "profile_ (stand-in)"
case "$*" in *matmul,shapes*) echo "stand_in_rate 100.0 GFLOP/s (stand-in)" ;; esac
EOF
  chmod +x "$1"
}
for p in gpu_probe gpu_report gpu_report_baseline; do stand_in "$carry/$p"; done
echo baseline > "$carry/baseline"
for p in nvidia-smi python3 dpkg ldconfig; do stand_in "$bin/$p"; done
stand_in "$work/t/t/matmul"
stand_in "$work/t/t/train"
tar cf - -C "$work/t" t | xz -1 > "$carry/t.txz"
stand_in "$work/exp/exp/gpu_report_one"
stand_in "$work/exp/exp/matmul_one"
tar cf - -C "$work/exp" exp | xz -1 > "$carry/exp.txz"
printf '%s\n' \
  'first exp/gpu_report_one exp/matmul_one STEEPEST_EXP_FIRST=1' \
  'second exp/gpu_report_one exp/matmul_one STEEPEST_EXP_SECOND=2 STEEPEST_EXP_THIRD=3' \
  > "$carry/experiments.txt"
: > "$carry/torch_probe.py"
: > "$carry/torch_report.py"
echo rehearsal > "$carry/commit"
cp "$here/go.sh" "$carry/go.sh"

PATH="$bin:$PATH" OUT="$work/out" bash "$carry/go.sh" > "$work/log" 2>&1 || {
  cat "$work/log"
  echo "rehearse: go.sh failed" >&2
  exit 1
}
mkdir "$work/results"
tar xzf "$work/out/results.tgz" -C "$work/results"
fail() {
  echo "rehearse: $*" >&2
  cat "$work/log" >&2
  exit 1
}
# The shell's own complaints (a bad redirection, a command not found) mean a broken line.
if grep -rE 'Bad file descriptor|command not found|No such file|syntax error|ambiguous redirect' \
  "$work/log" "$work/results"; then
  fail "go.sh complained"
fi
for f in probe torch report_matmul torch_report kernels tests probe_train report_train \
  report_optim torch_optim_train report_spin experiments experiments_kernels \
  report_profile experiments_tests report_tilings report_shapes; do
  [ -s "$work/results/$f.txt" ] || fail "results.tgz has no $f.txt"
done
timed="$work/results/experiments.txt"
for pass in forward reverse; do
  grep -A1 "^== $pass main: (no environment)" "$timed" |
    grep -q 'stand-in gpu_report --sections matmul,shapes,waves,copy \[\]' ||
    fail "main's report was not timed in the $pass pass"
  grep -A1 "^== $pass first: STEEPEST_EXP_FIRST=1" "$timed" |
    grep -q 'stand-in gpu_report_one --sections matmul,shapes,waves,copy \[STEEPEST_EXP_FIRST=1 \]' ||
    fail "experiment first was not timed with its environment in the $pass pass"
  grep -A1 "^== $pass second: STEEPEST_EXP_SECOND=2 STEEPEST_EXP_THIRD=3" "$timed" |
    grep -q '\[STEEPEST_EXP_SECOND=2 STEEPEST_EXP_THIRD=3 \]' ||
    fail "experiment second was not timed with its environment in the $pass pass"
done
grep -q 'stand-in matmul_one --test-threads 8 \[STEEPEST_EXP_SECOND=2 STEEPEST_EXP_THIRD=3 \]' \
  "$work/results/experiments_tests.txt" || fail "experiment second's tests did not run with its environment"
grep -A1 '^== first: STEEPEST_EXP_FIRST=1' "$work/results/experiments_kernels.txt" |
  grep -q '^kernel matmul' || fail "experiment first's kernels were not listed"
grep -q 'stand-in train --test-threads 8' "$work/results/tests.txt" ||
  fail "the test binaries did not run"
[ "$(grep -c '^stand-in gpu_report_baseline --sections host,train' "$work/results/report_train.txt")" = 2 ] ||
  fail "the baseline's training rows were not alternated with this report's"
# compare.py reads the experiments' blocks as go.sh writes them.
echo "torch_stand_in_rate 200.0 GFLOP/s (stand-in)" > "$work/torch_report.txt"
python3 "$here/compare.py" "$timed" --torch "$work/torch_report.txt" > "$work/compared" ||
  fail "compare.py failed on go.sh's experiments.txt"
grep -q '^| stand_in_rate | 100 | 100 (1.000) | 100 (1.000) |$' "$work/compared" ||
  fail "compare.py did not tabulate main and both experiments: $(cat "$work/compared")"
grep -q '^| stand_in_rate | 200 | 0.500 | 0.500 | 0.500 |$' "$work/compared" ||
  fail "compare.py did not set each line against PyTorch's: $(cat "$work/compared")"
# `go.sh experiments`: the experiments' three files and nothing else of the report's.
rm -rf "$work/out" "$work/results" && mkdir -p "$work/out" "$work/results"
PATH="$bin:$PATH" OUT="$work/out" bash "$carry/go.sh" experiments > "$work/log" 2>&1 ||
  fail "go.sh experiments failed"
tar xzf "$work/out/results.tgz" -C "$work/results"
listed=$(cd "$work/results" && ls -- *.txt | sort | tr '\n' ' ')
[ "$listed" = "card.txt experiments.txt experiments_kernels.txt experiments_tests.txt torch_report.txt " ] ||
  fail "go.sh experiments wrote $listed"
grep -q '^== reverse main' "$work/results/experiments.txt" ||
  fail "go.sh experiments did not time main beside the experiments"
PATH="$bin:$PATH" OUT="$work/out" bash "$carry/go.sh" everything > "$work/log" 2>&1 &&
  fail "go.sh took an unknown argument"
echo "rehearse: go.sh ran every step, and each experiment in both passes with its environment"
