"""Checkpoints that survive a crash at any moment and cannot run code when loaded.

A checkpoint is one `torch.save`d dictionary of tensors and plain Python values (dicts, lists, str, int,
float, bool, None), so `torch.load(weights_only=True)` can read it: a file from someone else cannot execute
anything. It is written atomically: to a temporary file in the same directory, flushed and fsynced, then
`os.replace`d over the old one, and the directory is fsynced; a kill at any instant leaves either the old
checkpoint or the new one, never a half-written file.

| key              | contents                                                                 |
|------------------|--------------------------------------------------------------------------|
| `format`         | "cleardiffusion-checkpoint"; `format_version` is an int                  |
| `model_spec`     | `models.model_spec(model)`: rebuilds the network                          |
| `schedule`       | {"name": "linear" / "linear-scaled" / "cosine", "T": int}                 |
| `model`, `ema`   | state dicts of the trained weights and of their exponential moving average |
| `optimizer`      | AdamW's state dict                                                       |
| `step`           | optimisation steps done; `elapsed`: training seconds so far               |
| `world_size`     | number of processes that wrote it (a resume may use another number)      |
| `rng`            | {"device": str, "generator": ByteTensor, "torch": ByteTensor, ...}       |
| `config`         | the full `TrainConfig` as a dict                                         |
| `dataset`        | {"name", "image_shape": [C, H, W], "num_classes", "class_names"}         |
"""

import json
import os
import pickle
import secrets
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError
from .models import build_model
from .objective import as_eps_model
from .schedule import NoiseSchedule

FORMAT = "cleardiffusion-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically: temp file in the same directory, fsync, os.replace, fsync dir."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a failed or interrupted write leaves the previous checkpoint untouched
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`; a CheckpointError if missing, truncated or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: check the path, or train one with `cleardiffusion train`")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"{path} is truncated or not a cleardiffusion checkpoint ({reason[:120]}); "
            "resume from an intact checkpoint or start a new run with a new --out"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cleardiffusion checkpoint (no '{FORMAT}' marker)")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {state.get('format_version')}, this cleardiffusion "
            f"reads version {FORMAT_VERSION}; use the cleardiffusion release that wrote it"
        )
    return state


def load_for_sampling(
    path: str | Path, device: str | torch.device = "cpu", use_ema: bool = True
) -> tuple[nn.Module, NoiseSchedule, dict[str, Any]]:
    """Rebuild the (EMA) denoiser and its noise schedule from a checkpoint, in eval mode on `device`.

    Returns (model, schedule, meta); for a DDPM checkpoint the model outputs eps whatever the network was
    trained to predict (objective.as_eps_model). meta has "dataset", "image_shape" (C, H, W), "num_classes"
    (the model's conditioning classes, 0 for an unconditional model), "class_names", "step", "config",
    "objective" ("ddpm" | "flow") and "prediction" ("eps" | "v" | "x0").
    """
    state = load_checkpoint(path)
    try:
        model = build_model(state["model_spec"])
        model.load_state_dict(state["ema" if use_ema else "model"])
        schedule = NoiseSchedule.from_name(state["schedule"]["name"], state["schedule"]["T"])
    except (KeyError, TypeError, RuntimeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} does not match its model description ({reason[:160]})") from None
    dataset = state["dataset"]
    meta = {
        "dataset": dataset["name"],
        "image_shape": tuple(dataset["image_shape"]),
        "num_classes": model.config.num_classes,  # classes the model is conditioned on; 0 = unconditional
        "class_names": list(dataset["class_names"]),
        "step": state["step"],
        "config": state["config"],
        # checkpoints older than these fields trained an eps-predicting DDPM
        "objective": state["config"].get("objective", "ddpm"),
        "prediction": state["config"].get("prediction", "eps"),
    }
    if meta["objective"] == "ddpm":  # samplers call an eps-model, whatever the network predicts
        model = as_eps_model(model, schedule, meta["prediction"])
    return model.to(device).eval(), schedule.to(device), meta


def check_same_run(saved: dict, current: dict, may_change: Collection[str], path: str | Path) -> None:
    """CheckpointError naming every flag whose value differs from the checkpoint's (outside `may_change`)."""
    saved, current = json.loads(json.dumps(saved)), json.loads(json.dumps(current))  # tuples -> lists
    diffs = [k for k in current if k not in may_change and saved.get(k) != current[k]]
    if diffs:
        flags = ", ".join(f"--{k.replace('_', '-')} {saved.get(k)!r} (now {current[k]!r})" for k in diffs)
        raise CheckpointError(
            f"checkpoint {path} belongs to another run: it was trained with {flags}; "
            "pass matching flags to resume it, or use a new --out to start a new run"
        )


def metrics_until(path: Path, step: int) -> list[str]:
    """The lines of a metrics.jsonl up to `step`: a resumed run rewrites what came after its checkpoint."""
    kept = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):  # a line cut short by a kill
            continue
    return kept
