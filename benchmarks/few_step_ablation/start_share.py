"""`cleardiffusion` with trajectory distillation drawing a share P of its training pairs from the trajectories'
starting points (pure noise, t = T - 1) instead of uniformly over every point the solver visited.

A screening aid for docs/few_step.md ("A deeper student"): the bank holds `--teacher-steps` (16) points of each
trajectory, so a uniform draw gives the one-step map, f(x_T, T - 1), one pair in 16. The 8-minute students read far
fewer one-step digits than the ODE ends they copy; this asks whether the one-step map is short of training. Each
index is a starting point with probability P and a uniform bank entry otherwise (P = 1/16 is about the library's
uniform draw):

    python benchmarks/few_step_ablation/start_share.py 0.5 distill --autoguide ... --out RUN
"""

import sys

import torch

import cleardiffusion.consistency as consistency
from cleardiffusion.cli import main


def draw_with_start_share(share: float):
    def draw_t(self, n: int, generator: torch.Generator) -> torch.Tensor:
        starts = torch.nonzero(self.t == self.t.max()).flatten().to(generator.device)
        uniform = torch.randint(0, len(self), (n,), generator=generator, device=generator.device)
        at_start = starts[torch.randint(0, len(starts), (n,), generator=generator, device=generator.device)]
        pick = torch.rand(n, generator=generator, device=generator.device) < share
        return torch.where(pick, at_start, uniform)

    return draw_t


if __name__ == "__main__":
    consistency.TrajectoryBank.draw_t = draw_with_start_share(float(sys.argv.pop(1)))
    sys.exit(main())
