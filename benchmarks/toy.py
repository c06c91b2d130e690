"""Seed 003's red-square toy: training and sampling time, reconstruction MSE over seeds, three configurations.

    python benchmarks/toy.py [--seeds 10] [--repeats 5] [--threads 1] [--out benchmarks/results/toy_cpu.md]

Configurations side by side: `default` (the CLI's default: x0 prediction, scaled linear schedule, batch 64),
`default-seed-schedule` (the same with the seed's linear 1e-4..0.02 schedule, alpha_bar_T = 0.364),
`default-eps` (the same with the seed's eps prediction) and `seed` (seed 003's table exactly). Times are the
median of `repeats` runs of seed 0; MSE is one raw sample per seed (as `cleardiffusion toy` reports it).
"""

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import torch

from cleardiffusion.toy import preset, reconstruction_mse, sample_toy, train_toy
from cleardiffusion.viz import evenly_spaced, save_grid

CONFIGS = {
    "default": lambda: preset("default"),
    "seed": lambda: preset("seed"),
    "default-seed-schedule": lambda: replace(preset("default"), schedule="linear"),
    "default-eps": lambda: replace(preset("default"), prediction="eps"),
}


def machine() -> str:
    """CPU model, core count and load average, for the results header."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line)
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, load average {load} (1, 5, 15 min); torch {torch.__version__}"


def trajectory_rows(name, config, out_dir: Path) -> list[str]:
    """Seed 0's reverse trajectory: how much of the square x_t and predicted x_0 hold at evenly spaced t."""
    run = train_toy(config)
    samples, _, frames = sample_toy(run, config, record=True)
    target = run.image.flatten()
    rows = []
    for i in evenly_spaced(len(frames), 6):
        t, x_t, x0_pred = frames[i]
        x_t = x_t[0].flatten()
        corr = torch.corrcoef(torch.stack([x_t, target]))[0, 1].item()
        rows.append(
            f"| {name} | {t + 1} | {corr:+.2f} | {x_t.std().item():.2f} | "
            f"{torch.mean((x0_pred[0].flatten() - target) ** 2).item():.3f} |"
        )
    picks = evenly_spaced(len(frames), 10)
    strip = [frames[i][1][0] for i in picks] + [samples[0]] + [frames[i][2][0] for i in picks] + [samples[0]]
    save_grid(torch.stack(strip), out_dir / f"toy_trajectory_{name}.png", nrow=11, scale=6)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/toy_cpu.md")
    args = p.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header_machine = machine()
    lines = [
        "# Seed 003 red-square toy: time and reconstruction on CPU",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {header_machine}; torch threads {args.threads}",
        "- targets: reconstruction MSE < 0.01 (pixels in [-1, 1], raw sample) for >= 9 of 10 seeds; "
        "200 training steps <= 6 s; 100-step sampling <= 0.1 s",
        "",
        "| config | prediction | steps x batch | schedule | clip x0 | train s (median) | sample s (median) "
        "| final loss (median) | MSE median | MSE min..max | seeds < 0.01 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    traj = [
        "",
        "## The reverse trajectory, seed 0",
        "",
        "corr(x_t, x_0): how much of the square x_t holds; x0_pred MSE: the network's guess of the image.",
        "",
        "| config | t | corr(x_t, x_0) | std(x_t) | x0_pred MSE |",
        "|---|---|---|---|---|",
    ]
    for name, make in CONFIGS.items():
        config = replace(make(), threads=args.threads)
        train_s, sample_s = [], []
        for _ in range(args.repeats):
            run = train_toy(replace(config, seed=0))
            train_s.append(run.train_seconds)
            sample_s.append(sample_toy(run, config)[1])
        mses, losses = [], []
        for seed in range(args.seeds):
            c = replace(config, seed=seed)
            run = train_toy(c)
            mses.append(reconstruction_mse(sample_toy(run, c)[0], run.image))
            losses.append(sum(run.losses[-20:]) / 20)
        ok = sum(m < 0.01 for m in mses)
        lines.append(
            f"| {name} | {config.prediction} | {config.steps} x {config.batch_size} | {config.schedule} "
            f"| {config.clip_x0} | "
            f"{statistics.median(train_s):.2f} | {statistics.median(sample_s):.3f} | "
            f"{statistics.median(losses):.4f} | {statistics.median(mses):.2g} | {min(mses):.2g}..{max(mses):.2g} "
            f"| {ok}/{args.seeds} |"
        )
        print(lines[-1], flush=True)
        traj += trajectory_rows(name, replace(config, seed=0), out.parent)
    notes = out.read_text().partition("\n## Notes")[1:] if out.exists() else ("", "")
    out.write_text("\n".join(lines + traj) + "\n" + "".join(notes))  # hand-written notes are kept
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
