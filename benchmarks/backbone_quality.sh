#!/usr/bin/env bash
# Issue 26, item 1: the U-Net `small` against `vit-small` (and any other preset) at equal CPU minutes.
# Each model trains class-conditional for MINUTES of wall clock on its own core, side by side (one thread each),
# then on the same core draws 1,000 samples with the default sampler (DPM-Solver++(2M) SDE, 50 steps) from the
# same per-sample seeds, unconditional (the null label) and class-conditional at guidance 3, each scored by the
# shipped feature network (cleardiffusion eval). Run from the repository root:
#
#     bash benchmarks/backbone_quality.sh mnist 10 small vit-small
#     bash benchmarks/backbone_quality.sh fashion-mnist 10 small vit-small
#
# Writes benchmarks/results/backbones_cpu/DATASET/MODEL-{unconditional,guided}.json and MODEL-summary.json
# (the run's steps and seconds); the runs themselves go to runs/backbones/DATASET-MODEL. CORES="0 0" puts both
# models on core 0, time-shared (each then gets about half of MINUTES of CPU time, the same for both).
set -euo pipefail
DS=${1:?dataset}; MIN=${2:?minutes}; shift 2
MODELS=("$@"); D=${DATA:-../shared/data}
OUT=benchmarks/results/backbones_cpu/$DS
mkdir -p "$OUT" runs/backbones
read -r -a cores <<< "${CORES:-$(seq -s ' ' 0 $(( $(nproc) - 1 )))}"
i=0
for m in "${MODELS[@]}"; do
  core=${cores[$(( i % ${#cores[@]} ))]}; i=$(( i + 1 ))
  run=runs/backbones/$DS-$m
  (
    export OMP_NUM_THREADS=1
    taskset -c $core cleardiffusion train --dataset "$DS" --data-dir "$D/$DS" --model "$m" --conditional \
      --time-budget "$MIN" --no-progress --out "$run"
    cp "$run/summary.json" "$OUT/$m-summary.json"
    for kind in unconditional guided; do
      if [ $kind = guided ]; then flags=(--class-label all --guidance 3); else flags=(--class-label none); fi
      taskset -c $core cleardiffusion sample --checkpoint "$run/checkpoints/last.pt" --n 1000 "${flags[@]}" \
        --seed 0 --batch-size 250 --device cpu --out "$run-$kind.npz"
      taskset -c $core cleardiffusion eval --samples "$run-$kind.npz" --dataset "$DS" --data-dir "$D/$DS" \
        --out "$OUT/$m-$kind.json"
      taskset -c $core cleardiffusion sample --checkpoint "$run/checkpoints/last.pt" --n 100 "${flags[@]}" \
        --seed 0 --device cpu --out "$OUT/$m-$kind.png"
    done
  ) > "runs/backbones/$DS-$m.log" 2>&1 &
done
wait
echo "wrote $OUT"
