"""benchmarks/few_steps.py end to end on 12x12 digits: a 6-step checkpoint, a random-weight classifier, 8 samples."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cleardiffusion.checkpoint import load_checkpoint, save_checkpoint
from cleardiffusion.cli import main
from cleardiffusion.features import SmallClassifier, save_classifier
from test_benchmarks import load_script
from test_eval_cli import write_split
from test_train import tiny_flags

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one thread, restored afterwards
def test_few_steps_writes_table_plot_and_grids(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    write_split(data, "train", 64, 0)
    assert main(tiny_flags(data, tmp_path / "run", 2, timesteps=50)) == 0
    eps_ckpt = tmp_path / "run/checkpoints/last.pt"
    state = load_checkpoint(eps_ckpt)
    state["config"]["objective"] = "flow"  # the same network read as a velocity: enough to run the flow path
    flow_ckpt = save_checkpoint(tmp_path / "flow.pt", state)
    torch.manual_seed(0)
    save_classifier(tmp_path / "clf.pt", SmallClassifier(1, 10, 12), {"dataset": "mnist"})
    out = tmp_path / "out"
    args = ["--checkpoint", str(eps_ckpt), "--flow-checkpoint", str(flow_ckpt), "--data-dir", str(data),
            "--classifier", str(tmp_path / "clf.pt"), "--cache-dir", str(tmp_path / "cache"), "--n", "8", "--nfe",
            "2", "3", "--grid-nfe", "3", "--reference-steps", "4", "--device", "cpu", "--out", str(out)]  # fmt: skip
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as for a script run from benchmarks/
    with torch.random.fork_rng():  # in this process (no second torch start-up); later tests keep their seeds
        load_script(ROOT / "benchmarks" / "few_steps.py").main(args)
    rows = json.loads((out / "results.json").read_text())["rows"]
    runs = {(r["model"], r["sampler"], r["nfe"]) for r in rows}
    assert {("eps", "ddim", 2), ("eps", "dpm++2m", 3), ("eps", "heun", 3), ("eps", "ddpm", 4)} <= runs
    assert {("flow", "euler", 3), ("flow", "heun", 2)} <= runs
    assert all(r["nfe"] <= r["budget"] for r in rows if r["budget"] is not None)
    assert "FID / model's best" in (out / "README.md").read_text()
    for png in [out / "fid_vs_nfe.png", *(out / r["grid"] for r in rows if "grid" in r)]:  # pictures, not blanks
        assert np.asarray(Image.open(png).convert("L")).std() > 0, png
