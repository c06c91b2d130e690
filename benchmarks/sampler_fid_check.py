"""Does the fast sampling path keep the FID? The README's guided protocol, today's path against the default.

The README scores its model with 1,000 guided samples (`cleardiffusion sample --class-label all --guidance 3
--n 1000`: dpm++2m-sde, 50 steps, 100 per class) and the MNIST feature network shipped in the package
(benchmarks/results/readme_path_cpu/). This draws those samples twice from the same seeds: with today's path
(`--precision fp32 --batch-size 256`, what `sample` did before bf16 sampling) and with the default (bf16 autocast
where the CPU has it, batches of 128), scores both with `cleardiffusion eval`, and sets the difference beside the
FID's noise floor: the same model's guided FID redrawn with another seed (readme_path_cpu's seed-0 and seed-1 files).
The sampling wall clock of each is recorded too. Run pinned to one core:

    taskset -c 1 python benchmarks/sampler_fid_check.py --checkpoint runs/mnist/checkpoints/last.pt \\
        --data-dir ../shared/data/mnist --out benchmarks/results/sampler_speed_cpu/fid_check.md
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from cleardiffusion.experiments.report import cpu_model, git_commit

ROOT = Path(__file__).resolve().parents[1]
README_RUN = ROOT / "benchmarks" / "results" / "readme_path_cpu"
PATHS = {"today": ["--precision", "fp32", "--batch-size", "256"], "default": []}


def cli(*args: str) -> str:
    """Run `python -m cleardiffusion ARGS` (this interpreter, this checkout's package), return its stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "cleardiffusion", *args], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"cleardiffusion {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="the README's 15-minute MNIST checkpoint")
    p.add_argument("--data-dir", required=True, help="MNIST's files (the FID's reference: the train split)")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/sampler_speed_cpu/fid_check.md")
    args = p.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        for name, flags in PATHS.items():
            samples = str(Path(work) / f"{name}.npz")
            draw = [
                "--class-label",
                "all",
                "--guidance",
                str(args.guidance),
                "--n",
                str(args.n),
                "--seed",
                str(args.seed),
            ]
            said = cli("sample", "--checkpoint", args.checkpoint, *draw, "--device", "cpu", "--out", samples, *flags)
            speed = float(re.search(r"([\d.]+) images/s", said).group(1))
            scores = json.loads(cli("eval", "--dataset", "mnist", "--data-dir", args.data_dir, "--samples", samples))
            row = {"flags": flags, "sample_output": said.strip(), "images_per_s": speed, **scores}
            rows[name] = json.loads(json.dumps(row).replace(work, "TMP"))  # no temporary paths in the results
            print(f"{name}: FID {scores['fid']:.3f}, {speed:.2f} images/s", file=sys.stderr, flush=True)
    seed0, seed1 = (json.loads((README_RUN / f).read_text())["fid"] for f in ("s3-eval-shipped.json",
                                                                             "s3-eval-seed1-shipped.json"))  # fmt: skip
    floor = abs(seed0 - seed1)
    diff = abs(rows["default"]["fid"] - rows["today"]["fid"])
    commit = git_commit()
    cores = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    lines = [
        "# The fast sampling path keeps the FID: the README's guided protocol, today's path against the default",
        "",
        f"- device: {cpu_model()}, on cores {cores}; torch threads: cleardiffusion's default on those cores",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; commit {commit}",
        f"- command: `taskset -c {cores} python benchmarks/sampler_fid_check.py {' '.join(sys.argv[1:])}`",
        f"- samples: {args.n}, `--class-label all --guidance {args.guidance:g} --seed {args.seed}` (dpm++2m-sde, "
        "50 steps, trailing, exact), scored by `cleardiffusion eval --dataset mnist` (the shipped feature network)",
        "",
        "| path | sample flags | network precision | batch | FID | KID | precision | recall | class accuracy "
        "| images/s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        precision = re.search(r"NFE \d+, (\w+)", r["sample_output"]).group(1)
        batch = "256" if r["flags"] else "128"
        lines.append(f"| {name} | `{' '.join(r['flags']) or '(none)'}` | {precision} | {batch} | {r['fid']:.2f} | "
                     f"{r['kid']['mean']:.3f} | {r['precision']:.2f} | {r['recall']:.2f} | {r['accuracy']:.0%} | "
                     f"{r['images_per_s']:.2f} |")  # fmt: skip
    lines += [
        "",
        f"FID difference {diff:.2f}; the noise floor (the same model's guided FID at seed 0 and seed 1, "
        f"readme_path_cpu): |{seed0:.2f} - {seed1:.2f}| = {floor:.2f}. "
        f"{'Within' if diff <= floor else 'Outside'} the noise floor. Speed-up of the default path on the README's "
        f"guided protocol: {rows['default']['images_per_s'] / rows['today']['images_per_s']:.2f}x.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    record = {"command": sys.argv, "date": f"{started:%Y-%m-%d %H:%M}", "rows": rows, "noise_floor": floor,
              "seed0_fid": seed0, "seed1_fid": seed1, "fid_difference": diff}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
