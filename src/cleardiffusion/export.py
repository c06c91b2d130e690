"""A trained denoiser as an ONNX graph, and the model a sampler calls that runs it with ONNX Runtime.

`export_onnx(checkpoint, out)` writes the checkpoint's EMA network as it is: the U-Net's forward(x_t, t[, y])
-> its native prediction (eps, v or x_0; the velocity on the flow path), with a dynamic batch dimension. What a
sampler needs to read that output is stored beside the graph, in the file's metadata under "cleardiffusion":
the objective, the prediction, the noise schedule (name and T), the image shape, the classes and the U-Net's
config. `load_onnx(file)` returns what `checkpoint.load_for_sampling` returns, (model, path, meta): the graph,
run by ONNX Runtime's CPU provider inside `OnnxNetwork`, goes through `denoiser.sampling_parts` like the
PyTorch network, so every sampler, guidance and `generate.generate_images` run it unchanged.

ONNX Runtime runs the graph in float32 (it has no bf16 convolutions on a CPU). onnx, onnxscript (the exporter)
and onnxruntime are the optional extra `onnx` (`pip install -e ".[onnx]"`), imported only inside functions.
"""

import contextlib
import dataclasses
import importlib.util
import io
import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_for_sampling
from .denoiser import sampling_parts
from .errors import CheckpointError, UsageError
from .files import atomic_write
from .models.unet import UNetConfig
from .schedule import NoiseSchedule

EXPORTABLE = ("ddpm", "flow")  # one time input; a few-step model's path and sampler are not exported
META_KEY = "cleardiffusion"
FORMAT = 1  # of the metadata below; a reader refuses another
INSTALL = 'pip install -e ".[onnx]"'
TOLERANCE = 1e-3  # |ONNX Runtime - PyTorch| allowed when the export checks itself (float32 reassociation)


def require_onnx(*modules: str) -> None:
    """UsageError naming the fix unless the extra's modules are importable (before any expensive work)."""
    missing = [m for m in modules or ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"ONNX needs {', '.join(missing)}, not installed: {INSTALL}")


def network_of(model: nn.Module) -> nn.Module:
    """The trained network inside the model a sampler calls (`objective.EpsFromPrediction` wraps a v/x_0 one)."""
    return getattr(model, "net", model)


def example_inputs(net: nn.Module, path, image_shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """(x_t, t[, y]) for a batch of 2 at two grid points of `path`: the dtypes the samplers pass."""
    x = torch.randn(2, *image_shape, generator=torch.Generator().manual_seed(0))
    ts = path.timesteps(2)
    t = torch.cat([path.network_time(ts[0], x[:1]), path.network_time(ts[1], x[:1])])
    if net.config.num_classes == 0:
        return x, t
    return x, t, torch.tensor([0, net.config.null_label])


def export_onnx(checkpoint: str | Path, out: str | Path, *, use_ema: bool = True) -> dict:
    """Write the checkpoint's (EMA) network to `out` as ONNX with its metadata; returns the metadata."""
    require_onnx()
    model, path, meta = load_for_sampling(checkpoint, use_ema=use_ema)
    if meta["objective"] not in EXPORTABLE:
        raise UsageError(f"export takes {' and '.join(EXPORTABLE)} checkpoints; {checkpoint} is a {meta['objective']} "
                         "model (a few-step sampler): sample it with PyTorch, `cleardiffusion sample`")  # fmt: skip
    return export_network(network_of(model), path, meta, out)


def export_network(net: nn.Module, path, meta: dict, out: str | Path) -> dict:
    """Write `net` (a U-Net on `path`; meta as `load_for_sampling` returns it) to `out` as ONNX with its metadata.

    The export checks itself: ONNX Runtime's output on example inputs must match PyTorch's within TOLERANCE.
    """
    inputs = example_inputs(net, path, meta["image_shape"])
    names = ("x", "t", "y")[: len(inputs)]
    batch = torch.export.Dim("batch")
    quiet = contextlib.redirect_stdout(io.StringIO())  # the exporter reports each phase on stdout
    labels_checked = net.validate_labels
    with torch.no_grad(), quiet, warnings.catch_warnings(), _quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")
        net.validate_labels = False  # a data-dependent check that has no place in a static graph
        try:
            program = torch.onnx.export(net, inputs, input_names=list(names), output_names=["out"], dynamo=True,
                                        dynamic_shapes=tuple({0: batch} for _ in inputs), verbose=False)  # fmt: skip
        finally:
            net.validate_labels = labels_checked
        expected = net(*inputs)
    info = {
        "format": FORMAT, "objective": meta["objective"], "prediction": meta["prediction"],
        "schedule": meta["config"].get("schedule", "linear"), "timesteps": meta["config"].get("timesteps", 1000),
        "image_shape": list(meta["image_shape"]), "num_classes": meta["num_classes"],
        "class_names": meta["class_names"], "dataset": meta["dataset"], "step": meta["step"],
        "unet": dataclasses.asdict(net.config), "config": meta["config"],
    }  # fmt: skip
    import onnx

    proto = program.model_proto
    onnx.helper.set_model_props(proto, {META_KEY: json.dumps(info)})
    data = proto.SerializeToString()
    got = OnnxNetwork(_session(data, str(out)), net.config)(*inputs)
    if not torch.allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE):
        raise RuntimeError(f"the ONNX graph disagrees with PyTorch by {(got - expected).abs().max():.2e}")
    with atomic_write(out) as f:
        f.write(data)
    return info


class OnnxNetwork(nn.Module):
    """An exported network run by ONNX Runtime, called as the U-Net is: forward(x_t, t[, y]) -> (B, C, H, W)."""

    def __init__(self, session, config: UNetConfig):
        super().__init__()
        self.session, self.config = session, config
        self.validate_labels = True  # as the U-Net: guidance wrappers check labels once and switch it off

    @property
    def null_label(self) -> int:
        return self.config.null_label

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        feeds = {"x": x_t.detach().float().cpu().numpy(), "t": t.detach().cpu().numpy()}
        if self.config.num_classes:
            y = torch.full((len(x_t),), self.null_label) if y is None else y
            if self.validate_labels and bool(((y < 0) | (y > self.null_label)).any()):
                raise ValueError(f"class labels must lie in 0..{self.config.num_classes - 1} (or {self.null_label} "
                                 "= null class)")  # fmt: skip
            feeds["y"] = y.detach().to(torch.long).cpu().numpy()
        (out,) = self.session.run(["out"], feeds)
        return torch.from_numpy(out).to(x_t.device)


def load_onnx(file: str | Path) -> tuple[nn.Module, object, dict]:
    """(model, path, meta) of an `export_onnx` file, as `checkpoint.load_for_sampling` returns them; CPU only.

    meta has the checkpoint's keys plus "backend": "onnxruntime". A missing file, a file ONNX Runtime cannot
    read or one without our metadata is a CheckpointError.
    """
    require_onnx("onnxruntime")
    file = Path(file)
    if not file.is_file():
        raise CheckpointError(f"{file} does not exist or is not a file; write one with `cleardiffusion export`")
    session = _session(file.read_bytes(), str(file))
    try:
        info = json.loads(session.get_modelmeta().custom_metadata_map[META_KEY])
        config = UNetConfig(**info["unet"])
        schedule = NoiseSchedule.from_name(info["schedule"], info["timesteps"])
        ok = info["format"] == FORMAT and info["objective"] in EXPORTABLE
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise CheckpointError(f"{file} is an ONNX file but not one `cleardiffusion export` wrote (no usable "
                              f"{META_KEY!r} metadata); export the checkpoint again")  # fmt: skip
    model, path = sampling_parts(OnnxNetwork(session, config), info["objective"], info["prediction"], schedule)
    meta = {k: info[k] for k in ("dataset", "num_classes", "class_names", "step", "config", "objective", "prediction")}
    return model.eval(), path, meta | {"image_shape": tuple(info["image_shape"]), "backend": "onnxruntime"}


def onnx_precision(precision: str) -> str:
    """The precision an ONNX model samples in: fp32 (ONNX Runtime has no bf16 convolutions on a CPU)."""
    if precision == "bf16":
        raise UsageError("an ONNX model runs in fp32 (ONNX Runtime's CPU kernels): drop --precision bf16, or "
                         "sample the .pt checkpoint")  # fmt: skip
    return "fp32"


def _session(data: bytes, name: str):
    """An ONNX Runtime session on the CPU with torch's thread count; a file it cannot read is a CheckpointError."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ONNX Runtime's errors share no base class beyond Exception
        raise CheckpointError(f"{name} cannot be read by ONNX Runtime ({str(e).splitlines()[0][:160]})") from None


@contextlib.contextmanager
def _quiet_logger(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
