"""Runnable experiments that answer the seeds' open questions; each writes OUT/report.md and OUT/results.json.

| name                | question (module)                                                            |
|---------------------|------------------------------------------------------------------------------|
| `overfit-one-image` | does a model trained on one digit reconstruct it? seed 000 (overfit.py)      |
| `ddpm-steps`        | DDPM quality and time at 100 / 300 / 1000 steps, seed 000 (ddpm_steps.py)    |
| `ddim-steps`        | fewest DDIM steps within 10% of DDPM-1000's FID, open q. 3 (ddim_steps.py)   |
| `time-embedding`    | time embedding in the middle block vs every block, open q. 2 (time_embedding) |
| `cfg-dropout`       | label dropout x guidance scale: FID and class accuracy (cfg_dropout.py)      |
| `sampling-cost`     | sampling time against params x pixels x steps, seed 003 (sampling_cost.py)   |

Three sizes, each two tables: common.SIZES (the TrainConfig fields every model of the size shares, and the
scoring sizes) and each module's CONFIGS (what that experiment varies). `quick` shrinks everything (tiny U-Nets,
tens of training steps, a few sampler steps, 48 samples) so all six run in about a minute on a CPU, for CI;
`cpu` trains the CPU recipe (the `small` U-Net, 2,000 steps, about 9 minutes a model on one core) and scores 500
samples, so that each experiment finishes within an hour on a 2-core CPU; `full` is sized for a GPU (the seeds'
networks, 6,000 steps of 128, 10k samples).
"""

import importlib
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

EXPERIMENTS: dict[str, str] = {
    "overfit-one-image": "overfit",
    "ddpm-steps": "ddpm_steps",
    "ddim-steps": "ddim_steps",
    "time-embedding": "time_embedding",
    "cfg-dropout": "cfg_dropout",
    "sampling-cost": "sampling_cost",
}


def run_experiment(
    name: str,
    out: str | Path,
    *,
    size: str = "full",
    quick: bool = False,
    dataset: str = "mnist",
    data_dir: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    threads: int | None = None,
    classifier: str | Path | None = None,
    command: str = "",
    cache: str | Path | None = None,
    shared: dict | None = None,
) -> dict[str, Any]:
    """Run one experiment into `out`; returns what it wrote to OUT/results.json.

    Args:
        size: quick | cpu | full (common.SIZES); `quick=True` is the same as size="quick".
        threads: torch CPU threads while it runs (default: 1 in quick mode on the CPU, where tiny models
            gain nothing from more and lose much on a shared machine; else PyTorch's default).
        cache: folder for trained runs, the FID classifier, reference statistics (default: OUT/cache).
        shared: objects reused between experiments (datasets, the scorer); `run_all` passes one dict.
    """
    import torch

    from ..distributed import resolve_device
    from .common import SIZES, Context, resolve_data
    from .report import environment
    from .scoring import scorer

    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)} or all")
    size = "quick" if quick else size
    if size not in SIZES:
        raise ValueError(f"unknown experiment size {size!r}; choose one of {', '.join(SIZES)}")
    module = importlib.import_module(f".{EXPERIMENTS[name]}", __name__)
    out = Path(out)
    cache = Path(cache) if cache else out / "cache"
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    loader, folder, note = resolve_data(dataset, None if data_dir is None else str(data_dir), cache)
    ctx = Context(
        name=name,
        out=out,
        cache=cache,
        size=size,
        dataset=dataset,
        loader=loader,
        data_dir=folder,
        data_note=note,
        device=dev,
        device_arg=device,
        seed=seed,
        command=command,
        classifier_path=Path(classifier) if classifier else None,
        shared={} if shared is None else shared,
    )
    previous = torch.get_num_threads()
    wanted = threads or (1 if size == "quick" and dev.type == "cpu" else None)
    try:
        if wanted:
            torch.set_num_threads(wanted)
        start = time.perf_counter()
        outcome = module.run(ctx)
        seconds = time.perf_counter() - start
        env = environment(dev)
    finally:
        torch.set_num_threads(previous)

    report = outcome["report"]
    features = None
    if outcome.get("uses_scorer"):
        score = scorer(ctx)
        features = score.description
        report.heading("FID features")
        report.text(score.note())
    mode = {
        "quick": "quick (CI-sized: numbers show the plumbing, not the models)",
        "cpu": "cpu (the CPU recipe; each experiment sized to finish within an hour on a 2-core CPU)",
        "full": "full (sized for a GPU)",
    }[size]
    report.provenance(command, env, [("mode", mode), ("data", note), ("seed", seed), ("seconds", seconds)])
    results = {
        "experiment": name,
        "mode": size,
        "command": command,
        "environment": env,
        "data": note,
        "seed": seed,
        "seconds": seconds,
        "headline": outcome["headline"],
        "sizes": asdict(ctx.sizes),
        "config": outcome["config"],
        "features": features,
        "results": outcome["results"],
    }
    report.write(results)
    print(f"{name}: {outcome['headline']} ({seconds:.1f} s); wrote {out}/report.md", flush=True)
    return results


def run_all(out: str | Path, *, command: str = "", cache: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Run every experiment into OUT/NAME/ with one cache (default OUT/cache); OUT/report.md indexes them."""
    from .report import Report

    out, shared, summary = Path(out), {}, {}
    cache = Path(cache) if cache else out / "cache"
    for name in EXPERIMENTS:
        results = run_experiment(name, out / name, command=command, cache=cache, shared=shared, **options)
        summary[name] = {"seconds": results["seconds"], "headline": results["headline"]}
    report = Report(out, "cleardiffusion experiments", "Runnable answers to the seeds' open questions.")
    report.table(["experiment", "seconds", "headline"], [(n, s["seconds"], s["headline"]) for n, s in summary.items()])
    report.bullets([f"[{n}]({n}/report.md)" for n in summary])
    total = sum(s["seconds"] for s in summary.values())
    report.text(f"Total: {total:.1f} s. Command:")
    report.code(command, "bash")
    results = {"command": command, "experiments": summary, "seconds": total}
    report.write(results)
    return results
