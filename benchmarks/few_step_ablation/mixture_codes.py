"""Which digits each component of mixture_prior.py's x_T draws: N one-step samples per component c (x_T = eps + m_c,
the benchmark's per-sample seeds), classified by the project's MNIST reference classifier. Prints one JSON line per
component: its samples' class counts, the share of its most frequent class, and how many are readable at
readability_proxy.py's threshold (--threshold: the one its lines print, 0.771). If the components carry the digit's
class (mixture_info.py's aim), each one's top share is near 1.

    python benchmarks/few_step_ablation/mixture_codes.py --checkpoint RUN/checkpoints/last.pt --k 10 --norm 8 \
        --threshold 0.771
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mixture_prior  # noqa: E402

from cleardiffusion import evaluate as M  # noqa: E402
from cleardiffusion.checkpoint import load_for_sampling  # noqa: E402
from cleardiffusion.data import from_model_range  # noqa: E402
from cleardiffusion.evaluation_runner import classifier_or_help  # noqa: E402
from cleardiffusion.generate import sample_generator  # noqa: E402
from cleardiffusion.recipe import SamplingRecipe  # noqa: E402
from cleardiffusion.samplers import SAMPLERS, make_timesteps  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--norm", type=float, required=True)
    p.add_argument("--n", type=int, default=200, help="samples per component")
    p.add_argument("--threshold", type=float, required=True, help="readability_proxy.py's threshold")
    args = p.parse_args()
    torch.set_num_threads(1)
    model, path, meta = load_for_sampling(args.checkpoint)
    shape = tuple(meta["image_shape"])
    clf = classifier_or_help("mnist", 1, None, "cpu", (28, 28))
    recipe = SamplingRecipe(sampler="consistency", steps=1).resolve(path)
    timesteps = make_timesteps(path, recipe.steps, recipe.spacing)
    m = mixture_prior.patterns(args.k, shape, args.norm)
    for c in range(args.k):
        generators = [sample_generator(c, i) for i in range(args.n)]
        x_T = torch.stack([torch.randn(shape, generator=g) for g in generators]) + m[c]
        with torch.no_grad():
            x0 = SAMPLERS["consistency"](model.eval(), path, x_T, timesteps, generator=generators)
        images = from_model_range(x0)
        probs = M.softmax(clf.features_and_logits(images)[1])
        classes = np.bincount(probs.argmax(1), minlength=10)
        print(json.dumps({"checkpoint": args.checkpoint, "k": args.k, "norm": args.norm, "component": c, "n": args.n,
                          "classes": classes.tolist(), "top_share": round(float(classes.max() / args.n), 3),
                          "readable": int((probs.max(1) >= args.threshold).sum())}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
