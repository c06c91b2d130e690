"""`cleardiffusion` with the trajectory bank generated in fp32 whatever --precision says: the control of
`benchmarks/bf16_bank.sh` (docs/few_step.md "The trajectory bank in bf16").

Until session 28 `distill` made the teacher's trajectories in fp32 while it trained at --precision (bf16 autocast
on a CPU with native bf16); now the bank follows --precision. This wrapper restores the old bank for the side-by-side
comparison that decided it. Not a flag: the bank at the training step's precision was the better of the two.

    python benchmarks/few_step_ablation/fp32_bank.py distill --teacher ... --out ...
"""

import sys

import cleardiffusion.train_run as train_run
from cleardiffusion.cli import main
from cleardiffusion.generate import teacher_trajectories


def fp32_trajectories(*args, **kwargs):
    """generate.teacher_trajectories with the teacher in fp32, as before session 28."""
    return teacher_trajectories(*args, **{**kwargs, "precision": "fp32"})


if __name__ == "__main__":
    train_run.teacher_trajectories = fp32_trajectories
    sys.exit(main())
