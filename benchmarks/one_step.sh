#!/usr/bin/env bash
# Issue 24's protocol on one CPU core per run: the default recipe's 15-minute conditional teachers, 15 more
# minutes of each distillation method, a 30-minute MeanFlow model from scratch (the same total minutes as a
# teacher and its distillation), then benchmarks/one_step.py. Run from the repository root; pin each run to a
# core (taskset -c N) when two run at once. The MNIST teacher of the committed results is the README's run
# (with --eval-every); the Fashion-MNIST one is this script's line.
set -euo pipefail
D=${DATA:-../shared/data}
for ds in mnist fashion-mnist; do
  [ -f runs/$ds/checkpoints/last.pt ] || cleardiffusion train --dataset $ds --data-dir $D/$ds --time-budget 15 \
    --conditional --out runs/$ds
  cleardiffusion distill --teacher runs/$ds/checkpoints/last.pt --time-budget 15 --teacher-guidance 3 \
    --eval-every 300 --out runs/$ds-trajectory
  cleardiffusion distill --teacher runs/$ds/checkpoints/last.pt --distill-method cd --consistency-delta 250 \
    --time-budget 15 --teacher-guidance 3 --eval-every 300 --out runs/$ds-cd
done
cleardiffusion train --dataset mnist --data-dir $D/mnist --objective meanflow --conditional --time-budget 30 \
  --eval-every 500 --out runs/mnist-meanflow
python benchmarks/one_step.py --dataset mnist --data-dir $D/mnist --teacher runs/mnist/checkpoints/last.pt \
  --student trajectory=runs/mnist-trajectory/checkpoints/last.pt --student cd=runs/mnist-cd/checkpoints/last.pt \
  --student meanflow=runs/mnist-meanflow/checkpoints/last.pt --out benchmarks/results/one_step_cpu/mnist
python benchmarks/one_step.py --dataset fashion-mnist --data-dir $D/fashion-mnist \
  --teacher runs/fashion-mnist/checkpoints/last.pt --student trajectory=runs/fashion-mnist-trajectory/checkpoints/last.pt \
  --student cd=runs/fashion-mnist-cd/checkpoints/last.pt --out benchmarks/results/one_step_cpu/fashion-mnist
