"""The GPU throughput benchmark has never run on a GPU here; its CPU smoke mode keeps it from rotting."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: Path):
    """A benchmark script as a module, so its main() runs in this process (no second torch start-up)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("one_thread")  # the script sets one thread in --quick mode; the fixture restores it
def test_gpu_throughput_quick_runs_on_the_cpu(tmp_path):
    out = tmp_path / "throughput.md"
    benchmark = load_script(ROOT / "benchmarks" / "gpu_throughput.py")
    with torch.random.fork_rng():  # it seeds the global generator; later tests keep theirs
        assert benchmark.main(["--quick", "--device", "cpu", "--skip-peers", "--out", str(out)]) == 0
    text = out.read_text()
    # the measured values come from the JSON the script writes beside its table: the table's numbers are
    # formatted for people ("1,153"), so parsing them would make this test depend on the machine's speed
    jobs = json.loads(out.with_suffix(".json").read_text())
    measured = {(j["network"], j["case"]) for j in jobs}
    for network in ("ddpm-cifar10", "seed-minimal"):
        for case in ("train-128", "train-512", "forward-1024"):
            assert (network, case) in measured, (network, case)
    for j in jobs:
        assert j["status"] == "ok" and j["images_per_sec"] > 0, j
    assert "bf16 matmul peak (measured)" in text
