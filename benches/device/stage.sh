#!/usr/bin/env bash
# Stages one measuring run on a lent GPU machine (see BENCHMARKS.md, "Measuring on a GPU").
# Run from the project root on the build machine:
#   [EXPERIMENTS=FILE] bash benches/device/stage.sh [BASELINE_COMMIT]
# It runs the reference probe's prepare.sh (the probe, PyTorch's twin, every test binary),
# adds glvnd's libraries beside its Vulkan loader, then this checkout's GPU report, its
# PyTorch twin and go.sh to .devcarry/; with BASELINE_COMMIT, also the report built at that
# commit, which go.sh alternates with this one. With EXPERIMENTS, a file of lines
# `NAME REV [VAR=VALUE ...]` (# starts a comment), also the report built at each REV (a
# commit, or a `.patch` file applied to this checkout's HEAD: a kernel variant kept on main as
# a patch, since branches do not outlive a session), which go.sh times beside this one's with
# each line's
# environment (its `matmul,shapes,waves,copy` sections, in turn and then in reverse, its `kernels`, and
# the matmul tests built there: a variant's bits on the GPU).
# Then, in one device call: command `bash .devcarry/go.sh`, carry [".devcarry"].
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
probe="$root/../shared/gpu-probe"
[ -f "$probe/prepare.sh" ] || { echo "no reference probe at $probe" >&2; exit 1; }
CARGO_TARGET_DIR="$target" bash "$probe/prepare.sh" --tests
# prepare.sh brings the Vulkan loader; NVIDIA's Vulkan driver (in libGLX_nvidia) also needs
# glvnd, which some of the lent machines' images lack ("Could not get 'vkCreateInstance'" from
# the loader, then no adapter).
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
(cd .devcarry/gl && apt-get $o download -qq libglvnd0 libegl1 libglx0 libgl1 libopengl0 libgles2)
# The test binaries as xz at -9, whose 64 MiB window spans several binaries (each links the
# same wgpu and naga): 18.5 MB where -6's 8 MiB window gave 38.7 (twenty-eighth session,
# 215 MB of binaries, about two minutes on two cores), which keeps the carry well under its
# 64 MiB.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tar xzf .devcarry/t.tgz -C "$scratch"
tar cf - -C "$scratch" t | xz -9 -T2 > .devcarry/t.txz
rm .devcarry/t.tgz
CARGO_TARGET_DIR="$target" cargo build --release --locked --example gpu_report
cp "$target/release/examples/gpu_report" .devcarry/gpu_report
strip .devcarry/gpu_report
cp benches/pytorch/gpu_report.py .devcarry/torch_report.py
cp benches/device/go.sh .devcarry/go.sh
git describe --always --dirty > .devcarry/commit
# The GPU report built at $1 (a commit, or a patch applied to HEAD), stripped, as
# .devcarry/$2; with a third argument, also that tree's matmul test binary, stripped, as
# .devcarry/$3.
report_at() {
  local tree="$scratch/tree-$2"
  case "$1" in
    *.patch)
      git worktree add -q --detach "$tree" HEAD
      git -C "$tree" apply "$root/$1"
      ;;
    *) git worktree add -q --detach "$tree" "$1" ;;
  esac
  (cd "$tree" && CARGO_TARGET_DIR="$target" cargo build --release --locked --example gpu_report)
  cp "$target/release/examples/gpu_report" ".devcarry/$2"
  strip ".devcarry/$2"
  if [ -n "${3:-}" ]; then
    local test
    test=$(cd "$tree" && CARGO_TARGET_DIR="$target" cargo test --release --locked --no-run \
      --test matmul 2>&1 | sed -n 's/.*Executable tests\/matmul.rs (\(.*\))/\1/p')
    (cd "$tree" && strip -o "$root/.devcarry/$3" "$test")
  fi
  git worktree remove --force "$tree"
}
if [ -n "${1:-}" ]; then
  report_at "$1" gpu_report_baseline
  git rev-parse --short "$1" > .devcarry/baseline
fi
# Each experiment's report and matmul tests, xz-compressed at -9 as the test binaries are
# (the carry holds 64 MiB); go.sh unpacks them.
if [ -n "${EXPERIMENTS:-}" ]; then
  mkdir -p "$scratch/exp"
  : > .devcarry/experiments.txt
  while read -r name rev vars; do
    case "$name" in ''|'#'*) continue ;; esac
    case "$rev" in
      *.patch)
        [ -f "$rev" ] || { echo "experiment $name: no patch $rev" >&2; exit 1; }
        short=p$(git hash-object "$rev" | cut -c1-8)
        ;;
      *)
        short=$(git rev-parse --short "$rev" 2>/dev/null) || {
          echo "experiment $name: no commit or branch $rev here (branches do not outlive a" \
            "session: keep a variant as a patch on main)" >&2
          exit 1
        }
        ;;
    esac
    if [ ! -f "$scratch/exp/gpu_report_$short" ]; then
      report_at "$rev" "gpu_report_$short" "matmul_$short" < /dev/null
      mv ".devcarry/gpu_report_$short" ".devcarry/matmul_$short" "$scratch/exp/"
    fi
    echo "$name exp/gpu_report_$short exp/matmul_$short $vars" >> .devcarry/experiments.txt
  done < "$EXPERIMENTS"
  tar cf - -C "$scratch" exp | xz -9 -T2 > .devcarry/exp.txz
  cat .devcarry/experiments.txt
fi
du -sh .devcarry
