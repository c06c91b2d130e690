"""`cleardiffusion` with dmd's lowest noise level raised: consistency.DMD_T_MIN set to T_MIN (a fraction of T).

A screening aid for one question of docs/few_step.md ("dmd's batch"): do the speckled backgrounds of a faster dmd
come from its gradient at low noise levels? DMD compared the two x_0 predictions at t in [0.02 T, 0.98 T] then
(`--dmd-t-max 0.98`); this drops the levels below T_MIN, where the difference is mostly fine detail. Not a flag: it
did not help.

    python benchmarks/few_step_ablation/dmd_t_min.py 0.2 distill --distill-method dmd ...
"""

import sys

import cleardiffusion.consistency as consistency
from cleardiffusion.cli import main

if __name__ == "__main__":
    consistency.DMD_T_MIN = float(sys.argv.pop(1))
    sys.exit(main())
