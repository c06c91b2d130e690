"""overfit-one-image: seed 000's first experiment. Train on ONE digit, sample, and check the samples are it.

A one-image generator can only memorise, so every sample should reproduce the training image: seed 003
reports a reconstruction MSE below 0.01 (pixels in [-1, 1]). The scale of "small" is set by a baseline: the
MSE between the target and other real digits of the dataset.
"""

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..data import to_model_range
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
    train_steps: int
    batch_size: int  # noisy copies of the one image per step
    lr: float
    warmup: int
    n_samples: int  # DDPM samples drawn with all T steps
    baseline_images: int  # other real digits for the baseline MSE


QUICK = Config(0, 100, "linear-scaled", 100, 16, 1e-3, 10, 8, 256)
FULL = Config(0, 1000, "linear", 5000, 64, 5e-4, 100, 64, 5000)


def run(ctx: Context) -> dict:
    c = QUICK if ctx.quick else FULL
    data = ctx.load("train")
    target, label = data.images[c.image_index], int(data.labels[c.image_index])  # (C, H, W) uint8

    # ---- a dataset of one image, in the format its reader takes (IDX for digits)
    folder = ctx.cache / f"one-image-{ctx.dataset}-{c.image_index}"
    if target.shape[0] != 1:
        raise ValueError("overfit-one-image supports 1-channel data (mnist, fashion-mnist, synthetic)")
    write_idx(folder, "train", target.numpy()[None, 0], np.array([label]))
    config = train_config(
        ctx,
        f"overfit-one-image-{c.image_index}",
        dataset="mnist",
        data_dir=str(folder),
        timesteps=c.timesteps,
        schedule=c.schedule,
        steps=c.train_steps,
        batch_size=c.batch_size,
        lr=c.lr,
        warmup=c.warmup,
        log_every=max(c.train_steps // 50, 1),
    )
    trained = train_run(ctx, config)

    # ---- sample with DDPM over all T steps; compare each sample with the target in [-1, 1]
    images, seconds = sample_timed(ctx, trained, c.n_samples, sampler="ddpm", steps=c.timesteps)
    x0 = to_model_range(target)  # (C, H, W)
    samples = to_model_range(images)  # (n, C, H, W)
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
    ax.set(xlabel="step", ylabel="eps MSE", yscale="log", title="training loss on one image")
    loss_plot = save_figure(fig, ctx.images / "loss.png")

    results = {
        "target": {"index": c.image_index, "label": label},
        "sample_mse": mse,
        "mean_mse": mean_mse,
        "max_mse": float(max(mse)),
        "baseline_mse_other_digits": baseline,
        "nearest_other_digit_mse": nearest_other,
        "threshold": THRESHOLD,
        "reconstructs": bool(mean_mse < THRESHOLD),
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
