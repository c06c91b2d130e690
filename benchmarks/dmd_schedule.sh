#!/usr/bin/env bash
# dmd's schedule (session 21; docs/few_step.md "dmd's EMA, a decaying step and the starting noise"): from the
# 8-minute trajectory students of benchmarks/one_step_redraw.sh (autoguided at 1.5; its runs/ must exist), the
# same 5 minutes of dmd autoguided at 2.5 at --batch-size 16 with a longer EMA of the student (--ema-decay 0.998
# or 0.999 instead of session 20's 0.995; with 0.998, the GAN term at 0.1 and at 0), with the learning rate
# decayed linearly to 0 over the five minutes (few_step_ablation/dmd_lr_decay.py, a screening wrapper), and
# 5 minutes of trajectories + 8 of dmd at 16; then one step from a smaller starting noise (--noise-scale 0.75 and
# 0.65) on the six draws of every setting. Each run on its own core (taskset), two at a time; every FID and
# readable count by readability_proxy.py (1,000 samples, the benchmark's seeds). Run from the repository root.
set -euo pipefail
export OMP_NUM_THREADS=1
P="python benchmarks/few_step_ablation/readability_proxy.py"
BAD=runs/s17-bad2/checkpoints/last.pt
S1=runs/s17-uncond-s1-agtraj8  # chain 1's first 8-minute student: the screening student of sessions 19-21
OUT=benchmarks/results/one_step_cpu/dmd_schedule_mnist_uncond.jsonl
dmd() {  # core, chain, student, out, seed, options: 5 minutes of dmd at 2.5; FID and readable at 1, 2, 4 steps and
  # one step at S = 0.85 and 0.75 (CLI=... runs it through a screening wrapper instead of cleardiffusion)
  taskset -c $1 ${CLI:-cleardiffusion} distill --teacher runs/s17-uncond-s$2/checkpoints/last.pt --distill-method dmd --dmd-t-max 0.98 \
    --student $3/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2.5 --time-budget 5 --seed $5 --out $4 \
    --ema-decay 0.995 "${@:6}"  # dmd's EMA of session 20 unless the options say otherwise
  for k in 1 2 4; do taskset -c $1 $P --checkpoint $4/checkpoints/last.pt --steps $k >> $OUT; done
  for s in 0.85 0.75; do taskset -c $1 $P --checkpoint $4/checkpoints/last.pt --steps 1 --noise-scale $s >> $OUT; done
}
# screening on chain 1's first student at batch 16: the EMA, and a decayed step
dmd 0 1 $S1 runs/s21-s1-dmd25-b16-ema999 1 --batch-size 16 --ema-decay 0.999 &
dmd 1 1 $S1 runs/s21-s1-dmd25-b16-ema998 1 --batch-size 16 --ema-decay 0.998 & wait
DECAY="python benchmarks/few_step_ablation/dmd_lr_decay.py"
CLI=$DECAY dmd 0 1 $S1 runs/s21-s1-dmd25-b16-lr5dec 1 --batch-size 16 --lr 5e-5 &
CLI=$DECAY dmd 1 1 $S1 runs/s21-s1-dmd25-b16-lr10dec-fake5 1 --batch-size 16 --lr 1e-4 --dmd-fake-lr 5e-4 & wait
# 5 minutes of trajectories (session 19's students) + 8 of dmd at batch 16, checkpoints kept every 400 steps
for S in 0 1; do
  ( R=runs/s19-s$S-agtraj5
    taskset -c $S cleardiffusion distill --teacher runs/s17-uncond-s$S/checkpoints/last.pt --distill-method dmd --dmd-t-max 0.98 \
      --student $R/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2.5 --time-budget 8 --seed $S \
      --batch-size 16 --ema-decay 0.995 --keep-checkpoints --checkpoint-every 400 --out runs/s21-s$S-agtraj5-dmd8-b16
    R=runs/s21-s$S-agtraj5-dmd8-b16
    for k in 1 2 4; do taskset -c $S $P --checkpoint $R/checkpoints/last.pt --steps $k; done
    taskset -c $S $P --checkpoint $R/checkpoints/last.pt --steps 1 --noise-scale 0.85
    for c in $R/checkpoints/step_*.pt; do taskset -c $S $P --checkpoint $c --steps 1; done ) >> $OUT &
done
wait
# batch 16 with --ema-decay 0.998 on the other five draws (seeds as in one_step_redraw.sh), and with --lr 3e-5
( dmd 0 0 runs/s17-uncond-s0-agtraj8 runs/s21-s0-dmd25-b16-ema998 0 --batch-size 16 --ema-decay 0.998
  dmd 0 0 runs/s18-s0-agtraj15-seed2 runs/s21-s0-seed2-dmd25-b16-ema998 2 --batch-size 16 --ema-decay 0.998
  dmd 0 0 runs/s19-s0-agtraj15-seed3 runs/s21-s0-seed3-dmd25-b16-ema998 3 --batch-size 16 --ema-decay 0.998 ) &
( dmd 1 1 runs/s18-s1-agtraj15-seed2 runs/s21-s1-seed2-dmd25-b16-ema998 2 --batch-size 16 --ema-decay 0.998
  dmd 1 1 runs/s19-s1-agtraj15-seed3 runs/s21-s1-seed3-dmd25-b16-ema998 3 --batch-size 16 --ema-decay 0.998
  dmd 1 1 $S1 runs/s21-s1-dmd25-b16-lr3-ema998 1 --batch-size 16 --lr 3e-5 --ema-decay 0.998 ) &
wait
# the longer EMA without the GAN term (--dmd-gan 0) and with less of it (0.1) on chain 1's first student, then
# --dmd-gan 0 on two more draws (stopped there: one of them already past 2x at one step)
G="--batch-size 16 --ema-decay 0.998"
dmd 0 1 $S1 runs/s21-s1-dmd25-b16-ema998-gan01 1 $G --dmd-gan 0.1 & dmd 1 1 $S1 runs/s21-s1-dmd25-b16-ema998-gan0 1 $G --dmd-gan 0 &
wait
dmd 0 0 runs/s17-uncond-s0-agtraj8 runs/s21-s0-dmd25-b16-ema998-gan0 0 $G --dmd-gan 0 &
dmd 1 1 runs/s18-s1-agtraj15-seed2 runs/s21-s1-seed2-dmd25-b16-ema998-gan0 2 $G --dmd-gan 0 &
wait
# one step from a smaller starting noise on the six draws of each setting: S = 0.75 and 0.65 (the dmd runs above
# were scored at 0.75 already), and 0.55, 0.45 for batch 16 at 0.998; chain 0 on core 0, chain 1 on core 1
for S in 0 1; do
  ( one() { for r in "$@"; do taskset -c $S $P --checkpoint runs/$r/checkpoints/last.pt --steps 1 --noise-scale $s; done; }
    draws() {  # the six draws' dmd runs of one setting on chain S: $1 with the seed's name inserted, e.g. s20-s0<>-dmd25-b16
      echo ${1/<>/} ${1/<>/-seed2} ${1/<>/-seed3}; }
    B64="s18-s$S-agtraj-dmd25 s18-s$S-agtraj15-seed2-dmd25 s19-s$S-agtraj15-seed3-dmd25"  # batch 64 (AG15_25)
    s=0.75; one $B64 $(draws s20-s$S"<>"-dmd25-b16-lr3) $(draws s20-s$S"<>"-dmd25-b16) $(draws s20-s$S"<>"-dmd25-b8)
    [ $S = 1 ] && one s20-s1-dmd25-b16-lr5
    s=0.65; one $B64 $(draws s20-s$S"<>"-dmd25-b16-lr3) $(draws s20-s$S"<>"-dmd25-b16) $(draws s20-s$S"<>"-dmd25-b8) \
      $(draws s21-s$S"<>"-dmd25-b16-ema998)
    [ $S = 0 ] && one s21-s0-dmd25-b16-ema998-gan0
    [ $S = 1 ] && one s21-s1-dmd25-b16-ema998-gan01 s21-s1-dmd25-b16-ema998-gan0 s21-s1-seed2-dmd25-b16-ema998-gan0
    for s in 0.55 0.45; do one $(draws s21-s$S"<>"-dmd25-b16-ema998); done ) >> $OUT &  # the new default, lower still
done
wait
# the same change on a conditional teacher (the default recipe with --conditional, 15 minutes, seed 0): 10 minutes of
# trajectories at guidance 3, then 5 of dmd at 1.5 at batch 64 with the EMA at 0.995 (core 0) and at batch 16 with
# 0.998 (core 1); class-conditional FID (sample i of class i mod 10, the student's guidance in its weights) at 1, 2,
# 4 steps, and the teacher's default sampler guided at 3
C=runs/s21-cond CO=benchmarks/results/one_step_cpu/dmd_schedule_mnist_cond.jsonl
taskset -c 1 cleardiffusion train --dataset mnist --data-dir ${DATA:-../shared/data}/mnist --time-budget 15 \
  --conditional --seed 0 --out $C
taskset -c 1 cleardiffusion distill --teacher $C/checkpoints/last.pt --time-budget 10 --teacher-guidance 3 --seed 0 \
  --out $C-traj10
for c in 0 1; do
  ( R=$C-dmd-b16 O="--batch-size 16 --ema-decay 0.998"; [ $c = 0 ] && R=$C-dmd-b64 O="--batch-size 64 --ema-decay 0.995"
    taskset -c $c cleardiffusion distill --teacher $C/checkpoints/last.pt --distill-method dmd --dmd-t-max 0.98 $O --seed 0 \
      --student $C-traj10/checkpoints/last.pt --teacher-guidance 1.5 --time-budget 5 --out $R
    taskset -c $c python benchmarks/few_step_ablation/grid_search.py $R/checkpoints/last.pt "[999]" "[999,293]" \
      "[999,293,131,48]" --labels ) >> $CO &
done
wait
taskset -c 0 python benchmarks/few_step_ablation/grid_search.py $C/checkpoints/last.pt null --labels \
  --recipe '{"guidance": 3}' >> $CO
for r in runs/s21-*/; do  # the student steps each run took
  r=${r%/}; python -c "import json, sys; print(json.dumps({'run': sys.argv[1], 'step': json.load(open(sys.argv[1] + '/summary.json'))['step']}))" $r
done > benchmarks/results/one_step_cpu/dmd_schedule_steps.jsonl
