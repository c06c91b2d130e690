"""One to four network evaluations: few-step models beside their teacher's samplers (issue 24).

For a teacher (the default recipe's DDPM checkpoint) and its few-step students (`cleardiffusion distill`, or
`train --objective meanflow`), draws N samples per setting from the same per-sample seeds and scores them with
the project's evaluator (`evaluation_runner.evaluate_samples`: the feature network shipped for the dataset;
each row names its features_sha256). Settings: the teacher's default sampler (dpm++2m-sde) at 50 and 10 steps,
DDIM and dpm++2m-sde at 1, 2 and 4 evaluations, each student's own sampler at 1, 2 and 4 steps. Each setting
twice: unconditional (the null label) and class-conditional (N / classes per class) at the teacher's
--guidance; a student distilled from the guided teacher (`--teacher-guidance`) samples at guidance 1, its
guidance being in its weights, and then costs one evaluation per step. Images per second: the wall clock of
drawing the N unconditional samples in batches of --batch-size on this process's threads.

    python benchmarks/one_step.py --dataset mnist --data-dir ../shared/data/mnist \\
        --teacher runs/mnist/checkpoints/last.pt --student trajectory=runs/mnist-traj/checkpoints/last.pt \\
        --student cd=runs/mnist-cd/checkpoints/last.pt --n 1000 --out benchmarks/results/one_step_cpu/mnist

Writes OUT/results.json (rows, settings, device), OUT/README.md (the table), OUT/grid_<model>_<setting>.png
(the first 100 samples: unconditional, and guided with a class per row) and OUT/fid_vs_minutes.png (each
student's --eval-every FID, read from its run's metrics.jsonl, against total CPU minutes, its teacher's
included; `--curves-only` redraws it).
"""

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import torch
from sampler_speed import device_name  # benchmarks/ is on the path of a script run from it

from cleardiffusion.checkpoint import load_for_sampling
from cleardiffusion.data import from_model_range
from cleardiffusion.evaluation_runner import evaluate_samples
from cleardiffusion.generate import generate_images
from cleardiffusion.recipe import SamplingRecipe
from cleardiffusion.viz import save_grid

TEACHER_SETTINGS = [("dpm++2m-sde", 50), ("dpm++2m-sde", 10), ("ddim", 1), ("ddim", 2), ("ddim", 4),
                    ("dpm++2m-sde", 1), ("dpm++2m-sde", 2), ("dpm++2m-sde", 4)]  # fmt: skip
STUDENT_STEPS = (1, 2, 4)


def draw(model, path, meta, recipe: SamplingRecipe, labels, args) -> tuple[torch.Tensor, float]:
    """n samples as uint8 (n, C, H, W) and the seconds they took."""
    start = time.perf_counter()
    batches = generate_images(model, path, n=args.n, shape=tuple(meta["image_shape"]), recipe=recipe, seed=args.seed,
                              labels=labels, batch_size=args.batch_size)  # fmt: skip
    images = from_model_range(torch.cat([b.cpu() for b in batches]))
    return images, time.perf_counter() - start


def measure(name: str, checkpoint: str, args, out: Path) -> list[dict]:
    model, path, meta = load_for_sampling(checkpoint)
    config, k = meta["config"], meta["num_classes"]
    baked = config.get("teacher_guidance", 1.0) != 1.0  # guidance distilled into the weights
    guided_scale = 1.0 if baked else args.guidance
    if meta["objective"] == "ddpm":
        settings = [SamplingRecipe(sampler=s, steps=n) for s, n in TEACHER_SETTINGS]
    else:
        settings = [SamplingRecipe(steps=n) for n in STUDENT_STEPS]
    rows = []
    for recipe in settings:
        resolved = recipe.resolve(path)
        for kind in ("unconditional", "guided") if k else ("unconditional",):
            labels = torch.arange(args.n) * k // args.n if kind == "guided" else None
            scale = guided_scale if kind == "guided" else 1.0
            setting = (name, resolved.sampler, resolved.steps, kind, scale, meta["step"])
            grid = path.timesteps(resolved.steps, resolved.spacing)
            same = [r for r in args.earlier if setting == tuple(r[f] for f in ("model", "sampler", "steps", "samples",
                    "guidance", "checkpoint_step")) and path.timesteps(r["steps"], r["spacing"]) == grid
                    and r["checkpoint"] == checkpoint]  # fmt: skip
            if same:  # --reuse: these samples (the same grid and seeds) were drawn and scored before
                rows.append({**{f: v for f, v in same[0].items() if f != "checkpoint"}, "spacing": resolved.spacing})
                print(f"{name} {resolved.sampler}-{resolved.steps} {kind}: reused", flush=True)
                continue
            images, seconds = draw(model, path, meta, recipe.replace(guidance=scale), labels, args)
            m = evaluate_samples(images, labels, args.dataset, args.data_dir)
            row = {"model": name, "objective": meta["objective"], "method": config.get("distill_method"),
                   "sampler": resolved.sampler, "spacing": resolved.spacing, "steps": resolved.steps,
                   "nfe": resolved.steps, "samples": kind,
                   "guidance": scale, "fid": m["fid"], "kid": m["kid"]["mean"], "precision": m["precision"],
                   "recall": m["recall"], "class_accuracy": m.get("accuracy"),
                   "images_per_sec": round(args.n / seconds, 2), "checkpoint_step": meta["step"],
                   "features_sha256": m["features_sha256"]}  # fmt: skip
            grid = out / f"grid_{name}_{resolved.sampler.replace('+', 'p')}{resolved.steps}_{kind}.png"
            save_grid(images[:100] if kind == "unconditional" else first_per_class(images, labels, k), grid, nrow=10)
            row["grid"] = grid.name
            rows.append(row)
            print(f"{name} {resolved.sampler}-{resolved.steps} {kind} (guidance {scale:g}): FID {row['fid']:.3f}, "
                  f"{row['images_per_sec']:.1f} images/s", flush=True)  # fmt: skip
    return rows


# the grid of rows written before rows named it: every default but the consistency sampler's is unchanged since
OLD_SPACING = {"consistency": "trailing", "dpm++2m-sde": "trailing", "ddim": "uniform", "meanflow": "uniform"}


def earlier_rows(path: Path, args) -> list[dict]:
    """--reuse: the rows of an earlier results.json drawn with the same N (and seed and features: one_step.sh), each
    with its model's checkpoint path (a row is reused only for the same path: a name can move to a new run)."""
    if not path.is_file():
        return []
    earlier = json.loads(path.read_text())
    if earlier["n"] != args.n:
        return []
    paths = {**earlier["students"], "teacher": earlier["teacher"]}
    return [{**r, "spacing": r.get("spacing", OLD_SPACING[r["sampler"]]), "checkpoint": paths[r["model"]]}
            for r in earlier["rows"]]  # fmt: skip


def first_per_class(images: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """The first 10 samples of each class, a class per row (the first 10 classes)."""
    return torch.cat([images[labels == c][:10] for c in range(min(k, 10))])


def curves(students: dict[str, str], teacher_minutes: float, path: Path) -> bool:
    """FID (--eval-every, 256 samples) against total CPU minutes, one line per student run: a distilled
    student's minutes start where its teacher's training ended (and, for a run started from a --student, where
    that student's distillation ended), a model trained from scratch's at 0."""
    import matplotlib

    from cleardiffusion.checkpoint import load_checkpoint

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    drawn = False
    for name, checkpoint in students.items():
        metrics = Path(checkpoint).parent.parent / "metrics.jsonl"
        if not metrics.is_file():
            continue
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        config = json.loads((metrics.parent / "config.json").read_text())
        start = teacher_minutes if config.get("teacher") else 0.0
        start += load_checkpoint(config["student"])["elapsed"] / 60 if config.get("student") else 0.0
        points = [(start + r["elapsed"] / 60, r["fid"]) for r in records if "fid" in r]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=name)
            drawn = True
    ax.axvline(teacher_minutes, color="gray", linestyle=":", label="teacher trained")
    ax.set(xlabel="CPU minutes in all (a distillation's after its teacher's and its --student's; banks included)",
           ylabel="FID (--eval-every, 256 samples)", yscale="log")  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    if drawn:
        fig.savefig(path)
    plt.close(fig)
    return drawn


def default_teacher_minutes(teacher: str) -> float:
    from cleardiffusion.checkpoint import load_checkpoint

    state = load_checkpoint(teacher)
    return state["config"].get("time_budget") or state["elapsed"] / 60


def report(rows: list[dict], args, out: Path) -> str:
    from cleardiffusion.experiments.report import git_commit

    commit = git_commit()
    lines = [
        f"# Few-step generation on {args.dataset}: students at 1, 2 and 4 evaluations beside their teacher",
        "",
        f"- device: {device_name('cpu')}; torch {torch.__version__}; {date.today()}; commit {commit}",
        f"- command: `python benchmarks/one_step.py {' '.join(sys.argv[1:])}`",
        f"- {args.n} samples per row, the same per-sample seeds everywhere; FID with the shipped classifier features "
        f"({', '.join(sorted({r['features_sha256'][:16] for r in rows}))}) against the training split",
        "",
        "| model | sampler | grid | steps | samples | guidance | FID | KID | precision | recall | images/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['sampler']} | {r['spacing']} | {r['steps']} | {r['samples']} "
                     f"| {r['guidance']:g} "
                     f"| {r['fid']:.2f} | {r['kid']:.4f} | {r['precision']:.2f} | {r['recall']:.2f} "
                     f"| {r['images_per_sec']:.1f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--teacher", required=True, help="the DDPM checkpoint the students came from")
    p.add_argument("--student", action="append", default=[], metavar="NAME=CKPT", help="a few-step checkpoint")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--guidance", type=float, default=3.0, help="the teacher's (and an unguided student's) scale")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--out", required=True)
    p.add_argument(
        "--teacher-minutes",
        type=float,
        default=None,
        help="the teacher's training minutes (default: its --time-budget, else its checkpoint's clock)",
    )
    p.add_argument("--curves-only", action="store_true", help="redraw OUT/fid_vs_minutes.png only")
    p.add_argument("--reuse", action="store_true",
                   help="keep OUT/results.json's rows of the same model, checkpoint step, sampler, steps, grid "
                   "(its timesteps), samples and guidance instead of drawing them again (same --n)")  # fmt: skip
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.earlier = earlier_rows(out / "results.json", args) if args.reuse else []
    students = dict(s.split("=", 1) for s in args.student)
    teacher_minutes = args.teacher_minutes or default_teacher_minutes(args.teacher)
    if args.curves_only:
        curves(students, teacher_minutes, out / "fid_vs_minutes.png")
        return
    rows = measure("teacher", args.teacher, args, out)
    for name, checkpoint in students.items():
        rows += measure(name, checkpoint, args, out)
    has_curves = curves(students, teacher_minutes, out / "fid_vs_minutes.png")
    result = {"device": device_name("cpu"), "torch": torch.__version__, "date": str(date.today()),
              "dataset": args.dataset, "n": args.n, "teacher": args.teacher, "students": students, "rows": rows,
              "curves": "fid_vs_minutes.png" if has_curves else None}  # fmt: skip
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "README.md").write_text(report(rows, args, out))
    print(f"wrote {out}/results.json and README.md")


if __name__ == "__main__":
    main()
