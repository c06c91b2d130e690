#!/usr/bin/env bash
# dmd's highest noise level (session 30; docs/few_step.md "dmd's highest noise level"). DMD compares the teacher's
# and the fake network's x_0 predictions at the student's samples noised to t in [0.02 T, t_max T]; t_max was DMD's
# 0.98 until session 30 and is 0.5 from an unconditional teacher since (`distill --dmd-t-max`). Each of the six
# draws of fresh_teachers.sh runs 5 minutes of dmd at distill's defaults twice at the same time, one core each, from
# session 28's 8-minute trajectory student with the bf16 bank (bf16_bank.sh): at t_max 0.5 (today's default) and at
# 0.98 (the default before), the two swapping cores from draw to draw. Each is scored by readability_proxy.py at one,
# two and four steps and at one step from --noise-scale 0.85 and 0.75; the steps each run took are in
# dmd_t_max_steps.jsonl (steps_taken.sh). Needs fresh_teachers.sh's teachers and bad model and bf16_bank.sh's
# trajectory students. Run from the repository root.
set -euo pipefail
export OMP_NUM_THREADS=1
R=benchmarks/results/one_step_cpu
P="python benchmarks/few_step_ablation/readability_proxy.py"
OUT=$R/dmd_t_max_mnist_uncond.jsonl
BAD=runs/s27-bad2/checkpoints/last.pt
. benchmarks/steps_taken.sh
pair_run() {  # core, chain, seed, t_max
  local U=runs/s30-s$2-seed$3-tmax$4
  taskset -c $1 cleardiffusion distill --teacher runs/s27-uncond-s$2/checkpoints/last.pt --distill-method dmd \
    --student runs/s28-s$2-seed$3-bf16-traj/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2.5 \
    --dmd-t-max $4 --time-budget 5 --seed $3 --no-progress --out $U
  for k in 1 2 4; do taskset -c $1 $P --checkpoint $U/checkpoints/last.pt --steps $k >> $OUT; done
  for s in 0.85 0.75; do taskset -c $1 $P --checkpoint $U/checkpoints/last.pt --steps 1 --noise-scale $s >> $OUT; done
  steps_taken $U >> $R/dmd_t_max_steps.jsonl
}
draw() {  # chain, seed, the core of the t_max 0.5 run
  pair_run $3 $1 $2 0.5 & pair_run $((1 - $3)) $1 $2 0.98 & wait
}
draw 1 2 0; draw 0 2 1; draw 1 3 0; draw 0 3 1; draw 0 0 0; draw 1 1 1
