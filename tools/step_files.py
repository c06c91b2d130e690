"""Which of the package's source files one training step runs (draw_batch, the learning rate, train_step with
its loss, AdamW and the EMA): a measure of how far a reader must follow the algorithm (issue 23's target: <= 5).

    python tools/step_files.py
"""

import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cleardiffusion import fastpath, train  # noqa: E402
from cleardiffusion.denoiser import training_parts  # noqa: E402
from cleardiffusion.models.unet import unet_from_preset  # noqa: E402
from cleardiffusion.schedule import NoiseSchedule  # noqa: E402
from cleardiffusion.train_config import TrainConfig  # noqa: E402


def main() -> None:
    config = TrainConfig(batch_size=4, conditional=True)  # the default recipe: v-prediction, min-SNR, EMA
    net = unet_from_preset(config.model, 1, 28, 10)
    ema = copy.deepcopy(net)
    loss_fn, path = training_parts(config.objective, config.prediction, config.loss_weighting,
                                   NoiseSchedule.from_name(config.schedule, config.timesteps))  # fmt: skip
    optimizer = train.make_optimizer(net, fastpath.PLAIN, lr=config.lr)
    data = {"images": torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8), "labels": torch.arange(16) % 10,
            "null_label": 10}  # fmt: skip
    files: set[str] = set()

    def profile(frame, event, arg) -> None:
        name = frame.f_code.co_filename
        if event == "call" and "cleardiffusion" in name:
            files.add(name.split("src/")[-1])

    sys.setprofile(profile)
    lr = train.learning_rate(1, config.lr, config.warmup)
    x0, y, t, eps = train.draw_batch(torch.Generator().manual_seed(0), data, config, path, False, slice(0, 4))
    train.train_step(net, loss_fn, optimizer, list(net.parameters()), list(ema.parameters()), x0, t, eps, y,
                     decay=train.ema_decay(1, config.ema_decay, config.ema_warmup),
                     grad_clip=config.grad_clip)  # fmt: skip
    sys.setprofile(None)
    print(f"lr {lr:g}; {len(files)} source files: {', '.join(sorted(files))}")


if __name__ == "__main__":
    main()
