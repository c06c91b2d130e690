"""sampling-cost: seed 003's observation, measured: does sampling time scale as params x pixels x steps?

Seed 003 extrapolates its 0.8 s (100 DDPM steps of a 3 M-parameter MLP on 16x16) to an 86 M-parameter model
at 256x256 by multiplying the parameter and pixel ratios. We time DDPM sampling (untrained weights: the cost
does not depend on them) for the MLP and the U-Net presets at batch 1 and a larger batch, and fit
    time = a * (params * pixels * steps) + b          (least squares, per batch size)
and a log-log slope; the same fit against counted multiply-adds (conv + linear) * steps shows which proxy
predicts cost. pixels = H * W (the seed's "pixel count").
"""

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..fastpath import sampling_model
from ..models import count_parameters
from ..models.mlp import MLPConfig, MLPDenoiser
from ..models.unet import unet_from_preset
from ..samplers import ddpm_sample, make_timesteps
from ..schedule import NoiseSchedule
from .common import Context, synchronize
from .report import Report, figure, fmt, save_figure

TITLE = "Sampling cost against parameters x pixels x steps"
QUESTION = (
    "Seed 003: sampling cost is 100 forward passes of the denoiser; does time scale like parameters x "
    "pixels x steps, so that a bigger model at a higher resolution is 'seconds to minutes' per sample?"
)

# (name, kind, shape (C, H, W), options)
MODELS_QUICK = [
    ("MLP 768-256", "mlp", (3, 16, 16), {"hidden_dim": 256}),
    ("MLP seed 003 (768-1024)", "mlp", (3, 16, 16), {"hidden_dim": 1024}),
    (
        "U-Net seed-minimal c8",
        "unet",
        (1, 28, 28),
        {"preset": "seed-minimal", "base_channels": 8, "norm_groups": 8},
    ),
    (
        "U-Net seed-minimal c16",
        "unet",
        (1, 28, 28),
        {"preset": "seed-minimal", "base_channels": 16, "norm_groups": 8},
    ),
    (
        "U-Net seed-minimal c16 @16",
        "unet",
        (1, 16, 16),
        {"preset": "seed-minimal", "base_channels": 16, "norm_groups": 8},
    ),
]
MODELS_FULL = [
    ("MLP 768-256", "mlp", (3, 16, 16), {"hidden_dim": 256}),
    ("MLP seed 003 (768-1024)", "mlp", (3, 16, 16), {"hidden_dim": 1024}),
    ("MLP 3072-2048", "mlp", (3, 32, 32), {"hidden_dim": 2048}),
    ("U-Net seed-minimal c32", "unet", (1, 28, 28), {"preset": "seed-minimal", "base_channels": 32}),
    ("U-Net seed-minimal", "unet", (1, 28, 28), {"preset": "seed-minimal"}),
    ("U-Net small (the CPU recipe)", "unet", (1, 28, 28), {"preset": "small"}),
    ("U-Net seed-minimal @56", "unet", (1, 56, 56), {"preset": "seed-minimal"}),
    ("U-Net seed-cifar", "unet", (3, 32, 32), {"preset": "seed-cifar"}),
    ("U-Net ddpm-cifar10", "unet", (3, 32, 32), {"preset": "ddpm-cifar10"}),
]


@dataclass(frozen=True)
class Config:
    steps: tuple[int, ...]
    batches: tuple[int, ...]
    repeats: int  # timing = the fastest of this many runs


QUICK = Config(steps=(2, 4), batches=(1, 8), repeats=2)
CPU = Config(steps=(10, 50), batches=(1, 16), repeats=2)
FULL = Config(steps=(10, 50, 100), batches=(1, 64), repeats=3)
CONFIGS = {"quick": QUICK, "cpu": CPU, "full": FULL}
RENDER_NEEDS = (
    "timings",
    "fits",
    "seed_mlp_100_steps_seconds",
    "extrapolation_86M_256px_100_steps_seconds",
)  # keys of results.json["results"] that render reads


def build(kind: str, shape: tuple[int, int, int], options: dict) -> nn.Module:
    if kind == "mlp":
        return MLPDenoiser(MLPConfig(data_dim=math.prod(shape), **options))
    options = dict(options)
    preset = options.pop("preset")
    return unet_from_preset(preset, shape[0], shape[1], **options)


@torch.no_grad()
def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of one forward pass per sample in Conv2d and Linear layers (not attention matmuls)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        per_sample = output.numel() // output.shape[0]
        if isinstance(module, nn.Conv2d):
            total += per_sample * module.in_channels // module.groups * math.prod(module.kernel_size)
        else:
            total += per_sample * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        model(x[:1], torch.zeros(1, dtype=torch.long, device=x.device))
    finally:
        for h in handles:
            h.remove()
    return total


def time_sampling(
    ctx: Context, model: nn.Module, schedule: NoiseSchedule, x_T: torch.Tensor, steps: int, repeats: int
) -> float:
    """Fastest of `repeats` DDPM samplings over `steps` respaced steps, in seconds."""
    timesteps = make_timesteps(schedule.T, steps)
    g = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    best = float("inf")
    for _ in range(repeats):
        synchronize(ctx.device)
        start = time.perf_counter()
        ddpm_sample(sampling_model(model, ctx.device), schedule, x_T, timesteps, generator=g)
        synchronize(ctx.device)
        best = min(best, time.perf_counter() - start)
    return best


def fit(x: np.ndarray, y: np.ndarray) -> dict:
    """Least squares y = a x + b with R^2, and the log-log slope of y against x."""
    A = np.stack([x, np.ones_like(x)], 1)
    (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    r2 = 1 - np.sum((y - (a * x + b)) ** 2) / max(np.sum((y - y.mean()) ** 2), 1e-300)
    slope, _ = np.polyfit(np.log(x), np.log(y), 1)
    return {"a": float(a), "b": float(b), "r2": float(r2), "loglog_slope": float(slope)}


def measure(ctx: Context) -> dict:
    """Time DDPM sampling of every model at every batch and step count; fit time against the two proxies."""
    c = CONFIGS[ctx.size]
    schedule = NoiseSchedule.from_name("linear", 1000).to(ctx.device)
    rows = []
    for name, kind, shape, options in MODELS_QUICK if ctx.quick else MODELS_FULL:  # cpu: the full list
        torch.manual_seed(ctx.seed)
        model = build(kind, shape, options).to(ctx.device).eval()
        params, pixels = count_parameters(model), shape[1] * shape[2]
        for batch in c.batches:
            x_T = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(ctx.seed)).to(ctx.device)
            macs = count_macs(model, x_T)
            time_sampling(ctx, model, schedule, x_T, 1, 1)  # warm-up
            for steps in c.steps:
                seconds = time_sampling(ctx, model, schedule, x_T, steps, c.repeats)
                rows.append({"model": name, "kind": kind, "shape": list(shape), "params": params, "pixels": pixels,
                             "macs": macs, "batch": batch, "steps": steps, "seconds": seconds,
                             "ms_per_step_per_sample": 1000 * seconds / steps / batch})  # fmt: skip
        print(f"sampling-cost: {name}: {params} parameters timed", flush=True)
    fits = {}
    for batch in c.batches:
        sub = [r for r in rows if r["batch"] == batch]
        y = np.array([r["seconds"] for r in sub])
        fits[str(batch)] = {key: fit(np.array([proxy(r, key) for r in sub], float), y) for key in PROXIES}
    # seed 003's extrapolation: an 86 M-parameter model at 256x256, 100 steps, batch 1, by the fitted law
    law = fits[str(c.batches[0])]["params_x_pixels_x_steps"]
    seed_mlp = [r for r in rows if r["model"].startswith("MLP seed") and r["batch"] == 1]
    # 100 steps at the per-step time of its longest measured run (the fastest step of a short run undercounts)
    longest = max(seed_mlp, key=lambda r: r["steps"]) if seed_mlp else None
    results = {
        "timings": rows,
        "fits": fits,
        "extrapolation_86M_256px_100_steps_seconds": float(law["a"] * 86e6 * 256 * 256 * 100 + law["b"]),
        "seed_mlp_100_steps_seconds": 100 * longest["seconds"] / longest["steps"] if longest else None,
    }
    headline = f"R^2 params*pixels*steps {fmt(law['r2'])}, slope {fmt(law['loglog_slope'])}"
    return {"results": results, "config": asdict(c), "headline": headline}


PROXIES = {"params_x_pixels_x_steps": "params x pixels x steps", "macs_x_steps": "multiply-adds x steps"}


def proxy(row: dict, key: str) -> float:
    """A timing's cost proxy: params x pixels x steps, or multiply-adds x steps."""
    return (row["params"] * row["pixels"] if key.startswith("params") else row["macs"]) * row["steps"]


def plot(results: dict, out: Path) -> Path:
    """Sampling seconds against each proxy, log-log, with the fitted line per batch size."""
    rows, fits = results["results"]["timings"], results["results"]["fits"]
    fig, axes = figure(2, 5, 4)
    for ax, (key, label) in zip(axes, PROXIES.items(), strict=True):
        for batch, color in zip(results["config"]["batches"], ("C0", "C1", "C2"), strict=False):
            for family, marker in (("mlp", "s"), ("unet", "o")):
                sub = [r for r in rows if r["batch"] == batch and r["kind"] == family]
                ax.scatter([proxy(r, key) for r in sub], [r["seconds"] for r in sub], color=color, marker=marker,
                           label=f"{family}, batch {batch}")  # fmt: skip
            f = fits[str(batch)][key]
            xs = [proxy(r, key) for r in rows if r["batch"] == batch]
            grid = np.geomspace(min(xs), max(xs), 50)
            ax.plot(grid, np.maximum(f["a"] * grid + f["b"], 1e-6), color=color, linewidth=1,
                    label=f"fit batch {batch}: R^2 {f['r2']:.2f}")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel=label, ylabel="sampling seconds")
    return save_figure(fig, out / "images" / "sampling_cost.png")


def render(results: dict, out: Path) -> Report:
    """The report and its plot from results.json."""
    r, c = results["results"], results["config"]
    report = Report(out, TITLE, QUESTION)
    report.heading("Fits")
    report.text(
        "time = a * x + b by least squares over every model and step count, per batch size, with x either "
        "the seed's proxy (params x pixels x steps) or counted multiply-adds x steps; slope: of log time "
        "against log x (1 = proportional)."
    )
    report.table(
        ["batch", "x", "a (s per unit)", "b (s)", "R^2", "log-log slope"],
        [(b, key, f["a"], f["b"], f["r2"], f["loglog_slope"]) for b, d in r["fits"].items() for key, f in d.items()],
    )
    report.image(plot(results, out), "sampling time against the two cost proxies")
    report.heading("Seed 003's numbers on this device")
    report.table(
        ["quantity", "value"],
        [
            ("seed MLP, 100 DDPM steps, batch 1 (s; seed: ~0.8 on an M2 CPU)", r["seed_mlp_100_steps_seconds"]),
            ("86 M params at 256x256, 100 steps, batch 1, by the params x pixels fit (s)",
             r["extrapolation_86M_256px_100_steps_seconds"]),
        ],
    )  # fmt: skip
    report.text(
        "The MLP's parameter count already contains its pixel count (its first layer is pixels wide), "
        "so params x pixels counts pixels twice for it; for a convolutional U-Net the weights are reused "
        "at every pixel, so multiply-adds ~ params x pixels only up to the resolution of each level. "
        "Compare the R^2 of the two proxies above before trusting an extrapolation."
    )
    report.heading("Timings")
    keys = ("model", "params", "pixels", "macs", "batch", "steps", "seconds", "ms_per_step_per_sample")
    report.table(
        ["model", "params", "pixels", "MACs / sample", "batch", "steps", "seconds", "ms / step / sample"],
        [tuple(row[k] for k in keys) for row in r["timings"]],
    )
    report.text(
        f"Each time is the fastest of {c['repeats']} DDPM samplings (untrained weights, respaced steps of a "
        "T = 1000 linear schedule) after a warm-up, with the device synchronised around the clock."
    )
    return report
