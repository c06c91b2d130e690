"""What a training run reports besides its loss: a cheap FID of EMA samples, curves.png, TensorBoard events.

`--eval-every N` draws the same `eval_n` samples (same seeds every time) from the EMA model with the library's
sampling recipe at EVAL_STEPS steps (recipe.py: DPM-Solver++(2M) SDE for DDPM, Euler for flow; a few-step
model, which takes fewer, with its own default: MeanFlow's 1 step) and scores
them against the training split's statistics in the feature space of the dataset's small classifier
(features.py: the network shipped for mnist, fashion-mnist and cifar10, or --classifier FILE; each record
names the file's SHA-256 as features_sha256): a fixed-N FID, biased upwards at small N, but comparable along
one run and between runs with the same N and features_sha256. It also reports the fraction of samples the
classifier calls with >= 90% confidence: a trend along one run, not a count of readable samples (grey blobs can
score all of them; docs/few_step.md, "A count that does not move with the sitting").
"""

import json
import time
from pathlib import Path

import torch
from torch import nn

from . import evaluate as M
from .denoiser import sampling_parts
from .errors import UsageError, first_line
from .files import atomic_write
from .recipe import FEW_STEP, SamplingRecipe
from .train_config import EVAL_DEFAULT_EVERY  # noqa: F401  (declared with --eval-every; kept importable here)

EVAL_STEPS = 20  # steps of the evaluation samples: cheap, and enough to rank checkpoints
SAMPLE_STEPS = 50  # steps of the periodic sample grids
SAMPLES_PER_ROW = 8
PLOT_EVERY_S = 30.0  # curves.png is redrawn at a checkpoint at most this often (0.3 s a plot), and at the end


def recipe_for(objective: str, steps: int) -> SamplingRecipe:
    """The library's default sampler for the objective at `steps` steps; a few-step model takes its own default."""
    return SamplingRecipe(steps=None if objective in FEW_STEP else steps)


def resolve_classifier(name: str, dataset, classifier: str | None, device):
    """The features `--eval-every` scores with: --classifier FILE, else the network shipped for mnist,
    fashion-mnist and cifar10 (features.REFERENCE_SHA256); an image folder needs --classifier.

    Called before training starts, so a missing or unfit classifier stops the run at once.
    """
    from .evaluation_runner import classifier_or_help

    size = tuple(dataset.images.shape[2:])  # (H, W)
    return classifier_or_help(name, dataset.channels, classifier, str(device), size)


class TrainingMonitor:
    """metrics.jsonl, fixed-N FID of EMA samples, sample grids, curves.png, optional TensorBoard; rank 0 only."""

    def __init__(self, config, dataset, out: Path, device: torch.device):
        self.config, self.dataset, self.out, self.device = config, dataset, out, device
        self.metrics_path = out / "metrics.jsonl"
        # perf_counter() of the last curves.png: the first is drawn PLOT_EVERY_S into the run (or at its end), so a
        # run of a few seconds draws it once
        self._last_plot = time.perf_counter()
        self.scorer = None
        if config.eval_every:
            from .evaluation_runner import reference_statistics

            # the same network and checks (dataset, channels, size) as `cleardiffusion eval`
            self.scorer = resolve_classifier(config.dataset, dataset, config.classifier, device)
            self.reference = reference_statistics(dataset, "train", self.scorer)
        self.writer = None
        if config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception as e:  # not installed, or installed but broken (an incompatible protobuf)
                cause = f"{type(e).__name__}: {first_line(e, 100)}"
                raise UsageError(f"--tensorboard: TensorBoard cannot be imported ({cause}); install a working one: "
                                 "pip install 'cleardiffusion[tensorboard]'") from None  # fmt: skip
            self.writer = SummaryWriter(str(out / "tensorboard"))

    def _sampling_parts(self, ema: nn.Module, schedule):
        return sampling_parts(ema, self.config.objective, self.config.prediction, schedule)

    @torch.no_grad()
    def evaluate(self, ema: nn.Module, schedule) -> dict:
        """FID and confident fraction of `eval_n` samples of the EMA network (the same seeds every call)."""
        from .data import from_model_range
        from .generate import generate_images

        start = time.perf_counter()
        n, num_classes = self.config.eval_n, self.dataset.num_classes
        labels = torch.arange(n) % num_classes if self.config.conditional else None
        shape = tuple(self.dataset.images.shape[1:])
        model, path = self._sampling_parts(ema, schedule)
        recipe = recipe_for(self.config.objective, EVAL_STEPS)
        batches = generate_images(model, path, n=n, shape=shape, recipe=recipe, seed=12345, labels=labels,
                                  device=self.device)  # fmt: skip
        samples = from_model_range(torch.cat([b.cpu() for b in batches]))  # (n, C, H, W) uint8
        features, logits = self.scorer.features_and_logits(samples)
        fid = M.score_features(self.reference, features, kid=False, pr=False)["fid"]
        confident = float((M.softmax(logits).max(1) >= 0.9).mean())
        seconds = time.perf_counter() - start
        return {"fid": fid, "confident": confident, "eval_seconds": seconds, "features_sha256": self.scorer.file_sha256}

    def sample_grid(self, ema: nn.Module, schedule, path: Path) -> None:
        """50-step samples (few-step models: their default) of the EMA network, a PNG; conditional: a row per class."""
        from .generate import generate_images
        from .viz import save_grid

        labels, n = None, SAMPLES_PER_ROW * SAMPLES_PER_ROW
        if self.config.conditional:
            labels = torch.arange(self.dataset.num_classes).repeat_interleave(SAMPLES_PER_ROW)
            n = len(labels)
        model, noise_path = self._sampling_parts(ema, schedule)
        shape = tuple(self.dataset.images.shape[1:])
        recipe = recipe_for(self.config.objective, SAMPLE_STEPS)
        batches = generate_images(model, noise_path, n=n, recipe=recipe, shape=shape, seed=self.config.seed,
                                  labels=labels, device=self.device)  # fmt: skip
        save_grid(torch.cat(list(batches)).cpu(), path, nrow=SAMPLES_PER_ROW)

    def record(self, record: dict) -> None:
        """Append a record to metrics.jsonl and send its numbers to TensorBoard, against its step."""
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is None:
            return
        for key, value in record.items():
            if key != "step" and isinstance(value, int | float):
                self.writer.add_scalar(key, value, record["step"])
        self.writer.flush()

    def plot(self, force: bool = False) -> None:
        """OUT/curves.png: loss and FID against steps and against minutes, from metrics.jsonl; skipped unless
        `force` or PLOT_EVERY_S have passed since the last plot (so --checkpoint-every 1 stays cheap)."""
        now = time.perf_counter()
        if not force and now - self._last_plot < PLOT_EVERY_S:
            return
        self._last_plot = now
        records = [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]
        losses = [r for r in records if r.get("loss") is not None]
        fids = [r for r in records if r.get("fid") is not None]
        if not losses and not fids:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [(name, rs) for name, rs in (("loss", losses), ("fid", fids)) if rs]
        fig, axes = plt.subplots(len(rows), 2, figsize=(10, 3.2 * len(rows)), dpi=100, squeeze=False)
        for (name, rs), ax_row in zip(rows, axes, strict=True):
            for ax, x_key, x_label in ((ax_row[0], "step", "step"), (ax_row[1], "elapsed", "minutes")):
                xs = [r[x_key] / (60 if x_key == "elapsed" else 1) for r in rs]
                ax.plot(xs, [r[name] for r in rs], marker="o" if name == "fid" else None, linewidth=1)
                ax.set_xlabel(x_label)
                ax.set_ylabel(f"{name} ({self.config.eval_n} samples)" if name == "fid" else name)
                ax.set_yscale("log")
                ax.grid(alpha=0.3)
        fig.suptitle(f"{self.config.model} on {self.config.dataset}")
        # fixed margins: tight_layout measured every log-axis tick label and cost ~0.5 s a plot, at every checkpoint
        fig.subplots_adjust(left=0.1, right=0.98, bottom=0.5 / (1.6 * len(rows)), top=1 - 0.3 / (1.6 * len(rows)),
                            wspace=0.32, hspace=0.35)  # fmt: skip
        with atomic_write(self.out / "curves.png") as f:  # never half a PNG
            fig.savefig(f, format="png")
        plt.close(fig)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
