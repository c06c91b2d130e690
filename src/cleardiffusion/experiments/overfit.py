"""overfit-one-image: seed 000's first experiment. Train on ONE digit, sample, and check the samples are it.

A one-image generator can only memorise, so every sample should reproduce the training image: seed 003
reports a reconstruction MSE below 0.01 (pixels in [-1, 1]). The scale of "small" is set by a baseline: the
MSE between the target and other real digits of the dataset.
"""

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..data import from_model_range, to_model_range
from ..viz import save_grid
from .common import Context, sample_timed, train_config, train_run, write_idx
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
TRAJECTORY_FRAMES = 8  # columns of the denoising-trajectory figure


def run(ctx: Context) -> dict:
    c = CONFIGS[ctx.size]
    data = ctx.load("train")
    target, label = data.images[c.image_index], int(data.labels[c.image_index])  # (C, H, W) uint8

    # ---- a dataset of one image, in the format its reader takes (IDX for digits)
    folder = ctx.cache / f"one-image-{ctx.dataset}-{c.image_index}"
    if target.shape[0] != 1:
        raise ValueError("overfit-one-image supports 1-channel data (mnist, fashion-mnist, synthetic)")
    write_idx(folder, "train", target.numpy()[None, 0], np.array([label]))
    x0 = to_model_range(target)  # (C, H, W)

    # ---- train in stages (each resumes the last) and sample with DDPM over all T steps after each
    stages = []
    for steps in c.stages:
        config = train_config(
            ctx,
            f"overfit-one-image-{c.image_index}",
            dataset="mnist",
            data_dir=str(folder),
            timesteps=c.timesteps,
            schedule=c.schedule,
            steps=steps,
            batch_size=c.batch_size,
            lr=c.lr,
            warmup=c.warmup,
            log_every=max(c.stages[-1] // 50, 1),
            checkpoint_every=steps,
        )
        trained = train_run(ctx, config)
        images, seconds = sample_timed(ctx, trained, c.n_samples, sampler="ddpm", steps=c.timesteps)
        mse = ((to_model_range(images) - x0) ** 2).flatten(1).mean(1).tolist()
        stages.append({"steps": steps, "mean_mse": float(np.mean(mse)), "max_mse": float(max(mse))})
        print(f"overfit-one-image: {steps} steps: mean MSE {stages[-1]['mean_mse']:.4f}", flush=True)
    reconstructed = [st["steps"] for st in stages if st["mean_mse"] < THRESHOLD]
    steps_to_reconstruct = reconstructed[0] if reconstructed else None

    # ---- the denoising trajectory of two samples: x_t and the predicted x_0 at evenly spaced steps
    frames: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    every = max(c.timesteps // (TRAJECTORY_FRAMES - 1), 1)

    def keep(i: int, t: int, x_t: torch.Tensor, x0_pred: torch.Tensor) -> None:
        if i % every == 0 or i == c.timesteps - 1:
            frames[t] = (x_t.float().cpu().clone(), x0_pred.float().cpu().clone())

    sample_timed(ctx, trained, 2, sampler="ddpm", steps=c.timesteps, callback=keep)
    shown = sorted(frames, reverse=True)
    strip = [frames[t][k][j] for j in range(2) for k in range(2) for t in shown]
    strip = from_model_range(torch.stack(strip).clamp(-1, 1))
    samples = to_model_range(images)  # (n, C, H, W): the last stage's
    mse = ((samples - x0) ** 2).flatten(1).mean(1).tolist()
    others = data.images[torch.randperm(len(data), generator=torch.Generator().manual_seed(ctx.seed))]
    others = others[: c.baseline_images + 1]
    others = to_model_range(others[(others != target).flatten(1).any(1)][: c.baseline_images])
    baseline = float(((others - x0) ** 2).flatten(1).mean(1).mean())
    nearest_other = float(((others - x0) ** 2).flatten(1).mean(1).min())
    mean_mse = float(np.mean(mse))

    # ---- pictures: target next to the samples, the loss curve
    ctx.images.mkdir(parents=True, exist_ok=True)
    grid = save_grid(torch.cat([target[None], images[:15]]), ctx.images / "target_and_samples.png", nrow=8, scale=3)
    fig, (ax,) = figure()
    ax.plot(trained.steps, trained.losses)
    ax.set(xlabel="step", ylabel="training loss", yscale="log", title="training loss on one image")
    loss_plot = save_figure(fig, ctx.images / "loss.png")
    trajectory = save_grid(strip, ctx.images / "trajectory.png", nrow=len(shown), scale=3)

    results = {
        "target": {"index": c.image_index, "label": label},
        "sample_mse": mse,
        "mean_mse": mean_mse,
        "max_mse": float(max(mse)),
        "baseline_mse_other_digits": baseline,
        "nearest_other_digit_mse": nearest_other,
        "threshold": THRESHOLD,
        "reconstructs": bool(mean_mse < THRESHOLD),
        "stages": stages,
        "steps_to_reconstruct": steps_to_reconstruct,
        "trajectory_timesteps": shown,
        "final_loss": trained.final_loss,
        "train_seconds": trained.seconds,
        "sample_seconds": seconds,
        "parameters": trained.parameters,
    }
    report = Report(ctx.out, TITLE, QUESTION)
    report.heading("Result")
    verdict = "reconstructs the training image" if results["reconstructs"] else "does NOT yet reconstruct it"
    report.text(
        f"Mean reconstruction MSE over {c.n_samples} DDPM-{c.timesteps} samples: **{fmt(mean_mse)}** "
        f"(seed 003's bar: < {fmt(THRESHOLD)}), against {fmt(baseline)} between the target and other "
        f"real digits (nearest: {fmt(nearest_other)}). At this budget the model {verdict}."
    )
    report.table(
        ["quantity", "value"],
        [
            ("mean reconstruction MSE", mean_mse),
            ("worst sample MSE", results["max_mse"]),
            ("MSE target vs other digits (mean)", baseline),
            ("MSE target vs nearest other digit", nearest_other),
            ("reconstructs (mean MSE < threshold)", results["reconstructs"]),
            ("final training loss", trained.final_loss),
            ("training seconds", trained.seconds),
            ("sampling seconds", seconds),
            ("parameters", trained.parameters),
        ],
    )
    report.heading("Steps to reconstruct")
    when = f"after **{steps_to_reconstruct}** training steps" if steps_to_reconstruct else "at none of the stages"
    report.text(f"The mean reconstruction MSE first falls below {fmt(THRESHOLD)} {when}.")
    report.table(
        ["training steps", "mean MSE", "worst MSE", "below the bar"],
        [(st["steps"], st["mean_mse"], st["max_mse"], st["mean_mse"] < THRESHOLD) for st in stages],
    )
    report.heading("The trajectory")
    report.image(trajectory, "denoising trajectory")
    report.text(
        f"Two samples, left to right t = {', '.join(str(t) for t in shown)}: for each, the first row is x_t "
        "and the second the network's prediction of x_0 at that step (clipped to [-1, 1] for display)."
    )
    report.table(["sample", "MSE to target"], [(i, v) for i, v in enumerate(mse)])
    report.image(grid, "target (first) and samples")
    report.text(f"First image: the training target (label {label}); the rest: samples from independent x_T ~ N(0, I).")
    report.image(loss_plot, "training loss")
    report.heading("Setup")
    report.table(["setting", "value"], list(asdict(c).items()) + [("data", ctx.data_note)])
    return {
        "results": results,
        "config": asdict(c),
        "report": report,
        "headline": f"mean MSE {fmt(mean_mse)} vs {fmt(baseline)} to other digits",
    }
