"""A benchmark script (readability_proxy.py) given `--checkpoint A+B`: multistep consistency sampling with the first
step from checkpoint A and the later steps from checkpoint B, two students of one teacher.

A screening aid for docs/few_step.md ("Longer dmd, and a code drawn apart from the noise"): after 14 minutes of dmd
at --lr 4e-5 two steps score worse than one, so are the later maps (t = 293, 131, 48 on the jump grid) where the
loss is? Here A's one-step map draws the sample and B, a student whose later maps did not move so far, finishes it.
The first step is the one at network time >= FIRST_STEP (the jump grid's T - 1). Not a flag: two checkpoints per
model is a design question, not a setting.

    python benchmarks/few_step_ablation/two_students.py benchmarks/few_step_ablation/readability_proxy.py --steps 2 \
        --checkpoint runs/A/checkpoints/last.pt+runs/B/checkpoints/last.pt
"""

import torch

import cleardiffusion.checkpoint as checkpoint

FIRST_STEP = 900  # network times at or above this are the chain's first step (t = T - 1 = 999 on the jump grid)
load_for_sampling = checkpoint.load_for_sampling


class FirstAndLater(torch.nn.Module):
    """An eps-model that is `first` at the chain's first step and `later` at the others."""

    def __init__(self, first: torch.nn.Module, later: torch.nn.Module):
        super().__init__()
        self.first, self.later = first, later

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return (self.first if bool((t.float() >= FIRST_STEP).all()) else self.later)(x, t, y)


def load_pair(path, *args, **kwargs):
    """checkpoint.load_for_sampling, which for "A+B" loads both and returns A's path and meta."""
    if "+" not in str(path):
        return load_for_sampling(path, *args, **kwargs)
    a, b = str(path).split("+")
    first, noise_path, meta = load_for_sampling(a, *args, **kwargs)
    later, _, _ = load_for_sampling(b, *args, **kwargs)
    return FirstAndLater(first, later).eval(), noise_path, meta


if __name__ == "__main__":
    checkpoint.load_for_sampling = load_pair
    from run_rest import run_rest  # this folder is on sys.path when the wrapper runs as a script

    run_rest()
