"""SIGKILL a CPU training run at random moments, resume it each time, and check nothing was lost.

    PYTHONPATH=src python benchmarks/kill_resume.py [--kills 20] [--steps 1000] [--checkpoint-every 3]

Reports (and writes to benchmarks/results/kill_resume_cpu.md):
- corrupted checkpoints: a last.pt that does not load after a kill (must be 0);
- steps lost beyond the checkpoint interval: the last step logged before a kill minus the checkpoint's
  step, beyond --checkpoint-every (must be 0);
- whether the concatenated per-step losses equal those of an uninterrupted run bit for bit.
"""

import argparse
import datetime
import gzip
import json
import os
import platform
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cleardiffusion.checkpoint import load_checkpoint  # noqa: E402
from cleardiffusion.errors import CheckpointError  # noqa: E402


def write_digits(folder: Path, n: int = 256, size: int = 16) -> Path:
    """A small class-structured dataset in MNIST's IDX format (class k: bright row k, column 3k mod size)."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.random.default_rng(0).integers(0, 10, n).astype(np.uint8)
    images = np.zeros((n, size, size), np.uint8)
    for i, k in enumerate(labels):
        images[i, k % size, :], images[i, :, (3 * k) % size] = 255, 200
    header = struct.pack(">IIII", 0x803, n, size, size)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
    header = struct.pack(">II", 0x801, n)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels.tobytes()))
    return folder


def train_command(data: Path, out: Path, steps: int, checkpoint_every: int) -> list[str]:
    return [sys.executable, "-m", "cleardiffusion", "train", "--dataset", "mnist", "--data-dir", str(data),
            "--out", str(out), "--steps", str(steps), "--batch-size", "16", "--base-channels", "16",
            "--model-option", "norm_groups=8", "--timesteps", "1000", "--lr", "1e-3", "--warmup", "10",
            "--log-every", "1", "--checkpoint-every", str(checkpoint_every), "--sample-every", "0",
            "--device", "cpu", "--no-progress"]  # fmt: skip


def logged_steps(out: Path) -> list[dict]:
    """Complete lines of metrics.jsonl (a kill may cut the last one short)."""
    records = []
    path = out / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--checkpoint-every", type=int, default=3)
    parser.add_argument("--max-delay", type=float, default=1.5, help="seconds of training before a kill, at most")
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill moments (default: random)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "kill_resume_cpu.md")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    work = Path(tempfile.mkdtemp(prefix="kill_resume_"))
    data = write_digits(work / "data")
    killed_out, full_out = work / "killed", work / "full"
    last = killed_out / "checkpoints" / "last.pt"
    command = train_command(data, killed_out, args.steps, args.checkpoint_every)

    rows, corrupted, beyond, kills = [], 0, 0, 0
    start = time.perf_counter()
    while kills < args.kills:
        resume = ["--resume"] if last.exists() else []
        proc = subprocess.Popen(command + resume, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdout.readline()  # "training: ..." / "resuming at step ...": start-up is over, steps begin
        delay = rng.uniform(0.0, args.max_delay)
        time.sleep(delay)
        if proc.poll() is not None:  # finished before the kill: nothing left to interrupt
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
        reached = max((r["step"] for r in logged_steps(killed_out)), default=0)
        try:
            step = load_checkpoint(last)["step"] if last.exists() else 0
            ok = True
        except CheckpointError as e:
            step, ok = -1, False
            corrupted += 1
            print(f"kill {kills}: corrupted checkpoint: {e}", file=sys.stderr)
        lost = reached - step
        beyond += ok and lost > args.checkpoint_every
        rows.append((kills, delay, step, reached, lost, ok))
        print(f"kill {kills:2d} after {delay:.2f} s: checkpoint step {step}, last logged {reached}, lost {lost}")
    finish = subprocess.run(command + ["--resume"], env=env, capture_output=True, text=True)
    assert finish.returncode == 0, finish.stderr
    killed_seconds = time.perf_counter() - start
    start = time.perf_counter()
    full = subprocess.run(train_command(data, full_out, args.steps, args.checkpoint_every), env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert full.returncode == 0, full.stderr
    full_seconds = time.perf_counter() - start
    a, b = [r["loss"] for r in logged_steps(killed_out)], [r["loss"] for r in logged_steps(full_out)]
    steps_ok = [r["step"] for r in logged_steps(killed_out)] == list(range(1, args.steps + 1))
    identical = steps_ok and a == b
    stale = sorted(p.name for p in last.parent.iterdir() if p.name != "last.pt")
    shutil.rmtree(work)

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    cpu = models[0] if models else platform.processor()
    import torch

    lines = [
        "# Kill-and-resume benchmark (CPU)",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {platform.node() or 'unknown'}, {cpu}, {os.cpu_count()} logical CPUs, "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"torch {torch.__version__}",
        f"- command: `PYTHONPATH=src python benchmarks/kill_resume.py --kills {args.kills} "
        f"--steps {args.steps} --checkpoint-every {args.checkpoint_every} --max-delay {args.max_delay} "
        f"--seed {seed}`",
        f"- run killed: `{' '.join(Path(c).name if c == sys.executable else c for c in command)}` "
        "(OMP_NUM_THREADS=1), restarted with `--resume` after each SIGKILL",
        f"- each kill lands uniformly at random 0-{args.max_delay} s after the process reports its start",
        "",
        "| result | value |",
        "|---|---|",
        f"| SIGKILLs | {kills} |",
        f"| corrupted checkpoints (must be 0) | {corrupted} |",
        f"| kills losing more than --checkpoint-every = {args.checkpoint_every} steps (must be 0) | {beyond} |",
        f"| most steps lost by one kill | {max((r[4] for r in rows), default=0)} |",
        f"| final per-step losses identical to an uninterrupted run ({args.steps} steps) | "
        f"{'yes' if identical else 'NO'} |",
        f"| leftover temporary files in checkpoints/ | {len(stale)} |",
        f"| wall time: killed-and-resumed / uninterrupted | {killed_seconds:.0f} s / {full_seconds:.0f} s |",
        "",
        "| kill | delay (s) | checkpoint step | last logged step | steps lost | checkpoint loads |",
        "|---|---|---|---|---|---|",
        *[f"| {k} | {d:.2f} | {s} | {r} | {lost} | {'yes' if ok else 'NO'} |" for k, d, s, r, lost, ok in rows],
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    sys.exit(0 if corrupted == 0 and beyond == 0 and identical else 1)


if __name__ == "__main__":
    main()
