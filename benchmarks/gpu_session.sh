#!/usr/bin/env bash
# Everything a session with a lent GPU runs first, in ONE device call that fits its 10-minute limit:
#   1. gpu_throughput.py --plan headline (the two target cases, train-128 and forward-1024), then
#   2. gpu_quality.sh (seed-minimal, class-conditional, on MNIST and Fashion-MNIST) in the time left.
# Each part has a deadline, so a slow compile or a slow machine cuts rows (marked "skipped") or the last
# dataset rather than the whole call; whatever finished comes back as $OUT/gpu_session.tgz.
#
# Here, once:  bash benchmarks/fetch_peer_wheels.sh
#              mkdir -p .data && cp -r ../shared/data/mnist ../shared/data/fashion-mnist .data/
#              (.whl/ and .data/ are git-ignored, about 47 MB together)
# Device call: carry [".whl", ".data"], timeout_s 590, command: bash benchmarks/gpu_session.sh
# Then unpack the archive into benchmarks/results/gpu_<device>/ and commit it.
# environment: TOTAL_S seconds for both parts [560], THROUGHPUT_S of them for part 1 [300], TRAIN_MINUTES,
# N_FID, N_DDPM as in gpu_quality.sh [1, 5000, 1000].
set -uo pipefail
TOTAL_S=${TOTAL_S:-560}
THROUGHPUT_S=${THROUGHPUT_S:-300}
R=/tmp/gpu_session
OUT=${OUT:-/tmp/gpu_session_out}
mkdir -p "$R" "$OUT"
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; } > "$R/device.txt" 2>&1
export PYTHONUNBUFFERED=1
timeout "$THROUGHPUT_S" python3 benchmarks/gpu_throughput.py --plan headline --cases train-128,forward-1024 \
  --budget-s $((THROUGHPUT_S - 90)) --out "$R/headline.md" 2>&1 | tee "$R/throughput.log"
LEFT=$((TOTAL_S - SECONDS))
echo "gpu_session: ${SECONDS}s spent, ${LEFT}s left for gpu_quality.sh"
TRAIN_MINUTES=${TRAIN_MINUTES:-1} N_FID=${N_FID:-5000} N_DDPM=${N_DDPM:-1000} \
  timeout "$LEFT" bash benchmarks/gpu_quality.sh .data 100000 "$R/quality" 2>&1 | tee "$R/quality.log"
echo "gpu_session: done after ${SECONDS}s"
tar czf "$OUT/gpu_session.tgz" -C "$R" .
ls -l "$OUT"
