"""The CPU recipe's training flags: prediction types, --time-budget, --eval-every, and old checkpoints."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cleardiffusion.checkpoint import load_checkpoint, load_for_sampling, save_checkpoint
from cleardiffusion.cli import main
from cleardiffusion.objective import EpsFromPrediction
from cleardiffusion.train import train
from test_train import tiny_config, tiny_flags, write_digits

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    return write_digits(tmp_path / "digits", size=12)  # the feature classifier needs >= 12 pixels


# v is the default prediction: test_train.py::test_loss_falls trains it for 100 steps, so here 4 steps check
# its plumbing; x0's loss is checked to fall here
@pytest.mark.parametrize("prediction, steps", [("v", 4), ("x0", 60)])
def test_each_prediction_type_trains_and_samples_as_an_eps_model(digits, tmp_path, prediction, steps):
    out = tmp_path / "run"
    summary = train(tiny_config(digits, out, steps=steps, batch_size=16, lr=2e-3, prediction=prediction,
                                loss_weighting="min-snr", checkpoint_every=steps))  # fmt: skip
    curve = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert summary["step"] == steps and len(curve) == steps
    if steps >= 60:
        assert np.mean(curve[-15:]) < 0.8 * np.mean(curve[:5])
    model, schedule, meta = load_for_sampling(out / "checkpoints" / "last.pt")
    assert meta["prediction"] == prediction and meta["objective"] == "ddpm"
    assert isinstance(model, EpsFromPrediction) and model.prediction == prediction
    assert main(["sample", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--n", "4", "--steps", "5",
                 "--out", str(tmp_path / "grid.png")]) == 0  # fmt: skip


def test_flow_matching_trains_and_samples_with_any_sampler(digits, tmp_path, capsys):
    out = tmp_path / "run"
    summary = train(
        tiny_config(
            digits, out, steps=60, batch_size=16, lr=2e-3, objective="flow", sample_every=60, checkpoint_every=60
        )
    )
    curve = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert summary["step"] == 60 and np.mean(curve[-15:]) < 0.8 * np.mean(curve[:5])
    assert (out / "samples" / "step_0000060.png").is_file()
    model, _, meta = load_for_sampling(out / "checkpoints" / "last.pt")
    assert meta["objective"] == "flow" and not isinstance(model, EpsFromPrediction)  # the velocity network
    ckpt = str(out / "checkpoints" / "last.pt")
    assert main(["sample", "--checkpoint", ckpt, "--sampler", "euler", "--n", "4", "--steps", "5",
                 "--out", str(tmp_path / "grid.png")]) == 0  # fmt: skip
    assert main(["sample", "--checkpoint", ckpt, "--sampler", "dpm++2m", "--n", "4", "--steps", "5", "--out",
                 str(tmp_path / "dpm.png")]) == 0  # fmt: skip
    assert main(["sample", "--checkpoint", ckpt, "--spacing", "karras", "--n", "4", "--out",
                 str(tmp_path / "bad.png")]) == 2  # fmt: skip
    assert "flow" in capsys.readouterr().err


def test_a_checkpoint_without_a_prediction_field_loads_as_eps(digits, tmp_path):
    out = tmp_path / "run"
    train(tiny_config(digits, out, steps=2))
    path = out / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    for key in ("prediction", "loss_weighting"):
        del state["config"][key]  # as written before these fields existed
    old = tmp_path / "old.pt"
    save_checkpoint(old, state)
    model, _, meta = load_for_sampling(old)
    assert meta["prediction"] == "eps" and not isinstance(model, EpsFromPrediction)


def test_a_run_from_before_the_prediction_field_resumes_as_eps(digits, tmp_path):
    """... and from before the dmd fields and --ema-warmup (which a resumed run once refused as 'another run')."""
    out = tmp_path / "run"
    assert main(tiny_flags(digits, out, steps=2, prediction="eps", loss_weighting="none")) == 0
    path = out / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    before = ("prediction", "loss_weighting", "dmd_chain", "dmd_fake_steps", "dmd_fake_lr", "dmd_gan", "dmd_t_max")
    for key in (*before, "ema_warmup"):
        del state["config"][key]
    save_checkpoint(path, state)
    assert main(tiny_flags(digits, out, steps=4, prediction="eps", loss_weighting="none", resume=True)) == 0
    assert load_checkpoint(path)["step"] == 4


def test_time_budget_alone_stops_the_run_and_says_so(digits, tmp_path, capsys):
    out = tmp_path / "run"
    flags = tiny_flags(digits, out, steps=None)  # no --steps
    assert main(flags + ["--time-budget", "0.002"]) == 0  # 0.12 s
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by"] == "time-budget" and summary["interrupted"] is None
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == summary["step"] >= 1
    assert "time budget of 0.002 min reached" in capsys.readouterr().out


def test_steps_reached_before_the_budget_stop_as_steps(digits, tmp_path):
    summary = train(tiny_config(digits, tmp_path / "run", steps=3, time_budget=60.0))
    assert summary["step"] == 3 and summary["stopped_by"] == "steps"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--prediction", "score"], "--prediction"),
        (["--loss-weighting", "p2"], "--loss-weighting"),
        (["--time-budget", "0"], "--time-budget"),
        (["--time-budget", "nan"], "--time-budget"),
        (["--eval-every", "-5"], "--eval-every"),
    ],
)
def test_bad_recipe_flags_are_one_line_errors(digits, tmp_path, capsys, extra, message):
    try:  # argparse refuses some flags (SystemExit 2), validate() the others (return 2)
        code = main(tiny_flags(digits, tmp_path / "run", steps=2) + extra)
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_neither_steps_nor_budget_is_a_one_line_error(digits, tmp_path, capsys):
    flags = tiny_flags(digits, tmp_path / "run", steps=None)  # no --steps
    assert main(flags) == 2
    assert "--time-budget" in capsys.readouterr().err


def test_eval_every_writes_fid_records_and_curves(digits, tmp_path, monkeypatch):
    from PIL import Image

    from cleardiffusion.features import SmallClassifier, file_sha256, save_classifier

    monkeypatch.setenv("CLEARDIFFUSION_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    classifier = tmp_path / "clf.pt"
    save_classifier(classifier, SmallClassifier(1, 10, 12), {"dataset": "mnist"})  # untrained: mechanics only
    out = tmp_path / "run"
    train(tiny_config(digits, out, steps=4, eval_every=2, eval_n=8, classifier=str(classifier), checkpoint_every=2))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in records if "fid" in r]
    assert [r["step"] for r in scored] == [2, 4]
    assert all(np.isfinite(r["fid"]) and (r["confident"] * 8).is_integer() for r in scored)  # a share of 8 samples
    assert {r["features_sha256"] for r in scored} == {file_sha256(classifier)}  # the network that scored them
    assert Image.open(out / "curves.png").format == "PNG"


def test_eval_every_on_an_image_folder_without_a_classifier_is_refused(tmp_path, capsys, monkeypatch):
    from PIL import Image

    folder = tmp_path / "folder" / "cats"
    folder.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    flags = ["train", "--dataset", "folder", "--data-dir", str(tmp_path / "folder"), "--steps", "2",
             "--out", str(tmp_path / "run"), "--eval-every", "1", "--base-channels", "8", "--model-option",
             "norm_groups=4", "--device", "cpu", "--no-progress"]  # fmt: skip
    monkeypatch.setenv("CLEARDIFFUSION_CACHE", str(tmp_path / "cache"))  # no cached classifier there
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert "--classifier" in err and "Traceback" not in err
