#!/usr/bin/env bash
# The trajectory bank at the training step's precision (session 28; docs/few_step.md "The trajectory bank in bf16").
# `distill` trains in bf16 autocast on a CPU with native bf16 (--precision auto) but made the teacher's trajectories
# in fp32, a third of the trajectory stage's 8 minutes on session 27's machine; now the bank follows --precision.
# Each of the six fresh-teacher draws (fresh_teachers.sh: chain 0 seeds 0, 2, 3; chain 1 seeds 1, 2, 3) runs the
# default pipeline twice side by side, one core each: with the new bank (the library) and with the old
# (few_step_ablation/fp32_bank.py), the two swapping cores from draw to draw. A time-budgeted run's steps depend on
# the machine's speed at that moment, which drifted by a fifth within an hour here, so only runs made at the same
# time are compared. Scored as fresh_teachers.sh scores (readability_proxy.py, 1,000 samples, the benchmark's seeds).
# Needs fresh_teachers.sh's teachers and bad model. Run from the repository root.
set -euo pipefail
export OMP_NUM_THREADS=1
A=benchmarks/few_step_ablation
R=benchmarks/results/one_step_cpu
P="python $A/readability_proxy.py"
OUT=$R/bf16_bank_mnist_uncond.jsonl
BAD=runs/s27-bad2/checkpoints/last.pt
. benchmarks/steps_taken.sh
. benchmarks/fresh_draw.sh
one() {  # core, chain, seed, bank (bf16 | fp32): fresh_draw into runs/s28-s<chain>-seed<seed>-<bank>, and its steps
  local U=runs/s28-s$2-seed$3-$4 C=cleardiffusion
  [ $4 = fp32 ] && C="python $A/fp32_bank.py"
  TRAJ_CLI=$C fresh_draw $1 $2 $3 $U
  { steps_taken $U-traj; steps_taken $U-dmd; } >> $R/bf16_bank_steps.jsonl
}
pair() {  # core of the bf16 run, chain, seed
  one $1 $2 $3 bf16 & one $((1 - $1)) $2 $3 fp32 & wait
}
pair 0 0 0
pair 1 1 1
pair 0 0 2
pair 1 1 3
pair 0 0 3
pair 1 1 2
