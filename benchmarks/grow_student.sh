#!/usr/bin/env bash
# A deeper student (session 23; docs/few_step.md "A deeper student: --grow-student"): `distill --grow-student 4`,
# the teacher's U-Net with four more residual blocks at its lowest resolution (7x7), each the identity at the start,
# learning at 10 x the run's step. From the 15-minute teachers and the 2-minute model of
# benchmarks/one_step_redraw.sh (its runs/ must exist): first dmd alone grown, from the 8-minute trajectory students
# of the default pipeline, its new blocks at dmd's own step (few_step_ablation/grown_lr.py 1); then the default
# pipeline with a grown trajectory stage (8 minutes autoguided at 1.5, then 5 of dmd autoguided at 2.5, which keeps
# the blocks) on the six draws, the seeds of the default pipeline's; images per second against the teacher's
# default sampler. Each run on its own core (taskset), two at a time; every FID and readable count by
# readability_proxy.py (1,000 samples, the benchmark's seeds). Run from the repository root.
#
# The runs were made through a screening wrapper that `--grow-student` replaced during the session (the same
# network, start and steps; its new blocks drawn from another random state): the dmd-alone screen, the trajectory
# stages of the first and second draws and the first draws' dmd runs; the rest through the flag.
set -euo pipefail
export OMP_NUM_THREADS=1
A=benchmarks/few_step_ablation
R=benchmarks/results/one_step_cpu
P="python $A/readability_proxy.py"
BAD=runs/s17-bad2/checkpoints/last.pt
OUT=$R/grow_student_mnist_uncond.jsonl
score() {  # core, run: FID and readable at 1, 2, 4 steps and one step at S = 0.65
  for k in 1 2 4; do taskset -c $1 $P --checkpoint $2/checkpoints/last.pt --steps $k >> $OUT; done
  taskset -c $1 $P --checkpoint $2/checkpoints/last.pt --steps 1 --noise-scale 0.65 >> $OUT
}
dmd() {  # core, chain, student, out, seed, [cli]: 5 minutes of dmd at 2.5 (its defaults), scored
  taskset -c $1 ${6:-cleardiffusion} distill --teacher runs/s17-uncond-s$2/checkpoints/last.pt --distill-method dmd --dmd-t-max 0.98 \
    --student $3/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2.5 --time-budget 5 --seed $5 --out $4 \
    ${7:-}
  score $1 $4
}
pipeline() {  # core, chain, seed, prefix[, blocks[, guidance[, cli[, codes]]]]: 8 minutes of trajectories autoguided
  # at 1.5 (or the guidance options given) grown by 4 blocks (or the blocks given), without a code (or with the codes
  # given: session 26), by `cleardiffusion` (or the screening wrapper given), scored at one step, then dmd
  taskset -c $1 ${7:-cleardiffusion} distill --teacher runs/s17-uncond-s$2/checkpoints/last.pt --autoguide $BAD \
    ${6:---teacher-guidance 1.5} --time-budget 8 --seed $3 --grow-student ${5:-4} --student-codes ${8:-0} --out $4-traj
  taskset -c $1 $P --checkpoint $4-traj/checkpoints/last.pt --steps 1 >> $OUT
  dmd $1 $2 $4-traj $4-dmd $3
}
# dmd alone grown, its new blocks at its own step (2e-5): the first draws' trajectory students
for S in 0 1; do
  dmd $S $S runs/s17-uncond-s$S-agtraj8 runs/s23-s$S-dmd25-grow4 $S "python $A/grown_lr.py 1" "--grow-student 4" &
done
wait
# the grown pipeline on the six draws (seeds 0 and 1, then 2, then 3, as the default pipeline's)
pipeline 0 0 0 runs/s23-s0-grow4x10 & pipeline 1 1 1 runs/s23-s1-grow4x10 & wait
for seed in 2 3; do
  for S in 0 1; do pipeline $S $S $seed runs/s23-s$S-seed$seed-grow4x10 & done
  wait
done
# eight blocks instead of four on chain 1's first and third draws, the two that missed the readability target
pipeline 0 1 1 runs/s23-s1-grow8x10 8 & pipeline 1 1 3 runs/s23-s1-seed3-grow8x10 8 & wait
# the trajectory stage autoguided at 2.5 from 0.15 T up (session 22's band; these runs were made through
# few_step_ablation/guidance_interval.py 0.15 1, which a test checks against --autoguide-from), grown, then dmd
B="--teacher-guidance 2.5 --autoguide-from 0.15"
pipeline 0 1 1 runs/s23-s1-band15-grow4x10 4 "$B" & pipeline 1 1 3 runs/s23-s1-seed3-band15-grow4x10 4 "$B" & wait
( pipeline 0 0 0 runs/s23-s0-band15-grow4x10 4 "$B"; pipeline 0 0 3 runs/s23-s0-seed3-band15-grow4x10 4 "$B" ) &
( pipeline 1 0 2 runs/s23-s0-seed2-band15-grow4x10 4 "$B"; pipeline 1 1 2 runs/s23-s1-seed2-band15-grow4x10 4 "$B" ) &
wait
for r in runs/s23-*/ runs/s17-uncond-s?-agtraj8/ runs/s1[89]-s?-agtraj15-seed?/; do  # the student steps each run took
  r=${r%/}; python -c "import json, sys; print(json.dumps({'run': sys.argv[1], 'step': json.load(open(sys.argv[1] + '/summary.json'))['step']}))" $r
done > $R/grow_student_steps.jsonl
# images per second: the teacher's default sampler (50 steps) and one step of the default and the grown students
taskset -c 1 python $A/one_step_speed.py --teacher runs/s17-uncond-s0/checkpoints/last.pt \
  --student default=runs/s21-s0-dmd25-b16-ema998/checkpoints/last.pt \
  --student grown=runs/s23-s0-grow4x10-dmd/checkpoints/last.pt --rounds 3 --n 5000 > $R/grow_student_speed.jsonl
# session 24, screened on the draws the grown pipeline missed (chain 1's first and third) and, for the band, chain 0's
# first: the four blocks at the decoder's 14x14 level instead of the middle's 7x7 (few_step_ablation/grow_level.py
# 14, through which the runs are scored too); the new blocks at 3 x the run's step instead of 10
# (few_step_ablation/grown_lr.py 3); the trajectory stage autoguided at 2 from 0.15 T up instead of 2.5
G="python $A/grow_level.py 14"
at14() {  # core, chain, seed, prefix: the grown pipeline with the blocks at 14x14, every process through the wrapper
  taskset -c $1 $G distill --teacher runs/s17-uncond-s$2/checkpoints/last.pt --autoguide $BAD --teacher-guidance 1.5 \
    --time-budget 8 --seed $3 --grow-student 4 --student-codes 0 --out $4-traj
  taskset -c $1 $G $A/readability_proxy.py --checkpoint $4-traj/checkpoints/last.pt --steps 1 >> $OUT
  taskset -c $1 $G distill --teacher runs/s17-uncond-s$2/checkpoints/last.pt --distill-method dmd --dmd-t-max 0.98 \
    --student $4-traj/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2.5 --time-budget 5 --seed $3 --out $4-dmd
  P="$G $A/readability_proxy.py" score $1 $4-dmd
}
W2="--teacher-guidance 2.0 --autoguide-from 0.15"
pipeline 0 0 0 runs/s24-s0-band15w20-grow4 4 "$W2" & pipeline 1 1 3 runs/s24-s1-seed3-band15w20-grow4 4 "$W2" & wait
at14 0 1 1 runs/s24-s1-grow4at14 & at14 1 1 3 runs/s24-s1-seed3-grow4at14 & wait
pipeline 0 1 1 runs/s24-s1-grow4x3 4 "--teacher-guidance 1.5" "python $A/grown_lr.py 3" &
pipeline 1 1 3 runs/s24-s1-seed3-grow4x3 4 "--teacher-guidance 1.5" "python $A/grown_lr.py 3" & wait
# the same session's control: session 23's grown pipeline again on those two draws, same seeds (this machine took
# about a tenth fewer steps in the same minutes than session 23's)
pipeline 0 1 1 runs/s24-s1-grow4x10-again & pipeline 1 1 3 runs/s24-s1-seed3-grow4x10-again & wait
# the grown blocks stepping 10 and 3 x dmd's step in dmd too (few_step_ablation/grown_fast_in_dmd.py RATIO), from
# those two trajectory students; then at 3 x from session 23's trajectory students of the other four draws
for ratio in 10 3; do
  F="python $A/grown_fast_in_dmd.py $ratio"; suffix=dmdfast${ratio/10/}
  dmd 0 1 runs/s24-s1-grow4x10-again-traj runs/s24-s1-grow4x10-again-$suffix 1 "$F" &
  dmd 1 1 runs/s24-s1-seed3-grow4x10-again-traj runs/s24-s1-seed3-grow4x10-again-$suffix 3 "$F" & wait
done
F="python $A/grown_fast_in_dmd.py 3"
( dmd 0 0 runs/s23-s0-grow4x10-traj runs/s24-s0-grow4x10-dmdfast3 0 "$F"
  dmd 0 0 runs/s23-s0-seed3-grow4x10-traj runs/s24-s0-seed3-grow4x10-dmdfast3 3 "$F" ) &
( dmd 1 0 runs/s23-s0-seed2-grow4x10-traj runs/s24-s0-seed2-grow4x10-dmdfast3 2 "$F"
  dmd 1 1 runs/s23-s1-seed2-grow4x10-traj runs/s24-s1-seed2-grow4x10-dmdfast3 2 "$F" ) & wait
for r in runs/s24-*-traj runs/s24-*-dmd runs/s24-*-dmdfast runs/s24-*-dmdfast3; do
  python -c "import json, sys; print(json.dumps({'run': sys.argv[1], 'step': json.load(open(sys.argv[1] + '/summary.json'))['step']}))" $r
done >> $R/grow_student_steps.jsonl
# session 25. dmd's discriminator reads the fake network's middle through UNet.encode (the encoder and the middle)
# instead of its whole forward. The runs named -dmd below were made with the library before that change (e5aebd4),
# those named -dmdenc after it; run today, a -dmd run takes the encoder's path and about a sixth more steps.
# The speed of the two, alternating one minute each, on each core one trajectory student:
taskset -c 0 python $A/dmd_encode_speed.py --teacher runs/s17-uncond-s1/checkpoints/last.pt \
  --student runs/s24-s1-grow4x10-again-traj/checkpoints/last.pt --autoguide $BAD --minutes 1 --rounds 3 \
  > $R/dmd_encode_speed_c1.jsonl &
taskset -c 1 python $A/dmd_encode_speed.py --teacher runs/s17-uncond-s0/checkpoints/last.pt \
  --student runs/s23-s0-grow4x10-traj/checkpoints/last.pt --autoguide $BAD --minutes 1 --rounds 3 \
  > $R/dmd_encode_speed_c0.jsonl & wait
# half the trajectory stage's pairs at the trajectories' starts (few_step_ablation/start_share.py 0.5), then dmd
S="python $A/start_share.py 0.5"
pipeline 0 1 1 runs/s25-s1-start50 4 "--teacher-guidance 1.5" "$S" &
pipeline 1 1 3 runs/s25-s1-seed3-start50 4 "--teacher-guidance 1.5" "$S" & wait
# dmd from session 24's "again" students, after the change and (with the library at e5aebd4) before it
dmd 0 1 runs/s24-s1-grow4x10-again-traj runs/s25-s1-again-dmdenc 1 &
dmd 1 1 runs/s24-s1-seed3-grow4x10-again-traj runs/s25-s1-seed3-again-dmdenc 3 & wait
dmd 0 1 runs/s24-s1-grow4x10-again-traj runs/s25-s1-again-dmd 1 &  # at e5aebd4
dmd 1 1 runs/s24-s1-seed3-grow4x10-again-traj runs/s25-s1-seed3-again-dmd 3 & wait  # at e5aebd4
# the grown default's dmd stage again, after the change, from session 23's trajectory students with their seeds
( dmd 0 1 runs/s23-s1-grow4x10-traj runs/s25-s1-grow4x10-dmdenc 1
  dmd 0 0 runs/s23-s0-seed2-grow4x10-traj runs/s25-s0-seed2-grow4x10-dmdenc 2
  dmd 0 0 runs/s23-s0-grow4x10-traj runs/s25-s0-grow4x10-dmdenc 0 ) &
( dmd 1 1 runs/s23-s1-seed3-grow4x10-traj runs/s25-s1-seed3-grow4x10-dmdenc 3
  dmd 1 0 runs/s23-s0-seed3-grow4x10-traj runs/s25-s0-seed3-grow4x10-dmdenc 3
  dmd 1 1 runs/s23-s1-seed2-grow4x10-traj runs/s25-s1-seed2-grow4x10-dmdenc 2 ) & wait
# x_T from a mixture of 10 Gaussians (few_step_ablation/mixture_prior.py 10 A; every process through the wrapper)
mix() {  # core, norm A
  M="python $A/mixture_prior.py 10 $2"
  P="$M $A/readability_proxy.py" dmd $1 1 runs/s24-s1-grow4x10-again-traj runs/s25-s1-again-dmdenc-mix10a$2 1 "$M"
}
mix 0 4 & mix 1 8 & wait
# ... with InfoGAN's term at 0.3 and 1 (few_step_ablation/mixture_info.py 10 8 LAMBDA; its stderr lines of Q's
# cross-entropy, every 100 steps, parsed into mixture_info_q.jsonl); then the digits each component draws
# (mixture_codes.py)
info() {  # core, lambda, suffix
  M="python $A/mixture_prior.py 10 8"
  P="$M $A/readability_proxy.py" dmd $1 1 runs/s24-s1-grow4x10-again-traj runs/s25-s1-again-dmdenc-info10a8$3 1 \
    "python $A/mixture_info.py 10 8 $2"
}
info 0 1.0 l1 & info 1 0.3 l03 & wait
for r in mix10a8 info10a8l03 info10a8l1; do
  taskset -c 0 python $A/mixture_codes.py --checkpoint runs/s25-s1-again-dmdenc-$r/checkpoints/last.pt --k 10 --norm 8 \
    --threshold 0.771 --n 100
done > $R/mixture_codes.jsonl
for r in runs/s25-*-traj runs/s25-*-dmd runs/s25-*-dmdenc runs/s25-*-dmdenc-mix* runs/s25-*-dmdenc-info*; do
  python -c "import json, sys; print(json.dumps({'run': sys.argv[1], 'step': json.load(open(sys.argv[1] + '/summary.json'))['step']}))" $r
done >> $R/grow_student_steps.jsonl
# session 26. dmd's GAN term at 1 and 3 instead of 0.3, from chain 1's first grown trajectory student (the runs' lines
# were written with absolute checkpoint paths and made relative)
dmd 0 1 runs/s23-s1-grow4x10-traj runs/s26-s1-gan1 1 cleardiffusion "--dmd-gan 1" &
dmd 1 1 runs/s23-s1-grow4x10-traj runs/s26-s1-gan3 1 cleardiffusion "--dmd-gan 3" & wait
# the grown pipeline with a code of 20 classes (`--student-codes 20`, the default since: docs/few_step.md "A code
# inside the one-step map"), the six draws with their seeds. The runs were made through a screening wrapper that the
# flag replaced during the session (the same weights to the bit, checked on 20 + 5 steps); its checkpoints name no
# code in their model_spec, which this adds so that the library reads them:
#   python -c "import sys, torch; c = torch.load(sys.argv[1], weights_only=False); \
#     c['model_spec']['config']['code_classes'] = 20; torch.save(c, sys.argv[1])" RUN/checkpoints/last.pt
pipeline 0 1 1 runs/s26-s1-coded20 4 "--teacher-guidance 1.5" cleardiffusion 20 &
pipeline 1 1 3 runs/s26-s1-seed3-coded20 4 "--teacher-guidance 1.5" cleardiffusion 20 & wait
( pipeline 0 0 0 runs/s26-s0-coded20 4 "--teacher-guidance 1.5" cleardiffusion 20
  pipeline 0 0 2 runs/s26-s0-seed2-coded20 4 "--teacher-guidance 1.5" cleardiffusion 20 ) &
( pipeline 1 1 2 runs/s26-s1-seed2-coded20 4 "--teacher-guidance 1.5" cleardiffusion 20
  pipeline 1 0 3 runs/s26-s0-seed3-coded20 4 "--teacher-guidance 1.5" cleardiffusion 20 ) & wait
# the two thinnest draws again through the library's flag, at distill's defaults (--grow-student 4 --student-codes 20)
pipeline 0 1 1 runs/s26-s1-lib 4 "--teacher-guidance 1.5" cleardiffusion 20 &
pipeline 1 1 3 runs/s26-s1-seed3-lib 4 "--teacher-guidance 1.5" cleardiffusion 20 & wait
# ... and with 40 codes instead of 20
pipeline 0 1 1 runs/s26-s1-codes40 4 "--teacher-guidance 1.5" cleardiffusion 40 &
pipeline 1 1 3 runs/s26-s1-seed3-codes40 4 "--teacher-guidance 1.5" cleardiffusion 40 & wait
for r in runs/s26-*-traj runs/s26-*-dmd runs/s26-s1-gan*; do
  python -c "import json, sys; print(json.dumps({'run': sys.argv[1], 'step': json.load(open(sys.argv[1] + '/summary.json'))['step']}))" $r
done >> $R/grow_student_steps.jsonl
# what the codes carry: k-means clusters of 2,000 new trajectories' ends per chain against the reference classifier's
# digits, and each coded student's head and one-step digit from the same starts
for S in 0 1; do
  taskset -c $S python $A/code_purity.py --teacher runs/s17-uncond-s$S/checkpoints/last.pt --autoguide $BAD \
    --guidance 1.5 --k 20 --n 2000 --seed 7 --threshold 0.771 $(for r in runs/s26-s$S-*coded20-dmd; do
      echo --student $r/checkpoints/last.pt; done) > $R/code_purity_c$S.jsonl &
done
wait
# images per second: the teacher's default sampler (50 steps) and one step of the grown student without and with a code
taskset -c 1 python $A/one_step_speed.py --teacher runs/s17-uncond-s0/checkpoints/last.pt \
  --student grown=runs/s25-s0-grow4x10-dmdenc/checkpoints/last.pt \
  --student coded=runs/s26-s0-coded20-dmd/checkpoints/last.pt --rounds 3 --n 2000 > $R/codes_speed.jsonl
