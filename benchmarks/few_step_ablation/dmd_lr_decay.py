"""`cleardiffusion` with the learning rate decayed linearly to 0 over the run's --time-budget (wall clock).

A screening aid for docs/few_step.md ("dmd's EMA, a decaying step and the starting noise"): a larger dmd step reads more
and speckles the background; does letting the step fall to 0 by the end of the five minutes keep the readable
digits and clear the speckle? train.learning_rate becomes lr * (1 - elapsed / budget) after its warm-up, the
elapsed time counted from the first optimisation step. Not a flag: it did not help.

    python benchmarks/few_step_ablation/dmd_lr_decay.py distill --distill-method dmd --time-budget 5 --lr 5e-5 ...
"""

import sys
import time

import cleardiffusion.train as train
from cleardiffusion.cli import main

constant = train.learning_rate
START: float | None = None  # the wall clock of the first optimisation step
BUDGET_MINUTES = 0.0  # the run's --time-budget


def decayed(step: int, lr: float, warmup: int) -> float:
    """train.learning_rate (its warm-up, then lr) times the share of the time budget still left."""
    global START
    if START is None:
        START = time.monotonic()
    left = max(0.0, 1.0 - (time.monotonic() - START) / (60.0 * BUDGET_MINUTES))
    return constant(step, lr, warmup) * left


if __name__ == "__main__":
    BUDGET_MINUTES = float(sys.argv[sys.argv.index("--time-budget") + 1])
    train.learning_rate = decayed
    sys.exit(main())
