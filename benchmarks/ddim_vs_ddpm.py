"""Wall clock of DDIM (10/25/50 steps) against DDPM (300/1000 steps), and of guided against plain sampling.

Seed 000 claims DDIM is 10-50x faster than DDPM at similar quality; the issue asks DDIM-50 to be at least
15x faster than DDPM-1000 on the same model. Sampling time is steps x (one denoiser forward), so the ratio
should be close to the ratio of steps (20x for 50 vs 1000); this measures it end to end, including the
per-step sampler arithmetic. It also times classifier-free guidance (one batched forward of 2B inputs)
against the plain conditional model at equal steps.

The weights are random: speed does not depend on them. The network runs in fp32 on a CPU and in bf16 on
CUDA, as the table in benchmarks/results/sampler_speed_cpu.md was measured (by this script, then named
sampler_speed.py; sampler_speed.py now measures the default sampler's fast path). Run:

    python benchmarks/ddim_vs_ddpm.py [--device cuda] [--batch 64] [--out benchmarks/results/FILE.md]
"""

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import torch
from sampler_speed import device_name  # benchmarks/ is on the path of a script run from it

from cleardiffusion.generate import generate_images
from cleardiffusion.models import count_parameters
from cleardiffusion.models.unet import unet_from_preset
from cleardiffusion.recipe import SamplingRecipe
from cleardiffusion.schedule import NoiseSchedule


def time_sampling(model, schedule, device, n, sampler, steps, labels=None, guidance=1.0, repeats=1) -> float:
    """Median seconds to draw `n` samples in one batch."""
    times = []
    precision = "bf16" if device.startswith("cuda") else "fp32"  # as the committed table was measured
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        recipe = SamplingRecipe(sampler=sampler, steps=steps, guidance=guidance)
        for _ in generate_images(model, schedule, n=n, shape=(1, 28, 28), recipe=recipe, labels=labels,
                                 batch_size=n, device=device, precision=precision):  # fmt: skip
            pass
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16, help="samples per run")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the short runs (median)")
    parser.add_argument("--out", default=None, help="markdown file for the results")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = unet_from_preset("seed-minimal", in_channels=1, image_size=28).to(args.device).eval()
    cond = unet_from_preset("seed-minimal", in_channels=1, image_size=28, num_classes=10).to(args.device).eval()
    schedule = NoiseSchedule.from_name("linear", 1000)
    n = args.batch
    time_sampling(model, schedule, args.device, n, "ddim", 3)  # warm-up

    rows = []
    for sampler, steps in [("ddim", 10), ("ddim", 25), ("ddim", 50), ("ddpm", 300), ("ddpm", 1000)]:
        repeats = args.repeats if steps <= 50 else 1
        seconds = time_sampling(model, schedule, args.device, n, sampler, steps, repeats=repeats)
        rows.append((f"{sampler.upper()}-{steps}", steps, seconds))
        print(f"{sampler}-{steps}: {seconds:.2f} s for {n} samples", file=sys.stderr)
    ddpm_1000 = rows[-1][2]

    labels = torch.arange(n) % 10
    plain = time_sampling(cond, schedule, args.device, n, "ddim", 50, labels, 1.0, args.repeats)
    guided = time_sampling(cond, schedule, args.device, n, "ddim", 50, labels, 3.0, args.repeats)

    from cleardiffusion.experiments.report import git_commit

    commit = git_commit()
    lines = [
        "# Sampler wall clock: DDIM vs DDPM, guided vs plain (seed-minimal, 28x28x1)",
        "",
        f"- device: {device_name(args.device)}; torch {torch.__version__}; {date.today()}; commit {commit}",
        f"- command: `python benchmarks/ddim_vs_ddpm.py {' '.join(sys.argv[1:])}`",
        f"- model: seed-minimal, {count_parameters(model):,} parameters, random weights; T = 1000; "
        f"{n} samples per run in one batch{'; bf16 autocast' if args.device.startswith('cuda') else ''}",
        "",
        "| sampler | steps | seconds | ms per step | images/s | speed-up vs DDPM-1000 |",
        "|---|---|---|---|---|---|",
    ]
    for name, steps, seconds in rows:
        lines.append(
            f"| {name} | {steps} | {seconds:.2f} | {1000 * seconds / steps:.1f} | {n / seconds:.1f} "
            f"| {ddpm_1000 / seconds:.1f}x |"
        )
    lines += [
        "",
        "| DDIM-50, conditional model | seconds | cost vs plain |",
        "|---|---|---|",
        f"| plain conditional (s = 1, one forward of B) | {plain:.2f} | 1.00x |",
        f"| classifier-free guidance (s = 3, one forward of 2B) | {guided:.2f} | {guided / plain:.2f}x |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
