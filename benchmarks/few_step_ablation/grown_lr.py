"""`cleardiffusion` with a grown student's new blocks stepping RATIO times the run's --lr instead of
train.GROWN_LR_RATIO (10).

A screening aid for docs/few_step.md ("A deeper student"): `distill --grow-student N` adds N residual blocks at the
U-Net's lowest resolution, zero-initialised so that the student starts as the network it grew from. Adam moves a
weight by about its step per update, so at dmd's --lr 2e-5 such blocks hardly leave zero in five minutes; this
runs them at the run's own step (RATIO 1) to show it.

    python benchmarks/few_step_ablation/grown_lr.py 1 distill --grow-student 4 --distill-method dmd ...
"""

import sys

import cleardiffusion.train as train
from cleardiffusion.cli import main

if __name__ == "__main__":
    train.GROWN_LR_RATIO = float(sys.argv.pop(1))
    sys.exit(main())
