"""The Python API: load a checkpoint and sample it, train from a config, evaluate samples; the command line's
defaults, from the same code.

    import cleardiffusion as cd

    model = cd.load("runs/mnist/checkpoints/last.pt")        # the EMA weights, on the CPU
    images = model.sample(16, seed=0)                        # uint8 (16, C, H, W), the CLI's default sampler
    images = model.sample(10, labels=range(10), guidance=3)  # a conditional model, guided
    images = model.sample(16, recipe=cd.SamplingRecipe(sampler="ddim", steps=20))
    images = model.sample(16, autoguide=cd.load("runs/mnist-2min/checkpoints/last.pt"), guidance=1.5)
    summary = cd.train_model(cd.TrainConfig(dataset="mnist", data_dir="data/mnist", time_budget=15, out="runs/m"))
    scores = cd.evaluate_samples(images, None, "mnist", "data/mnist")  # FID, KID, precision/recall, ...

(`train_model` and `evaluate_samples`, not `train` and `evaluate`: those names are the package's modules.)
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .checkpoint import check_autoguide, load_for_sampling
from .data import from_model_range
from .denoiser import Path as NoisePath
from .errors import UsageError
from .evaluation_runner import evaluate_samples  # `cleardiffusion eval`, re-exported as it is
from .export import load_onnx, onnx_precision
from .generate import generate_images
from .guidance import interval_start
from .limits import resolve_device
from .recipe import SamplingRecipe
from .train import train as train_model
from .train_config import TrainConfig

__all__ = ["Model", "SamplingRecipe", "TrainConfig", "evaluate_samples", "load", "train_model"]


@dataclass
class Model:
    """A trained checkpoint ready to sample: the model a sampler calls, its noise path and what it was trained on.

    `meta` holds "dataset", "image_shape" (C, H, W), "num_classes" (0: unconditional), "class_names", "step",
    "config" (the TrainConfig as a dict), "objective" and "prediction" (checkpoint.load_for_sampling).
    """

    model: nn.Module
    path: NoisePath
    meta: dict
    device: str

    def sample(self, n: int, *, recipe: SamplingRecipe | None = None, labels: Iterable[int] | None = None,
               seed: int = 0, batch_size: int | None = None, precision: str = "auto",
               autoguide: "Model | None" = None, autoguide_from: float = 0.0,
               **recipe_fields) -> torch.Tensor:  # fmt: skip
        """n images as uint8 (n, C, H, W), each reproducible from (seed, its index) whatever the batch size.

        `recipe` (default: the library's, as `cleardiffusion sample` uses it) or its fields as keywords
        (sampler, steps, spacing, solver_type, eta, variance, clip_x0, guidance, noise_scale); `labels`: n class indices
        for a conditional model; `batch_size` and `precision` (auto, fp32, bf16): as `generate_images` takes
        them, by default the device's fastest (bf16 on a CPU with native bf16). `autoguide`: a worse Model of
        the same recipe (e.g. `load` of a 2-minute run) guiding this unconditional model at the recipe's guidance
        (Karras et al. 2024; `sample --autoguide CKPT` on the command line), two network evaluations a step;
        `autoguide_from` F in [0, 1): guided only at the noise levels t >= F T (`sample --autoguide-from F`).
        """
        recipe = (recipe or SamplingRecipe()).replace(**recipe_fields)
        if not 0 <= autoguide_from < 1 or (autoguide_from and autoguide is None):
            raise UsageError(f"autoguide_from must lie in [0, 1) and needs an autoguide model, got {autoguide_from}")
        if autoguide is not None:  # the CLI's checks, before any sampling
            check_autoguide("the autoguide model", autoguide.path, autoguide.meta, self.meta["objective"],
                            self.meta["config"].get("schedule"), self.meta["image_shape"], self.path)  # fmt: skip
        if self.meta.get("backend") == "onnxruntime":
            precision = onnx_precision(precision)
        y = None if labels is None else torch.as_tensor(list(labels), dtype=torch.long)
        bad = None if autoguide is None else autoguide.model
        batches = generate_images(self.model, self.path, n=n, shape=tuple(self.meta["image_shape"]), recipe=recipe,
                                  seed=seed, labels=y, batch_size=batch_size, device=self.device,
                                  precision=precision, autoguide=bad,
                                  autoguide_from=interval_start(self.path, autoguide_from))  # fmt: skip
        return torch.cat([from_model_range(b.cpu()) for b in batches])


def load(checkpoint: str | Path, *, device: str = "cpu", ema: bool = True) -> Model:
    """A checkpoint written by `cleardiffusion train` or `distill` (its EMA weights unless ema=False), ready to
    sample (one of `distill --chain`: one step by its own network, more by the chain's); or a .onnx file written
    by `cleardiffusion export`, run by ONNX Runtime on the CPU (in fp32)."""
    device = str(resolve_device(device))
    if str(checkpoint).endswith(".onnx"):
        if device != "cpu" or not ema:
            raise ValueError("an ONNX model runs on the CPU with the weights it was exported with: device='cpu'")
        return Model(*load_onnx(checkpoint), device)
    model, path, meta = load_for_sampling(checkpoint, device=device, use_ema=ema)
    return Model(model, path, meta, device)
