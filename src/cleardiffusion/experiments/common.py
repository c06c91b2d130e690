"""What the experiments share: their context (sizes, device, data), training through `train.train`,
sampling with a stopwatch, and FID/KID/precision/recall/accuracy from the project's classifier features.

Data is read from --data-dir (default: data/DATASET below the working directory); synthetic digit-like glyphs
only when asked for with --dataset synthetic. Trained runs live under CACHE/runs[-quick|-cpu]/DATASET-DATAKEY/
NAME-seedS-CONFIGKEY, where DATAKEY names the data folder and its files and CONFIGKEY every training field that
shapes the model, so a cached run answers only for the data, seed, size and recipe it was trained with. A run
trained to the asked number of steps is reused (its checkpoint is kept as step_XXXXXXX.pt), a shorter one is
resumed, so `experiment all` trains the shared unconditional model once for ddpm-steps, ddim-steps and
time-embedding, an interrupted run continues where it stopped, and the same command runs again.
"""

import copy
import dataclasses
import hashlib
import json
import shutil
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_checkpoint, load_for_sampling
from ..data import ImageDataset, from_model_range, load_dataset
from ..errors import UsageError
from ..fastpath import sampling_model
from ..features import atomic_torch_save
from ..generate import generate_images
from ..models import count_parameters
from ..recipe import SamplingRecipe
from ..schedule import NoiseSchedule
from ..train import TrainConfig, train

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

DATASET_CHOICES = ("mnist", "fashion-mnist", "cifar10", "synthetic")
RECIPE_FIELDS = frozenset(f.name for f in dataclasses.fields(SamplingRecipe))


@dataclass(frozen=True)
class Sizes:
    """One size of every experiment: how its models train and how their samples are scored.

    quick (CI), cpu (<= 60 min per experiment on this project's CPU), full (a GPU). `train` holds TrainConfig
    fields, passed as they are: every model an experiment trains at this size shares them (an equal budget),
    and a recipe changes only the fields it studies (train_config's overrides). What each experiment varies
    (its steps, scales, ...) is its own module's CONFIGS[size].
    """

    train: dict[str, Any]  # TrainConfig fields; the rest are `cleardiffusion train`'s defaults
    n_samples: int  # samples per FID
    sample_batch: int  # batch of the sampler
    reference_images: int | None  # real images for the FID statistics (None: the whole train split)
    classifier_images: int | None  # classifier training images (None: all)
    classifier_epochs: int
    base_embedding: str = "middle"  # time embedding of the shared unconditional model (the seed's: middle)


# the seeds' objective: eps prediction, plain MSE, Ho et al.'s EMA
SEED_OBJECTIVE = dict(prediction="eps", loss_weighting="none", ema_decay=0.9999)
QUICK = Sizes(
    train=dict(model="seed-minimal", base_channels=16, model_options={"norm_groups": 8}, schedule="linear-scaled",
               timesteps=50, steps=60, batch_size=32, lr=1e-3, warmup=5, log_every=2, **SEED_OBJECTIVE),
    n_samples=48,
    sample_batch=48,
    reference_images=2000,
    classifier_images=3000,
    classifier_epochs=1,
)  # fmt: skip
# The CPU size: the CPU recipe exactly as `cleardiffusion train` defaults it (the `small` U-Net, v prediction
# with min-SNR weighting, EMA 0.999, bf16 where the CPU has it) for 2,000 steps of 64 (about 9 minutes on one
# core of this project's 2-core CPU), scored on 500 samples so that DDPM-1000 fits in an hour with the rest.
CPU = Sizes(
    train=dict(steps=2000, log_every=20),
    n_samples=500,
    sample_batch=250,
    reference_images=None,
    classifier_images=None,
    classifier_epochs=2,
    base_embedding="every-block",
)
# The full size: seed 000's network and objective (seed-cifar on 3-channel data), linear betas, T = 1000
FULL = Sizes(
    train=dict(model="seed-minimal", steps=6000, batch_size=128, lr=2e-4, warmup=500, log_every=50, **SEED_OBJECTIVE),
    n_samples=10_000,
    sample_batch=1000,
    reference_images=None,
    classifier_images=None,
    classifier_epochs=3,
)
SIZES = {"quick": QUICK, "cpu": CPU, "full": FULL}


@dataclass
class Context:
    """One experiment's run: where it writes, how big it is, which data and device it uses."""

    name: str
    out: Path  # this experiment's folder: report.md, results.json, images/
    cache: Path  # shared by `experiment all`: trained runs, classifier, reference statistics, data
    size: str  # quick | cpu | full (SIZES)
    dataset: str  # as asked: mnist | fashion-mnist | cifar10 | synthetic
    loader: str  # the name load_dataset reads it with (synthetic digits are written as MNIST IDX files)
    data_dir: Path
    data_note: str  # one line for the report: where the data came from
    data_key: str  # short digest of the dataset, its folder and files: part of every cache key
    device: torch.device
    device_arg: str  # auto | cpu | cuda, as TrainConfig takes it
    seed: int
    command: str
    classifier_path: Path | None = None
    shared: dict = field(default_factory=dict)  # objects reused across the experiments of `all`

    @property
    def quick(self) -> bool:
        return self.size == "quick"

    @property
    def sizes(self) -> Sizes:
        return SIZES[self.size]

    @property
    def images(self) -> Path:
        return self.out / "images"

    @staticmethod
    def key(*parts: Any) -> str:
        """A short digest of JSON-able parts, for cache names."""
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]

    def load(self, split: str) -> ImageDataset:
        """The dataset's split, read once per `experiment all`."""
        key = ("data", self.loader, str(self.data_dir), split)
        if key not in self.shared:
            self.shared[key] = load_dataset(self.loader, self.data_dir, split)
        return self.shared[key]


# ----------------------------------------------------------------------------------------------------------
# Data: the real dataset where it exists, else synthetic digit-like images in MNIST's IDX format


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """images uint8 (N, H, W) and labels (N,) as the two uncompressed IDX files MNIST's reader takes."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, h, w) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes()
    )


def synthetic_digits(n: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Digit-like images: the glyphs 0-9 drawn white on black with random size, shift, rotation, stroke."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, size, size), np.uint8)
    for i, label in enumerate(labels):
        font = ImageFont.load_default(size=int(rng.integers(16, 23)))
        canvas = Image.new("L", (size, size), 0)
        dx, dy = rng.integers(-3, 4, 2)
        ImageDraw.Draw(canvas).text((size / 2 + dx, size / 2 + dy), str(label), fill=255, font=font, anchor="mm")
        if rng.random() < 0.5:
            canvas = canvas.filter(ImageFilter.MaxFilter(3))  # a thicker stroke
        canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR)
        images[i] = np.asarray(canvas)
    return images, labels


def data_key(dataset: str, folder: Path) -> str:
    """A digest of the dataset's name, its folder (or archive) and the names and sizes of the files in it."""
    files = sorted((p.name, p.stat().st_size) for p in (folder.iterdir() if folder.is_dir() else [folder]))
    return Context.key(dataset, str(folder.resolve()), files)


def resolve_data(dataset: str, data_dir: str | None, cache: Path) -> tuple[str, Path, str]:
    """(loader name, data folder, note): --data-dir (default data/DATASET), or synthetic digits when asked for."""
    if dataset not in DATASET_CHOICES:
        raise UsageError(f"unknown --dataset {dataset!r}; choose one of {', '.join(DATASET_CHOICES)}")
    if dataset == "synthetic":
        if data_dir is not None:
            raise UsageError("--dataset synthetic draws its own digit-like images; drop --data-dir")
        folder = cache / "synthetic-digits"
        if not (folder / "t10k-labels-idx1-ubyte").is_file():
            for prefix, n, seed in (("train", 3000, 0), ("t10k", 1000, 1)):
                write_idx(folder, prefix, *synthetic_digits(n, seed))
        return "mnist", folder, "synthetic digit-like images (PIL glyphs 0-9, 28x28), as asked"
    folder = Path(data_dir if data_dir is not None else f"data/{dataset}")
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):  # (an archive is a file)
        raise UsageError(
            f"no {dataset} in {folder}; pass --data-dir with the folder of its files, or --dataset synthetic "
            "for synthetic digit-like images"
        )
    return dataset, folder, f"{dataset} from {folder}"


# ----------------------------------------------------------------------------------------------------------
# Training and loading


@dataclass
class TrainedRun:
    """A trained model (EMA weights, eval mode), its schedule, loss curve and training cost."""

    name: str
    config: dict
    model: nn.Module
    schedule: NoiseSchedule
    image_shape: tuple[int, ...]
    steps: list[int]
    losses: list[float]
    seconds: float
    parameters: int

    @property
    def final_loss(self) -> float:
        """Mean of the last quarter of the logged losses."""
        tail = self.losses[-max(1, len(self.losses) // 4) :]
        return float(sum(tail) / len(tail))


# TrainConfig fields that do not shape the trained model (where and how long it runs, what it logs): left out of
# a run's cache key. `steps` is left out on purpose: a longer run resumes a shorter one.
NOT_IN_RUN_KEY = frozenset({"out", "steps", "resume", "progress", "device", "data_dir", "log_every", "checkpoint_every",
                            "keep_checkpoints", "sample_every", "time_budget", "compile"})  # fmt: skip


def train_config(ctx: Context, name: str, **overrides: Any) -> TrainConfig:
    """The TrainConfig of run `name`: the size's training fields, this context's, then `overrides`.

    Its folder, CACHE/runs[-SIZE]/DATASET-DATAKEY/NAME-seedS-CONFIGKEY, names everything the model depends on.
    """
    fields = copy.deepcopy(ctx.sizes.train)  # model_options is a dict: no run may share it
    if ctx.size == "full" and ctx.load("train").channels == 3:
        fields["model"] = "seed-cifar"  # seed 000's deeper network for CIFAR-10
    fields.update(
        dataset=ctx.loader,
        data_dir=str(ctx.data_dir),
        checkpoint_every=max(fields.get("steps", TrainConfig.steps) // 4, 1),
        sample_every=0,
        seed=ctx.seed,
        device=ctx.device_arg,
        hflip=ctx.dataset == "cifar10",
        progress=not ctx.quick,
    )
    config = TrainConfig(**{**fields, **overrides})
    shaping = {k: v for k, v in asdict(config).items() if k not in NOT_IN_RUN_KEY}
    folder = ctx.cache / ("runs" if ctx.size == "full" else f"runs-{ctx.size}") / f"{ctx.dataset}-{ctx.data_key}"
    config.out = str(folder / f"{name}-seed{config.seed}-{ctx.key(shaping)}")
    return config


def train_run(ctx: Context, config: TrainConfig) -> TrainedRun:
    """Train `config` (resuming a shorter run of it), or reuse its checkpoint at `config.steps`, and load its EMA.

    Experiments run in parallel on one cache (one per core, say) may ask for the same run: an exclusive
    lock on CACHE/runs*/DATASET-DATAKEY/NAME.lock makes the second wait for the first and then reuse its checkpoint.
    """
    out = Path(config.out)
    kept = out / "checkpoints" / f"step_{config.steps:07d}.pt"  # this run at exactly config.steps
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.lock", "w") as lock:
        if fcntl is not None:  # POSIX; elsewhere runs sharing a cache must not train the same model at once
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not kept.is_file():
            summary = train(replace(config, resume=(out / "checkpoints" / "last.pt").is_file()))
            if summary["exit_code"]:
                raise KeyboardInterrupt
            partial = kept.with_name(f".{kept.name}.partial")
            shutil.copyfile(out / "checkpoints" / "last.pt", partial)
            partial.replace(kept)  # never half a checkpoint under the kept name
    model, schedule, meta = load_for_sampling(kept, ctx.device, use_ema=True)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    records = [r for r in records if "loss" in r and r["step"] <= config.steps]
    return TrainedRun(
        out.name,
        json.loads(json.dumps(asdict(config))),
        model,
        schedule,
        tuple(meta["image_shape"]),
        [r["step"] for r in records],
        [r["loss"] for r in records],
        float(load_checkpoint(kept)["elapsed"]),
        count_parameters(model),
    )


def describe(run: TrainedRun) -> dict[str, Any]:
    """What a report says about a trained model (results.json's `training`)."""
    c = run.config
    return {"model": c["model"], "time_embedding": c["time_embedding"], "schedule": c["schedule"], "T": run.schedule.T,
            "steps": c["steps"], "batch_size": c["batch_size"], "log_every": c["log_every"],
            "parameters": run.parameters, "train_seconds": run.seconds}  # fmt: skip


def base_run(ctx: Context) -> TrainedRun:
    """The shared unconditional model of ddpm/ddim-steps and time-embedding (its embedding: the size's)."""
    embedding = ctx.sizes.base_embedding
    return train_run(ctx, train_config(ctx, f"unconditional-{embedding}", time_embedding=embedding))


# ----------------------------------------------------------------------------------------------------------
# Sampling with a stopwatch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_timed(
    ctx: Context, run: TrainedRun, n: int, *, seed: int | None = None, **options: Any
) -> tuple[torch.Tensor, float]:
    """n samples as uint8 (n, C, H, W) on the CPU and the wall-clock seconds the sampler took.

    `options` are a `SamplingRecipe`'s fields (sampler, steps, spacing, guidance, ...) and `generate_images`'
    other arguments (timesteps, labels, callback). One
    warm-up forward pass runs first, so the clock measures sampling, not lazy initialisation. Outside quick
    size the samples and their seconds are kept under CACHE/samples/, so experiments sharing a model and a
    sampler (ddpm-steps and ddim-steps both draw DDPM-1000) draw them once; a callback is never cached.
    """
    seed = ctx.seed if seed is None else seed
    plain = {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in options.items()}  # no "..." reprs
    key = json.dumps([run.config, n, seed, ctx.sizes.sample_batch, repr(sorted(plain.items()))])
    path = ctx.cache / "samples" / f"{run.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    cacheable = not ctx.quick and "callback" not in options
    if cacheable and path.is_file():
        kept = torch.load(path, weights_only=True)
        return kept["images"], float(kept["seconds"])
    shape = run.image_shape
    batch = min(ctx.sizes.sample_batch, n)
    with torch.no_grad():  # the network as generate_images will run it
        warm = torch.zeros(batch, *shape, device=ctx.device)
        sampling_model(run.model, ctx.device)(warm, torch.zeros(batch, dtype=torch.long, device=ctx.device))
    synchronize(ctx.device)
    start = time.perf_counter()
    batches = [
        b.float()
        for b in generate_images(
            run.model,
            run.schedule,
            n=n,
            shape=shape,
            seed=seed,
            batch_size=batch,
            device=ctx.device,
            recipe=SamplingRecipe(**{k: v for k, v in options.items() if k in RECIPE_FIELDS}),
            **{k: v for k, v in options.items() if k not in RECIPE_FIELDS},  # labels, callback, timesteps
        )
    ]
    synchronize(ctx.device)
    seconds = time.perf_counter() - start
    images = from_model_range(torch.cat(batches).cpu())
    if cacheable:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"images": images, "seconds": seconds}, path)
    return images, seconds


def sampling_noise(ctx: Context, run: TrainedRun, score: Callable, fid: float, **options: Any) -> dict:
    """The noise floor of an FID at this n: the same model and sampler redrawn with the next sampling seed.

    `fid` is the first draw's; returns both FIDs, their spread |a - b| and the spread relative to their mean.
    """
    images, _ = sample_timed(ctx, run, ctx.sizes.n_samples, seed=ctx.seed + 1, **options)
    other = score(images, options.get("labels"))["fid"]
    spread = abs(fid - other)
    shown = {k: v for k, v in options.items() if k != "labels"}
    return {"options": repr(shown), "fid_seed": fid, "fid_next_seed": other, "spread": spread,
            "relative_spread": 2 * spread / (fid + other)}  # fmt: skip
