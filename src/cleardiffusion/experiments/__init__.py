"""Runnable experiments that answer the seeds' open questions; each writes OUT/report.md and OUT/results.json.

| name                | question (module)                                                            |
|---------------------|------------------------------------------------------------------------------|
| `overfit-one-image` | does a model trained on one digit reconstruct it? seed 000 (overfit.py)      |
| `ddpm-steps`        | DDPM quality and time at 100 / 300 / 1000 steps, seed 000 (ddpm_steps.py)    |
| `ddim-steps`        | fewest DDIM steps within 10% of DDPM-1000's FID, open q. 3 (ddim_steps.py)   |
| `time-embedding`    | time embedding in the middle block vs every block, open q. 2 (time_embedding) |
| `cfg-dropout`       | label dropout x guidance scale: FID and class accuracy (cfg_dropout.py)      |
| `sampling-cost`     | one step of the 86M ViT at 256x256 timed; cost vs resolution (sampling_cost) |

Three sizes, each two tables: common.SIZES (the TrainConfig fields every model of the size shares, and the
scoring sizes) and each module's CONFIGS (what that experiment varies). `quick` shrinks everything (tiny U-Nets,
tens of training steps, a few sampler steps, 48 samples) so all six run in about a minute on a CPU, for CI;
`cpu` trains the CPU recipe (the `small` U-Net, 2,000 steps, about 9 minutes a model on one core) and scores 500
samples, so that each experiment finishes within an hour on a 2-core CPU; `full` is sized for a GPU (the seeds'
networks, 6,000 steps of 128, 10k samples).

Every experiment is two functions: `measure(ctx)` trains, samples and scores (sample grids are measurements,
written then) and returns what goes to OUT/results.json; `render(results, out)` builds OUT/report.md and its
plots from results.json alone, so `render(out)` (`cleardiffusion experiment NAME --render-only --out OUT`)
writes a report again without training, sampling or scoring.
"""

import importlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..files import write_text

EXPERIMENTS: dict[str, str] = {
    "overfit-one-image": "overfit",
    "ddpm-steps": "ddpm_steps",
    "ddim-steps": "ddim_steps",
    "time-embedding": "time_embedding",
    "cfg-dropout": "cfg_dropout",
    "sampling-cost": "sampling_cost",
}
MODES = {
    "quick": "quick (CI-sized: numbers show the plumbing, not the models)",
    "cpu": "cpu (the CPU recipe; each experiment sized to finish within an hour on a 2-core CPU)",
    "full": "full (sized for a GPU)",
}


def _module(name: str):
    if name not in EXPERIMENTS:
        raise UsageError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)} or all")
    return importlib.import_module(f".{EXPERIMENTS[name]}", __name__)


def _owner(out: Path) -> str | None:
    """Which run wrote OUT/results.json: an experiment's name, "all" for the index, None if none of ours."""
    try:
        results = json.loads((out / "results.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if isinstance(results, dict) and isinstance(results.get("experiments"), dict):
        return "all"
    return results.get("experiment") if isinstance(results, dict) else None


def check_out(out: Path, name: str) -> None:
    """Refuse an OUT whose report.md or results.json this experiment did not write (a rerun overwrites its own)."""
    written = [f for f in ("report.md", "results.json") if (out / f).exists()]
    if written and _owner(out) != name:
        raise UsageError(
            f"--out {out} holds {' and '.join(written)} not written by `experiment {name}`; they would be "
            "overwritten: choose a new --out, or move them away"
        )


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
    """Measure one experiment into `out`, write OUT/results.json, render OUT/report.md; returns the results.

    Args:
        size: quick | cpu | full (common.SIZES); `quick=True` is the same as size="quick".
        data_dir: the dataset's folder (default: data/DATASET below the working directory).
        threads: torch CPU threads while it runs (default: 1 in quick mode on the CPU, where tiny models
            gain nothing from more and lose much on a shared machine; else PyTorch's default).
        cache: folder for trained runs, the FID classifier, reference statistics (default: OUT/cache).
        shared: objects reused between experiments (datasets, the scorer); `run_all` passes one dict.
    """
    from .common import SIZES
    from .scoring import check_classifier, scorer

    module = _module(name)
    size = "quick" if quick else size
    if size not in SIZES:
        raise UsageError(f"unknown experiment size {size!r}; choose one of {', '.join(SIZES)}")
    out = Path(out)
    check_out(out, name)
    ctx = _context(name, out, Path(cache) if cache else out / "cache", size, dataset, data_dir, device, seed,
                   classifier, command, {} if shared is None else shared)  # fmt: skip
    ctx.load("train")  # unreadable data stops here, before any training
    check_classifier(ctx)  # so does a --classifier `eval` would refuse
    outcome, seconds, env = _measure(module, ctx, threads)
    results = {
        "experiment": name,
        "mode": size,
        "command": command,
        "environment": env,
        "data": ctx.data_note,
        "seed": seed,
        "seconds": seconds,
        "headline": outcome["headline"],
        "sizes": asdict(ctx.sizes),
        "config": outcome["config"],
        "features": scorer(ctx).description if outcome.get("uses_scorer") else None,
        "results": outcome["results"],
    }
    write_results(out, results)
    render(out, name)
    print(f"{name}: {outcome['headline']} ({seconds:.1f} s); wrote {out}/report.md", flush=True)
    return results


def _context(name, out, cache, size, dataset, data_dir, device, seed, classifier, command, shared):
    """The experiment's Context: resolved data (refused when missing), device and cache folder."""
    import torch

    from ..limits import resolve_device
    from .common import Context, data_key, resolve_data

    cache.mkdir(parents=True, exist_ok=True)
    loader, folder, note = resolve_data(dataset, None if data_dir is None else str(data_dir), cache)
    return Context(name=name, out=out, cache=cache, size=size, dataset=dataset, loader=loader, data_dir=folder,
                   data_note=note, data_key=data_key(dataset, folder), device=torch.device(resolve_device(device)),
                   device_arg=device, seed=seed, command=command,
                   classifier_path=Path(classifier) if classifier else None, shared=shared)  # fmt: skip


def _measure(module, ctx, threads: int | None) -> tuple[dict, float, dict]:
    """module.measure(ctx) with `threads` torch threads (restored after); its outcome, seconds, environment."""
    import torch

    from .report import environment

    previous = torch.get_num_threads()
    wanted = threads or (1 if ctx.quick and ctx.device.type == "cpu" else None)
    try:
        if wanted:
            torch.set_num_threads(wanted)
        start = time.perf_counter()
        outcome = module.measure(ctx)
        seconds = time.perf_counter() - start
        return outcome, seconds, environment(ctx.device)
    finally:
        torch.set_num_threads(previous)


def write_results(out: Path, results: dict[str, Any]) -> None:
    """OUT/results.json, NaN-free, written atomically."""
    write_text(out / "results.json", json.dumps(results, indent=2, allow_nan=False) + "\n")


def render(out: str | Path, name: str | None = None) -> Path:
    """Write OUT/report.md and its plots again from OUT/results.json alone; `name` must match what wrote it."""
    from .scoring import note

    out = Path(out)
    if not (out / "results.json").is_file():
        raise UsageError(f"no results.json in {out}; run the experiment first (without --render-only)")
    owner = _owner(out)
    if owner is None or (name is not None and owner != name):
        raise UsageError(f"{out}/results.json was not written by `experiment {name or 'NAME'}`; check --out and NAME")
    results = json.loads((out / "results.json").read_text())
    if owner == "all":
        return _index(out, results).write()
    module = _module(owner)
    missing = [key for key in module.RENDER_NEEDS if key not in results.get("results", {})]
    if missing:  # checked before any plot is written over
        raise UsageError(f"{out}/results.json lacks {', '.join(map(repr, missing))}: an older cleardiffusion wrote it; "
                         "run the experiment again")  # fmt: skip
    try:
        report = module.render(results, out)
    except KeyError as e:
        raise UsageError(
            f"{out}/results.json lacks {e}: an older cleardiffusion wrote it; run the experiment again"
        ) from None
    if results["features"]:
        report.heading("FID features")
        report.text(note(results["features"]))
    extra = [("mode", MODES[results["mode"]]), ("data", results["data"]), ("seed", results["seed"])]
    report.provenance(results["command"], results["environment"], [*extra, ("seconds", results["seconds"])])
    return report.write()


def _index(out: Path, results: dict[str, Any]):
    """OUT/report.md of `experiment all`: one row and one link per experiment."""
    from .report import Report

    summary = results["experiments"]
    report = Report(out, "cleardiffusion experiments", "Runnable answers to the seeds' open questions.")
    report.table(["experiment", "seconds", "headline"], [(n, s["seconds"], s["headline"]) for n, s in summary.items()])
    report.bullets([f"[{n}]({n}/report.md)" for n in summary])
    report.text(f"Total: {results['seconds']:.1f} s. Command:")
    report.code(results["command"], "bash")
    return report


def run_all(out: str | Path, *, command: str = "", cache: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Run every experiment into OUT/NAME/ with one cache (default OUT/cache); OUT/report.md indexes them."""
    out, shared, summary = Path(out), {}, {}
    cache = Path(cache) if cache else out / "cache"
    check_out(out, "all")
    for name in EXPERIMENTS:  # every folder checked before the first experiment starts
        check_out(out / name, name)
    for name in EXPERIMENTS:
        results = run_experiment(name, out / name, command=command, cache=cache, shared=shared, **options)
        summary[name] = {"seconds": results["seconds"], "headline": results["headline"]}
    results = {"command": command, "experiments": summary, "seconds": sum(s["seconds"] for s in summary.values())}
    write_results(out, results)
    render(out, "all")
    return results
