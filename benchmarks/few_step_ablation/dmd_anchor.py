"""`cleardiffusion` with dmd's loss plus an anchor on the maps that two and four steps also use.

A screening aid for docs/few_step.md ("Longer dmd, and a code drawn apart from the noise"). `dmd` trains the
student's one-step map only; its maps at the jump grid's lower points (t = 293, 131, 48), which the two- and four-step
samplers also evaluate, share its weights and move with them, more so at a larger step. Here each dmd step adds
WEIGHT times the squared distance between the student's x_0 at one of those points and that of its own frozen
starting weights (copied at the first step), on the step's data batch noised there. Set WEIGHT with the environment
variable DMD_ANCHOR (default 1). Not a flag: in one screen it cost about a quarter of the steps and helped no
step count.

    python benchmarks/few_step_ablation/dmd_anchor.py distill --distill-method dmd --lr 4e-5 ...
"""

import copy
import os

import torch

import cleardiffusion.consistency as consistency
from cleardiffusion.denoiser import jump_grid
from cleardiffusion.objective import as_eps_model

WEIGHT = float(os.environ.get("DMD_ANCHOR", "1"))
dmd_loss = consistency.DistributionMatchingLoss.__call__


def anchored(self, net, x0, t, eps, y=None):
    """DMD's loss, plus WEIGHT * |f(x_s, s) - f_start(x_s, s)|^2 at a random lower point s of the 4-step jump grid."""
    loss = dmd_loss(self, net, x0, t, eps, y)
    if not hasattr(self, "anchor_net"):  # the first call: net still holds the starting weights
        self.anchor_net = copy.deepcopy(net).eval().requires_grad_(False)
        self.anchor_points = torch.tensor(jump_grid(self.schedule, 4)[1:])
    student = as_eps_model(net, self.schedule, self.prediction)
    start = as_eps_model(self.anchor_net, self.schedule, self.prediction)
    s = self.anchor_points[torch.randint(0, len(self.anchor_points), (x0.shape[0],))].to(x0.device)
    x_s = self.schedule.q_sample(x0, s, torch.randn_like(x0))
    with torch.no_grad():
        target = consistency.full(consistency.consistency_x0(start, self.schedule, x_s, s, y))
    return (
        loss
        + WEIGHT
        * (consistency.full(consistency.consistency_x0(student, self.schedule, x_s, s, y)) - target).pow(2).mean()
    )


if __name__ == "__main__":
    consistency.DistributionMatchingLoss.__call__ = anchored
    from run_rest import run_rest  # this folder is on sys.path when the wrapper runs as a script

    run_rest()
