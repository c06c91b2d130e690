#!/usr/bin/env bash
# The bad model of autoguidance from the teacher's own run (session 31; docs/few_step.md "The bad model from the
# teacher's own run"). The unconditional pipeline spends 2 of its 15 minutes training a 2-minute model (seed 5) that
# autoguides the teacher (fresh_teachers.sh: runs/s27-bad2). The teacher's own run passes through such a model: the
# recipe's learning rate is constant after warmup and training is deterministic on one machine, so a 2-minute run
# with the teacher's seed is the state the teacher's run held at that step. This trains it for both fresh teachers,
# checks the determinism (two 60-step runs of seed 0, weights compared bit for bit), and scores each teacher's 50-step
# default sampler autoguided at 2.5 by its own 2-minute state and by s27-bad2 (readability_proxy.py):
# own_bad_model_mnist_uncond.jsonl. Needs fresh_teachers.sh's runs. One core per run, two at a time. Run from the
# repository root.
set -euo pipefail
export OMP_NUM_THREADS=1
D=../shared/data
R=benchmarks/results/one_step_cpu
OUT=$R/own_bad_model_mnist_uncond.jsonl
P="python benchmarks/few_step_ablation/readability_proxy.py"
train() {  # core, seed, out, budget flags...
  local core=$1 seed=$2 out=$3; shift 3
  taskset -c $core cleardiffusion train --dataset mnist --data-dir $D/mnist --seed $seed --no-progress --out $out "$@"
}
both() {  # the first half of the arguments and the second, two commands at once; a failure stops the script
  "${@:1:$#/2}" & local a=$!
  "${@:$#/2+1}" & local b=$!
  wait $a && wait $b
}
both train 0 0 runs/s31-own2-s0 --time-budget 2 train 1 1 runs/s31-own2-s1 --time-budget 2
both train 0 0 runs/s31-det-a --steps 60 train 1 0 runs/s31-det-b --steps 60
python -c "
import json, torch
a, b = (torch.load(f'runs/s31-det-{k}/checkpoints/last.pt', map_location='cpu', weights_only=False) for k in 'ab')
same = all(torch.equal(a[w][k], b[w][k]) for w in ('model', 'ema') for k in a[w])
print(json.dumps({'determinism': 'two 60-step runs of seed 0, one per core', 'identical_weights': same}))" >> $OUT
score() {  # core, chain, bad model
  taskset -c $1 $P --checkpoint runs/s27-uncond-s$2/checkpoints/last.pt --autoguide $3 --guidance 2.5 >> $OUT
}
both score 0 0 runs/s31-own2-s0/checkpoints/last.pt score 1 1 runs/s31-own2-s1/checkpoints/last.pt
both score 0 0 runs/s27-bad2/checkpoints/last.pt score 1 1 runs/s27-bad2/checkpoints/last.pt
