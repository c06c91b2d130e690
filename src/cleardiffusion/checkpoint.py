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
| `step`, `elapsed`, `world_size` | optimisation steps done, training seconds so far, processes that wrote it |
| `rng`            | {"device": str, "generator": ByteTensor, "torch": ByteTensor, ...}       |
| `config`         | the full `TrainConfig` as a dict                                         |
| `dataset`        | {"name", "image_shape": [C, H, W], "num_classes", "class_names"}         |
| `data_fingerprint` | `data.data_fingerprint` of the training images (optional: older files lack it) |
| `chain`          | optional (`distill --chain`): {"model_spec", "model", "ema"} of a second network, sampled at 2 or |
|                  | more steps, the file's own at one step (`denoiser.OneStepAndChain`)                      |

Every load checks the file against itself (`check_consistency`); a resume also checks `--data-dir` (`check_same_data`).
"""

import json
import math
import pickle
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import denoiser
from .errors import CheckpointError, UsageError, first_line
from .files import atomic_write
from .limits import MAX_TIMESTEPS, check_memory, schedule_bytes
from .models import build_model
from .objective import OBJECTIVES, PREDICTIONS
from .schedule import SCHEDULES, NoiseSchedule

FORMAT = "cleardiffusion-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically: temp file in the same directory, fsync, os.replace, fsync dir."""
    # each entry packed apart: a resumed optimizer keeps its moments, not the model's copy they would share
    packed = {key: one_storage_per_dtype(value) for key, value in state.items()}
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, **packed}
    with atomic_write(path) as f:  # a failed or interrupted write leaves the previous checkpoint untouched
        torch.save(state, f)
    return Path(path)


def one_storage_per_dtype(state: Any) -> Any:
    """`state` with every floating-point tensor replaced by a view of one flat CPU buffer per dtype: equal
    keys, shapes, dtypes and values.

    A checkpoint holds four floating-point tensors per parameter tensor (weights, EMA, AdamW's two moments)
    and AdamW's step, and `torch.save` writes one storage per tensor unless tensors share one.
    `torch.load(weights_only=True)` unpickles in Python and pays per storage: with shared buffers a checkpoint of
    a small network (720 tensors) loads about a third faster. Integer tensors (the RNG states, which
    `torch.set_rng_state` wants in a storage of their own) are left as they are. Every loader passes a
    map_location, so CPU buffers load where they are asked to.
    """
    leaves: dict[int, torch.Tensor] = {}

    def collect(node: Any) -> None:
        if isinstance(node, torch.Tensor) and node.is_floating_point():
            leaves[id(node)] = node
        elif isinstance(node, dict):
            for value in node.values():
                collect(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                collect(value)

    collect(state)
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for tensor in leaves.values():
        by_dtype.setdefault(tensor.dtype, []).append(tensor)
    views: dict[int, torch.Tensor] = {}
    for tensors in by_dtype.values():
        flat = torch.cat([t.detach().reshape(-1).cpu() for t in tensors])
        for tensor, view in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
            views[id(tensor)] = view.view(tensor.shape)

    def rebuild(node: Any) -> Any:
        if isinstance(node, torch.Tensor):
            return views.get(id(node), node)
        if isinstance(node, dict):
            return {key: rebuild(value) for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(rebuild(value) for value in node)
        return node

    return rebuild(state)


def read_torch_file(path: str | Path, map_location: str | torch.device, what: str) -> Any:
    """`torch.load(weights_only=True)` with every failure as one CheckpointError sentence.

    torch's own messages run to a page (weights_only refusals) or name internals; this says what they mean.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "unsupported global" in str(e).lower():
            raise CheckpointError(
                f"{path} holds Python objects other than tensors and plain values, which cleardiffusion never "
                f"loads (they could run code); it is not a {what}"
            ) from None
        raise CheckpointError(f"{path} is not a {what}: not a PyTorch file, or a truncated one") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, TypeError) as e:
        raise CheckpointError(f"{path} is truncated or not a {what} ({first_line(e, 120)})") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`; a CheckpointError if missing, truncated or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: check the path, or train one with `cleardiffusion train`")
    state = read_torch_file(path, map_location, "cleardiffusion checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cleardiffusion checkpoint (no '{FORMAT}' marker)")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {state.get('format_version')}, this cleardiffusion "
            f"reads version {FORMAT_VERSION}; use the cleardiffusion release that wrote it"
        )
    return state


# ---- what each use of a checkpoint needs, checked before any of it is used: a file that is a valid torch
# file but lacks a key or holds a wrong type is a one-line CheckpointError, never a KeyError or TypeError


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_weights(v) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())


def _is_dataset(v) -> bool:
    return (
        isinstance(v, dict)
        and isinstance(v.get("name"), str)
        and isinstance(v.get("image_shape"), (list, tuple))
        and len(v["image_shape"]) == 3
        and all(_is_int(n) and n >= 1 for n in v["image_shape"])
        and _is_int(v.get("num_classes"))
        and isinstance(v.get("class_names"), (list, tuple))
    )


def _is_rng(v) -> bool:
    return (
        isinstance(v, dict)
        and isinstance(v.get("device"), str)
        and isinstance(v.get("generator"), torch.Tensor)
        and isinstance(v.get("torch"), torch.Tensor)
    )


def _is_optimizer(v) -> bool:
    groups = v.get("param_groups") if isinstance(v, dict) else None
    return isinstance(v.get("state") if isinstance(v, dict) else None, dict) and (
        isinstance(groups, list) and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
    )


_KEYS = {  # key: (check, what it should be)
    "model_spec": (lambda v: isinstance(v, dict) and isinstance(v.get("kind"), str), "a model description"),
    "schedule": (
        lambda v: isinstance(v, dict) and isinstance(v.get("name"), str) and _is_int(v.get("T")),
        "a schedule {name, T}",
    ),
    "model": (_is_weights, "a state dict of tensors"),
    "ema": (_is_weights, "a state dict of tensors"),
    "optimizer": (_is_optimizer, "an optimizer state dict"),
    "step": (lambda v: _is_int(v) and v >= 0, "a step count >= 0"),
    "elapsed": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), "seconds"),
    "rng": (_is_rng, "random generator states"),
    "config": (lambda v: isinstance(v, dict), "a training configuration"),
    "dataset": (_is_dataset, "a dataset description {name, image_shape, num_classes, class_names}"),
}
_KEYS["chain"] = (  # optional (distill --chain): its three entries as the file's own are checked
    lambda v: isinstance(v, dict) and all(_KEYS[key][0](v.get(key)) for key in ("model_spec", "model", "ema")),
    "a second network {model_spec, model, ema}",
)
SAMPLING_KEYS = ("model_spec", "schedule", "model", "ema", "step", "config", "dataset")
RESUME_KEYS = tuple(k for k in _KEYS if k != "chain")  # "chain": optional, checked where present


def check_keys(state: dict, keys: Collection[str], path: str | Path) -> None:
    """CheckpointError naming the first key of `keys` that is missing or of the wrong type."""
    for key in keys:
        ok, what = _KEYS[key]
        if key not in state:
            raise CheckpointError(f"{path} lacks '{key}' ({what}); it was not written by `cleardiffusion train`")
        if not ok(state[key]):
            raise CheckpointError(
                f"{path} holds a damaged '{key}' ({type(state[key]).__name__}, expected {what}); "
                "use an intact checkpoint"
            )


def non_finite_tensors(weights: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding NaN or inf."""
    return [k for k, t in weights.items() if t.is_floating_point() and not torch.isfinite(t).all()]


def check_finite(weights: dict[str, torch.Tensor], what: str, path: str | Path, fix: str) -> None:
    """CheckpointError when any weight is NaN or infinite (the run diverged before it was saved)."""
    bad = non_finite_tensors(weights)
    if bad:
        raise CheckpointError(
            f"{path}: the {what} hold NaN or inf in {len(bad)} of {len(weights)} tensors (e.g. {bad[0]}); {fix}"
        )


def _rebuild(state: dict, path: str | Path) -> nn.Module:
    """The network of `state["model_spec"]`, its weights not loaded; a CheckpointError if it cannot be built."""
    try:
        return build_model(state["model_spec"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} holds a model description that cannot be built ({reason[:160]})") from None


def _load_weights(model: nn.Module, weights: dict, what: str, path: str | Path) -> None:
    try:
        model.load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: the {what} do not match its model description ({reason[:160]})") from None


def _check_shapes(model: nn.Module, weights: dict, what: str, path: str | Path) -> None:
    """The weights have exactly the model's tensor names and shapes (the model may live on the meta device)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != got:
        wrong = sorted(set(expected) ^ set(got)) or sorted(k for k in expected if expected[k] != got[k])
        raise CheckpointError(f"{path}: the {what} do not match its model description (e.g. {wrong[0]})")


def _check_schedule_fits(state: dict, path: str | Path) -> None:
    name, T = state["schedule"]["name"], state["schedule"]["T"]
    if name not in SCHEDULES:
        raise CheckpointError(f"{path} holds an unknown noise schedule {name!r} (known: {', '.join(SCHEDULES)}); "
                              "was it written by a newer cleardiffusion?")  # fmt: skip
    if not 2 <= T <= MAX_TIMESTEPS:
        raise CheckpointError(f"{path} holds a noise schedule of T = {T} steps, outside the 2..{MAX_TIMESTEPS} "
                              "supported; use a checkpoint trained with --timesteps in that range")  # fmt: skip
    check_memory(schedule_bytes(T), f"the noise schedule of {path} (T = {T})", "use an intact checkpoint")


def check_consistency(state: dict, model: nn.Module, path: str | Path) -> None:
    """CheckpointError when the file disagrees with itself: dataset vs network (`model`, on any device), schedule
    vs configuration, or an objective / prediction this cleardiffusion does not know."""
    dataset, config, schedule, net = state["dataset"], state["config"], state["schedule"], model.config
    (C, H, W), problems = dataset["image_shape"], []
    if hasattr(net, "in_channels"):  # a U-Net or a ViT: C and H = W are its in_channels and image_size
        if not (net.in_channels == C and net.image_size == H == W):
            takes = f"{net.in_channels}-channel {net.image_size}x{net.image_size} images"
            problems.append(f"its dataset records {C}-channel {H}x{W} images but its network takes {takes}")
    elif net.data_dim != C * H * W:  # the MLP: flat vectors of data_dim numbers
        problems.append(f"its dataset records {C}x{H}x{W} images but its network takes {net.data_dim} numbers")
    if len(dataset["class_names"]) != dataset["num_classes"]:
        problems.append(f"its dataset has {dataset['num_classes']} classes but {len(dataset['class_names'])} names")
    if net.num_classes not in (0, dataset["num_classes"]):
        problems.append(f"its network has {net.num_classes} classes, its dataset {dataset['num_classes']}")
    if "conditional" in config and bool(config["conditional"]) != (net.num_classes > 0):
        problems.append(f"its config says conditional={config['conditional']}, its network {net.num_classes} classes")
    for key, saved in (("timesteps", schedule["T"]), ("schedule", schedule["name"])):
        if key in config and config[key] != saved:
            problems.append(f"its config says --{key} {config[key]!r} but its schedule has {saved!r}")
    objective, prediction = config.get("objective", "ddpm"), config.get("prediction", "eps")  # older files: ddpm/eps
    if objective not in OBJECTIVES or prediction not in PREDICTIONS:
        known = f"{'/'.join(OBJECTIVES)}, {'/'.join(PREDICTIONS)}"
        problems.append(f"it names objective {objective!r}, prediction {prediction!r} (known: {known}): was it "
                        "written by a newer cleardiffusion?")  # fmt: skip
    if problems:
        raise CheckpointError(f"{path} is inconsistent: {problems[0]}; use an intact checkpoint")


def _is_fingerprint(v) -> bool:
    n, sha, shape = (v.get("n"), v.get("sha256"), v.get("image_shape")) if isinstance(v, dict) else (None,) * 3
    return _is_int(n) and isinstance(sha, str) and isinstance(shape, (list, tuple))


def _describe_data(f: dict) -> str:
    shape = "x".join(map(str, f["image_shape"]))
    return f"{f['n']} {shape} images in {f.get('num_classes', '?')} classes, digest {f['sha256'][:12]}"


def check_same_data(saved: dict, fingerprint: dict, path: str | Path) -> None:
    """CheckpointError when `fingerprint` (of the data now) differs from the data the checkpoint trained on."""
    if "data_fingerprint" not in saved:
        return  # written before fingerprints existed: nothing to compare
    if not _is_fingerprint(saved["data_fingerprint"]):
        raise CheckpointError(f"{path} holds a damaged 'data_fingerprint'; use an intact checkpoint")
    if saved["data_fingerprint"] != fingerprint:
        raise CheckpointError(
            f"checkpoint {path} was trained on other data ({_describe_data(saved['data_fingerprint'])}) than "
            f"--data-dir holds now ({_describe_data(fingerprint)}); pass that run's --data-dir to resume it, "
            "or use a new --out to start a new run"
        )


def load_for_resume(path: str | Path, map_location: str | torch.device, steps: int) -> dict[str, Any]:
    """A checkpoint to continue training from: every key present and typed, weights finite and matching."""
    state = load_checkpoint(path, map_location)
    check_keys(state, RESUME_KEYS, path)
    _check_schedule_fits(state, path)
    with torch.device("meta"):  # the shapes only: checks the weights fit without allocating a model
        model = _rebuild(state, path)
    check_consistency(state, model, path)
    for key, what in (("model", "raw weights"), ("ema", "EMA weights")):
        _check_shapes(model, state[key], what, path)
        check_finite(state[key], what, path, "resume from an earlier checkpoint (--keep-checkpoints)")
    if sum(len(g["params"]) for g in state["optimizer"]["param_groups"]) != len(list(model.parameters())):
        raise CheckpointError(f"{path}: the optimizer state does not match the model; use an intact checkpoint")
    if steps < state["step"]:
        raise CheckpointError(
            f"--steps {steps} is below the checkpoint's step {state['step']} ({path}): pass --steps above "
            f"{state['step']} to train further; to use the model as it is, `cleardiffusion sample` it"
        )
    return state


def load_for_sampling(
    path: str | Path, device: str | torch.device = "cpu", use_ema: bool = True
) -> tuple[nn.Module, denoiser.Path, dict[str, Any]]:
    """Rebuild the (EMA) denoiser and its noise path from a checkpoint, in eval mode on `device`.

    Returns (model, path, meta), what `generate.generate_images` and every sampler take: for a DDPM checkpoint
    an eps-model, whatever the network was trained to predict, and its NoiseSchedule; for a flow checkpoint
    the velocity network and a FlowPath (`denoiser.sampling_parts`). meta has "dataset", "image_shape"
    (C, H, W), "num_classes" (the model's conditioning classes, 0 for an unconditional model), "class_names",
    "step", "config", "objective" (objective.OBJECTIVES) and "prediction" ("eps" | "v" | "x0"). A checkpoint
    with a "chain" (`distill --chain`) gives a `denoiser.OneStepAndChain`: its own network and the chain's.
    Missing keys, wrong types, NaN/inf weights and a file that disagrees with itself are CheckpointErrors.
    """
    state = load_checkpoint(path)
    check_keys(state, SAMPLING_KEYS + (("chain",) if "chain" in state else ()), path)
    _check_schedule_fits(state, path)
    model = _sampling_network(state, use_ema, path)
    chain = _sampling_network({**state, **state["chain"]}, use_ema, path, "the chain's ") if "chain" in state else None
    try:
        schedule = NoiseSchedule.from_name(state["schedule"]["name"], state["schedule"]["T"])
    except ValueError as e:
        raise CheckpointError(f"{path} holds an unusable noise schedule ({str(e)[:160]})") from None
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
    model, path = denoiser.sampling_parts(
        model, meta["objective"], meta["prediction"], schedule
    )  # the objective, decided
    if chain is not None:  # distill --chain: this network at one step, the chain's at 2 or more
        model = denoiser.OneStepAndChain(model, denoiser.sampling_parts(chain, meta["objective"], meta["prediction"],
                                                                        schedule)[0])  # fmt: skip
    return model.to(device).eval(), path.to(device), meta


def _sampling_network(state: dict, use_ema: bool, path: str | Path, whose: str = "") -> nn.Module:
    """The network of `state` (model_spec, model, ema) with its EMA or raw weights, checked against the file."""
    what = f"{whose}EMA weights" if use_ema else f"{whose}raw weights"
    weights = state["ema" if use_ema else "model"]
    other = "--no-ema (the raw weights)" if use_ema else "the EMA weights (drop --no-ema)"
    check_finite(weights, what, path, f"try {other} or an earlier checkpoint")
    with torch.device("meta"):
        skeleton = _rebuild(state, path)
    check_consistency(state, skeleton, path)
    _check_shapes(skeleton, weights, what, path)
    model = _rebuild(state, path)
    _load_weights(model, weights, what, path)
    return model


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


# ---- a run folder holds only what `train` writes; anything else of the same name is the user's, never overwritten


def _json_or_none(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _our_metrics(path: Path) -> bool:
    """Every line (but a last one cut short by a kill) is a JSON record with a step."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    if lines and lines[-1].startswith('{"step": '):  # a line cut short by a kill is still ours
        lines = lines[:-1]
    try:
        return all(isinstance(r := json.loads(line), dict) and "step" in r for line in lines)
    except ValueError:
        return False


RUN_FILES = {  # file of a run folder: test that `train` wrote it
    "config.json": lambda p: isinstance(c := _json_or_none(p), dict) and {"dataset", "steps", "out"} <= set(c),
    "summary.json": lambda p: isinstance(s := _json_or_none(p), dict) and "param_digests" in s,
    "metrics.jsonl": _our_metrics,
}


def check_run_folder(out: str | Path) -> None:
    """UsageError naming the files in `out` that a training run would overwrite but did not write."""
    out = Path(out)
    foreign = [name for name, ours in RUN_FILES.items() if (out / name).exists() and not ours(out / name)]
    for name in ("checkpoints", "samples"):
        if (out / name).exists() and not (out / name).is_dir():
            foreign.append(name)
    if foreign:
        raise UsageError(
            f"--out {out} holds {', '.join(foreign)} not written by `cleardiffusion train`; they would be "
            "overwritten: choose a new --out, or move them away"
        )


def check_autoguide(name: str, bad_path, meta: dict, objective: str, schedule: str | None, image_shape: tuple,
                    noise_path) -> None:  # fmt: skip
    """A UsageError unless the model `name` (its noise path and metadata) can autoguide a model of this
    `objective`, noise `schedule` name, image shape and noise path: an unconditional model of the same kind."""
    same_path = type(bad_path) is type(noise_path) and getattr(bad_path, "T", None) == getattr(noise_path, "T", None)
    if meta["objective"] != objective or not same_path or meta["config"].get("schedule") != schedule:
        raise UsageError(f"{name} is another kind of model ({meta['objective']}, its own noise schedule) than the "
                         "one it would guide: pass a checkpoint of the same recipe, trained for less time")  # fmt: skip
    if tuple(meta["image_shape"]) != tuple(image_shape) or meta["num_classes"]:
        raise UsageError(f"{name} must be an unconditional model of {tuple(image_shape)} images, as the model it "
                         "guides")  # fmt: skip


def load_autoguide(path, objective: str, schedule: str | None, image_shape: tuple, noise_path, device) -> nn.Module:
    """The eps-model of checkpoint `path` to autoguide a model (its `objective`, noise `schedule` name, image shape
    and noise path) with: a UsageError, before any sampling or training, unless it is an unconditional model of the
    same objective, schedule, image shape and path (check_autoguide)."""
    bad, bad_path, meta = load_for_sampling(path, device)
    check_autoguide(f"--autoguide {path}", bad_path, meta, objective, schedule, image_shape, noise_path)
    return bad
