#!/usr/bin/env bash
# Issue 24's unconditional protocol drawn again from scratch, twice: a fresh 15-minute teacher (train --seed S),
# 10 minutes of trajectory distillation and 5 of dmd (today's defaults), each chain on its own core
# (one_step.sh's last block ran once, on one teacher). Then the same 5 minutes of dmd with --ema-decay 0.99
# (from step 1), benchmarks/one_step.py on each chain, more draws from chain 1 (two more dmd seeds from its
# student; a second student, seed 2, and its dmd), one-step FIDs at --noise-scale below 1, and the blind
# readability sittings (benchmarks/blind_count.py). Run from the repository root.
set -euo pipefail
DMD64="--batch-size 64 --ema-decay 0.995 --dmd-t-max 0.98"  # dmd's batch, EMA and highest noise level when these
# ran (unconditional: 16, 0.998 since session 21; 0.5 since session 30)
TRAJ0="--grow-student 0 --student-codes 0"  # the student's network when these ran (grown since 23, coded since 26)
D=${DATA:-../shared/data}
export OMP_NUM_THREADS=1
chain() {  # seed, core
  local S=$1 C=$2 U=runs/s17-uncond-s$1
  taskset -c $C cleardiffusion train --dataset mnist --data-dir $D/mnist --time-budget 15 --seed $S --out $U
  taskset -c $C cleardiffusion distill $TRAJ0 --teacher $U/checkpoints/last.pt --time-budget 10 --seed $S --out $U-traj10
  taskset -c $C cleardiffusion distill --teacher $U/checkpoints/last.pt --distill-method dmd $DMD64 \
    --student $U-traj10/checkpoints/last.pt --time-budget 5 --seed $S --out $U-dmd3
  taskset -c $C cleardiffusion distill --teacher $U/checkpoints/last.pt --distill-method dmd $DMD64 \
    --student $U-traj10/checkpoints/last.pt --time-budget 5 --seed $S --ema-decay 0.99 --out $U-dmd99
  taskset -c $C python benchmarks/one_step.py --dataset mnist --data-dir $D/mnist --teacher $U/checkpoints/last.pt \
    --student trajectory-10min=$U-traj10/checkpoints/last.pt --student dmd=$U-dmd3/checkpoints/last.pt \
    --student dmd-ema99=$U-dmd99/checkpoints/last.pt --out benchmarks/results/one_step_cpu/mnist-unconditional-redraw/seed$S
}
chain 0 0 & chain 1 1 & wait
# chain 1 again: two more dmd draws from its student (core 1); a second student and its dmd (core 0)
U=runs/s17-uncond-s1
taskset -c 1 cleardiffusion distill --teacher $U/checkpoints/last.pt --distill-method dmd $DMD64 \
  --student $U-traj10/checkpoints/last.pt --time-budget 5 --seed 2 --out $U-dmd3-seed2 &
taskset -c 0 cleardiffusion distill $TRAJ0 --teacher $U/checkpoints/last.pt --time-budget 10 --seed 2 --out $U-traj10-seed2
wait
taskset -c 1 cleardiffusion distill --teacher $U/checkpoints/last.pt --distill-method dmd $DMD64 \
  --student $U-traj10/checkpoints/last.pt --time-budget 5 --seed 3 --out $U-dmd3-seed3 &
taskset -c 0 cleardiffusion distill --teacher $U/checkpoints/last.pt --distill-method dmd $DMD64 \
  --student $U-traj10-seed2/checkpoints/last.pt --time-budget 5 --seed 2 --out $U-traj10-seed2-dmd3
wait
# FID at 1, 2 and 4 steps (the jump grid) with the starting noise scaled by S (sample --noise-scale S)
OUT=benchmarks/results/one_step_cpu/noise_scale_mnist_uncond.jsonl
scales() {  # the first four models were scored at 0.75 and 0.7 too
  case $1 in *seed2-dmd3) echo 1.0 0.9 0.85 0.8;; *-dmd3|*-dmd3-seed*) echo 1.0 0.9 0.85 0.8 0.75 0.7;; *) echo 1.0 0.9 0.85 0.8;; esac
}
for c in runs/s17-uncond-s0-dmd3 runs/s17-uncond-s1-dmd3 runs/s17-uncond-s1-dmd3-seed2 runs/s17-uncond-s1-dmd3-seed3 \
         runs/s17-uncond-s1-traj10-seed2-dmd3 runs/s17-uncond-s0-dmd99 runs/s17-uncond-s1-dmd99 \
         runs/s17-uncond-s0-traj10 runs/s17-uncond-s1-traj10; do
  for s in $(scales $c); do
    python benchmarks/few_step_ablation/grid_search.py $c/checkpoints/last.pt "[999]" "[999,293]" "[999,293,131,48]" \
      --recipe "{\"noise_scale\": $s}" >> $OUT
  done
done
python benchmarks/few_step_ablation/grid_search.py runs/s17-uncond-s1-traj10-seed2/checkpoints/last.pt "[999]" \
  "[999,293]" "[999,293,131,48]" >> $OUT
for t in runs/s17-uncond-s0 runs/s17-uncond-s1; do  # the teachers' probability-flow ODE, which distillation copies
  python benchmarks/few_step_ablation/grid_search.py $t/checkpoints/last.pt null \
    --recipe '{"sampler": "dpm++2m", "steps": 16, "spacing": "trailing", "solver_type": "exact"}' >> $OUT
done
grid() {  # checkpoint, noise scale, out.png: the first 100 one-step samples (one_step.py's seeds)
  python -c "
import sys, torch
from cleardiffusion.checkpoint import load_for_sampling
from cleardiffusion.data import from_model_range
from cleardiffusion.generate import generate_images
from cleardiffusion.recipe import SamplingRecipe
from cleardiffusion.viz import save_grid
model, path, meta = load_for_sampling(sys.argv[1])
recipe = SamplingRecipe(steps=1, noise_scale=float(sys.argv[2]))
x = torch.cat(list(generate_images(model, path, n=100, shape=tuple(meta['image_shape']), recipe=recipe, seed=0)))
save_grid(from_model_range(x), sys.argv[3], nrow=10)" "$@"
}
# the first 100 one-step samples at scales 0.9, 0.8, 0.7: the grids the second sitting counted
for S in 0 1; do
  for s in 0.9 0.8 0.7; do
    grid runs/s17-uncond-s$S-dmd3/checkpoints/last.pt $s \
      benchmarks/results/one_step_cpu/mnist-unconditional-redraw/seed$S/grid_dmd_consistency1_unconditional_noise$s.png
  done
done
# the blind sittings: benchmarks/results/one_step_cpu/mnist-unconditional/blind/sitting_<k>/key.json names each
# sitting's grids and seed; `python benchmarks/blind_count.py sheets DIR` writes its sheets again
# the classifier's readability count (few_step_ablation/readability_proxy.py, after the sittings) over 1,000 samples
P="python benchmarks/few_step_ablation/readability_proxy.py"
RP=benchmarks/results/one_step_cpu/readability_proxy_models.jsonl
$P > benchmarks/results/one_step_cpu/readability_proxy.json
for S in 0 1; do
  U=runs/s17-uncond-s$S
  $P --checkpoint $U/checkpoints/last.pt >> $RP
  for m in dmd3 dmd99; do
    $P --checkpoint $U-$m/checkpoints/last.pt --steps 1 >> $RP
    $P --checkpoint $U-$m/checkpoints/last.pt --steps 1 --noise-scale 0.85 >> $RP
    $P --checkpoint $U-$m/checkpoints/last.pt --steps 4 >> $RP
  done
  $P --checkpoint $U-traj10/checkpoints/last.pt --steps 1 >> $RP
done
for m in dmd3-seed2 dmd3-seed3 traj10-seed2-dmd3; do $P --checkpoint runs/s17-uncond-s1-$m/checkpoints/last.pt --steps 1 >> $RP; done
# autoguidance: a 2-minute model of the recipe guides the teacher, and dmd's real score from an 8-minute student
# (2 + 8 + 5 = the protocol's 15 minutes)
cleardiffusion train --dataset mnist --data-dir $D/mnist --time-budget 2 --seed 5 --out runs/s17-bad2
for S in 0 1; do
  U=runs/s17-uncond-s$S
  taskset -c $S cleardiffusion distill $TRAJ0 --teacher $U/checkpoints/last.pt --time-budget 8 --seed $S --out $U-traj8
  taskset -c $S cleardiffusion distill --teacher $U/checkpoints/last.pt --distill-method dmd $DMD64 \
    --student $U-traj8/checkpoints/last.pt --autoguide runs/s17-bad2/checkpoints/last.pt --teacher-guidance 1.5 \
    --time-budget 5 --seed $S --out $U-ag-dmd
  for k in 1 2 4; do $P --checkpoint $U-ag-dmd/checkpoints/last.pt --steps $k >> $RP; done
  $P --checkpoint $U/checkpoints/last.pt --autoguide runs/s17-bad2/checkpoints/last.pt --guidance 1.5 >> $RP
done
# the same 2 + 8 + 5 minutes with the trajectories autoguided too (the student copies the autoguided ODE)
for S in 0 1; do
  U=runs/s17-uncond-s$S
  taskset -c $S cleardiffusion distill $TRAJ0 --teacher $U/checkpoints/last.pt --autoguide runs/s17-bad2/checkpoints/last.pt \
    --teacher-guidance 1.5 --time-budget 8 --seed $S --out $U-agtraj8
  taskset -c $S cleardiffusion distill --teacher $U/checkpoints/last.pt --distill-method dmd $DMD64 \
    --student $U-agtraj8/checkpoints/last.pt --autoguide runs/s17-bad2/checkpoints/last.pt --teacher-guidance 1.5 \
    --time-budget 5 --seed $S --out $U-agtraj-dmd
  for m in agtraj8 agtraj-dmd; do
    for k in 1 2 4; do $P --checkpoint $U-$m/checkpoints/last.pt --steps $k >> $RP; done
  done
done
# the guidance weight (session 18): the teachers autoguided at 2 and 2.5; the 8 + 5 minutes autoguided throughout
# at 2 and 2.5 (1.5 is the block above); dmd alone at 2.5 (and chain 1 at lr 5e-5, and at 4) from the 1.5 student
AW=benchmarks/results/one_step_cpu/autoguide_weight_mnist_uncond.jsonl
BAD=runs/s17-bad2/checkpoints/last.pt
for S in 0 1; do
  for w in 2 2.5; do taskset -c $S $P --checkpoint runs/s17-uncond-s$S/checkpoints/last.pt --autoguide $BAD --guidance $w >> $AW; done
done
ag_dmd() {  # chain, student, weight, out, extra options
  local S=$1 U=runs/s17-uncond-s$1
  taskset -c $S cleardiffusion distill --teacher $U/checkpoints/last.pt --distill-method dmd $DMD64 --student $2/checkpoints/last.pt \
    --autoguide $BAD --teacher-guidance $3 --time-budget 5 --seed $S --out $4 "${@:5}"
}
for S in 0 1; do ag_dmd $S runs/s17-uncond-s$S-agtraj8 2.5 runs/s18-s$S-agtraj-dmd25 & done; wait
ag_dmd 1 runs/s17-uncond-s1-agtraj8 2.5 runs/s18-s1-dmd25-lr5 --lr 5e-5 & ag_dmd 1 runs/s17-uncond-s1-agtraj8 4 runs/s18-s1-dmd40 & wait
for w in 25 20; do  # weight 2.5, then 2.0
  for S in 0 1; do
    ( taskset -c $S cleardiffusion distill $TRAJ0 --teacher runs/s17-uncond-s$S/checkpoints/last.pt --autoguide $BAD \
        --teacher-guidance ${w:0:1}.${w:1} --time-budget 8 --seed $S --out runs/s18-s$S-agtraj$w
      ag_dmd $S runs/s18-s$S-agtraj$w ${w:0:1}.${w:1} runs/s18-s$S-agtraj$w-dmd$w ) &
  done
  wait
done
# chain 1 again at weight 2, the trajectory stage changed: its lr doubled; 1,000 trajectories instead of 2,000
for v in "0 lr2 --lr 2e-4" "1 n1000 --trajectories 1000"; do
  set -- $v
  ( taskset -c $1 cleardiffusion distill $TRAJ0 --teacher runs/s17-uncond-s1/checkpoints/last.pt --autoguide $BAD \
      --teacher-guidance 2 --time-budget 8 --seed 1 --out runs/s18-s1-agtraj20-$2 ${@:3}
    taskset -c $1 cleardiffusion distill --teacher runs/s17-uncond-s1/checkpoints/last.pt --distill-method dmd $DMD64 \
      --student runs/s18-s1-agtraj20-$2/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2 --time-budget 5 \
      --seed 1 --out runs/s18-s1-agtraj20-$2-dmd20 ) &
done
wait
# chain 0 at weight 2 drawn again (--seed 2, core 0); chain 1's --lr 2e-4 student with dmd at 2.5, and at 2.5 with
# --lr 5e-5 (core 1)
( taskset -c 0 cleardiffusion distill $TRAJ0 --teacher runs/s17-uncond-s0/checkpoints/last.pt --autoguide $BAD \
    --teacher-guidance 2 --time-budget 8 --seed 2 --out runs/s18-s0-agtraj20-seed2
  taskset -c 0 cleardiffusion distill --teacher runs/s17-uncond-s0/checkpoints/last.pt --distill-method dmd $DMD64 \
    --student runs/s18-s0-agtraj20-seed2/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2 --time-budget 5 \
    --seed 2 --out runs/s18-s0-agtraj20-seed2-dmd20 ) &
( ag_dmd 1 runs/s18-s1-agtraj20-lr2 2.5 runs/s18-s1-agtraj20-lr2-dmd25
  ag_dmd 1 runs/s18-s1-agtraj20-lr2 2.5 runs/s18-s1-agtraj20-lr2-dmd25-lr5 --lr 5e-5 ) &
wait
# chain 0 at weight 2 with the trajectory stage's EMA over the whole run (--ema-warmup 0), seeds 0 and 2
for S in 0 2; do
  C=$(( S / 2 ))
  ( taskset -c $C cleardiffusion distill $TRAJ0 --teacher runs/s17-uncond-s0/checkpoints/last.pt --autoguide $BAD \
      --teacher-guidance 2 --time-budget 8 --seed $S --ema-warmup 0 --out runs/s18-s0-agtraj20-ema0-seed$S
    taskset -c $C cleardiffusion distill --teacher runs/s17-uncond-s0/checkpoints/last.pt --distill-method dmd $DMD64 \
      --student runs/s18-s0-agtraj20-ema0-seed$S/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2 \
      --time-budget 5 --seed $S --out runs/s18-s0-agtraj20-ema0-seed$S-dmd20 ) &
done
wait
# trajectories at 1.5 and dmd at 2.5 drawn again on both chains (--seed 2 for both stages)
for S in 0 1; do
  ( taskset -c $S cleardiffusion distill $TRAJ0 --teacher runs/s17-uncond-s$S/checkpoints/last.pt --autoguide $BAD \
      --teacher-guidance 1.5 --time-budget 8 --seed 2 --out runs/s18-s$S-agtraj15-seed2
    taskset -c $S cleardiffusion distill --teacher runs/s17-uncond-s$S/checkpoints/last.pt --distill-method dmd $DMD64 \
      --student runs/s18-s$S-agtraj15-seed2/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2.5 \
      --time-budget 5 --seed 2 --out runs/s18-s$S-agtraj15-seed2-dmd25 ) &
done
wait
for r in runs/s18-s* runs/s17-uncond-s0-agtraj-dmd runs/s17-uncond-s1-agtraj-dmd; do  # (s17's: at 1, above)
  case $r in runs/s18-*) for k in 1 2 4; do $P --checkpoint $r/checkpoints/last.pt --steps $k >> $AW; done;; esac
  for s in 0.85 0.7 0.5; do $P --checkpoint $r/checkpoints/last.pt --steps 1 --noise-scale $s >> $AW; done
done
# the third blind sitting: the plain dmd students and the 1.5 and 2.5 pipelines, one step, and the real digits
G=benchmarks/results/one_step_cpu/mnist-unconditional-redraw
for S in 0 1; do
  grid runs/s17-uncond-s$S-agtraj-dmd/checkpoints/last.pt 1.0 $G/seed$S/grid_agtraj15-dmd15_consistency1_unconditional.png
  grid runs/s18-s$S-agtraj25-dmd25/checkpoints/last.pt 1.0 $G/seed$S/grid_agtraj25-dmd25_consistency1_unconditional.png
done
python benchmarks/blind_count.py deal \
  --source s0-plain=$G/seed0/grid_dmd_consistency1_unconditional.png \
  --source s1-plain=$G/seed1/grid_dmd_consistency1_unconditional.png \
  --source s0-w1.5=$G/seed0/grid_agtraj15-dmd15_consistency1_unconditional.png \
  --source s1-w1.5=$G/seed1/grid_agtraj15-dmd15_consistency1_unconditional.png \
  --source s0-w2.5=$G/seed0/grid_agtraj25-dmd25_consistency1_unconditional.png \
  --source s1-w2.5=$G/seed1/grid_agtraj25-dmd25_consistency1_unconditional.png \
  --real mnist=$D/mnist --out runs/blind3
# (marked by hand in runs/blind3/marks.json; `blind_count.py reveal runs/blind3`; key, marks, counts copied to
# mnist-unconditional/blind/sitting_3/) and the classifier count held out against it (fitted on sittings 1 and 2)
$P > benchmarks/results/one_step_cpu/readability_proxy.json
# dmd's step size (session 19): from the four 8-minute trajectory students above (autoguided at 1.5; chains 0 and 1,
# seeds 0/1 and 2), 5 minutes of dmd autoguided at 2.5 with a larger --lr, and the fake network's own rate
# (--dmd-fake-lr; the first of these runs set it through consistency.FAKE_LR_RATIO, 5 x --lr, before the flag
# existed: the same rate). Two runs at a time, one per core.
DL=benchmarks/results/one_step_cpu/dmd_lr_mnist_uncond.jsonl
fast_dmd() {  # core, student, out, seed, options
  local S=${3:10:1}  # the chain, from runs/s19-s<chain>-...
  taskset -c $1 cleardiffusion distill --teacher runs/s17-uncond-s$S/checkpoints/last.pt --distill-method dmd $DMD64 \
    --student $2/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2.5 --time-budget 5 --seed $4 --out $3 "${@:5}"
  taskset -c $1 $P --checkpoint $3/checkpoints/last.pt --steps 1 >> $DL
}
S1=runs/s17-uncond-s1-agtraj8
fast_dmd 0 $S1 runs/s19-s1-dmd25-lr5-gan1 1 --lr 5e-5 --dmd-gan 1 & fast_dmd 1 $S1 runs/s19-s1-dmd25-lr10 1 --lr 1e-4 & wait
fast_dmd 0 $S1 runs/s19-s1-dmd25-lr10-fake5 1 --lr 1e-4 --dmd-fake-lr 5e-4 &
fast_dmd 1 $S1 runs/s19-s1-dmd25-lr10-fs2 1 --lr 1e-4 --dmd-fake-steps 2 & wait
fast_dmd 0 $S1 runs/s19-s1-dmd25-lr20-fake25 1 --lr 2e-4 --dmd-fake-lr 5e-4 &
fast_dmd 1 $S1 runs/s19-s1-dmd25-lr10-fake25 1 --lr 1e-4 --dmd-fake-lr 2.5e-4 & wait
fast_dmd 1 runs/s18-s1-agtraj15-seed2 runs/s19-s1-seed2-dmd25-lr10-fake5 2 --lr 1e-4 --dmd-fake-lr 5e-4 &
fast_dmd 0 runs/s17-uncond-s0-agtraj8 runs/s19-s0-dmd25-lr10-fake5 0 --lr 1e-4 --dmd-fake-lr 5e-4 & wait
fast_dmd 0 runs/s18-s0-agtraj15-seed2 runs/s19-s0-seed2-dmd25-lr10-fake5 2 --lr 1e-4 --dmd-fake-lr 5e-4 &
fast_dmd 1 $S1 runs/s19-s1-dmd25-lr10-fake5-seed3 3 --lr 1e-4 --dmd-fake-lr 5e-4 & wait
for r in runs/s19-s*-dmd25-*; do  # one step from a smaller starting noise; 2 and 4 steps of the --dmd-fake-lr 5e-4 runs
  $P --checkpoint $r/checkpoints/last.pt --steps 1 --noise-scale 0.85 >> $DL
  case $r in *lr10-fake5*) for k in 2 4; do $P --checkpoint $r/checkpoints/last.pt --steps $k >> $DL; done;; esac
done
# more minutes of dmd, fewer of trajectories (session 19): 5 minutes of trajectories at 1.5, then 8 of dmd at 2.5 with
# --lr 5e-5 and its checkpoints kept every 100 steps; seeds 0/1 (one per core), then seed 2 on both chains
DM=benchmarks/results/one_step_cpu/dmd_minutes_mnist_uncond.jsonl
for seed in own 2; do
  for S in 0 1; do
    ( R=runs/s19-s$S-agtraj5; K=$S; [ $seed = 2 ] && R=$R-seed2 && K=2
      taskset -c $S cleardiffusion distill $TRAJ0 --teacher runs/s17-uncond-s$S/checkpoints/last.pt --autoguide $BAD \
        --teacher-guidance 1.5 --time-budget 5 --seed $K --out $R
      taskset -c $S cleardiffusion distill --teacher runs/s17-uncond-s$S/checkpoints/last.pt --distill-method dmd $DMD64 \
        --student $R/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2.5 --time-budget 8 --seed $K --lr 5e-5 \
        --keep-checkpoints --checkpoint-every 100 --out $R-dmd8
      for c in $R/checkpoints/last.pt $R-dmd8/checkpoints/step_*.pt; do taskset -c $S $P --checkpoint $c --steps 1; done
      for k in 1 2 4; do taskset -c $S $P --checkpoint $R-dmd8/checkpoints/last.pt --steps $k; done
      taskset -c $S $P --checkpoint $R-dmd8/checkpoints/last.pt --steps 1 --noise-scale 0.85 ) >> $DM &
  done
  wait
done
# the first draws' 5-minute students again, 8 minutes of dmd training two points of the chain (--dmd-chain 2)
for S in 0 1; do
  ( R=runs/s19-s$S-agtraj5
    taskset -c $S cleardiffusion distill --teacher runs/s17-uncond-s$S/checkpoints/last.pt --distill-method dmd $DMD64 \
      --student $R/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2.5 --time-budget 8 --seed $S --lr 5e-5 \
      --dmd-chain 2 --out $R-dmd8-chain2
    for k in 1 2 4; do taskset -c $S $P --checkpoint $R-dmd8-chain2/checkpoints/last.pt --steps $k; done
    taskset -c $S $P --checkpoint $R-dmd8-chain2/checkpoints/last.pt --steps 1 --noise-scale 0.85 ) >> $DM &
done
wait
# trajectories at 1.5 and dmd at 2.5 drawn a third time on both chains (--seed 3 for both stages)
for S in 0 1; do
  ( R=runs/s19-s$S-agtraj15-seed3
    taskset -c $S cleardiffusion distill $TRAJ0 --teacher runs/s17-uncond-s$S/checkpoints/last.pt --autoguide $BAD \
      --teacher-guidance 1.5 --time-budget 8 --seed 3 --out $R
    taskset -c $S cleardiffusion distill --teacher runs/s17-uncond-s$S/checkpoints/last.pt --distill-method dmd $DMD64 \
      --student $R/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2.5 --time-budget 5 --seed 3 --out $R-dmd25
    taskset -c $S $P --checkpoint $R/checkpoints/last.pt --steps 1
    for k in 1 2 4; do taskset -c $S $P --checkpoint $R-dmd25/checkpoints/last.pt --steps $k; done
    taskset -c $S $P --checkpoint $R-dmd25/checkpoints/last.pt --steps 1 --noise-scale 0.85 ) >> $AW &
done
wait
# dmd's batch (session 20): the same 5 minutes of dmd at 2.5 from the 8-minute trajectory students, with a smaller
# --batch-size (more, noisier steps); first on chain 1's first student beside no GAN term (--dmd-gan 0), then at 16
# and at 8 (and 16 at --lr 3e-5) on all six students of the trajectories-1.5 + dmd-2.5 draws; at 16 also --lr 5e-5,
# a smaller GAN weight, dmd's lowest noise level raised (dmd_t_min.py), two points of the chain, and a trajectory
# stage at batch 32; batch 4 once. Two runs at a time, one per core (each subshell runs on its own core)
DB=benchmarks/results/one_step_cpu/dmd_batch_mnist_uncond.jsonl
batch_dmd() {  # core, chain, student, out, seed, options; one_step_redraw's readability + FID at 1, 2, 4 steps, S = 0.85
  taskset -c $1 ${DMD_CLI:-cleardiffusion} distill --teacher runs/s17-uncond-s$2/checkpoints/last.pt --distill-method dmd $DMD64 \
    --student $3/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2.5 --time-budget 5 --seed $5 --out $4 "${@:6}"
  for k in 1 2 4; do taskset -c $1 $P --checkpoint $4/checkpoints/last.pt --steps $k >> $DB; done
  taskset -c $1 $P --checkpoint $4/checkpoints/last.pt --steps 1 --noise-scale 0.85 >> $DB
}
batch_dmd 0 1 $S1 runs/s20-s1-dmd25-gan0 1 --dmd-gan 0 & batch_dmd 1 1 $S1 runs/s20-s1-dmd25-b32 1 --batch-size 32 & wait
batch_dmd 0 1 $S1 runs/s20-s1-dmd25-b16 1 --batch-size 16 &
batch_dmd 1 1 runs/s18-s1-agtraj15-seed2 runs/s20-s1-seed2-dmd25-b32 2 --batch-size 32 & wait
batch_dmd 0 1 $S1 runs/s20-s1-dmd25-b16-lr5 1 --batch-size 16 --lr 5e-5 &
batch_dmd 1 1 $S1 runs/s20-s1-dmd25-b16-gan01 1 --batch-size 16 --dmd-gan 0.1 & wait
for c in 0 1; do  # core 0: lowest noise level 0.2 T, core 1: 0.1 T
  DMD_CLI="python benchmarks/few_step_ablation/dmd_t_min.py 0.$((2 - c))" batch_dmd $c 1 $S1 \
    runs/s20-s1-dmd25-b16-lr5-tlo$((2 - c))0 1 --batch-size 16 --lr 5e-5 &
done; wait
( taskset -c 1 cleardiffusion distill $TRAJ0 --teacher runs/s17-uncond-s1/checkpoints/last.pt --autoguide $BAD \
    --teacher-guidance 1.5 --time-budget 8 --seed 1 --batch-size 32 --out runs/s20-s1-agtraj8-b32
  taskset -c 1 $P --checkpoint runs/s20-s1-agtraj8-b32/checkpoints/last.pt --steps 1 >> $DB
  batch_dmd 1 1 runs/s20-s1-agtraj8-b32 runs/s20-s1-agtraj8-b32-dmd25-b16 1 --batch-size 16
  batch_dmd 1 1 runs/s19-s1-agtraj15-seed3 runs/s20-s1-seed3-dmd25-b16 3 --batch-size 16
  batch_dmd 1 0 runs/s17-uncond-s0-agtraj8 runs/s20-s0-dmd25-b16-chain2 0 --batch-size 16 --dmd-chain 2 ) &
( batch_dmd 0 0 runs/s17-uncond-s0-agtraj8 runs/s20-s0-dmd25-b16 0 --batch-size 16
  batch_dmd 0 0 runs/s18-s0-agtraj15-seed2 runs/s20-s0-seed2-dmd25-b16 2 --batch-size 16
  batch_dmd 0 0 runs/s19-s0-agtraj15-seed3 runs/s20-s0-seed3-dmd25-b16 3 --batch-size 16
  batch_dmd 0 1 runs/s18-s1-agtraj15-seed2 runs/s20-s1-seed2-dmd25-b16 2 --batch-size 16
  batch_dmd 0 1 $S1 runs/s20-s1-dmd25-b16-chain2 1 --batch-size 16 --dmd-chain 2 ) &
wait
batch_dmd 0 1 $S1 runs/s20-s1-dmd25-b8 1 --batch-size 8 & batch_dmd 1 1 $S1 runs/s20-s1-dmd25-b16-lr3 1 --batch-size 16 --lr 3e-5 &
wait
( batch_dmd 0 0 runs/s17-uncond-s0-agtraj8 runs/s20-s0-dmd25-b8 0 --batch-size 8  # batch 8 on the other five draws
  batch_dmd 0 0 runs/s18-s0-agtraj15-seed2 runs/s20-s0-seed2-dmd25-b8 2 --batch-size 8
  batch_dmd 0 0 runs/s19-s0-agtraj15-seed3 runs/s20-s0-seed3-dmd25-b8 3 --batch-size 8 ) &
( batch_dmd 1 1 runs/s18-s1-agtraj15-seed2 runs/s20-s1-seed2-dmd25-b8 2 --batch-size 8
  batch_dmd 1 1 runs/s19-s1-agtraj15-seed3 runs/s20-s1-seed3-dmd25-b8 3 --batch-size 8
  batch_dmd 1 1 $S1 runs/s20-s1-dmd25-b4 1 --batch-size 4 ) &
wait
( batch_dmd 0 0 runs/s17-uncond-s0-agtraj8 runs/s20-s0-dmd25-b16-lr3 0 --batch-size 16 --lr 3e-5  # the other five
  batch_dmd 0 0 runs/s18-s0-agtraj15-seed2 runs/s20-s0-seed2-dmd25-b16-lr3 2 --batch-size 16 --lr 3e-5  # draws at
  batch_dmd 0 0 runs/s19-s0-agtraj15-seed3 runs/s20-s0-seed3-dmd25-b16-lr3 3 --batch-size 16 --lr 3e-5 ) &  # 16, 3e-5
( batch_dmd 1 1 runs/s18-s1-agtraj15-seed2 runs/s20-s1-seed2-dmd25-b16-lr3 2 --batch-size 16 --lr 3e-5
  batch_dmd 1 1 runs/s19-s1-agtraj15-seed3 runs/s20-s1-seed3-dmd25-b16-lr3 3 --batch-size 16 --lr 3e-5 ) &
wait
for r in runs/s18-s?-agtraj-dmd25 runs/s18-s?-agtraj15-seed2-dmd25 runs/s19-s?-agtraj15-seed3-dmd25 runs/s20-*; do  # steps taken
  python -c "import json, sys; print(json.dumps({'run': sys.argv[1], 'step': json.load(open(sys.argv[1] + '/summary.json'))['step']}))" $r
done > benchmarks/results/one_step_cpu/dmd_batch_steps.jsonl
