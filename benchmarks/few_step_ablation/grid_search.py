"""Which grid for multistep consistency sampling? FID of N samples per explicit grid, the same per-sample seeds.

Song et al. 2023 (Algorithm 1) leave the intermediate times tau_n to a search. This scores a distilled
checkpoint at each grid given (JSON lists of DDPM indices, the first at T-1) with the shipped feature network,
unconditional (the null label, or no label for an unconditional model) or class-conditional (`--labels`:
sample i has class i mod classes; a student distilled with --teacher-guidance carries its guidance in its
weights and samples at guidance 1). One JSON line per grid (FID, recall) on stdout. The search behind
`denoiser.jump_grid`:

    python benchmarks/few_step_ablation/grid_search.py runs/mnist-uncond-trajectory/checkpoints/last.pt \\
        "[999]" "[999,499]" "[999,199]" ... >> benchmarks/results/one_step_cpu/grid_search_mnist.jsonl

`--recipe` scores any sampler of any checkpoint on the same seeds (a grid "null": the recipe's own grid), e.g.
the teacher's probability-flow ODE that trajectory distillation copies, against its default SDE sampler:

    python benchmarks/few_step_ablation/grid_search.py runs/mnist-uncond/checkpoints/last.pt null --precision fp32 \\
        --recipe '{"sampler": "dpm++2m", "steps": 16, "spacing": "trailing", "solver_type": "exact"}'
"""

import argparse
import json
import time

import torch

from cleardiffusion.checkpoint import load_for_sampling
from cleardiffusion.data import from_model_range
from cleardiffusion.evaluation_runner import evaluate_samples
from cleardiffusion.generate import generate_images
from cleardiffusion.recipe import SamplingRecipe

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("checkpoint")
p.add_argument("grids", nargs="+", help="JSON lists of indices, e.g. [999,293]; null: the recipe's own grid")
p.add_argument("--recipe", type=json.loads, default={}, help="SamplingRecipe fields as JSON (default: the defaults)")
p.add_argument("--precision", default="auto", help="the network's: auto | fp32 | bf16 (default: auto)")
p.add_argument("--dataset", default="mnist")
p.add_argument("--data-dir", default="../shared/data/mnist")
p.add_argument("--n", type=int, default=1000)
p.add_argument("--labels", action="store_true", help="class-conditional samples (i mod classes)")
args = p.parse_args()
torch.set_num_threads(1)
model, path, meta = load_for_sampling(args.checkpoint)
k = meta["num_classes"]
labels = (torch.arange(args.n) % k) if args.labels else None  # None: the null label of a conditional model
recipe = SamplingRecipe(**args.recipe)
sampler = {"recipe": args.recipe} if args.recipe else {}  # the grid search's lines carry neither field
sampler |= {"precision": args.precision} if args.precision != "auto" else {}
for grid in map(json.loads, args.grids):
    start = time.perf_counter()
    batches = generate_images(model, path, n=args.n, shape=tuple(meta["image_shape"]), recipe=recipe, seed=0,
                              labels=labels, batch_size=250, timesteps=grid, precision=args.precision)  # fmt: skip
    images = from_model_range(torch.cat([b.cpu() for b in batches]))
    scores = evaluate_samples(images, None, args.dataset, args.data_dir)
    print(json.dumps({"checkpoint": args.checkpoint, "samples": "class-conditional" if args.labels else
                      "unconditional", "n": args.n, "grid": grid, **sampler, "fid": round(scores["fid"], 3),
                      "recall": round(scores["recall"], 3), "features_sha256": scores["features_sha256"],
                      "seconds": round(time.perf_counter() - start, 1)}),
          flush=True)  # fmt: skip
