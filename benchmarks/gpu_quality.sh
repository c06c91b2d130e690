#!/usr/bin/env bash
# Issues 3 and 4 on a lent GPU, in one command: train a class-conditional seed-minimal (label dropout 0.1)
# on real MNIST and Fashion-MNIST for a fixed budget each, then for each dataset
#   - a DDIM-50 grid per guidance scale s in {0, 1, 3, 5} (one class per row; s = 0 is the unconditional model)
#   - DDIM-50 and DDPM-1000 sample files (.npz) with their FID/KID/precision/recall/accuracy summaries
#   - the training throughput (images/s, from metrics.jsonl)
# Everything lands in $RESULTS (default benchmarks/results/gpu_quality), with the device, command and date.
#
# usage (device tool, the data carried in a git-ignored folder, e.g. .data/ with mnist/ and fashion-mnist/):
#   bash benchmarks/gpu_quality.sh .data 20000 [RESULTS]
# arguments: DATA_ROOT (holding mnist/ and fashion-mnist/ IDX files), STEPS per dataset (about 5 minutes
# of an H100 at batch 256 is what the issue asks; measure images/s first), RESULTS folder.
# environment (defaults in brackets): DEVICE [cuda], N_FID DDIM-50 samples scored [10000], N_DDPM DDPM-1000
# samples scored [2000], TRAIN_MINUTES wall-clock cap on each training run (train --time-budget; STEPS is then
# an upper bound) [none]. FIDs use the feature network shipped for each dataset (eval's default; the JSON names
# its features_sha256). A CPU plumbing check of the whole script: DEVICE=cpu N_FID=200 N_DDPM=20 bash benchmarks/gpu_quality.sh ../shared/data 20 /tmp/q
set -euo pipefail
DEVICE=${DEVICE:-cuda}
N_FID=${N_FID:-10000}
N_DDPM=${N_DDPM:-2000}
DATA=${1:?DATA_ROOT with mnist/ and fashion-mnist/}
STEPS=${2:-20000}
RESULTS=${3:-${OUT:-benchmarks/results/gpu_quality}}
mkdir -p "$RESULTS"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
CD="$PY -m cleardiffusion"
{
  echo "# GPU quality runs (issues 3 and 4)"
  echo "- device: $($PY -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")'); torch $($PY -c 'import torch; print(torch.__version__)')"
  echo "- date: $(date -u +%F); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- command: bash benchmarks/gpu_quality.sh $*"
  echo "- environment: DEVICE=$DEVICE N_FID=$N_FID N_DDPM=$N_DDPM TRAIN_MINUTES=${TRAIN_MINUTES:-none}"
} > "$RESULTS/README.md"
for D in mnist fashion-mnist; do
  RUN=/tmp/run-$D
  $CD train --dataset $D --data-dir "$DATA/$D" --model seed-minimal --conditional --label-dropout 0.1 \
      --steps "$STEPS" --batch-size 256 --lr 2e-4 --warmup 500 --ema-decay 0.9999 --prediction eps \
      --loss-weighting none --sample-every 0 --checkpoint-every 5000 \
      --log-every 200 --device "$DEVICE" --no-progress --out $RUN ${TRAIN_MINUTES:+--time-budget "$TRAIN_MINUTES"}
  cp $RUN/metrics.jsonl "$RESULTS/$D-metrics.jsonl"
  $PY - "$RUN/metrics.jsonl" "$D" >> "$RESULTS/README.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ips = sorted(r["images_per_sec"] for r in rows[1:] or rows)  # the first row includes start-up
print(f"- {sys.argv[2]}: {rows[-1]['step']} steps, final loss {rows[-1]['loss']:.4f}, "
      f"median training throughput {ips[len(ips) // 2]:.0f} images/s, {rows[-1]['elapsed']:.0f} s")
PY
  for S in 0 1 3 5; do
    $CD sample --checkpoint $RUN/checkpoints/last.pt --sampler ddim --steps 50 --n 100 --class-label all \
        --guidance $S --device "$DEVICE" --out "$RESULTS/$D-ddim50-s$S.png"
  done
  for SPEC in "ddim 50 $N_FID" "ddpm 1000 $N_DDPM"; do
    set -- $SPEC
    $CD sample --checkpoint $RUN/checkpoints/last.pt --sampler $1 --steps $2 --n $3 --class-label all \
        --guidance 1 --batch-size 2000 --device "$DEVICE" --out /tmp/$D-$1$2.npz
    $CD eval --dataset $D --data-dir "$DATA/$D" --samples /tmp/$D-$1$2.npz \
        --device "$DEVICE" --out "$RESULTS/$D-$1$2-eval.json"
  done
done
cat "$RESULTS/README.md"
