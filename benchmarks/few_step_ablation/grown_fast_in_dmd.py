"""`cleardiffusion` with a grown --student's extra blocks stepping RATIO times the run's --lr in dmd too (the
trajectory stage's train.GROWN_LR_RATIO is 10), instead of at the run's own step.

A screening aid for docs/few_step.md ("A deeper student"): `distill --grow-student 4` gives the trajectory stage's
new blocks 10 times its step; `dmd --student` from that student keeps the blocks but steps them as every other
weight, at dmd's --lr 2e-5. This gives them a ratio of their own in dmd as well:

    python benchmarks/few_step_ablation/grown_fast_in_dmd.py 10 distill --distill-method dmd --student GROWN ...
"""

import sys

import cleardiffusion.train as train
import cleardiffusion.train_run as train_run
from cleardiffusion.cli import main

start_from_teacher = train_run.start_from_teacher


def start_with_fast_blocks(config, model, ema, dev):
    """start_from_teacher, returning a --student's extra middle blocks as the fast parameters when none are grown."""
    teacher, grown = start_from_teacher(config, model, ema, dev)
    extra = model.config.extra_middle_blocks
    if config.student and not grown and extra:
        grown = [p for block in list(model.middle)[len(model.middle) - extra :] for p in block.parameters()]
    return teacher, grown


if __name__ == "__main__":
    train.GROWN_LR_RATIO = float(sys.argv.pop(1))
    train_run.start_from_teacher = start_with_fast_blocks
    sys.exit(main())
