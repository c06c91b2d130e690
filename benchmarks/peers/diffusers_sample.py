"""The peer of benchmarks/sampler_speed.py: diffusers' pipeline sampling a network of the `small` preset's size.

Runs in the benchmark's separate virtual environment (torch==2.13.0 + diffusers), never imports cleardiffusion.
The network: UNet2DModel with the `small` preset's layout (28x28x1, blocks of 16, 32 and 64 channels, one
residual block per level, no attention, GroupNorm(8)), random weights (speed does not depend on them). The
sampler: DDPMPipeline driving DPMSolverMultistepScheduler as DPM-Solver++(2M) SDE (algorithm_type
"sde-dpmsolver++", solver_type "heun", diffusers' name for the exact second-order term), trailing spacing,
v-prediction on the linear schedule of T = 1000: the library's default sampler, step for step. Prints one JSON
line: images per second over --n images drawn in batches of --batch, after an untimed one-step warm-up.

    python benchmarks/peers/diffusers_sample.py --threads 1 --batch 128 --steps 50 --n 256 [--precision bf16]
"""

import argparse
import json
import time

import torch
from diffusers import DDPMPipeline, DPMSolverMultistepScheduler, UNet2DModel


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast around the call")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    unet = UNet2DModel(
        sample_size=28, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(16, 32, 64),
        down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3, norm_num_groups=8,
    ).eval()  # fmt: skip
    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_schedule="linear", prediction_type="v_prediction",
        algorithm_type="sde-dpmsolver++", solver_order=2, solver_type="heun", timestep_spacing="trailing",
    )  # fmt: skip
    pipe = DDPMPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(args.seed)

    def draw(n: int, steps: int) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            for start in range(0, n, args.batch):
                pipe(batch_size=min(args.batch, n - start), num_inference_steps=steps, generator=generator,
                     output_type="np")  # fmt: skip

    draw(min(args.batch, args.n), 1)  # warm-up: oneDNN primitives, allocator
    start = time.perf_counter()
    draw(args.n, args.steps)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "images_per_s": args.n / seconds, "seconds": seconds, "n": args.n, "batch": args.batch,
        "steps": args.steps, "threads": args.threads, "precision": args.precision,
        "parameters": sum(q.numel() for q in unet.parameters()),
        "diffusers": __import__("diffusers").__version__, "torch": torch.__version__,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
