#!/usr/bin/env bash
# Issue 24's protocol on one CPU core per run: the default recipe's 15-minute conditional teachers, 15 more
# minutes of each distillation method (dmd: 10 of trajectory distillation, then 5 of dmd), a 30-minute MeanFlow
# model from scratch (the same total minutes as a teacher and its distillation), then benchmarks/one_step.py;
# at the end the same for the default recipe's own, unconditional, teacher. Run from the repository root; pin each run to a
# core (taskset -c N) when two run at once. The MNIST teacher of the committed results is the README's run
# (with --eval-every); the Fashion-MNIST one is this script's line.
set -euo pipefail
DMD64="--batch-size 64 --ema-decay 0.995 --dmd-t-max 0.98"  # dmd's batch, EMA and highest noise level when these
# ran (unconditional: 16, 0.998 since session 21; 0.5 since session 30)
D=${DATA:-../shared/data}
OLD="--lr 1e-5 --ema-decay 0.99 --ema-warmup 10"  # dmd's learning rate and EMA before the EMA measurements
for ds in mnist fashion-mnist; do
  [ -f runs/$ds/checkpoints/last.pt ] || cleardiffusion train --dataset $ds --data-dir $D/$ds --time-budget 15 \
    --conditional --out runs/$ds
  cleardiffusion distill --teacher runs/$ds/checkpoints/last.pt --time-budget 15 --teacher-guidance 3 \
    --eval-every 300 --out runs/$ds-trajectory
  cleardiffusion distill --teacher runs/$ds/checkpoints/last.pt --distill-method cd --consistency-delta 250 \
    --time-budget 15 --teacher-guidance 3 --eval-every 300 --out runs/$ds-cd
  # dmd: 15 minutes split, 10 of trajectory distillation, then 5 of distribution matching from that student
  cleardiffusion distill --teacher runs/$ds/checkpoints/last.pt --time-budget 10 --teacher-guidance 3 \
    --out runs/$ds-traj10
  # (guidance 1.5, not the student's 3: a strongly guided target cost the guided samples their variety)
  cleardiffusion distill --teacher runs/$ds/checkpoints/last.pt --distill-method dmd $DMD64 \
    --student runs/$ds-traj10/checkpoints/last.pt --time-budget 5 --teacher-guidance 1.5 --eval-every 100 \
    --out runs/$ds-dmd3
  # earlier defaults, with the learning rate and EMA of then: the GAN term's first; the chain of 4, two fake
  # updates, no GAN term
  cleardiffusion distill --teacher runs/$ds/checkpoints/last.pt --distill-method dmd $DMD64 \
    --student runs/$ds-traj10/checkpoints/last.pt --time-budget 5 --teacher-guidance 1.5 --eval-every 100 \
    $OLD --out runs/$ds-dmd2
  cleardiffusion distill --teacher runs/$ds/checkpoints/last.pt --distill-method dmd $DMD64 \
    --student runs/$ds-traj10/checkpoints/last.pt --time-budget 5 --teacher-guidance 1.5 --eval-every 100 \
    --dmd-chain 4 --dmd-fake-steps 2 --dmd-gan 0 $OLD --out runs/$ds-dmd
done
for ds in mnist fashion-mnist; do
  cleardiffusion train --dataset $ds --data-dir $D/$ds --objective meanflow --conditional --time-budget 30 \
    --eval-every 500 --out runs/$ds-meanflow
done
# --teacher-minutes 15: the README's model is a rerun of the 15-minute run's steps (its own clock is slower)
python benchmarks/one_step.py --dataset mnist --data-dir $D/mnist --teacher runs/mnist/checkpoints/last.pt \
  --teacher-minutes 15 \
  --student trajectory=runs/mnist-trajectory/checkpoints/last.pt --student cd=runs/mnist-cd/checkpoints/last.pt \
  --student meanflow=runs/mnist-meanflow/checkpoints/last.pt --student dmd=runs/mnist-dmd3/checkpoints/last.pt \
  --student dmd-gan-warm=runs/mnist-dmd2/checkpoints/last.pt --student dmd-chain4=runs/mnist-dmd/checkpoints/last.pt \
  --out benchmarks/results/one_step_cpu/mnist
python benchmarks/one_step.py --dataset fashion-mnist --data-dir $D/fashion-mnist \
  --teacher runs/fashion-mnist/checkpoints/last.pt --student trajectory=runs/fashion-mnist-trajectory/checkpoints/last.pt \
  --student cd=runs/fashion-mnist-cd/checkpoints/last.pt --student meanflow=runs/fashion-mnist-meanflow/checkpoints/last.pt \
  --student dmd=runs/fashion-mnist-dmd3/checkpoints/last.pt \
  --student dmd-gan-warm=runs/fashion-mnist-dmd2/checkpoints/last.pt --student dmd-chain4=runs/fashion-mnist-dmd/checkpoints/last.pt \
  --out benchmarks/results/one_step_cpu/fashion-mnist
# the default recipe's own (unconditional) teacher: trajectory for 15 minutes, and 10 + 5 minutes with dmd
U=runs/mnist-uncond
[ -f $U/checkpoints/last.pt ] || cleardiffusion train --dataset mnist --data-dir $D/mnist --time-budget 15 --out $U
TRAJ0="--grow-student 0 --student-codes 0"  # the student's network when these ran (grown since 23, coded since 26)
cleardiffusion distill $TRAJ0 --teacher $U/checkpoints/last.pt --time-budget 15 --eval-every 300 --out $U-trajectory
cleardiffusion distill $TRAJ0 --teacher $U/checkpoints/last.pt --time-budget 10 --out $U-traj10
cleardiffusion distill --teacher $U/checkpoints/last.pt --distill-method dmd $DMD64 --student $U-traj10/checkpoints/last.pt \
  --time-budget 5 --eval-every 100 --out $U-dmd3
# earlier settings, each with the EMA and learning rate of then: the GAN term's first default (the one-step map);
# without the GAN term, the chain of 4 with two fake updates, and the one-step map alone
cleardiffusion distill --teacher $U/checkpoints/last.pt --distill-method dmd $DMD64 --student $U-traj10/checkpoints/last.pt \
  --time-budget 5 --eval-every 100 $OLD --out $U-dmd2
cleardiffusion distill --teacher $U/checkpoints/last.pt --distill-method dmd $DMD64 --student $U-traj10/checkpoints/last.pt \
  --time-budget 5 --eval-every 100 --dmd-chain 4 --dmd-fake-steps 2 --dmd-gan 0 $OLD --out $U-dmd10
cleardiffusion distill --teacher $U/checkpoints/last.pt --distill-method dmd $DMD64 --student $U-traj10/checkpoints/last.pt \
  --time-budget 5 --eval-every 100 --dmd-gan 0 $OLD --out $U-dmd10-chain1
python benchmarks/one_step.py --dataset mnist --data-dir $D/mnist --teacher $U/checkpoints/last.pt \
  --student trajectory=$U-trajectory/checkpoints/last.pt --student trajectory-10min=$U-traj10/checkpoints/last.pt \
  --student dmd=$U-dmd3/checkpoints/last.pt --student dmd-gan-warm=$U-dmd2/checkpoints/last.pt \
  --student dmd-chain4=$U-dmd10/checkpoints/last.pt \
  --student dmd-chain1=$U-dmd10-chain1/checkpoints/last.pt \
  --out benchmarks/results/one_step_cpu/mnist-unconditional
