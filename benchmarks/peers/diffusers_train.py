"""The peer of benchmarks/cpu_quality.py: diffusers' UNet2DModel, trained with diffusers' recipe or with ours.

Runs in the benchmark's separate virtual environment (torch==2.13.0 + diffusers), never imports cleardiffusion.
It stops when --budget minutes of training wall clock have passed (counted from the first step, after the data
and the network are built), then draws --n samples with DDIMScheduler (--steps, eta = 0) and writes them as
uint8 (N, H, W, C) to --out (.npz, key "images", plus "labels" for a conditional model), a grid PNG and a JSON
of the run beside it.

--recipe diffusers (the default; cpu_quality's system `diffusers`): the network of issue 12, UNet2DModel with
block_out_channels (32, 64, 64), one DownBlock2D/UpBlock2D layer per level, GroupNorm(8) and diffusers' default
attention in the middle block, 1.06M parameters; diffusers' train_unconditional loop: DDPMScheduler (linear
betas, T = 1000, eps prediction), plain MSE, torch's AdamW (weight decay 0.01), get_scheduler
"constant_with_warmup", gradient clipping at 1, EMAModel with its default warm-up, fp32; DDIM from the training
scheduler's config (its "leading" grid, x_0 clipped to [-1, 1]).

--recipe ours (cpu_quality's system `diffusers-recipe`): diffusers' own classes given this library's recipe,
so that beside `ours` only the implementation differs (issue 25). Each choice and where ours makes it:
- network: UNet2DModel at the layout of the `small` preset (src/cleardiffusion/models/unet.py): conv_in to 16
  channels, block_out_channels (16, 32, 64), layers_per_block 1 (two resnets per level on the way up, as ours),
  stride-2 conv downsampling after every level but the last (2 of them: 28 -> 14 -> 7), nearest + conv
  upsampling, no attention anywhere (add_attention=False), GroupNorm(8), SiLU, dropout 0, the timestep
  embedding sinusoid(16) -> Linear -> SiLU -> Linear(64) added in every resnet. 619,697 parameters, exactly
  ours (620,401 each when conditional: an 11 x 64 class table). Left as diffusers has it: ours zero-initialises
  the last conv of each residual block and of the head, UNet2DModel does not.
- objective (objective.diffusion_loss): DDPMScheduler(prediction_type="v_prediction"), linear betas 1e-4 to
  0.02, T = 1000; v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022, Sec. 4;
  DDPMScheduler.get_velocity); min-SNR-gamma with gamma = 5 (Hang et al. 2023, Eq. 8) in our exact form for a
  v target: loss = mean( min(SNR, 5) / (SNR + 1) * (v_pred - v)^2 ), SNR = alpha_bar_t / (1 - alpha_bar_t).
- data draws (train.draw_batch): 64 images with replacement, x_0 = u8 / 127.5 - 1, t ~ Uniform{0..T-1}.
- precision (train_config.step_options): --precision auto is bf16 autocast of the forward pass and loss where
  the CPU has native bf16 (torch.cpu's AVX512-BF16 or AMX check, `cpu_has_native_bf16` below, the same test as
  ours), else fp32; weights, optimiser and the loss's reduction stay fp32; sampling runs in fp32 as ours does.
- optimiser (train.py): torch AdamW, lr 1e-3, betas (0.9, 0.999), weight decay 0; the learning rate at step s
  (1-based) is lr * min(1, s / 100) (a LambdaLR); the global gradient norm clipped to 1.
- EMA: diffusers' EMAModel, decay 0.999 with its (1 + s) / (10 + s) warm-up; update_after_step=-1 shifts its
  count by one so step s uses min(0.999, (1 + s) / (10 + s)), ours' train.ema_decay exactly.
- conditioning: ours trains unconditional by default, and so does this; --conditional mirrors `train
  --conditional`: num_class_embeds = classes + 1 (the last row the null class), labels dropped to the null class
  with probability --label-dropout (0.1), and samples drawn as `cleardiffusion sample` draws them by default
  (--class-label all: classes in equal contiguous blocks; guidance 1, the plain conditional model).
- sampler (samplers.ddim_sample with cpu_quality's --our-sampler ddim): DDIMScheduler, eta 0, from the
  training config: timestep_spacing "leading" with steps_offset 0 is ours' "uniform" grid (980, 960, ..., 0
  at 50 steps; checked at run time, a step count where they differ is refused), set_alpha_to_one makes the last
  step land on x_0 as ours does, clip_sample clamps x_0 to [-1, 1] as `sample --clip-x0` (the default), and
  use_clipped_model_output re-derives eps from the clamped x_0 as denoiser.predict does.
Not matched: ours' --eval-every evaluations, paid out of its own budget (about 3%), have no counterpart here.
benchmarks/peers/check_recipe.py checks the loss, learning rate, EMA decay, grid, bf16 test and DDIM samples
against cleardiffusion's own functions (all equal to float rounding on 2026-12-05).

    python benchmarks/peers/diffusers_train.py --data-dir ../shared/data/mnist --budget 15 --n 2000 --out d.npz
    python benchmarks/peers/diffusers_train.py --recipe ours --data-dir ../shared/data/mnist --budget 15 \\
        --n 2000 --out r.npz
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

MIN_SNR_GAMMA = 5.0  # objective.diffusion_loss's min_snr_gamma
SMALL_PRESET_PARAMETERS = 619_697  # models/unet.py PRESETS["small"] at 1 channel, unconditional
LAYOUTS = {  # block_out_channels and whether the middle block attends
    "diffusers": ((32, 64, 64), True),  # issue 12's network, 1,062,497 parameters
    "ours": ((16, 32, 64), False),  # the `small` preset's layout
}


def read_idx(path: Path) -> np.ndarray:
    """uint8 (N, H, W) images from an IDX3 .gz file, or (N,) labels from an IDX1 one (MNIST, Fashion-MNIST)."""
    raw = gzip.open(path).read()
    dims = raw[3]  # the magic number's last byte: 3 for images, 1 for labels
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def build_unet(recipe: str, num_classes: int = 0) -> UNet2DModel:
    """UNet2DModel at the recipe's layout (see the module docstring); num_classes > 0 adds the null class."""
    channels, attention = LAYOUTS[recipe]
    return UNet2DModel(
        sample_size=28, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=channels,
        down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3, norm_num_groups=8,
        add_attention=attention, num_class_embeds=num_classes + 1 if num_classes else None,
    )  # fmt: skip


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX (train_config.cpu_has_native_bf16): bf16 convolutions run natively, faster than fp32."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is not None and check() for check in checks)


def uniform_grid(T: int, steps: int) -> list[int]:
    """Ours' "uniform" DDIM grid (schedule.discrete_timesteps): every (T / steps)-th index from 0, descending."""
    return [int(i * T / steps) for i in range(steps)][::-1]


def ddim_grid(steps: int) -> list[int]:
    """The timesteps DDIMScheduler visits at `steps` steps over T = 1000 with its default "leading" spacing."""
    ddim = DDIMScheduler(num_train_timesteps=1000)
    ddim.set_timesteps(steps)
    return ddim.timesteps.tolist()


def min_snr_v_loss(v_pred: torch.Tensor, v: torch.Tensor, snr: torch.Tensor, gamma: float) -> torch.Tensor:
    """min(SNR, gamma) on the x_0 error, written on a v target (Hang et al. 2023, Eq. 8; objective.py):
    || v - v_pred ||^2 = (SNR + 1) || x_0 - x0_pred ||^2, so the weight on the v error is min(SNR, gamma) / (SNR + 1).
    """
    weight = (snr.clamp(max=gamma) / (snr + 1))[:, None, None, None]  # (B, 1, 1, 1)
    return (weight * (v_pred.float() - v) ** 2).mean()


def training_parts(recipe: str, unet: UNet2DModel, args) -> tuple:
    """(noise scheduler, optimiser, lr scheduler, EMA) of the recipe."""
    if recipe == "diffusers":  # train_unconditional's choices (torch's AdamW defaults, diffusers' warm-up)
        noise_scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
        optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr)
        lr_scheduler = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=args.warmup)
        return noise_scheduler, optimizer, lr_scheduler, EMAModel(unet.parameters(), decay=args.ema_decay)
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="v_prediction")
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr, betas=(0.9, 0.999), weight_decay=0.0)
    # train.learning_rate: lr * min(1, s / warmup) at step s = i + 1 (LambdaLR counts i from 0)
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min(1.0, (i + 1) / args.warmup))
    ema = EMAModel(unet.parameters(), decay=args.ema_decay, update_after_step=-1)  # step s: (1 + s) / (10 + s)
    return noise_scheduler, optimizer, lr_scheduler, ema


def train(recipe: str, unet: UNet2DModel, images: torch.Tensor, labels: torch.Tensor | None, args) -> dict:
    """The loop, for --budget minutes; returns its steps, seconds, final loss and the EMA."""
    noise_scheduler, optimizer, lr_scheduler, ema = training_parts(recipe, unet, args)
    snr_table = noise_scheduler.alphas_cumprod / (1 - noise_scheduler.alphas_cumprod)  # (T,) SNR(t)
    amp = args.precision == "bf16"
    step, losses, start = 0, [], time.perf_counter()
    unet.train()
    while time.perf_counter() - start < args.budget * 60:
        index = torch.randint(0, len(images), (args.batch_size,))  # with replacement, as train.draw_batch
        x0 = images[index].float() / 127.5 - 1  # (B, 1, 28, 28) in [-1, 1]
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (args.batch_size,))
        y = None
        if labels is not None:  # label dropout trains the null class (Ho & Salimans 2022)
            y = torch.where(torch.rand(args.batch_size) < args.label_dropout, args.num_classes, labels[index])
        noisy = noise_scheduler.add_noise(x0, noise, t)  # x_t, Ho et al. 2020 Eq. 4
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = unet(noisy, t, class_labels=y).sample
            if recipe == "diffusers":
                loss = F.mse_loss(out.float(), noise)
            else:
                v = noise_scheduler.get_velocity(x0, noise, t)
                loss = min_snr_v_loss(out, v, snr_table[t], MIN_SNR_GAMMA)
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
    return {"steps": step, "train_seconds": time.perf_counter() - start, "ema": ema,
            "final_loss": float(np.mean(losses[-100:])) if losses else None,
            "noise_scheduler": noise_scheduler}  # fmt: skip


@torch.no_grad()
def sample(recipe: str, unet: UNet2DModel, noise_scheduler: DDPMScheduler, args) -> tuple[np.ndarray, np.ndarray]:
    """--n samples (N, H, W, 1) uint8 with DDIM, eta 0, in fp32, and their labels (empty if unconditional)."""
    ddim = DDIMScheduler.from_config(noise_scheduler.config)
    ddim.set_timesteps(args.steps)
    clipped_eps = recipe == "ours"  # denoiser.predict: eps re-derived from the clamped x_0
    labels = torch.arange(args.n) * args.num_classes // args.n if args.conditional else None  # --class-label all
    g = torch.Generator().manual_seed(args.seed + 1)
    chunks = []
    for s in range(0, args.n, 250):
        x = torch.randn((min(250, args.n - s), 1, 28, 28), generator=g)
        y = None if labels is None else labels[s : s + len(x)]
        for t in ddim.timesteps:
            out = unet(x, t, class_labels=y).sample
            x = ddim.step(out, t, x, eta=0.0, use_clipped_model_output=clipped_eps).prev_sample
        chunks.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
    images = torch.cat(chunks).permute(0, 2, 3, 1).numpy()  # (N, H, W, 1)
    return images, (labels.numpy() if labels is not None else np.empty(0, np.int64))


def write_outputs(out: Path, images: np.ndarray, labels: np.ndarray, info: dict) -> None:
    """OUT.npz (images, labels if any), OUT.png (a grid of the first samples), OUT.json (the run)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, images=images, **({"labels": labels} if len(labels) else {}))
    k = int(min(len(images), 100) ** 0.5)  # a k x k grid of the first samples
    grid = images[: k * k, :, :, 0].reshape(k, k, 28, 28).transpose(0, 2, 1, 3).reshape(28 * k, 28 * k)
    Image.fromarray(grid).save(out.with_suffix(".png"))
    out.with_suffix(".json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=tuple(LAYOUTS), default="diffusers", help="diffusers' (default) or ours")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--budget", type=float, default=15.0, help="training wall clock, minutes")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                   help="ours: autocast of the training step, auto = bf16 on a CPU with native bf16 (default); "
                   "diffusers: fp32 only")  # fmt: skip
    p.add_argument("--conditional", action="store_true", help="ours: class-conditional, as `train --conditional`")
    p.add_argument("--label-dropout", type=float, default=0.1, help="with --conditional: null-class probability")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--steps", type=int, default=50, help="DDIM sampling steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.recipe == "diffusers" and (args.conditional or args.precision not in (None, "fp32")):
        p.error("--conditional and bf16 belong to --recipe ours; diffusers' recipe is unconditional and fp32")
    auto = "bf16" if args.recipe == "ours" and cpu_has_native_bf16() else "fp32"
    args.precision = auto if args.precision in (None, "auto") else args.precision
    if args.recipe == "ours" and ddim_grid(args.steps) != uniform_grid(1000, args.steps):  # before training
        p.error(f"--steps {args.steps}: DDIMScheduler's leading grid {ddim_grid(args.steps)[:3]}... is not ours' "
                f"uniform {uniform_grid(1000, args.steps)[:3]}...; use a divisor of 1000 such as 50")  # fmt: skip

    torch.manual_seed(args.seed)
    data_dir = Path(args.data_dir)
    images = torch.from_numpy(read_idx(data_dir / "train-images-idx3-ubyte.gz").copy())[:, None]  # (N, 1, H, W)
    labels = None
    if args.conditional:
        labels = torch.from_numpy(read_idx(data_dir / "train-labels-idx1-ubyte.gz").astype(np.int64))  # (N,)
    args.num_classes = int(labels.max()) + 1 if labels is not None else 0
    unet = build_unet(args.recipe, args.num_classes)
    params = sum(q.numel() for q in unet.parameters())
    print(f"diffusers {__import__('diffusers').__version__}, recipe {args.recipe}: UNet2DModel {params:,} parameters "
          f"(our small preset: {SMALL_PRESET_PARAMETERS:,} unconditional), {args.precision}", flush=True)  # fmt: skip

    run = train(args.recipe, unet, images, labels, args)
    run["ema"].copy_to(unet.parameters())
    unet.eval()
    start = time.perf_counter()
    samples, sample_labels = sample(args.recipe, unet, run["noise_scheduler"], args)
    info = {
        "system": "diffusers" if args.recipe == "diffusers" else "diffusers-recipe",
        "recipe": args.recipe,
        "steps": run["steps"],
        "train_seconds": run["train_seconds"],
        "sample_seconds": time.perf_counter() - start,
        "parameters": params,
        "final_loss": run["final_loss"],
        "precision": args.precision,
        "conditional": args.conditional,
        "sampler": f"DDIM-{args.steps}",
    }
    write_outputs(Path(args.out), samples, sample_labels, info)


if __name__ == "__main__":
    main()
