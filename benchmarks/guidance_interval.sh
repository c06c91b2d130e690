#!/usr/bin/env bash
# Autoguidance on a band of noise levels (session 22; docs/few_step.md "Autoguidance on a band of noise levels"),
# with few_step_ablation/guidance_interval.py, a screening wrapper that applies the weight only where t / T lies in
# [lo, hi): the 15-minute teachers of benchmarks/one_step_redraw.sh (its runs/ must exist) autoguided by the
# 2-minute model on a band, at 50 steps of the default sampler and on the trajectory stage's ODE; 5 minutes of dmd
# from the 8-minute trajectory students (autoguided at 1.5, as before) with its real score autoguided on the band;
# 8 minutes of trajectories autoguided on the band, then dmd as before, on the six draws. dmd at its defaults.
# Each run on its own core (taskset), two at a time; every FID and readable count by readability_proxy.py (1,000
# samples, the benchmark's seeds). Run from the repository root.
set -euo pipefail
TRAJ0="--grow-student 0 --student-codes 0"  # the student's network when these ran (grown since 23, coded since 26)
export OMP_NUM_THREADS=1
A=benchmarks/few_step_ablation
R=benchmarks/results/one_step_cpu
P="python $A/readability_proxy.py"
BAND="python $A/guidance_interval.py"
BAD=runs/s17-bad2/checkpoints/last.pt
OUT=$R/guidance_interval_mnist_uncond.jsonl
guided() {  # core, chain, lo, hi, w, results file, readability_proxy options: the teacher autoguided on [lo, hi)
  taskset -c $1 $BAND $3 $4 $A/readability_proxy.py --checkpoint runs/s17-uncond-s$2/checkpoints/last.pt \
    --autoguide $BAD --guidance $5 "${@:7}" \
    | python -c "import json, sys; print(json.dumps({**json.loads(sys.stdin.read()), 'band': [$3, $4]}))" >> $6
}
teacher() { guided "$@" $R/guidance_interval_teachers.jsonl; }  # the default sampler, 50 steps
ode() { guided "$@" $R/guidance_interval_ode.jsonl --sampler dpm++2m --steps 16; }  # distill's trajectory solver
dmd() {  # core, chain, student, out, seed, lo, hi, w: 5 minutes of dmd, its real score autoguided at w on [lo, hi);
  # FID and readable at 1, 2, 4 steps and one step at S = 0.85 and 0.65
  taskset -c $1 $BAND $6 $7 distill --teacher runs/s17-uncond-s$2/checkpoints/last.pt --distill-method dmd --dmd-t-max 0.98 \
    --student $3/checkpoints/last.pt --autoguide $BAD --teacher-guidance $8 --time-budget 5 --seed $5 --out $4
  for k in 1 2 4; do taskset -c $1 $P --checkpoint $4/checkpoints/last.pt --steps $k >> $OUT; done
  for s in 0.85 0.65; do taskset -c $1 $P --checkpoint $4/checkpoints/last.pt --steps 1 --noise-scale $s >> $OUT; done
}
# the teachers: which band keeps autoguidance's readable digits and drops its FID cost (chain 1 first)
teacher 0 1 0 1 2.5 & teacher 1 1 0 0.6 2.5 & wait
( teacher 0 1 0.3 1 2.5; teacher 0 1 0 0.3 2.5 ) & ( teacher 1 1 0.15 1 2.5; teacher 1 1 0.3 0.7 2.5 ) & wait
( teacher 0 0 0.15 1 2.5; teacher 0 1 0.15 1 3.5 ) & ( teacher 1 1 0.1 1 2.5; teacher 1 0 0.15 1 3.5 ) & wait
# dmd on [0.15, 1) at 2.5 and 3.5, screened on chain 1's first student (every level at 2.5: s21-s1-dmd25-b16-ema998)
S1=runs/s17-uncond-s1-agtraj8
dmd 0 1 $S1 runs/s22-s1-dmd25-band15 1 0.15 1 2.5 & dmd 1 1 $S1 runs/s22-s1-dmd35-band15 1 0.15 1 3.5 & wait
# the trajectory stage's ODE at 1.5 on every level (every student's so far) and on [0.15, 1) at 2.5 and 3.5
( ode 0 1 0 1 1.5; ode 0 1 0.15 1 2.5; ode 0 1 0.15 1 3.5 ) & ( ode 1 0 0 1 1.5; ode 1 0 0.15 1 2.5; ode 1 0 0.15 1 3.5 ) &
wait
# 8 minutes of trajectories on [0.15, 1) at 2.5, then dmd at 2.5 on every level (the default pipeline but for the band),
# on the six draws: the seeds of the default pipeline's students (the chain's own, then 2 and 3, for both stages)
for draw in first 2 3; do
  for S in 0 1; do
    if [ $draw = first ]; then seed=$S U=runs/s22-s$S-traj25-band15; else seed=$draw U=runs/s22-s$S-seed$draw-traj25-band15; fi
    ( taskset -c $S $BAND 0.15 1 distill $TRAJ0 --teacher runs/s17-uncond-s$S/checkpoints/last.pt --autoguide $BAD \
        --teacher-guidance 2.5 --time-budget 8 --seed $seed --out $U
      for k in 1 2 4; do taskset -c $S $P --checkpoint $U/checkpoints/last.pt --steps $k >> $OUT; done
      dmd $S $S $U $U-dmd25 $seed 0 1 2.5 ) &
  done
  wait
  # the teachers on [0.15, 1) at 1.5 and 2, the weights measured on every level before (the weight study)
  if [ $draw = 2 ]; then ( teacher 0 0 0.15 1 1.5; teacher 0 0 0.15 1 2 ) & ( teacher 1 1 0.15 1 1.5; teacher 1 1 0.15 1 2 ) & wait; fi
done
for S in 0 1; do  # session 19's third trajectory students at 2 and 4 steps (it scored one step only)
  ( for k in 2 4; do taskset -c $S $P --checkpoint runs/s19-s$S-agtraj15-seed3/checkpoints/last.pt --steps $k >> $OUT; done ) &
done
wait
for r in runs/s22-*/; do  # the student steps each run took
  r=${r%/}; python -c "import json, sys; print(json.dumps({'run': sys.argv[1], 'step': json.load(open(sys.argv[1] + '/summary.json'))['step']}))" $r
done > $R/guidance_interval_steps.jsonl
# session 24: the band through the library's own flag (sample --autoguide-from, here readability_proxy's), chain 1's
# and chain 0's teacher at 2 from 0.15 T up, against the wrapper's rows above
for c in 1 0; do
  taskset -c $c $P --checkpoint runs/s17-uncond-s$c/checkpoints/last.pt --autoguide $BAD --guidance 2 \
    --autoguide-from 0.15 >> $R/autoguide_from_teachers.jsonl &
done
wait
