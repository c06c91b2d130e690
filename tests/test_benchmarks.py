"""The GPU throughput benchmark has never run on a GPU here; its CPU smoke mode keeps it from rotting."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_throughput_quick_runs_on_the_cpu(tmp_path):
    out = tmp_path / "throughput.md"
    cmd = [sys.executable, "benchmarks/gpu_throughput.py", "--quick", "--device", "cpu", "--skip-peers"]
    proc = subprocess.run([*cmd, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
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
