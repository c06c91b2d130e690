"""Which average of a dmd run's weights? Rebuild the EMA of other rules from the raw weights a run kept.

A `dmd` run's samples swing from one checkpoint to the next, so the weights it ends on are one draw of that swing.
This reads the raw weights of a run's kept checkpoints (`distill ... --checkpoint-every 25 --keep-checkpoints`)
and the weights it started from (its `--student`), applies an EMA rule of train.ema_decay (decay, warm start)
step by step, each kept point standing for the steps since the one before, and writes one checkpoint per rule
(the run's last checkpoint with its EMA replaced), for grid_search.py to score on the same seeds:

    python benchmarks/few_step_ablation/ema_rules.py runs/mnist-uncond-trace-s2 \\
        --student runs/mnist-uncond-traj10/checkpoints/last.pt --out runs/mnist-uncond-trace-s2/rules
    python benchmarks/few_step_ablation/grid_search.py runs/mnist-uncond-trace-s2/rules/decay0.995-warmup0.pt \\
        "[999]" "[999,293]" "[999,293,131,48]"

The rebuilt EMA is an approximation at the kept points' spacing: rule "decay0.99-warmup10" (what the run itself
did) lets its own final EMA be compared with the rebuilt one.
"""

import argparse
import bisect
from pathlib import Path

import torch

from cleardiffusion.checkpoint import load_checkpoint
from cleardiffusion.train import ema_decay

RULES = [(0.99, 10), (0.99, 0), (0.995, 0), (0.9999, 2)]  # (decay, warm start); the last: every step alike


def coefficients(steps: list[int], decay: float, warmup: int) -> list[float]:
    """The weight of each kept point (steps[0] = 0: the starting weights) in the EMA at the last step."""
    c, keep = [0.0] * len(steps), 1.0
    for s in range(steps[-1], 0, -1):
        d = ema_decay(s, decay, warmup)
        c[bisect.bisect_left(steps, s)] += (1 - d) * keep  # the first kept point at or after step s
        keep *= d
    c[0] += keep
    return c


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a distill run with checkpoints/step_*.pt")
    p.add_argument("--student", required=True, help="the --student it started from (its EMA: the step-0 weights)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    kept = [load_checkpoint(f) for f in sorted((args.run / "checkpoints").glob("step_*.pt"))]
    if not kept:
        raise SystemExit(f"{args.run}/checkpoints has no step_*.pt: run distill with --keep-checkpoints")
    steps = [0] + [state["step"] for state in kept]
    weights = [load_checkpoint(args.student)["ema"]] + [state["model"] for state in kept]
    args.out.mkdir(parents=True, exist_ok=True)
    last = kept[-1]["ema"]
    for decay, warmup in RULES:
        c = coefficients(steps, decay, warmup)
        ema = {k: sum(ci * w[k].double() for ci, w in zip(c, weights)).to(last[k].dtype)
               if last[k].is_floating_point() else last[k] for k in last}  # fmt: skip
        torch.save({**kept[-1], "ema": ema}, args.out / f"decay{decay:g}-warmup{warmup}.pt")
        print(f"decay {decay:g}, warm start {warmup}: starting weights {c[0]:.3f}, "
              f"last 100 steps {sum(ci for ci, s in zip(c, steps) if s > steps[-1] - 100):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
