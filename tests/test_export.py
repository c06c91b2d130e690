"""`cleardiffusion export` and ONNX Runtime sampling: the same network, the same samples, clear refusals."""

import importlib.util

import numpy as np
import pytest
import torch

from cleardiffusion.checkpoint import load_checkpoint, load_for_sampling, save_checkpoint
from cleardiffusion.cli import main
from cleardiffusion.generate import generate_images
from cleardiffusion.recipe import SamplingRecipe
from test_train import tiny_flags, write_digits

HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript", "onnxruntime"))
NO_ONNX = 'the optional extra onnx (onnx, onnxscript, onnxruntime) is not installed: pip install -e ".[onnx]"'
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason=NO_ONNX)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    """A tiny conditional v-prediction checkpoint (8x8 digits, T = 100), its weights made non-trivial."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export")
    data = write_digits(root / "data")
    assert main(tiny_flags(data, root / "run", 3, conditional=True, prediction="v")) == 0
    path = root / "run/checkpoints/last.pt"
    state = load_checkpoint(path)
    g = torch.Generator().manual_seed(0)
    for weights in (state["ema"], state["model"]):  # 3 steps leave the zero-initialised output convs near zero
        for name, w in weights.items():
            if w.is_floating_point():
                weights[name] = w + 0.05 * torch.randn(w.shape, generator=g)
    return save_checkpoint(path, state)


@pytest.fixture(scope="module")
def exported(conditional, tmp_path_factory):
    if not HAVE_ONNX:
        pytest.skip(NO_ONNX)
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export", "--checkpoint", str(conditional), "--out", str(out)]) == 0
    return out


@needs_onnx
def test_the_onnx_network_is_the_checkpoints_network(conditional, exported):
    from cleardiffusion.export import load_onnx

    torch_model, torch_path, torch_meta = load_for_sampling(conditional)
    onnx_model, onnx_path, onnx_meta = load_onnx(exported)
    for key in ("objective", "prediction", "image_shape", "num_classes", "class_names", "step"):
        assert onnx_meta[key] == torch_meta[key], key
    assert onnx_path.T == torch_path.T and torch.equal(onnx_path.alpha_bar, torch_path.alpha_bar)
    g = torch.Generator().manual_seed(1)
    for batch in (1, 5):  # a dynamic batch
        x = torch.randn(batch, *torch_meta["image_shape"], generator=g)
        t = torch.randint(0, torch_path.T, (batch,), generator=g)
        y = torch.randint(0, 11, (batch,), generator=g)  # 10 is the null class
        with torch.no_grad():
            expected = torch_model(x, t, y)  # eps, from the network's v: the conversion is applied on both sides
        torch.testing.assert_close(onnx_model(x, t, y), expected, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(expected, torch.zeros_like(expected))


@needs_onnx
def test_onnx_runtime_draws_the_same_samples_as_pytorch(conditional, exported):
    """The default sampler, guided, both backends in fp32: the same samples up to float32 rounding."""
    from cleardiffusion.export import load_onnx

    recipe = SamplingRecipe(steps=8, guidance=3.0)
    labels = torch.arange(6) % 10
    draws = []
    for model, path, meta in (load_for_sampling(conditional), load_onnx(exported)):
        batches = generate_images(model, path, n=6, shape=meta["image_shape"], recipe=recipe, labels=labels, seed=3,
                                  batch_size=4, precision="fp32")  # fmt: skip
        draws.append(torch.cat(list(batches)))
    torch.testing.assert_close(draws[1], draws[0], atol=1e-3, rtol=1e-3)


@needs_onnx
def test_sample_runs_an_onnx_file_and_refuses_bf16(conditional, exported, tmp_path, capsys):
    base = ["sample", "--n", "4", "--steps", "4", "--seed", "2", "--device", "cpu"]
    assert main([*base, "--checkpoint", str(exported), "--out", str(tmp_path / "onnx.npz")]) == 0
    assert (
        main([*base, "--checkpoint", str(conditional), "--precision", "fp32", "--out", str(tmp_path / "pt.npz")]) == 0
    )
    a, b = np.load(tmp_path / "onnx.npz"), np.load(tmp_path / "pt.npz")
    assert str(a["precision"]) == "fp32"
    assert np.abs(a["images"].astype(int) - b["images"]).max() <= 1  # uint8 rounding of float32-equal samples
    capsys.readouterr()
    assert main([*base, "--checkpoint", str(exported), "--precision", "bf16", "--out", str(tmp_path / "x.npz")]) == 2
    assert "runs in fp32" in one_line_error(capsys)


@needs_onnx
def test_python_loads_an_onnx_file(exported):
    import cleardiffusion as cd

    model = cd.load(exported)
    images = model.sample(3, labels=[0, 1, 2], guidance=2, steps=3)
    assert images.shape == (3, 1, 8, 8) and images.dtype == torch.uint8
    with pytest.raises(ValueError, match="fp32"):
        model.sample(2, precision="bf16", steps=2)


def test_export_refuses_bad_input_in_one_line(conditional, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "m.onnx")
    if HAVE_ONNX:
        assert main(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--out", out]) == 2
        assert "missing.pt" in one_line_error(capsys)
        corrupt = tmp_path / "corrupt.pt"
        corrupt.write_bytes(b"not a checkpoint")
        assert main(["export", "--checkpoint", str(corrupt), "--out", out]) == 2
        assert "corrupt.pt" in one_line_error(capsys)
        state = load_checkpoint(conditional)
        state["config"]["objective"] = "consistency"  # a distilled few-step model's checkpoint
        few_step = save_checkpoint(tmp_path / "few.pt", state)
        assert main(["export", "--checkpoint", str(few_step), "--out", out]) == 2
        assert "consistency" in one_line_error(capsys)
        assert main(["export", "--checkpoint", str(conditional), "--out", str(tmp_path / "m.pt")]) == 2
        assert ".onnx" in one_line_error(capsys)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if "onnx" in name else real_find_spec(name))
    assert main(["export", "--checkpoint", str(conditional), "--out", out]) == 2
    assert 'pip install -e ".[onnx]"' in one_line_error(capsys)
    assert main(["sample", "--checkpoint", out, "--out", str(tmp_path / "x.png")]) == 2
    assert 'pip install -e ".[onnx]"' in one_line_error(capsys)


@needs_onnx
def test_sample_refuses_an_onnx_file_it_cannot_use(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx graph")
    assert main(["sample", "--checkpoint", str(bad), "--out", str(tmp_path / "x.png")]) == 2
    assert "bad.onnx" in one_line_error(capsys)


@needs_onnx
def test_an_unconditional_flow_network_exports_with_float_times(tmp_path):
    """The other exportable objective: the velocity network of flow matching takes t as a float, no labels."""
    from cleardiffusion.export import export_network, load_onnx
    from cleardiffusion.flow import FlowPath
    from cleardiffusion.models.unet import unet_from_preset

    torch.manual_seed(0)
    net = unet_from_preset("small", in_channels=1, image_size=8, base_channels=8, norm_groups=4).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    meta = {"objective": "flow", "prediction": "eps", "config": {}, "image_shape": (1, 8, 8), "num_classes": 0,
            "class_names": [], "dataset": "none", "step": 0}  # fmt: skip
    export_network(net, FlowPath(), meta, tmp_path / "flow.onnx")
    model, path, loaded = load_onnx(tmp_path / "flow.onnx")
    assert isinstance(path, FlowPath) and loaded["objective"] == "flow" and loaded["num_classes"] == 0
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0.0, 500.0, 999.0])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), net(x, t), atol=1e-4, rtol=1e-4)
