#!/usr/bin/env bash
# The full versions of `cleardiffusion experiment` (seed-sized U-Nets, thousands of training steps, 10k
# samples per FID) on a lent GPU. Each experiment is its own command, so one fits the device tool's 10-minute
# limit; rerunning a line that was cut off reuses every finished training run and resumes an interrupted one
# from its last checkpoint (the cache below), and the FID classifier and reference statistics are cached too.
#
#   bash benchmarks/run_experiments_gpu.sh --data-dir PATH/TO/mnist                 # all six, in order
#   bash benchmarks/run_experiments_gpu.sh --data-dir PATH/TO/mnist ddim-steps       # just these
#
# Reports: benchmarks/results/experiments/NAME/{report.md,results.json,images/}; logs beside them.
# Cache (checkpoints: large, git-ignored): runs/experiments-cache, or $CACHE_DIR.
# On the device machine, ../shared/data does not travel: copy MNIST's four .gz files into an ignored folder
# first (here: `mkdir -p runs/mnist && cp ../shared/data/mnist/*.gz runs/mnist/`), name runs/mnist in the
# run's `carry`, pass --data-dir runs/mnist, and set OUT=$OUT: the reports are then also packed into
# $OUT/experiments-<names>.tar.gz (the device tool only returns files two folders deep).
# Never run this in CI: it needs a GPU and tens of minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR=""
NAMES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) DATA_DIR="$2"; shift 2 ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) NAMES+=("$1"); shift ;;
  esac
done
if [ -z "$DATA_DIR" ]; then
  echo "usage: $0 --data-dir PATH/TO/mnist [NAME ...]  (the folder with MNIST's IDX .gz files)" >&2
  exit 2
fi
if [ ${#NAMES[@]} -eq 0 ]; then
  NAMES=(overfit-one-image ddpm-steps ddim-steps time-embedding cfg-dropout sampling-cost)
fi
RESULTS=benchmarks/results/experiments
CACHE_DIR="${CACHE_DIR:-runs/experiments-cache}"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$RESULTS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

for name in "${NAMES[@]}"; do
  echo "=== $name ($(date -u +%H:%M:%S) UTC)"
  "$PY" -m cleardiffusion experiment "$name" --out "$RESULTS/$name" --cache-dir "$CACHE_DIR" \
    --dataset mnist --data-dir "$DATA_DIR" --device cuda --seed 0 2>&1 | tee "$RESULTS/$name.log"
done

if [ -n "${OUT:-}" ]; then
  archive="$OUT/experiments-$(IFS=-; echo "${NAMES[*]}" | cut -c1-80).tar.gz"
  tar -czf "$archive" -C "$RESULTS" "${NAMES[@]}" $(cd "$RESULTS" && ls ./*.log 2>/dev/null)
  echo "packed $archive"
fi
