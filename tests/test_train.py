"""Training: the loss falls, a resumed run repeats the uninterrupted one exactly, the CLI rejects bad input.

Helpers here (a tiny digits dataset in MNIST's IDX format, the flags of a tiny U-Net) are shared by
test_checkpoint.py, test_distributed.py and test_fault.py.
"""

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from cleardiffusion.cli import main
from cleardiffusion.schedule import NoiseSchedule
from cleardiffusion.train import TrainConfig, draw_batch, train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def write_digits(folder: Path, n: int = 64, size: int = 8, seed: int = 0) -> Path:
    """A tiny dataset in MNIST's IDX format: class k is a bright row k and a column 3k (mod size)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = np.zeros((n, size, size), np.uint8)
    for i, k in enumerate(labels):
        images[i, k % size, :] = 255
        images[i, :, (3 * k) % size] = 200
    header = struct.pack(">IIII", 0x803, n, size, size)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
    labels_header = struct.pack(">II", 0x801, n)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels_header + labels.tobytes()))
    return folder


def tiny_flags(data_dir: Path, out: Path, steps: int, **extra) -> list[str]:
    """`cleardiffusion train` flags for a 13k-parameter U-Net on 8x8 digits, CPU, a metric line per step."""
    flags = {
        "dataset": "mnist", "data-dir": data_dir, "out": out, "steps": steps, "base-channels": 8,
        "model-option": "norm_groups=4", "batch-size": 8, "timesteps": 100, "lr": 1e-3, "warmup": 3,
        "log-every": 1, "checkpoint-every": 5, "sample-every": 0, "device": "cpu", "precision": "fp32",
    }  # fmt: skip
    flags.update({k.replace("_", "-"): v for k, v in extra.items()})
    args = ["train"]
    for key, value in flags.items():
        if value is True:
            args.append(f"--{key}")
        elif value is not None and value is not False:
            args += [f"--{key}", str(value)]
    return args + ["--no-progress"]


def tiny_config(data_dir: Path, out: Path, steps: int, **extra) -> TrainConfig:
    """TrainConfig of the same tiny run, for calling train() directly."""
    options = dict(dataset="mnist", data_dir=str(data_dir), out=str(out), steps=steps, base_channels=8,
                   model_options={"norm_groups": 4}, batch_size=8, timesteps=100, lr=1e-3, warmup=3,
                   log_every=1, checkpoint_every=5, sample_every=0, device="cpu", progress=False,
                   precision="fp32")  # fp32: the equivalence tests compare runs to the last bit  # fmt: skip
    options.update(extra)
    return TrainConfig(**options)


def losses(out: Path) -> list[float]:
    """The per-step losses from OUT/metrics.jsonl, in step order."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, len(records) + 1))
    return [r["loss"] for r in records]


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    return write_digits(tmp_path / "digits")


TINY_VIT = dict(model="vit-small", base_channels=None, lr=5e-3,
                model_options={"patch_size": 2, "hidden": 32, "depth": 3, "heads": 2})  # 16 tokens, 0.06M  # fmt: skip
TINY_SSM = {**TINY_VIT, "model_options": {**TINY_VIT["model_options"], "mixer": "scan", "scan_head_dim": 8}}


@pytest.mark.parametrize("network, steps", [({}, 100), (TINY_VIT, 60), (TINY_SSM, 60)], ids=["unet", "vit", "ssm"])
def test_loss_falls(digits, tmp_path, network, steps):
    options = {"lr": 2e-3, **network}
    summary = train(
        tiny_config(digits, tmp_path / "run", steps=steps, batch_size=16, checkpoint_every=steps, **options)
    )
    curve = losses(tmp_path / "run")
    assert summary["step"] == steps and len(curve) == steps
    last = curve[-steps // 5 :]
    assert np.mean(last) < 0.7 * np.mean(curve[:10]), (np.mean(curve[:10]), np.mean(last))


def test_resumed_run_repeats_the_uninterrupted_losses_exactly(digits, tmp_path, capsys):
    assert main(tiny_flags(digits, tmp_path / "full", steps=16)) == 0
    assert main(tiny_flags(digits, tmp_path / "split", steps=7, checkpoint_every=3)) == 0  # last.pt at 7
    assert main(tiny_flags(digits, tmp_path / "split", steps=16, resume=True)) == 0
    assert losses(tmp_path / "split") == losses(tmp_path / "full")  # bit for bit
    assert "resuming at step 7" in capsys.readouterr().out


def test_run_folder_has_config_metrics_checkpoints_and_a_row_per_class(digits, tmp_path):
    from PIL import Image

    out = tmp_path / "run"
    flags = tiny_flags(digits, out, steps=4, conditional=True, sample_every=4, keep_checkpoints=True)
    assert main(flags + ["--checkpoint-every", "2"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["conditional"] is True and config["label_dropout"] == 0.1 and config["batch_size"] == 8
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(record) == {"step", "loss", "lr", "images_per_sec", "elapsed"}
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["last.pt", "step_0000002.pt", "step_0000004.pt"]
    grid = Image.open(out / "samples" / "step_0000004.png")
    assert grid.size == (8 * 10 + 2, 10 * 10 + 2)  # 8 samples per row, one row for each of the 10 classes


def test_a_process_slice_of_the_global_draw_is_what_a_single_process_draws():
    """The DDP design: W processes' slices of one global draw concatenate to the 1-process batch."""
    images = torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8)
    data = {"images": images, "labels": torch.arange(50) % 10, "null_label": 10}
    config = TrainConfig(batch_size=12, conditional=True, label_dropout=0.3)
    whole = draw_batch(
        torch.Generator().manual_seed(5), data, config, NoiseSchedule.from_name("linear", 100), True, slice(0, 12)
    )
    for world in (2, 3, 4):
        slices = [slice(r * 12 // world, (r + 1) * 12 // world) for r in range(world)]
        parts = [
            draw_batch(torch.Generator().manual_seed(5), data, config, NoiseSchedule.from_name("linear", 100), True, s)
            for s in slices
        ]
        for i in range(4):  # x0, y, t, eps
            assert torch.equal(torch.cat([p[i] for p in parts]), whole[i])


def test_label_dropout_and_flips_follow_their_probabilities():
    images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    images[:, :, :, 0] = 255  # left column bright: a flip moves it to the right
    data = {"images": images, "labels": torch.tensor([1, 2, 3, 4]), "null_label": 9}
    config = TrainConfig(batch_size=4000, conditional=True, label_dropout=0.25)
    x0, y, t, eps = draw_batch(
        torch.Generator().manual_seed(0), data, config, NoiseSchedule.from_name("linear", 10), True, slice(0, 4000)
    )
    assert abs((y == 9).float().mean().item() - 0.25) < 0.03  # label dropout -> null class
    assert abs((x0[:, 0, 0, 1] > 0).float().mean().item() - 0.5) < 0.03  # half of them mirrored
    assert t.min() >= 0 and t.max() <= 9 and abs(eps.std().item() - 1) < 0.05
    x0, y, _, _ = draw_batch(
        torch.Generator(), data, TrainConfig(batch_size=8), NoiseSchedule.from_name("linear", 10), False, slice(0, 8)
    )
    assert y is None and (x0[:, 0, :, 0] == 1).all()  # unconditional, never flipped


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steps", "0"], "--steps"),
        (["--batch-size", "-3"], "--batch-size"),
        (["--label-dropout", "1.5"], "--label-dropout"),
        (["--model", "nope"], "invalid choice"),
        (["--lr", "0"], "--lr"),
        (["--model-option", "no_such_field=3"], "no_such_field"),
    ],
)
def test_bad_flags_are_one_line_errors(digits, tmp_path, capsys, extra, message):
    flags = tiny_flags(digits, tmp_path / "run", steps=3) + extra
    with pytest.raises(SystemExit) as exit_info:
        code = main(flags)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_data_errors_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(tiny_flags(empty, tmp_path / "a", steps=2, dataset="folder")) == 2
    bad = write_digits(tmp_path / "bad")
    raw = gzip.decompress((bad / "train-images-idx3-ubyte.gz").read_bytes())
    (bad / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-10]))  # wrong size
    assert main(tiny_flags(bad, tmp_path / "b", steps=2)) == 2
    odd = write_digits(tmp_path / "odd", size=10)  # 10 x 10 cannot be halved twice
    assert main(tiny_flags(odd, tmp_path / "c", steps=2)) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3, errors
    assert "--data-dir" in errors[0] and "truncated" in errors[1] and "image_size=10" in errors[2]


def test_precision_auto_follows_the_hardware_and_bf16_keeps_fp32_weights(digits, tmp_path, monkeypatch):
    from cleardiffusion import fastpath, train_config
    from cleardiffusion.checkpoint import load_checkpoint

    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU
    monkeypatch.setattr(fastpath, "cpu_has_native_bf16", lambda: True)
    assert train_config.step_options(TrainConfig(), cpu).amp == "bf16"
    assert train_config.step_options(TrainConfig(precision="fp32"), cpu).amp == "fp32"
    monkeypatch.setattr(fastpath, "cpu_has_native_bf16", lambda: False)
    assert train_config.step_options(TrainConfig(), cpu).amp == "fp32"  # emulated bf16 would be slower
    assert train_config.step_options(TrainConfig(), cuda).amp == "bf16"
    assert train_config.step_options(TrainConfig(precision="bf16"), cpu).amp == "bf16"

    train(tiny_config(digits, tmp_path / "run", steps=40, batch_size=16, lr=2e-3, precision="bf16"))
    curve = losses(tmp_path / "run")
    assert np.mean(curve[-10:]) < 0.8 * np.mean(curve[:5]), (np.mean(curve[:5]), np.mean(curve[-10:]))
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    for key in ("model", "ema"):  # autocast computes in bf16; the weights, EMA and Adam moments stay fp32
        assert all(v.dtype == torch.float32 for v in state[key].values() if v.is_floating_point())
    # AdamW ran fused on this CPU wherever torch has a fused CPU kernel (2.4 on), its Python loop before
    fused_on_cpu = fastpath.fused_adam_supported(cpu)
    assert all(bool(g.get("fused")) == fused_on_cpu for g in state["optimizer"]["param_groups"])
