"""`cleardiffusion toy`: seed 003's red-square DDPM, trained and sampled end to end in seconds."""

import argparse
import json
import math
from dataclasses import asdict, replace
from pathlib import Path

from ..files import output_dir, write_text
from . import positive_float, positive_int, seed, thread_count

# seed 003's results table: (metric, the seed's value)
SEED_TABLE = [
    ("final training loss", "~0.012"),
    ("reconstruction MSE", "< 0.01"),
    ("sampling wall clock", "~0.8 s (M2 CPU)"),
    ("training wall clock", "~5 min (M2 CPU)"),
    ("parameters", "~3 M"),
    ("alpha_bar_T", "~0.0001"),
]

EPILOG = """\
examples:
  cleardiffusion toy --out runs/toy                    # the default: trains in seconds, MSE well under 0.01
  cleardiffusion toy --preset seed --out runs/toy-seed # seed 003's table exactly (its samples are noise)
  cleardiffusion toy --prediction eps --out runs/toy-eps   # one of the four changes undone
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "toy",
        help="seed 003: DDPM on one 16x16 red square, trained and sampled in seconds",
        description="Train seed 003's 3-layer MLP denoiser on one 16x16 red-square image, sample it with "
        "DDPM ancestral sampling, and write metrics.json, sample.png, trajectory.png, trajectory.gif and "
        "loss.png. --preset seed is the seed's table exactly (its samples are noise); the default keeps the "
        "seed's network, loss, optimiser, T, 200 steps and sampler, and changes what measurement showed it must: "
        "the MLP predicts x_0 (eps derived from it), the scaled linear schedule, 64 copies per step, x_0 "
        "clipping (see benchmarks/results/toy_cpu.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="runs/toy", help="output folder (default: runs/toy)")
    p.add_argument(
        "--preset",
        choices=("default", "seed"),
        default="default",
        help="default: x0 prediction, linear-scaled, batch 64, x_0 clipping, 200 steps; seed: seed 003's "
        "table exactly (eps prediction, linear, batch 1, no clipping, 200 steps). Flags below override it",
    )
    p.add_argument("--seed", type=seed, default=0, help="seeds initialisation, training and sampling")
    p.add_argument("--steps", type=positive_int, default=None, help="optimisation steps (both presets: 200)")
    p.add_argument("--timesteps", type=positive_int, default=None, help="T, diffusion steps (both presets: 100)")
    p.add_argument(
        "--schedule",
        choices=("linear", "linear-scaled", "cosine"),
        default=None,
        help="betas: linear 1e-4..0.02 (the seed), linear-scaled (x1000/T, alpha_bar_T ~ 0; default), cosine",
    )
    p.add_argument(
        "--prediction",
        choices=("eps", "x0"),
        default=None,
        help="what the MLP outputs: eps (the seed) or x0, from which eps is derived (default); the loss is "
        "eps-MSE either way",
    )
    p.add_argument(
        "--variance",
        choices=("beta", "posterior"),
        default=None,
        help="reverse-step variance sigma_t^2: beta_t (the seed) or the posterior beta_tilde_t",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=None, help="noisy copies of the image per step (default 64, seed 1)"
    )
    p.add_argument("--lr", type=positive_float, default=None, help="AdamW learning rate (both presets: 1e-3)")
    p.add_argument(
        "--clip-x0",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="clamp the predicted x_0 to [-1, 1] while sampling",
    )
    p.add_argument("--threads", type=thread_count, default=None, help="torch CPU threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..toy import preset, reconstruction_mse, sample_toy, train_toy, validate

    config = preset(args.preset)
    flags = {
        "steps": args.steps,
        "timesteps": args.timesteps,
        "schedule": args.schedule,
        "prediction": args.prediction,
        "variance": args.variance,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "clip_x0": args.clip_x0,
        "threads": args.threads,
    }
    config = replace(config, seed=args.seed, **{k: v for k, v in flags.items() if v is not None})
    validate(config)
    out = output_dir(args.out)  # before training, so no work is lost

    run_ = train_toy(config)
    samples, sample_seconds, frames = sample_toy(run_, config, n=1, record=True)
    metrics = {
        "final_loss": sum(run_.losses[-20:]) / len(run_.losses[-20:]),
        "reconstruction_mse": reconstruction_mse(samples, run_.image),
        "train_seconds": run_.train_seconds,
        "sample_seconds": sample_seconds,
        "parameters": sum(p.numel() for p in run_.model.parameters()),
        "alpha_bar_T": run_.schedule.alpha_bar64[-1].item(),
        "config": {**asdict(config)},
    }
    write_outputs(out, run_, samples, frames)
    finite = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}
    write_text(out / "metrics.json", json.dumps(finite, indent=2, allow_nan=False) + "\n")  # NaN: null
    print_table(metrics, config, out, args.preset)
    return 0


def write_outputs(out: Path, run_, samples, frames) -> None:
    """sample.png, trajectory.png (evenly spaced x_t over predicted x_0), trajectory.gif, loss.png."""
    import torch

    from ..viz import evenly_spaced, plot_curves, save_gif, save_grid

    save_grid(torch.stack([run_.image, samples[0]]), out / "sample.png", nrow=2, scale=16)
    picks = evenly_spaced(len(frames), 10)
    x_ts = [frames[i][1][0] for i in picks] + [samples[0]]
    x0s = [frames[i][2][0] for i in picks] + [samples[0]]
    save_grid(torch.stack(x_ts + x0s), out / "trajectory.png", nrow=len(x_ts), scale=8)
    gif_frames = [torch.stack([x_t[0], x0[0]]) for _, x_t, x0 in frames] + [torch.stack([samples[0]] * 2)]
    save_gif(gif_frames, out / "trajectory.gif", nrow=2, scale=12)
    plot_curves({"eps MSE": run_.losses}, out / "loss.png", title="red-square toy: training loss")


def print_table(metrics: dict, config, out: Path, preset: str = "default") -> None:
    from ..schedule import NoiseSchedule

    ours = [
        f"{metrics['final_loss']:.4f} (mean of last 20 steps)",
        f"{metrics['reconstruction_mse']:.2g}",
        f"{metrics['sample_seconds']:.3f} s ({config.timesteps} steps, this CPU)",
        f"{metrics['train_seconds']:.2f} s ({config.steps} steps, this CPU)",
        f"{metrics['parameters']:,}",
        f"{metrics['alpha_bar_T']:.2g} ({config.schedule} schedule, T = {config.timesteps})",
    ]
    rows = [("metric", "seed 003", f"cleardiffusion (--preset {preset})")] + [
        (m, s, o) for (m, s), o in zip(SEED_TABLE, ours)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for j, row in enumerate(rows):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if j == 0:
            print("-+-".join("-" * w for w in widths))
    if metrics["alpha_bar_T"] > 0.01:
        print(
            f"note: alpha_bar_T = {metrics['alpha_bar_T']:.3f}, not ~0.0001 as the seed says: x_T keeps "
            f"{metrics['alpha_bar_T'] ** 0.5:.0%} of the image's amplitude while sampling starts from N(0, I)."
            " --schedule linear-scaled makes N(0, I) the right start (see benchmarks/results/toy_cpu.md)."
        )
    elif config.schedule != "linear":
        seed_bar = NoiseSchedule.from_name("linear", config.timesteps).alpha_bar64[-1].item()
        print(
            f"note: the seed says alpha_bar_T ~ 0.0001, but its own schedule (--schedule linear) gives "
            f"{seed_bar:.3f} at T = {config.timesteps}: x_T would keep {seed_bar**0.5:.0%} of the image while "
            f"sampling starts from N(0, I). The {config.schedule} schedule used here gives "
            f"{metrics['alpha_bar_T']:.2g}."
        )
    print(f"wrote {out}/: metrics.json sample.png trajectory.png trajectory.gif loss.png")
