"""`cleardiffusion` (or `readability_proxy.py`) with a coded student's one-step code drawn apart from its noise.

A screening aid for docs/few_step.md ("Longer dmd, and a code drawn apart from the noise"). A `--student-codes`
student picks its code with a head on its encoder's output (the head's argmax), so the code is a function of x_T,
and the head reads the teacher's cluster off x_T poorly. Here, at the first step of the chain (network time >=
FIRST_STEP, the jump grid's T - 1), the batch's head codes are permuted across the batch before the forward uses
them: each sample gets a code drawn from their marginal, independent of its own noise, as a mixture model draws its
component. Later steps keep the head's code. Under `distill --distill-method dmd` the student learns its one-step
map so; `proxy` samples so and tags its line "code": "free". Not a flag: it did not help.

    python benchmarks/few_step_ablation/free_code.py distill --distill-method dmd --student ... --out ...
    python benchmarks/few_step_ablation/free_code.py proxy --checkpoint ... --steps 1
"""

import contextlib
import io
import json
import runpy
import sys
from pathlib import Path

import torch

from cleardiffusion.models import unet

FIRST_STEP = 900  # network times at or above this are the chain's first step (t = T - 1 = 999 on the jump grid)
PERMUTATION = torch.Generator().manual_seed(1234)
encode = unet.UNet.encode


def free_encode(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
    """UNet.encode with the head's codes permuted across the batch at the first step (unless a code is forced)."""
    if not (self.config.code_classes and self.forced_code is None and bool((t.float() >= FIRST_STEP).all())):
        return encode(self, x, t, y)
    with torch.no_grad():  # the head's codes, as encode computes them
        e, h = self.embed(t, y), x
        for step in self.encoder:
            h = step(h, e)
        codes = self.code_head(h).argmax(1)
    self.forced_code = codes[torch.randperm(len(codes), generator=PERMUTATION).to(codes.device)]
    try:
        return encode(self, x, t, y)
    finally:
        self.forced_code = None


if __name__ == "__main__":
    unet.UNet.encode = free_encode
    if sys.argv[1:2] != ["proxy"]:
        from cleardiffusion.cli import main

        sys.exit(main())
    sys.argv = ["readability_proxy.py", *sys.argv[2:]]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(Path(__file__).with_name("readability_proxy.py")), run_name="__main__")
    for line in out.getvalue().splitlines():
        print(json.dumps({**json.loads(line), "code": "free"}))
