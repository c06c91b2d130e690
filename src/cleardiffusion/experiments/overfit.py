"""overfit-one-image: seed 000's first experiment. Train on ONE digit, sample, and check the samples are it.

A one-image generator can only memorise, so every sample should reproduce the training image: seed 003
reports a reconstruction MSE below 0.01 (pixels in [-1, 1]). The scale of "small" is set by a baseline: the
MSE between the target and other real digits of the dataset.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import from_model_range, to_model_range
from ..viz import save_grid
from .common import Context, TrainedRun, sample_timed, train_config, train_run, write_idx
from .report import Report, figure, fmt, save_figure

TITLE = "Overfit one image"
QUESTION = (
    "Seed 000, first experiment: train on a single digit, sample; the samples should reconstruct it "
    "nearly exactly (seed 003: reconstruction MSE < 0.01)."
)
THRESHOLD = 0.01  # seed 003's reconstruction MSE


@dataclass(frozen=True)
class Config:
    image_index: int  # which training image to memorise
    timesteps: int
    schedule: str
    stages: tuple[int, ...]  # sample after this many training steps (the last: the whole run)
    batch_size: int  # noisy copies of the one image per step
    lr: float
    warmup: int
    n_samples: int  # DDPM samples drawn with all T steps
    baseline_images: int  # other real digits for the baseline MSE


QUICK = Config(0, 100, "linear-scaled", (30, 60), 16, 1e-3, 10, 8, 256)
CPU = Config(0, 1000, "linear", (250, 500, 1000, 1500), 64, 1e-3, 100, 16, 5000)
FULL = Config(0, 1000, "linear", (500, 1000, 2500, 5000), 64, 5e-4, 100, 64, 5000)
CONFIGS = {"quick": QUICK, "cpu": CPU, "full": FULL}
RENDER_NEEDS = (
    "target",
    "sample_mse",
    "mean_mse",
    "max_mse",
    "baseline_mse_other_digits",
    "nearest_other_digit_mse",
    "threshold",
    "reconstructs",
    "stages",
    "steps_to_reconstruct",
    "trajectory_timesteps",
    "final_loss",
    "train_seconds",
    "sample_seconds",
    "parameters",
    "loss_curve",
)  # keys of results.json["results"] that render reads
TRAJECTORY_FRAMES = 8  # columns of the denoising-trajectory figure


def measure(ctx: Context) -> dict:
    """Train on one image in stages, sampling after each; the trajectory; the MSE to other real digits."""
    c = CONFIGS[ctx.size]
    data = ctx.load("train")
    target, label = data.images[c.image_index], int(data.labels[c.image_index])  # (C, H, W) uint8
    if target.shape[0] != 1:
        raise ValueError("overfit-one-image supports 1-channel data (mnist, fashion-mnist, synthetic)")
    # ---- a dataset of one image, in the format its reader takes (IDX for digits), in a folder of its own
    folder = ctx.cache / f"one-image-{ctx.dataset}-{ctx.data_key}-{c.image_index}"
    write_idx(folder, "train", target.numpy()[None, 0], np.array([label]))
    x0 = to_model_range(target)  # (C, H, W)

    # ---- train in stages (each resumes the last) and sample with DDPM over all T steps after each
    stages, log_every = [], max(c.stages[-1] // 50, 1)
    recipe = dict(timesteps=c.timesteps, schedule=c.schedule, batch_size=c.batch_size, lr=c.lr, warmup=c.warmup)
    for steps in c.stages:
        config = train_config(ctx, f"overfit-one-image-{c.image_index}", dataset="mnist", data_dir=str(folder),
                              steps=steps, log_every=log_every, checkpoint_every=steps, **recipe)  # fmt: skip
        trained = train_run(ctx, config)
        images, seconds = sample_timed(ctx, trained, c.n_samples, sampler="ddpm", steps=c.timesteps)
        mse = ((to_model_range(images) - x0) ** 2).flatten(1).mean(1).tolist()
        stages.append({"steps": steps, "mean_mse": float(np.mean(mse)), "max_mse": float(max(mse))})
        print(f"overfit-one-image: {steps} steps: mean MSE {stages[-1]['mean_mse']:.4f}", flush=True)
    reconstructed = [st["steps"] for st in stages if st["mean_mse"] < THRESHOLD]
    shown = trajectory(ctx, trained, c.timesteps)
    save_grid(torch.cat([target[None], images[:15]]), ctx.images / "target_and_samples.png", nrow=8, scale=3)
    others = data.images[torch.randperm(len(data), generator=torch.Generator().manual_seed(ctx.seed))]
    others = others[: c.baseline_images + 1]
    others = to_model_range(others[(others != target).flatten(1).any(1)][: c.baseline_images])
    distances = ((others - x0) ** 2).flatten(1).mean(1)  # (baseline_images,)
    mean_mse = float(np.mean(mse))
    results = {
        "target": {"index": c.image_index, "label": label},
        "sample_mse": mse,
        "mean_mse": mean_mse,
        "max_mse": float(max(mse)),
        "baseline_mse_other_digits": float(distances.mean()),
        "nearest_other_digit_mse": float(distances.min()),
        "threshold": THRESHOLD,
        "reconstructs": bool(mean_mse < THRESHOLD),
        "stages": stages,
        "steps_to_reconstruct": reconstructed[0] if reconstructed else None,
        "trajectory_timesteps": shown,
        "final_loss": trained.final_loss,
        "train_seconds": trained.seconds,
        "sample_seconds": seconds,
        "parameters": trained.parameters,
        "loss_curve": {"step": trained.steps, "loss": trained.losses},
    }
    headline = f"mean MSE {fmt(mean_mse)} vs {fmt(results['baseline_mse_other_digits'])} to other digits"
    return {"results": results, "config": asdict(c), "headline": headline}


def trajectory(ctx: Context, trained: TrainedRun, timesteps: int) -> list[int]:
    """OUT/images/trajectory.png: x_t and the predicted x_0 of two samples at evenly spaced steps; their t."""
    frames: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    every = max(timesteps // (TRAJECTORY_FRAMES - 1), 1)

    def keep(i: int, t: int, x_t: torch.Tensor, x0_pred: torch.Tensor) -> None:
        if i % every == 0 or i == timesteps - 1:
            frames[t] = (x_t.float().cpu().clone(), x0_pred.float().cpu().clone())

    sample_timed(ctx, trained, 2, sampler="ddpm", steps=timesteps, callback=keep)
    shown = sorted(frames, reverse=True)
    strip = [frames[t][k][j] for j in range(2) for k in range(2) for t in shown]
    save_grid(
        from_model_range(torch.stack(strip).clamp(-1, 1)), ctx.images / "trajectory.png", nrow=len(shown), scale=3
    )
    return shown


def render(results: dict, out: Path) -> Report:
    """The report and its loss plot from results.json."""
    r, c = results["results"], results["config"]
    mean_mse, baseline, nearest, stages = (
        r["mean_mse"],
        r["baseline_mse_other_digits"],
        r["nearest_other_digit_mse"],
        r["stages"],
    )
    fig, (ax,) = figure()
    ax.plot(r["loss_curve"]["step"], r["loss_curve"]["loss"])
    ax.set(xlabel="step", ylabel="training loss", yscale="log", title="training loss on one image")
    loss_plot = save_figure(fig, out / "images" / "loss.png")
    report = Report(out, TITLE, QUESTION)
    report.heading("Result")
    verdict = "reconstructs the training image" if r["reconstructs"] else "does NOT yet reconstruct it"
    report.text(
        f"Mean reconstruction MSE over {c['n_samples']} DDPM-{c['timesteps']} samples: **{fmt(mean_mse)}** "
        f"(seed 003's bar: < {fmt(r['threshold'])}), against {fmt(baseline)} between the target and other "
        f"real digits (nearest: {fmt(nearest)}). At this budget the model {verdict}."
    )
    report.table(
        ["quantity", "value"],
        [
            ("mean reconstruction MSE", mean_mse),
            ("worst sample MSE", r["max_mse"]),
            ("MSE target vs other digits (mean)", baseline),
            ("MSE target vs nearest other digit", nearest),
            ("reconstructs (mean MSE < threshold)", r["reconstructs"]),
            ("final training loss", r["final_loss"]),
            ("training seconds", r["train_seconds"]),
            ("sampling seconds", r["sample_seconds"]),
            ("parameters", r["parameters"]),
        ],
    )
    report.heading("Steps to reconstruct")
    first = r["steps_to_reconstruct"]
    when = f"after **{first}** training steps" if first else "at none of the stages"
    report.text(f"The mean reconstruction MSE first falls below {fmt(r['threshold'])} {when}.")
    report.table(
        ["training steps", "mean MSE", "worst MSE", "below the bar"],
        [(st["steps"], st["mean_mse"], st["max_mse"], st["mean_mse"] < r["threshold"]) for st in stages],
    )
    report.heading("The trajectory")
    report.image(out / "images" / "trajectory.png", "denoising trajectory")
    report.text(
        f"Two samples, left to right t = {', '.join(str(t) for t in r['trajectory_timesteps'])}: for each, the first "
        "row is x_t and the second the network's prediction of x_0 at that step (clipped to [-1, 1] for display)."
    )
    report.table(["sample", "MSE to target"], list(enumerate(r["sample_mse"])))
    report.image(out / "images" / "target_and_samples.png", "target (first) and samples")
    label = r["target"]["label"]
    report.text(f"First image: the training target (label {label}); the rest: samples from independent x_T ~ N(0, I).")
    report.image(loss_plot, "training loss")
    report.heading("Setup")
    setup = [(k, tuple(v) if isinstance(v, list) else v) for k, v in c.items()]  # JSON lists were tuples
    report.table(["setting", "value"], [*setup, ("data", results["data"])])
    return report
