"""`cleardiffusion` (or a benchmark script) with a coded student's one-step code drawn apart from its noise.

A screening aid for docs/few_step.md ("Longer dmd, and a code drawn apart from the noise"). A `--student-codes`
student picks its code with a head on its encoder's output (the head's argmax), so the code is a function of x_T,
and the head reads the teacher's cluster off x_T poorly. Here, at the first step of the chain (network time >=
FIRST_STEP, the jump grid's T - 1), the batch's head codes are permuted across the batch before the forward uses
them: each sample gets a code drawn from their marginal, independent of its own noise, as a mixture model draws its
component. Later steps keep the head's code. Under `distill --distill-method dmd` the student learns its one-step
map so; a benchmark script (readability_proxy.py) samples so, and each JSON line it prints is tagged "code": "free".
Not a flag: it did not help.

    python benchmarks/few_step_ablation/free_code.py distill --distill-method dmd --student ... --out ...
    python benchmarks/few_step_ablation/free_code.py benchmarks/few_step_ablation/readability_proxy.py --checkpoint ...
"""

import contextlib
import io
import json
import sys

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
    from run_rest import run_rest  # this folder is on sys.path when the wrapper runs as a script

    if not sys.argv[1].endswith(".py"):
        run_rest()
    else:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            run_rest()
        for line in out.getvalue().splitlines():
            print(json.dumps({**json.loads(line), "code": "free"}))
