"""Autoguidance applied only on a band of noise levels (Kynkaenniemi et al. 2024, "Applying guidance in a limited
interval improves sample and distribution quality in diffusion models").

A screening aid for docs/few_step.md: guidance.AutoGuidance becomes eps_bad + w (eps - eps_bad) where the timestep
t lies in [LO * T, HI * T) and the good model's eps elsewhere (w = 1 there), per sample. It patches every use of
AutoGuidance: `sample --autoguide`, readability_proxy's `--autoguide` and dmd's autoguided real score. T is the
default recipe's 1,000. The rest of the command line is either `cleardiffusion`'s or a script's:

    python benchmarks/few_step_ablation/guidance_interval.py 0.1 0.7 distill --distill-method dmd --autoguide BAD ...
    python benchmarks/few_step_ablation/guidance_interval.py 0.1 0.7 \
        benchmarks/few_step_ablation/readability_proxy.py --checkpoint TEACHER --autoguide BAD --guidance 2.5
"""

import sys

import torch

import cleardiffusion.guidance as guidance

T = 1000
LO, HI = 0.0, 1.0


def banded(self, x_t: torch.Tensor, t: torch.Tensor, *args) -> torch.Tensor:
    """AutoGuidance.forward with the scale applied where LO <= t / T < HI only."""
    eps_bad, eps = self.bad(x_t, t, *args), self.model(x_t, t, *args)
    frac = torch.as_tensor(t, device=x_t.device).float().expand(x_t.shape[0]) / T
    scale = torch.where((frac >= LO) & (frac < HI), self.scale, 1.0).to(eps.dtype)
    return eps_bad + scale.reshape(-1, *(1,) * (eps.ndim - 1)) * (eps - eps_bad)


if __name__ == "__main__":
    LO, HI = float(sys.argv.pop(1)), float(sys.argv.pop(1))
    guidance.AutoGuidance.forward = banded
    from run_rest import run_rest  # this folder is on sys.path when the wrapper runs as a script

    run_rest()
