"""The GPU throughput benchmark has never run on a GPU here; its CPU smoke mode keeps it from rotting."""

import re
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
    rows = [line.split("|")[1:-1] for line in text.splitlines() if re.match(r"\| (ddpm-cifar10|seed-)", line)]
    measured = {(r[0].strip(), r[2].strip()) for r in rows}
    for network in ("ddpm-cifar10", "seed-minimal"):
        for case in ("train-128", "train-512", "forward-1024"):
            assert (network, case) in measured, (network, case)
    for r in rows:
        assert r[-1].strip() == "ok" and float(r[4]) > 0, r  # status, images/s
    assert "bf16 matmul peak (measured)" in text
