import json
import sys

import torch

from cleardiffusion.checkpoint import load_for_sampling
from cleardiffusion.data import from_model_range
from cleardiffusion.evaluation_runner import evaluate_samples
from cleardiffusion.generate import generate_images
from cleardiffusion.recipe import SamplingRecipe

torch.set_num_threads(1)
ck, ds, n, w, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
m, p, meta = load_for_sampling(ck)
res = {"tag": tag, "step": meta["step"]}
for st in (1, 2, 4):
    for name, lab, g in (("u", None, 1.0), ("g", torch.arange(n) % 10, w)):
        s = torch.cat(
            list(
                generate_images(
                    m,
                    p,
                    n=n,
                    shape=tuple(meta["image_shape"]),
                    recipe=SamplingRecipe(steps=st, guidance=g),
                    labels=lab,
                    seed=0,
                    batch_size=250,
                )
            )
        )
        r = evaluate_samples(from_model_range(s), lab, ds, f"../shared/data/{ds}")
        res[f"{name}{st}"] = round(r["fid"], 2)
print(json.dumps(res), flush=True)
with open("benchmarks/results/one_step_cpu/ablation_mnist.jsonl", "a") as fh:
    fh.write(json.dumps(res) + "\n")
