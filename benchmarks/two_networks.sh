#!/usr/bin/env bash
# Two networks from one 15-minute distillation (session 32; docs/few_step.md "Two networks: a one-step map beside the
# chain"). The one-step map reads more digits when dmd takes larger steps (--lr 8e-5 --dmd-fake-lr 5e-4), but the same
# weights then lose the two- and four-step targets; today's dmd keeps those but reads fewer. So each draw distills two
# networks from one trajectory student: the chain (2-4 steps, today's dmd, 2.2 minutes) and the one-step map (the
# larger step, 4.8 minutes). The autoguiding bad model is the teacher's own state at 2 minutes (own_bad_model.sh:
# runs/s31-own2-s<chain>, the step-500 checkpoint a teacher trained with --keep-checkpoints carries), so the 15
# minutes are 8 of trajectories, 2.2 and 4.8 of dmd, all on one core. (`distill --chain` writes the two into one
# checkpoint; here they are two runs, and the test suite checks that the flag changes no draw of a dmd run.) Each
# draw runs on one core, chain 0's beside chain 1's; the one-step map is scored at one step, the chain at one, two and
# four (readability_proxy.py, 1,000 samples, the benchmark's seeds): two_networks_mnist_uncond.jsonl, the steps each
# run took: two_networks_steps.jsonl.
#   two_networks.sh               the six draws of fresh_teachers.sh (chain 0 seeds 0, 2, 3; chain 1 seeds 1, 2, 3)
#   two_networks.sh 6e-5          their one-step maps again at --lr 6e-5, from the same trajectory students
#   two_networks.sh 6e-5 4 5      the whole pipeline at --lr 6e-5 on new draws: seeds 4 and 5 of both chains
#   two_networks.sh pair          one file of two networks, end to end: chain 0 seed 0's one-step map at 6e-5 trained
#                                 again with `--chain` for the steps its run took (runs/s32-s0-seed0-pair), its
#                                 weights compared with that run's, and its images per second at one step beside
#                                 the teacher's 50 steps (one_step_speed.py): two_networks_pair.jsonl
# Runs: runs/s32-s<chain>-seed<seed>-{traj,chain,one<LR>} (no <LR> for the first). Needs fresh_teachers.sh's teachers
# and own_bad_model.sh's 2-minute states. Run from the repository root.
set -euo pipefail
export OMP_NUM_THREADS=1
R=benchmarks/results/one_step_cpu
P="python benchmarks/few_step_ablation/readability_proxy.py"
OUT=$R/two_networks_mnist_uncond.jsonl
LR=${1:-}
NEW_SEEDS=("${@:2}")
. benchmarks/steps_taken.sh
draw() {  # core, chain, seed, whole (1: trajectories and chain too; 0: the one-step map only)
  local C="taskset -c $1 cleardiffusion distill --teacher runs/s27-uncond-s$2/checkpoints/last.pt --seed $3"
  local BAD="--autoguide runs/s31-own2-s$2/checkpoints/last.pt" U=runs/s32-s$2-seed$3
  if [ $4 = 1 ]; then
    $C $BAD --teacher-guidance 1.5 --time-budget 8 --no-progress --out $U-traj
    $C $BAD --teacher-guidance 2.5 --distill-method dmd --student $U-traj/checkpoints/last.pt --time-budget 2.2 \
      --no-progress --out $U-chain
  fi
  $C $BAD --teacher-guidance 2.5 --distill-method dmd --student $U-traj/checkpoints/last.pt --time-budget 4.8 \
    --lr ${LR:-8e-5} --dmd-fake-lr 5e-4 --no-progress --out $U-one$LR
  taskset -c $1 $P --checkpoint $U-one$LR/checkpoints/last.pt --steps 1 >> $OUT
  steps_taken $U-one$LR >> $R/two_networks_steps.jsonl
  if [ $4 = 1 ]; then
    for k in 1 2 4; do taskset -c $1 $P --checkpoint $U-chain/checkpoints/last.pt --steps $k >> $OUT; done
    for s in traj chain; do steps_taken $U-$s >> $R/two_networks_steps.jsonl; done
  fi
}
pair() {  # whole, chain 0's seed on core 0, chain 1's on core 1; a failure stops the script
  draw 0 0 $2 $1 & local a=$!
  draw 1 1 $3 $1 & local b=$!
  wait $a && wait $b
}
if [ "$LR" = pair ]; then
  U=runs/s32-s0-seed0 PAIR=$R/two_networks_pair.jsonl
  STEPS=$(python -c "import json; print(json.load(open('$U-one6e-5/summary.json'))['step'])")
  taskset -c 0 cleardiffusion distill --teacher runs/s27-uncond-s0/checkpoints/last.pt --seed 0 \
    --autoguide runs/s31-own2-s0/checkpoints/last.pt --teacher-guidance 2.5 --distill-method dmd \
    --student $U-traj/checkpoints/last.pt --steps $STEPS --lr 6e-5 --dmd-fake-lr 5e-4 \
    --chain $U-chain/checkpoints/last.pt --no-progress --out $U-pair
  python -c "
import json, torch
pair, one, chain = (torch.load(f'$U-{k}/checkpoints/last.pt', map_location='cpu', weights_only=True)
                    for k in ('pair', 'one6e-5', 'chain'))
print(json.dumps({'pair': '$U-pair', 'steps': pair['step'],
                  'one_step_as_its_run': all(torch.equal(pair['ema'][k], one['ema'][k]) for k in one['ema']),
                  'chain_as_its_run': all(torch.equal(pair['chain']['ema'][k], chain['ema'][k]) for k in chain['ema'])}))
" > $PAIR
  taskset -c 0 python benchmarks/few_step_ablation/one_step_speed.py --teacher runs/s27-uncond-s0/checkpoints/last.pt \
    --student pair=$U-pair/checkpoints/last.pt --rounds 3 --n 2000 >> $PAIR
elif [ ${#NEW_SEEDS[@]} -gt 0 ]; then
  for s in "${NEW_SEEDS[@]}"; do pair 1 $s $s; done
elif [ -n "$LR" ]; then
  pair 0 0 1; pair 0 2 2; pair 0 3 3
else
  pair 1 0 1; pair 1 2 2; pair 1 3 3
fi
