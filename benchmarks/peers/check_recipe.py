"""Check that `diffusers_train.py --recipe ours` computes what cleardiffusion computes, piece by piece.

Runs in the peer environment with cleardiffusion on the path (it imports both; diffusers_train.py itself never
imports cleardiffusion), in seconds on one core, and exits 1 naming the first piece that differs:

    PYTHONPATH=src .peers/bin/python benchmarks/peers/check_recipe.py

On one random UNet2DModel at the `small` layout: its parameter count against the preset's, the min-SNR v loss
against objective.diffusion_loss, the learning rate and EMA decay of 3,000 steps against train.learning_rate /
train.ema_decay, the DDIM grid against ours' uniform one, the bf16 test against
train_config.cpu_has_native_bf16, and 50 DDIM steps from the same x_T against samplers.ddim_sample with
clip_x0 (as `cleardiffusion sample`).
"""

import sys
from pathlib import Path

import torch
from diffusers import DDIMScheduler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diffusers_train as peer  # noqa: E402

from cleardiffusion.denoiser import sampling_parts  # noqa: E402
from cleardiffusion.models import count_parameters  # noqa: E402
from cleardiffusion.models.unet import unet_from_preset  # noqa: E402
from cleardiffusion.objective import diffusion_loss  # noqa: E402
from cleardiffusion.samplers import ddim_sample, make_timesteps  # noqa: E402
from cleardiffusion.schedule import NoiseSchedule  # noqa: E402
from cleardiffusion.train import ema_decay, learning_rate  # noqa: E402
from cleardiffusion.train_config import cpu_has_native_bf16  # noqa: E402


class Ours(torch.nn.Module):
    """The UNet2DModel as cleardiffusion calls a network: net(x_t, t) -> tensor."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, y=None):
        return self.unet(x, t).sample


def main() -> int:
    torch.manual_seed(0)
    unet = peer.build_unet("ours").eval()
    schedule = NoiseSchedule.from_name("linear", 1000)
    args = type("Args", (), {"lr": 1e-3, "warmup": 100, "ema_decay": 0.999})
    noise_scheduler, optimizer, lr_scheduler, ema = peer.training_parts("ours", unet, args)
    x0, eps, t = torch.rand(16, 1, 28, 28) * 2 - 1, torch.randn(16, 1, 28, 28), torch.randint(0, 1000, (16,))
    snr = noise_scheduler.alphas_cumprod / (1 - noise_scheduler.alphas_cumprod)
    with torch.no_grad():
        ours_loss = diffusion_loss(Ours(unet), schedule, x0, t, eps, prediction="v", weighting="min-snr").item()
        v_pred = unet(noise_scheduler.add_noise(x0, eps, t), t).sample
        peer_loss = peer.min_snr_v_loss(v_pred, noise_scheduler.get_velocity(x0, eps, t), snr[t], 5.0).item()

    lr_gap = decay_gap = 0.0  # the peer's own schedules, stepped without gradients (the weights stay put)
    for step in range(1, 3001):
        lr_gap = max(lr_gap, abs(optimizer.param_groups[0]["lr"] - learning_rate(step, args.lr, args.warmup)))
        optimizer.step()
        lr_scheduler.step()
        ema.step(unet.parameters())
        decay_gap = max(decay_gap, abs(ema.cur_decay_value - ema_decay(step, args.ema_decay)))

    model, path = sampling_parts(Ours(unet), "ddpm", "v", schedule)
    x_T = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours_x = ddim_sample(model, path, x_T, make_timesteps(path, 50, "uniform"), clip_x0=True)
        ddim = DDIMScheduler.from_config(noise_scheduler.config)
        ddim.set_timesteps(50)
        x = x_T
        for step_t in ddim.timesteps:
            x = ddim.step(unet(x, step_t).sample, step_t, x, eta=0.0, use_clipped_model_output=True).prev_sample

    checks = {
        "parameters": (sum(q.numel() for q in unet.parameters()), count_parameters(unet_from_preset("small", 1, 28))),
        "min-SNR v loss (relative gap < 1e-5)": (abs(ours_loss - peer_loss) / ours_loss < 1e-5, True),
        "learning rate, 3,000 steps": (lr_gap, 0.0),
        "EMA decay, 3,000 steps": (decay_gap, 0.0),
        "DDIM-50 grid": (peer.ddim_grid(50), make_timesteps(path, 50, "uniform")),
        "native bf16 test": (peer.cpu_has_native_bf16(), cpu_has_native_bf16()),
        "DDIM-50 samples (max gap < 1e-4)": ((ours_x - x).abs().max().item() < 1e-4, True),
    }
    for name, (got, want) in checks.items():
        print(f"{'ok' if got == want else 'DIFFERS'}: {name}", flush=True)
        if got != want:
            print(f"  peer/ours: {got} != {want}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
