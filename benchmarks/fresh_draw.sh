# fresh_draw CORE CHAIN SEED RUN [TRAJECTORY_BUDGET DMD_BUDGET]: distill's default pipeline on fresh_teachers.sh's
# teacher CHAIN, pinned to CORE: 8 minutes (or TRAJECTORY_BUDGET, e.g. "--steps 1613") of trajectories autoguided at
# 1.5 into RUN-traj, scored at one step, then 5 minutes (or DMD_BUDGET) of dmd autoguided at 2.5 into RUN-dmd, scored
# at 1, 2 and 4 steps and at one step from 0.85, 0.75 and 0.65 times the noise. The caller sets P (readability_proxy.py),
# OUT (the results file) and BAD (the autoguiding model); TRAJ_CLI, if set, runs the trajectory stage instead of
# `cleardiffusion` (bf16_bank.sh: few_step_ablation/fp32_bank.py). Sourced by fresh_teachers.sh and bf16_bank.sh.
fresh_draw() {
  local T=runs/s27-uncond-s$2/checkpoints/last.pt U=$4
  taskset -c $1 ${TRAJ_CLI:-cleardiffusion} distill --teacher $T --autoguide $BAD --teacher-guidance 1.5 \
    ${5:---time-budget 8} --seed $3 --out $U-traj
  taskset -c $1 $P --checkpoint $U-traj/checkpoints/last.pt --steps 1 >> $OUT
  taskset -c $1 cleardiffusion distill --teacher $T --distill-method dmd --dmd-t-max 0.98 --student $U-traj/checkpoints/last.pt \
    --autoguide $BAD --teacher-guidance 2.5 ${6:---time-budget 5} --seed $3 --out $U-dmd
  for k in 1 2 4; do taskset -c $1 $P --checkpoint $U-dmd/checkpoints/last.pt --steps $k >> $OUT; done
  for s in 0.85 0.75 0.65; do
    taskset -c $1 $P --checkpoint $U-dmd/checkpoints/last.pt --steps 1 --noise-scale $s >> $OUT
  done
}
