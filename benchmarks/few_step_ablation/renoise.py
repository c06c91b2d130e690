"""Fresh noise or the model's own between consistency steps? FID of multistep consistency sampling by eta.

Song et al. 2023, Algorithm 1 re-noises the predicted x_0 with FRESH noise z before each next step:
x_s = alpha_s x_0 + sigma_s z (`samplers.consistency_sample`, eta = 1 here). A student distilled from ODE
trajectories might prefer the deterministic DDIM step that keeps the direction it inferred,
x_s = alpha_s x_0 + sigma_s eps_hat (eta = 0), or a mix, sqrt(1 - eta^2) eps_hat + eta z. This scores each eta at
each step count on the default grid (jump), with the same per-sample seeds and the shipped feature network,
unconditional (the null label, or none for an unconditional model). One JSON line per (steps, eta) on stdout:

    python benchmarks/few_step_ablation/renoise.py runs/mnist-uncond-trajectory/checkpoints/last.pt \\
        > benchmarks/results/one_step_cpu/renoise_mnist.jsonl

Only the sampler's re-noising line differs from `samplers.consistency_sample`; the library keeps eta = 1.
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
from cleardiffusion.samplers import SAMPLERS, _predict, _steps, randn_like


def consistency_sample_eta(eta: float):
    """`samplers.consistency_sample` with x_s = alpha_s x_0 + sigma_s (sqrt(1 - eta^2) eps_hat + eta z)."""

    @torch.no_grad()
    def sample(model, path, x_T, timesteps=None, *, generator=None, clip_x0=False, callback=None):
        x = x_T
        for i, t, s in _steps(path, timesteps):
            pred = _predict(model, path, x, i, t, clip_x0, callback)
            if s == path.clean:
                return pred.x0
            alpha_s, sigma_s = path.coefficients(s)
            z = randn_like(pred.x0, generator)
            x = alpha_s * pred.x0 + sigma_s * ((1 - eta**2) ** 0.5 * pred.eps + eta * z)
        return x

    return sample


p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("checkpoint")
p.add_argument("--etas", default="1,0.5,0", help="comma-separated; 1 is the library's sampler")
p.add_argument("--steps", default="2,4", help="comma-separated step counts")
p.add_argument("--dataset", default="mnist")
p.add_argument("--data-dir", default="../shared/data/mnist")
p.add_argument("--n", type=int, default=1000)
args = p.parse_args()
torch.set_num_threads(1)
model, path, meta = load_for_sampling(args.checkpoint)
k = meta["num_classes"]
labels = torch.full((args.n,), k) if k else None
library = SAMPLERS["consistency"]
for steps in map(int, args.steps.split(",")):
    for eta in map(float, args.etas.split(",")):
        SAMPLERS["consistency"] = consistency_sample_eta(eta)
        try:
            start = time.perf_counter()
            recipe = SamplingRecipe(steps=steps)
            batches = generate_images(model, path, n=args.n, shape=tuple(meta["image_shape"]), recipe=recipe,
                                      seed=0, labels=labels, batch_size=250)  # fmt: skip
            images = from_model_range(torch.cat([b.cpu() for b in batches]))
            seconds = time.perf_counter() - start
        finally:
            SAMPLERS["consistency"] = library
        scores = evaluate_samples(images, None, args.dataset, args.data_dir)
        row = {"checkpoint": args.checkpoint, "steps": steps, "eta": eta, "n": args.n, "fid": round(scores["fid"], 3),
               "sample_seconds": round(seconds, 2)}  # fmt: skip
        print(json.dumps(row), flush=True)
