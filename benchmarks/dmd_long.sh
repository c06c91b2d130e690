#!/usr/bin/env bash
# More minutes of dmd, and a code drawn apart from the noise (session 29; docs/few_step.md "Longer dmd, and a code
# drawn apart from the noise"). Both start from session 28's 8-minute trajectory students with the bf16 bank
# (bf16_bank.sh), so they need its runs, fresh_teachers.sh's teachers and bad model. Run from the repository root;
# two runs at a time, one core each.
# - curve: dmd at distill's defaults (autoguided at 2.5, as fresh_draw does) for 14 minutes instead of 5, its weights
#   kept every 200 steps, each scored at one step (and three of them at two and four) by readability_proxy.py, with
#   the minute each kept step was reached at (the run's metrics.jsonl) in dmd_long_steps.jsonl; on the draw whose
#   count stayed lowest (chain 1, seed 2), the same again at twice dmd's step (--lr 4e-5) and at four times its
#   batch (64), then twice the step on two more draws;
# - free: 5 minutes of dmd through few_step_ablation/free_code.py, which draws the one-step map's code apart from
#   x_T, scored with that code ("code": "free") and with the head's (the library's sampling);
# - anchor: 5 minutes of dmd at a larger step through few_step_ablation/dmd_anchor.py, which holds the student's maps
#   at the jump grid's lower points to its starting weights, on the lowest draw;
# - split: the --lr 4e-5 long runs' first step with the later steps of session 28's dmd of the same draw
#   (few_step_ablation/two_students.py).
set -euo pipefail
export OMP_NUM_THREADS=1
A=benchmarks/few_step_ablation
R=benchmarks/results/one_step_cpu
PROXY=$A/readability_proxy.py
P="python $PROXY"
OUT=$R/dmd_long_mnist_uncond.jsonl
BAD=runs/s27-bad2/checkpoints/last.pt
dmd() {  # core, chain, seed, out, minutes, extra flags; the CLI (or its wrapper) in $CLI
  taskset -c $1 ${CLI:-cleardiffusion} distill --teacher runs/s27-uncond-s$2/checkpoints/last.pt --distill-method dmd --dmd-t-max 0.98 \
    --student runs/s28-s$2-seed$3-bf16-traj/checkpoints/last.pt --autoguide $BAD --teacher-guidance 2.5 \
    --time-budget $5 --seed $3 --no-progress --out $4 "${@:6}"
}
steps_at() {  # RUN: the kept steps (every 200) and the last one, each with the minute it was reached at
  python -c "
import json, sys
timed = [r for r in map(json.loads, open(sys.argv[1] + '/metrics.jsonl')) if 'elapsed' in r]
for r in timed:
    if r['step'] % 200 == 0 or r is timed[-1]:  # the kept steps, and the last
        print(json.dumps({'run': sys.argv[1], 'step': r['step'], 'minutes': round(r['elapsed'] / 60, 2)}))" $1 \
    >> $R/dmd_long_steps.jsonl
}
curve() {  # core, chain, seed[, name suffix, dmd flags]
  local U=runs/s29-curve-s$2-seed$3${4:-}
  dmd $1 $2 $3 $U 14 --keep-checkpoints --checkpoint-every 200 "${@:5}"
  for c in $U/checkpoints/step_*.pt; do taskset -c $1 $P --checkpoint $c --steps 1 >> $OUT; done
  for c in $U/checkpoints/step_0000800.pt $U/checkpoints/step_0001600.pt $U/checkpoints/last.pt; do
    [ -f $c ] || continue  # a larger batch keeps fewer steps
    for k in 2 4; do taskset -c $1 $P --checkpoint $c --steps $k >> $OUT; done
  done
  steps_at $U
}
free() {  # core, chain, seed
  local U=runs/s29-fc-s$2-seed$3 F="python $A/free_code.py $PROXY"
  CLI="python $A/free_code.py" dmd $1 $2 $3 $U 5
  for k in 1 2 4; do taskset -c $1 $F --checkpoint $U/checkpoints/last.pt --steps $k >> $OUT; done
  taskset -c $1 $F --checkpoint $U/checkpoints/last.pt --steps 1 --noise-scale 0.85 >> $OUT
  taskset -c $1 $P --checkpoint $U/checkpoints/last.pt --steps 1 >> $OUT
}
anchor() {  # core, chain, seed, name, dmd flags: 5 minutes of dmd through few_step_ablation/dmd_anchor.py
  local U=runs/s29x-anchor-s$2-seed$3-$4
  CLI="python $A/dmd_anchor.py" dmd $1 $2 $3 $U 5 "${@:5}"
  for k in 1 2 4; do taskset -c $1 $P --checkpoint $U/checkpoints/last.pt --steps $k >> $OUT; done
  steps_at $U
}
split() {  # core, chain, seed: two and four steps, the first from the --lr 4e-5 long run, the later from
            # session 28's dmd of the draw
  local C=runs/s29-curve-s$2-seed$3-lr4/checkpoints/last.pt+runs/s28-s$2-seed$3-bf16-dmd/checkpoints/last.pt
  for k in 2 4; do taskset -c $1 python $A/two_students.py $PROXY --checkpoint $C --steps $k >> $OUT; done
}
if [ "${1:-all}" = all ]; then
  curve 0 1 2 & curve 1 0 2 & wait
  free 0 1 2 & free 1 0 2 & wait
  curve 0 1 3 & curve 1 0 3 & wait
  curve 0 1 2 -lr4 --lr 4e-5 & curve 1 1 2 -batch64 --batch-size 64 & wait
  curve 0 1 3 -lr4 --lr 4e-5 & curve 1 0 2 -lr4 --lr 4e-5 & wait
  anchor 0 1 2 lr8 --lr 8e-5 --dmd-fake-lr 5e-4 & anchor 1 1 2 lr4 --lr 4e-5 & wait
  { split 0 1 2; split 0 1 3; } & split 1 0 2 & wait
fi
