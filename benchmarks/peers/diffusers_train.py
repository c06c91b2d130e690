"""The peer of benchmarks/cpu_quality.py: diffusers' UNet2DModel trained with diffusers' own standard loop.

Runs in the benchmark's separate virtual environment (torch==2.13.0 + diffusers), never imports cleardiffusion.
The network is the one of issue 12: UNet2DModel(sample_size=28, in/out_channels=1, layers_per_block=1,
block_out_channels=(32, 64, 64), plain DownBlock2D/UpBlock2D, norm_num_groups=8), 1.06M parameters. The loop
is diffusers' train_unconditional recipe: DDPMScheduler (linear betas, T = 1000, eps prediction), MSE, AdamW,
a constant learning rate after linear warm-up, gradient clipping at 1, diffusers' EMAModel; it stops when
--budget minutes of wall clock have passed, then draws --n samples with DDIMScheduler (--steps, eta = 0) and
writes them as uint8 (N, H, W, C) to --out (.npz, key "images") plus a grid PNG beside it.

    python benchmarks/peers/diffusers_train.py --data-dir ../shared/data/mnist --budget 15 --n 2000 --out d.npz
"""

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from PIL import Image


def read_idx_images(path: Path) -> np.ndarray:
    """uint8 (N, H, W) from an IDX3 .gz file (MNIST, Fashion-MNIST)."""
    raw = gzip.open(path).read()
    n, h, w = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--budget", type=float, default=15.0, help="training wall clock, minutes")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--steps", type=int, default=50, help="DDIM sampling steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    images = torch.from_numpy(read_idx_images(Path(args.data_dir) / "train-images-idx3-ubyte.gz").copy())
    data = images[:, None].float() / 127.5 - 1  # (N, 1, 28, 28) in [-1, 1]
    unet = UNet2DModel(
        sample_size=28, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3, norm_num_groups=8,
    )  # fmt: skip
    params = sum(p.numel() for p in unet.parameters())
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr)
    lr_scheduler = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=args.warmup)
    ema = EMAModel(unet.parameters(), decay=args.ema_decay)
    print(f"diffusers {__import__('diffusers').__version__}: UNet2DModel {params:,} parameters", flush=True)

    step, losses, start = 0, [], time.perf_counter()
    unet.train()
    while time.perf_counter() - start < args.budget * 60:
        x0 = data[torch.randint(0, len(data), (args.batch_size,))]
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (args.batch_size,))
        noisy = noise_scheduler.add_noise(x0, noise, t)
        loss = F.mse_loss(unet(noisy, t).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        lr_scheduler.step()
        ema.step(unet.parameters())
        step += 1
        losses.append(loss.item())
        if step % 100 == 0:
            print(f"step {step} loss {np.mean(losses[-100:]):.4f} {time.perf_counter() - start:.0f} s", flush=True)
    train_s = time.perf_counter() - start

    ema.copy_to(unet.parameters())
    unet.eval()
    ddim = DDIMScheduler.from_config(noise_scheduler.config)
    ddim.set_timesteps(args.steps)
    start, chunks = time.perf_counter(), []
    g = torch.Generator().manual_seed(args.seed + 1)
    with torch.no_grad():
        for s in range(0, args.n, 250):
            x = torch.randn((min(250, args.n - s), 1, 28, 28), generator=g)
            for t in ddim.timesteps:
                x = ddim.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
            chunks.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
    sample_s = time.perf_counter() - start
    samples = torch.cat(chunks).permute(0, 2, 3, 1).numpy()  # (N, H, W, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, images=samples)
    k = int(min(len(samples), 100) ** 0.5)  # a k x k grid of the first samples
    grid = samples[: k * k, :, :, 0].reshape(k, k, 28, 28).transpose(0, 2, 1, 3).reshape(28 * k, 28 * k)
    Image.fromarray(grid).save(out.with_suffix(".png"))
    info = {
        "system": "diffusers",
        "steps": step,
        "train_seconds": train_s,
        "sample_seconds": sample_s,
        "parameters": params,
        "final_loss": float(np.mean(losses[-100:])),
        "sampler": f"DDIM-{args.steps}",
    }
    out.with_suffix(".json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info), flush=True)


if __name__ == "__main__":
    main()
