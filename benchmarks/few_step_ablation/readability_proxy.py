"""Does the shipped classifier's confidence tell which samples a person reads? Checked against blind marks.

The blind sittings (benchmarks/blind_count.py) marked every generated cell readable or not without knowing its
source. This scores the same cells with the dataset's shipped classifier (its largest softmax probability,
the quantity behind `--eval-every`'s "confident" fraction) and reports:

- AUC: the chance that a cell marked readable scores above one marked unreadable (0.5: no better than a coin);
- per grid, its blind count beside the classifier's count (cells at or above a threshold fitted on the *other*
  grids so that their predicted readable total equals their marked total: leave one grid out);
- the sittings not used for the fit (`--calibrate`) held out: each of their grids' blind count beside the
  classifier's count at the threshold fitted on every calibration cell, and their AUC;
- the fraction at or above 0.9 (monitor.py's "confident") of the real test digits and of the teacher's one-step
  DDIM samples (grey blobs), which shows why that raw fraction is not a readability count.

    python benchmarks/few_step_ablation/readability_proxy.py > benchmarks/results/one_step_cpu/readability_proxy.json

With `--checkpoint CKPT` it instead counts, over N samples of that model (`--sampler`, `--steps`, `--noise-scale`, the
benchmark's per-sample seeds), the share at or above the threshold fitted on every calibration cell: an estimate of
the blind count per 100 with less sampling noise than one grid's 100, one JSON line:

    python benchmarks/few_step_ablation/readability_proxy.py --checkpoint runs/s17-uncond-s0-dmd3/checkpoints/last.pt \
        --steps 1 >> benchmarks/results/one_step_cpu/readability_proxy_models.jsonl
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import blind_count  # noqa: E402

from cleardiffusion import evaluate as M  # noqa: E402
from cleardiffusion.data import load_dataset  # noqa: E402
from cleardiffusion.evaluation_runner import classifier_or_help  # noqa: E402

BLIND = "benchmarks/results/one_step_cpu/mnist-unconditional/blind"
BLOBS = "benchmarks/results/one_step_cpu/mnist-unconditional/grid_teacher_ddim1_unconditional.png"


def auc(score: np.ndarray, readable: np.ndarray) -> float:
    """P(score of a readable cell > score of an unreadable one), ties counted half (Mann-Whitney)."""
    pos, neg = score[readable], score[~readable]
    return float((pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean())


def threshold(score: np.ndarray, readable: np.ndarray) -> float:
    """The score above which as many cells lie as were marked readable."""
    return float(np.sort(score)[::-1][readable.sum() - 1])


def grid_count(grid: tuple, t: float) -> dict:
    """A marked grid (sitting, source, file, confidence, readable) counted blind and by the classifier at t."""
    sitting, name, file, conf, readable = grid
    return {"sitting": sitting, "source": name, "file": file, "blind": int(readable.sum()),
            "classifier": int((conf >= t).sum()), "threshold": round(t, 4)}  # fmt: skip


def mean_abs_error(rows: list[dict]) -> float:
    return round(float(np.mean([abs(r["blind"] - r["classifier"]) for r in rows])), 2)


def count_model(args, confidence, t: float) -> dict:
    """Per 100 samples of args.checkpoint, how many score at or above t."""
    from cleardiffusion.checkpoint import load_autoguide, load_for_sampling
    from cleardiffusion.data import from_model_range
    from cleardiffusion.evaluation_runner import evaluate_samples
    from cleardiffusion.generate import generate_images
    from cleardiffusion.guidance import interval_start
    from cleardiffusion.recipe import SamplingRecipe

    model, path, meta = load_for_sampling(args.checkpoint)
    recipe = SamplingRecipe(sampler=args.sampler, steps=args.steps, noise_scale=args.noise_scale,
                            guidance=args.guidance).resolve(path)  # fmt: skip
    bad = (load_autoguide(args.autoguide, meta["objective"], meta["config"].get("schedule"), meta["image_shape"],
                          path, "cpu") if args.autoguide else None)  # fmt: skip
    batches = generate_images(model, path, n=args.n, shape=tuple(meta["image_shape"]), recipe=recipe, seed=0,
                              autoguide=bad, autoguide_from=interval_start(path, args.autoguide_from))  # fmt: skip
    images = from_model_range(torch.cat([b.cpu() for b in batches]))
    fid = evaluate_samples(images, None, "mnist", args.data_dir)["fid"]
    conf = confidence(images[:, 0].numpy())
    guided = {"autoguide": args.autoguide, "guidance": args.guidance} if args.autoguide else {}
    guided.update({"autoguide_from": args.autoguide_from} if args.autoguide_from else {})
    return {"checkpoint": args.checkpoint, **guided, "sampler": recipe.sampler, "steps": recipe.steps,
            "noise_scale": recipe.noise_scale, "n": args.n, "fid": round(fid, 3), "threshold": round(t, 4),
            "per_100": round(100 * float((conf >= t).mean()), 1),
            "first_100": int((conf[:100] >= t).sum())}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--checkpoint", help="count this model's samples instead (one JSON line)")
    p.add_argument("--sampler", default=None, help="its sampler (default: the recipe's)")
    p.add_argument("--steps", type=int, default=None, help="its sampler's steps (default: the recipe's)")
    p.add_argument("--noise-scale", type=float, default=1.0)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--autoguide", metavar="CKPT", help="sample the model autoguided by CKPT (sample --autoguide)")
    p.add_argument("--guidance", type=float, default=1.0, help="the autoguidance scale (default: 1)")
    p.add_argument("--autoguide-from", type=float, default=0.0, metavar="F",
                   help="autoguide only where t >= F T (sample --autoguide-from; default: 0, every level)")  # fmt: skip
    p.add_argument("--calibrate", default="1,2", metavar="K,K",
                   help="the blind sittings whose marks fit the threshold; the others are held out (default: 1,2, "
                        "the fit behind every committed count)")  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(1)
    clf = classifier_or_help("mnist", 1, None, "cpu", (28, 28))

    def confidence(cells: np.ndarray) -> np.ndarray:
        return M.softmax(clf.features_and_logits(torch.as_tensor(cells)[:, None])[1]).max(1)

    grids = []  # (sitting, source, file, confidence (100,), readable (100,) bool)
    for sitting in sorted(Path(ROOT / BLIND).glob("sitting_*")):
        key, counts = (json.loads((sitting / f).read_text()) for f in ("key.json", "counts.json"))
        for name in key["sources"]:
            if name == "real":
                continue
            readable = np.ones(100, bool)
            readable[counts[name]["unreadable"]] = False
            cells = blind_count.grid_cells(ROOT / key["files"][name])
            grids.append((sitting.name, name, key["files"][name], confidence(cells), readable))
    calibration = {f"sitting_{k.strip()}" for k in args.calibrate.split(",")}
    held = [g for g in grids if g[0] not in calibration]
    grids = [g for g in grids if g[0] in calibration]
    if not grids:
        p.error(f"--calibrate {args.calibrate}: no such sitting in {BLIND}")
    score, marks = np.concatenate([g[3] for g in grids]), np.concatenate([g[4] for g in grids])
    if args.checkpoint:
        print(json.dumps(count_model(args, confidence, threshold(score, marks))))
        return
    rows = []
    for i, grid in enumerate(grids):
        others = [g for j, g in enumerate(grids) if j != i]
        rows.append(grid_count(grid, threshold(np.concatenate([g[3] for g in others]),
                                               np.concatenate([g[4] for g in others]))))  # fmt: skip
    real_conf = confidence(load_dataset("mnist", args.data_dir, "test").images[:, 0].numpy())
    result = {
        "cells": int(len(score)),
        "auc": round(auc(score, marks), 4),
        "grids": rows,
        "mean_abs_error": mean_abs_error(rows),
        "confident_0.9": {"real test digits": round(float((real_conf >= 0.9).mean()), 4),
                          "teacher ddim 1 step (grey blobs)": round(float(
                              (confidence(blind_count.grid_cells(ROOT / BLOBS)) >= 0.9).mean()), 4)},
        "features_sha256": clf.file_sha256,
    }  # fmt: skip
    if held:  # the threshold fitted on every calibration cell, applied to sittings it never saw
        result["held_out"] = [grid_count(g, threshold(score, marks)) for g in held]
        result["held_out_auc"] = round(
            auc(np.concatenate([g[3] for g in held]), np.concatenate([g[4] for g in held])), 4
        )
        result["held_out_mean_abs_error"] = mean_abs_error(result["held_out"])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
