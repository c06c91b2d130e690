import json
import sys

import torch

from cleardiffusion.checkpoint import load_for_sampling
from cleardiffusion.data import from_model_range
from cleardiffusion.evaluation_runner import evaluate_samples
from cleardiffusion.generate import generate_images
from cleardiffusion.recipe import SamplingRecipe

torch.set_num_threads(1)
ck, ds, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
steps = [int(s) for s in sys.argv[4].split(",")]
sampler = sys.argv[5] if len(sys.argv) > 5 else None
m, p, meta = load_for_sampling(ck)
res = {}
for st in steps:
    for name, lab, w in (("u", None, 1.0), ("g", torch.arange(n) % 10, 3.0)):
        s = torch.cat(
            list(
                generate_images(
                    m,
                    p,
                    n=n,
                    shape=tuple(meta["image_shape"]),
                    recipe=SamplingRecipe(sampler=sampler, steps=st, guidance=w),
                    labels=lab,
                    seed=0,
                    batch_size=250,
                )
            )
        )
        r = evaluate_samples(from_model_range(s), lab, ds, f"../shared/data/{ds}")
        res[f"{name}{st}"] = round(r["fid"], 2)
        print(res, flush=True)
print(json.dumps({"teacher": ck, "sampler": sampler, **res}))
