#!/usr/bin/env bash
# Issue 24's unconditional protocol on teachers nothing was chosen on (session 27; docs/few_step.md "Fresh teachers").
# Every earlier draw of the distillation pipeline came from the two 15-minute teachers of session 17
# (one_step_redraw.sh), on which its defaults were chosen. These are trained again, by today's library at the same
# seeds (0 and 1) and budget, on this session's machine, so they are new models; the 2-minute model that autoguides
# them likewise (seed 5). Then `distill` at its defaults on the six draws (chain 0 seeds 0, 2, 3; chain 1 seeds 1, 2,
# 3): 8 minutes of trajectories autoguided at 1.5 (grown by 4 blocks, 20 codes), then 5 of dmd autoguided at 2.5.
# Each run on its own core (taskset), two at a time; every FID and readable count by readability_proxy.py (1,000
# samples, the benchmark's seeds): the teachers' 50-step default, each student at 1, 2 and 4 steps, and at one step
# from a smaller starting noise (--noise-scale). Run from the repository root.
set -euo pipefail
export OMP_NUM_THREADS=1
D=${DATA:-../shared/data}
A=benchmarks/few_step_ablation
R=benchmarks/results/one_step_cpu
P="python $A/readability_proxy.py"
OUT=$R/fresh_teachers_mnist_uncond.jsonl
BAD=runs/s27-bad2/checkpoints/last.pt
teacher() {  # seed (= core)
  taskset -c $1 cleardiffusion train --dataset mnist --data-dir $D/mnist --time-budget 15 --seed $1 --out runs/s27-uncond-s$1
}
teacher 0 & teacher 1 & wait
taskset -c 0 cleardiffusion train --dataset mnist --data-dir $D/mnist --time-budget 2 --seed 5 --out runs/s27-bad2 &
taskset -c 1 $P --checkpoint runs/s27-uncond-s1/checkpoints/last.pt >> $OUT & wait
taskset -c 0 $P --checkpoint runs/s27-uncond-s0/checkpoints/last.pt >> $OUT
. benchmarks/fresh_draw.sh
draw() {  # core, chain, seed[, trajectory budget, dmd budget, name suffix]: fresh_draw into runs/s27-s<chain>-seed<seed>
  fresh_draw $1 $2 $3 runs/s27-s$2-seed$3${6:-} "${4:-}" "${5:-}"
}
draw 0 0 0 & draw 1 1 1 & wait
draw 0 0 2 & draw 1 1 2 & wait
draw 0 0 3 & draw 1 1 3 & wait
# the steps each run took, and the seconds before its first step (steps_taken)
. benchmarks/steps_taken.sh
for r in runs/s27-uncond-s? runs/s27-bad2 runs/s27-s?-seed?-traj runs/s27-s?-seed?-dmd; do
  steps_taken $r
done > $R/fresh_teachers_steps.jsonl
# images per second: chain 0's teacher's default sampler (50 steps) and one step of its first draw's student
taskset -c 1 python $A/one_step_speed.py --teacher runs/s27-uncond-s0/checkpoints/last.pt \
  --student coded=runs/s27-s0-seed0-dmd/checkpoints/last.pt --rounds 3 --n 1000 > $R/fresh_teachers_speed.jsonl
# the first 100 one-step samples of each final student (the ones counted: the benchmark's per-sample seeds), and the
# machine the minutes ran on
G=$R/fresh-teachers
mkdir -p $G
for u in runs/s27-s?-seed?-dmd; do
  cleardiffusion sample --checkpoint $u/checkpoints/last.pt --steps 1 --n 100 --out $G/grid_${u#runs/s27-}_1step.png
done
python -c "import json, os, torch; print(json.dumps({'cpu': next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo')
  if l.startswith('model name')), 'cores': os.cpu_count(), 'torch': torch.__version__}))" > $G/machine.json
# the second draw of each chain again with the step counts session 26's same draws took on session 17's teachers
# (grow_student_steps.jsonl: s26-s<chain>-seed2-coded20-{traj,dmd}) instead of minutes: is it the machine's fewer
# steps or the teachers?
draw 0 0 2 "--steps 1613" "--steps 1140" -steps26 & draw 1 1 2 "--steps 1482" "--steps 1189" -steps26 & wait
for r in runs/s27-s?-seed2-steps26-traj runs/s27-s?-seed2-steps26-dmd; do steps_taken $r; done >> $R/fresh_teachers_steps.jsonl
