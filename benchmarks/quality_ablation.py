"""One cell of docs/quality.md's ablations: train a TrainConfig for a wall-clock budget on one thread, then
score N DDIM samples of its EMA weights (classifier-feature FID and the >= 90%-confident fraction).

    taskset -c 0 python benchmarks/quality_ablation.py small '{"prediction": "v"}' --budget 6 &
    taskset -c 1 python benchmarks/quality_ablation.py seed32 '{"model": "seed-minimal", "base_channels": 32}' &

Each run writes WORK/NAME/ (the run folder), WORK/NAME/grid.png (100 samples) and WORK/NAME/result.json.
Run two at a time, each pinned to its own core, so both see the same machine for the same minutes.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from cleardiffusion import evaluate as M
from cleardiffusion.checkpoint import load_for_sampling
from cleardiffusion.data import from_model_range, load_dataset
from cleardiffusion.evaluation_runner import reference_statistics
from cleardiffusion.features import ClassifierFeatures, load_classifier, reference_classifier_path
from cleardiffusion.generate import generate_images
from cleardiffusion.recipe import SamplingRecipe
from cleardiffusion.train import UNLIMITED_STEPS, TrainConfig, train
from cleardiffusion.viz import save_grid

ROOT = Path(__file__).resolve().parents[1]
# the ablations' baseline: Ho et al.'s objective (eps, unweighted); each cell overrides what it tests
BASE = dict(batch_size=64, lr=1e-3, warmup=100, ema_decay=0.999, sample_every=0, checkpoint_every=UNLIMITED_STEPS,
            log_every=50, progress=False, steps=UNLIMITED_STEPS, prediction="eps", loss_weighting="none")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("overrides", help='JSON object of TrainConfig fields, e.g. \'{"prediction": "v"}\'')
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--budget", type=float, default=6.0, help="training minutes (6)")
    p.add_argument("--n", type=int, default=1000, help="samples scored (1000)")
    p.add_argument("--sample-steps", type=int, default=25, help="DDIM steps (25)")
    p.add_argument("--classifier", help="feature classifier (default: the shipped one)")
    p.add_argument("--work", default=str(ROOT / "runs" / "quality_ablation"))
    args = p.parse_args()
    torch.set_num_threads(1)

    out = Path(args.work) / args.name
    data_dir = str(ROOT.parent / "shared" / "data" / args.dataset)
    config = {**BASE, "dataset": args.dataset, "data_dir": data_dir, "out": str(out), "time_budget": args.budget}
    summary = train(TrainConfig(**{**config, **json.loads(args.overrides)}))

    model, schedule, meta = load_for_sampling(out / "checkpoints" / "last.pt")
    start = time.perf_counter()
    recipe = SamplingRecipe(sampler="ddim", steps=args.sample_steps)  # the sampler its results were measured with
    batches = generate_images(model, schedule, n=args.n, shape=meta["image_shape"], recipe=recipe, seed=1)
    x = torch.cat(list(batches))  # (N, C, H, W) in [-1, 1]
    sample_s = time.perf_counter() - start
    save_grid(x[:100], out / "grid.png", nrow=10)

    classifier, _ = load_classifier(args.classifier or reference_classifier_path(args.dataset))
    features = ClassifierFeatures(classifier, args.dataset)
    ref = reference_statistics(load_dataset(args.dataset, data_dir, "train"), "train", features)
    f, logits = features.features_and_logits(from_model_range(x))
    mu, sigma = M.feature_statistics(f)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    result = dict(name=args.name, overrides=json.loads(args.overrides), steps=summary["step"], loss=summary["loss"],
                  params=summary["parameters"], train_s=summary["elapsed"], sample_s=sample_s, n_eval=args.n,
                  sample_steps=args.sample_steps, fid=M.frechet_distance(ref["mu"], ref["sigma"], mu, sigma),
                  confident=float((probs.max(1) >= 0.9).mean()))  # fmt: skip
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
