"""The transformer presets' sizes and the short MNIST runs that chose vit-small (docs/backbones.md).

    python benchmarks/vit_presets.py --out benchmarks/results/vit_small_choice_cpu [--runs RUN_DIR ...]

Parameter counts are computed on the meta device (nothing is allocated, jit-b16 included). Each RUN_DIR is a
`cleardiffusion train` folder: its config.json and metrics.jsonl are copied to OUT/training/NAME/ (and time.txt, the
`/usr/bin/time -v` report of the run, if the folder has one), and results.json records the network (as its
checkpoint built it), steps, seconds per step and the mean training loss of the last 50 steps and of steps
51-100 (which every run reached).
"""

import argparse
import json
import shutil
from datetime import date
from pathlib import Path

import torch
from sampler_speed import device_name  # benchmarks/ is on the path of a script run from it

from cleardiffusion.models import count_parameters
from cleardiffusion.models.vit import PRESETS, vit_from_preset

SHAPES = {"jit-b16": [(3, 256)], "vit-small": [(1, 28), (3, 32)], "ssm-small": [(1, 28), (3, 32)]}
LAST = 50  # steps whose losses are averaged at the end of a run
TIMES = ("User time", "System time", "Percent of CPU", "Elapsed", "Maximum resident")  # lines kept of time -v


def preset_rows() -> list[dict]:
    rows = []
    for name in PRESETS:
        for channels, size in SHAPES[name]:
            with torch.device("meta"):
                model = vit_from_preset(name, channels, size)
            conditioning = sum(p.numel() for n, p in model.named_parameters()
                               if "modulation" in n or n.startswith("embed."))  # fmt: skip
            cfg = model.config
            rows.append({"preset": name, "image": f"{channels}x{size}x{size}", "patch": cfg.patch_size,
                         "tokens": cfg.tokens, "hidden": cfg.hidden, "depth": cfg.depth, "heads": cfg.heads,
                         "mixer": cfg.mixer, "long_skips": cfg.long_skips, "parameters": count_parameters(model),
                         "conditioning": conditioning})  # fmt: skip
    return rows


def cpu_seconds(path: Path) -> float | None:
    """User + system seconds from a `/usr/bin/time -v` report, None without one."""
    if not path.is_file():
        return None
    fields = dict(line.strip().rsplit(": ", 1) for line in path.read_text().splitlines() if ": " in line)
    return float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])


def mean_loss(records: list[dict], first: int, last: int) -> float | None:
    """Mean loss of steps first..last (the same steps for every run), None if the run stopped before `last`."""
    window = [r["loss"] for r in records if first <= r["step"] <= last]
    return sum(window) / len(window) if len(window) == last - first + 1 else None


def run_row(run: Path, out: Path) -> dict:
    config = json.loads((run / "config.json").read_text())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in records if "loss" in r and "step" in r]
    copy = out / "training" / run.name
    copy.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "metrics.jsonl", copy / "metrics.jsonl")
    where = {"data_dir": f"../shared/data/{config['dataset']}", "out": f"runs/{run.name}"}  # no machine's paths
    (copy / "config.json").write_text(json.dumps({**config, **where}, indent=2) + "\n")
    if (run / "time.txt").is_file():  # the measurements, not the command line (it names this machine's paths)
        kept = [line for line in (run / "time.txt").read_text().splitlines() if line.strip().startswith(TIMES)]
        (copy / "time.txt").write_text("\n".join(kept) + "\n")
    last = losses[-1]
    spec = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model_spec"]
    network = {k: spec["config"][k] for k in ("patch_size", "hidden", "depth", "heads", "mixer", "long_skips")}
    return {"name": run.name, "model": config["model"], "model_options": config["model_options"], "network": network,
            "dataset": config["dataset"], "conditional": config["conditional"], "batch_size": config["batch_size"],
            "time_budget_minutes": config["time_budget"], "steps": last["step"],
            "seconds_per_step": round(last["elapsed"] / last["step"], 3),
            "loss_last50": sum(r["loss"] for r in losses[-LAST:]) / len(losses[-LAST:]),
            "loss_steps_51_100": mean_loss(losses, 51, 100),
            "cpu_seconds": cpu_seconds(run / "time.txt")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--runs", nargs="*", type=Path, default=[])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from cleardiffusion.experiments.report import git_commit

    commit = git_commit()
    result = {"device": device_name("cpu"), "torch": torch.__version__, "date": str(date.today()), "commit": commit,
              "command": f"python benchmarks/vit_presets.py --out {args.out} --runs "
              + " ".join(f"RUNS/{run.name}" for run in args.runs), "presets": preset_rows(),
              "runs": [run_row(run, args.out) for run in args.runs]}  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}/results.json")


if __name__ == "__main__":
    main()
