#!/usr/bin/env bash
# Every `cleardiffusion experiment` at its CPU size (`--size cpu`: the CPU training recipe, 2,000 steps a
# model, 500 samples per FID), on a 2-core CPU in about 100 minutes: two queues, each pinned to its own core
# with one thread, sharing one cache (a model two experiments need is trained once; a second asker waits for
# its lock). Rerunning reuses every finished model and every drawn sample set, and resumes an interrupted
# training from its last checkpoint.
#
#   bash benchmarks/run_experiments_cpu.sh                 # MNIST and Fashion-MNIST from ../shared/data
#
# Reports: benchmarks/results/experiments_cpu/DATASET/NAME/{report.md,results.json,images/}; logs in the
# cache folder. Cache (checkpoints, samples: git-ignored): runs/experiments_cpu-cache, or $CACHE_DIR.
# Never run this in CI: it takes both cores for well over an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then sed -n 2,12p "$0"; exit 0; fi
RESULTS=benchmarks/results/experiments_cpu
CACHE_DIR="${CACHE_DIR:-runs/experiments_cpu-cache}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
mkdir -p "$CACHE_DIR"

one() {  # one() DATASET NAME: one experiment, one thread
  cleardiffusion experiment "$2" --size cpu --dataset "$1" --data-dir "../shared/data/$1" --device cpu --threads 1 \
    --cache-dir "$CACHE_DIR" --out "$RESULTS/$1/$2"
}
queue() {  # queue CORE DATASET:NAME ...: the experiments in order, pinned to one core
  local core=$1; shift
  for item in "$@"; do taskset -c "$core" bash -c "$(declare -f one); CACHE_DIR=$CACHE_DIR RESULTS=$RESULTS one ${item%%:*} ${item#*:}"; done
}
# about 70 and 95 minutes: the DDPM-1000 samples of ddim-steps are the longest single item (~25 min a dataset)
queue 0 mnist:ddim-steps mnist:ddpm-steps mnist:time-embedding fashion-mnist:time-embedding > "$CACHE_DIR/queue0.log" 2>&1 &
queue 1 mnist:cfg-dropout mnist:overfit-one-image mnist:sampling-cost fashion-mnist:ddim-steps > "$CACHE_DIR/queue1.log" 2>&1 &
wait
echo "reports in $RESULTS"
