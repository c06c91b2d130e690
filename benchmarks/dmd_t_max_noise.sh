#!/usr/bin/env bash
# A smaller starting noise on today's unconditional pipeline (session 31; docs/few_step.md "dmd's highest noise
# level"). Scores the six --dmd-t-max 0.5 students of dmd_t_max.sh (distill's defaults since session 30) at one step
# from --noise-scale 0.65 and 0.55, the levels at which the older teachers' students were counted
# (grow_student.sh, student_codes.sh), with readability_proxy.py: dmd_t_max_noise_mnist_uncond.jsonl. Needs
# dmd_t_max.sh's runs. Two draws at a time, one core each. Run from the repository root.
set -euo pipefail
export OMP_NUM_THREADS=1
R=benchmarks/results/one_step_cpu
P="python benchmarks/few_step_ablation/readability_proxy.py"
OUT=$R/dmd_t_max_noise_mnist_uncond.jsonl
score() {  # core, chain, seed
  for s in 0.65 0.55; do
    taskset -c $1 $P --checkpoint runs/s30-s$2-seed$3-tmax0.5/checkpoints/last.pt --steps 1 --noise-scale $s >> $OUT
  done
}
pair() {  # two draws at once; a failed score stops the script
  score 0 $1 $2 & local a=$!
  score 1 $3 $4 & local b=$!
  wait $a && wait $b
}
pair 1 2 0 2; pair 1 3 0 3; pair 0 0 1 1
