"""Quality per CPU-minute against diffusers, in ONE run: equal training wall clock, same N, same evaluator.

    python benchmarks/cpu_quality.py --dataset mnist --budget 15 --n 2000
    python benchmarks/cpu_quality.py --dataset mnist --budget 15 --n 2000 --systems ours,diffusers-recipe
    python benchmarks/cpu_quality.py --dataset fashion-mnist --budget 15 --n 2000
    python benchmarks/cpu_quality.py --dataset mnist --budget 1 --n 200 --skip-peers      # a quick check

Systems (each trained for --budget minutes of wall clock, then sampled with a 50-step deterministic sampler):
- ours: `cleardiffusion train` with its defaults (the CPU recipe: the `small` preset, v-prediction, min-SNR,
  bf16 autocast where the CPU has native bf16; docs/quality.md) and `--eval-every` at its default interval
  (its FID curve is paid for out of ours' budget), then `cleardiffusion sample --sampler OUR_SAMPLER --steps 50`;
- diffusers: its UNet2DModel of 1.06M parameters with diffusers' own standard loop (eps, fp32) and
  DDIMScheduler-50 (benchmarks/peers/diffusers_train.py);
- diffusers-recipe: diffusers' own UNet2DModel at our `small` layout (619,697 parameters, as ours), trained with
  our recipe (v-prediction, min-SNR-5, bf16 autocast as ours decides it, our AdamW, warm-up and EMA) and sampled
  with ours' DDIM-50 grid (`diffusers_train.py --recipe ours`, whose docstring lists each choice); beside ours
  only the implementation differs, so diffusers-recipe against diffusers is what the recipe buys and ours
  against diffusers-recipe what the library buys. `--precision`, `--conditional` and `--label-dropout` in
  --our-flags are passed on to it; other flags, and an --our-sampler other than ddim, are refused with it.
The peers run in their own virtual environment `.peers/` (torch==2.13.0 first, then diffusers), which this
script installs; they are skipped with a message when it cannot be installed.
Every sample file is scored by `cleardiffusion eval` with the same classifier features and the same N.

Fairness: by default the systems run side by side, each pinned to its own equal share of the CPU's cores
(`taskset`, one thread per core), so each gets the same hardware for the same minutes in the same run;
--sequential runs them one after another on every core instead (the cores of this script's own affinity:
under `taskset -c 0` everything runs on core 0). The budget counts the training loop only (both sides start
their clocks after loading data and building the network); sampling is not timed against it.

Results: one run per file, never rows of several runs in one file. OUT (markdown, with the run's date,
machine and command), OUT.json, and a side-by-side grid OUT-grid.png; OUT defaults to
benchmarks/results/cpu_quality_DATASET.md for ours against diffusers (the 2026-11-29 runs) and
cpu_quality_DATASET_recipe.md when diffusers-recipe runs, so a run with the new peer leaves the old one, with
its own date and command, in place. tools/doc_sources.py builds the docs' table from both files, each row
naming its run.
"""

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / ".peers"
DIFFUSERS = "diffusers==0.42.1"
SYSTEMS = ("ours", "diffusers", "diffusers-recipe")
PEER_RECIPES = {"diffusers": "diffusers", "diffusers-recipe": "ours"}  # system -> diffusers_train.py --recipe
# `cleardiffusion train` flags that diffusers-recipe takes too (with how many values); any other is refused
CARRIED_FLAGS = {"--precision": 1, "--conditional": 0, "--label-dropout": 1}
PRECISIONS = ("auto", "fp32", "bf16")


def recipe_flags(our_flags: str) -> list[str]:
    """The flags of --our-flags that diffusers_train.py --recipe ours takes as well; ValueError for any other."""
    tokens, carried = shlex.split(our_flags), []
    while tokens:
        flag, _, value = tokens.pop(0).partition("=")
        if flag not in CARRIED_FLAGS:
            raise ValueError(f"--our-flags {flag}: diffusers-recipe cannot follow it (it takes only "
                             f"{', '.join(CARRIED_FLAGS)}); drop it or run without diffusers-recipe")  # fmt: skip
        values = [value] if value else [tokens.pop(0) for _ in range(min(CARRIED_FLAGS[flag], len(tokens)))]
        if len(values) != CARRIED_FLAGS[flag] or (flag == "--precision" and values[0] not in PRECISIONS):
            raise ValueError(f"--our-flags {flag}: expected {' '.join(['VALUE'] * CARRIED_FLAGS[flag]) or 'no value'}"
                             + (f" ({', '.join(PRECISIONS)})" if flag == "--precision" else ""))  # fmt: skip
        carried += [flag, *values]
    return carried


def results_name(dataset: str, names: list[str]) -> str:
    """The results file's stem: one per pairing, so a run with diffusers-recipe keeps the diffusers run's file."""
    return f"cpu_quality_{dataset}" + ("_recipe" if "diffusers-recipe" in names else "")


def ensure_peers() -> str | None:
    """The peer environment's python, installing it first if needed; None (with the reason printed) if it can't."""
    python = PEERS / "bin" / "python"
    check = [str(python), "-c", "import diffusers, torch; print(diffusers.__version__)"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python)
    print(f"installing the peer environment in {PEERS} (torch==2.13.0, {DIFFUSERS}) ...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(PEERS)],
        [str(python), "-m", "pip", "install", "-q", "torch==2.13.0"],  # first, so pip keeps the CPU build
        [str(python), "-m", "pip", "install", "-q", DIFFUSERS, "numpy", "Pillow"],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            print(f"skipping diffusers: `{shlex.join(cmd)}` failed: {proc.stderr.strip()[-300:]}", flush=True)
            return None
    return str(python)


def pinned(cmd: list[str], cores: list[int]) -> tuple[list[str], dict]:
    """cmd run on `cores` only, with one thread per core."""
    env = {**os.environ, "OMP_NUM_THREADS": str(len(cores)), "MKL_NUM_THREADS": str(len(cores))}
    return ["taskset", "-c", ",".join(map(str, cores)), *cmd], env


def system_commands(name: str, args, work: Path, peer_python: str | None) -> list[list[str]]:
    """The commands that train and sample one system, writing WORK/NAME.npz."""
    cli = [sys.executable, "-m", "cleardiffusion"]
    if name == "ours":
        run = work / "ours"
        return [
            [*cli, "train", "--dataset", args.dataset, "--data-dir", args.data_dir, "--time-budget", str(args.budget),
             "--out", str(run), "--no-progress", "--log-every", "100", "--eval-every", "--classifier",
             str(args.classifier), *shlex.split(args.our_flags)],
            [*cli, "sample", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--n", str(args.n), "--sampler",
             args.our_sampler, "--steps", "50", "--out", str(work / "ours.npz")],
        ]  # fmt: skip
    recipe = PEER_RECIPES[name]
    carried = recipe_flags(args.our_flags) if recipe == "ours" else []
    return [
        [peer_python, str(ROOT / "benchmarks" / "peers" / "diffusers_train.py"), "--recipe", recipe, "--data-dir",
         args.data_dir, "--budget", str(args.budget), "--n", str(args.n), "--steps", "50", *carried, "--out",
         str(work / f"{name}.npz")]
    ]  # fmt: skip


def run_systems(names: list[str], args, work: Path, peer_python: str | None) -> dict[str, float]:
    """Run every system's commands (side by side on disjoint cores, or one after another); wall seconds each."""
    cores = sorted(os.sched_getaffinity(0))
    share = max(1, len(cores) // len(names))
    procs, logs, began = {}, {}, {}

    def start(name: str, i: int):
        own = cores if args.sequential else cores[i * share : (i + 1) * share] or cores[-share:]
        script = " && ".join(shlex.join(c) for c in system_commands(name, args, work, peer_python))
        cmd, env = pinned(["bash", "-c", script], own)
        logs[name] = open(work / f"{name}.log", "w")
        print(f"[{name}] cores {own}: {script}", flush=True)
        began[name] = time.perf_counter()
        return subprocess.Popen(cmd, env=env, stdout=logs[name], stderr=subprocess.STDOUT, cwd=ROOT)

    seconds = {}
    if args.sequential:
        for name in names:
            code = start(name, 0).wait()
            seconds[name] = time.perf_counter() - began[name]
            print(f"[{name}] exit {code} after {seconds[name]:.0f} s (log {work / f'{name}.log'})", flush=True)
    else:
        procs = {name: start(name, i) for i, name in enumerate(names)}
        for name, proc in procs.items():
            code = proc.wait()
            seconds[name] = time.perf_counter() - began[name]
            print(f"[{name}] exit {code} after {seconds[name]:.0f} s (log {work / f'{name}.log'})", flush=True)
    return seconds


def score(name: str, args, work: Path, classifier: Path) -> dict:
    """`cleardiffusion eval` of WORK/NAME.npz plus the classifier's >= 90%-confident fraction."""
    import numpy as np
    import torch

    from cleardiffusion.data import to_model_range
    from cleardiffusion.evaluation_runner import load_samples
    from cleardiffusion.features import load_classifier

    out = work / f"{name}.eval.json"
    cmd = [sys.executable, "-m", "cleardiffusion", "eval", "--dataset", args.dataset, "--data-dir", args.data_dir,
           "--samples", str(work / f"{name}.npz"), "--classifier", str(classifier), "--out", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    metrics = json.loads(out.read_text())
    samples, _ = load_samples(work / f"{name}.npz")
    model, _ = load_classifier(classifier)
    with torch.no_grad():
        probs = torch.cat([model(to_model_range(s)).softmax(1) for s in samples.split(1000)])
    metrics["confident"] = float((probs.max(1).values >= 0.9).float().mean())
    metrics["confident_top100"] = float(np.mean((probs[:100].max(1).values >= 0.9).numpy()))
    return metrics


def side_by_side(work: Path, names: list[str], path: Path) -> None:
    """One PNG: each system's first 100 samples as a 10 x 10 grid, labelled, left to right."""
    import numpy as np
    from PIL import Image, ImageDraw

    from cleardiffusion.evaluation_runner import load_samples

    panels = []
    for name in names:
        x, _ = load_samples(work / f"{name}.npz")  # (N, C, H, W) uint8
        x = x[:100].numpy()
        n, c, h, w = x.shape
        k = int(n**0.5)
        grid = np.full((c, k * (h + 2) + 2, k * (w + 2) + 2), 128, np.uint8)
        for i in range(k * k):
            r, q = divmod(i, k)
            grid[:, 2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + q * (w + 2) : 2 + q * (w + 2) + w] = x[i]
        img = Image.fromarray(grid[0] if c == 1 else grid.transpose(1, 2, 0)).convert("RGB")
        img = img.resize((img.width * 2, img.height * 2), Image.NEAREST)
        panel = Image.new("RGB", (img.width, img.height + 24), "white")
        panel.paste(img, (0, 24))
        ImageDraw.Draw(panel).text((4, 4), name, fill="black")
        panels.append(panel)
    out = Image.new("RGB", (sum(p.width for p in panels) + 10 * (len(panels) - 1), panels[0].height), "white")
    x0 = 0
    for p in panels:
        out.paste(p, (x0, 0))
        x0 += p.width + 10
    out.save(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"))
    p.add_argument("--data-dir", help="default: ../shared/data/DATASET")
    p.add_argument("--budget", type=float, default=15.0, help="training minutes per system (15)")
    p.add_argument("--n", type=int, default=2000, help="samples per system for the evaluation (2000)")
    p.add_argument("--systems", default="ours,diffusers",
                   help=f"comma-separated, from {', '.join(SYSTEMS)} (default: ours,diffusers)")  # fmt: skip
    p.add_argument("--skip-peers", action="store_true", help="only ours (no peer environment)")
    p.add_argument("--sequential", action="store_true", help="one system after another, each on every core")
    p.add_argument("--our-sampler", default="ddim", help="our 50-NFE sampler (ddim)")
    p.add_argument("--our-flags", default="", help="extra `cleardiffusion train` flags for ours (default: none)")
    p.add_argument("--classifier", help="feature classifier (default: the one shipped for DATASET)")
    p.add_argument("--work", help="working folder (default: runs/cpu_quality/OUT's name)")
    p.add_argument("--out", help="markdown results (default: benchmarks/results/cpu_quality_DATASET[_recipe].md)")
    p.add_argument("--rescore", action="store_true", help="only score and report what WORK already holds")
    args = p.parse_args(argv)
    args.data_dir = str(Path(args.data_dir or ROOT.parent / "shared" / "data" / args.dataset).resolve())
    names = [s for s in args.systems.split(",") if s and not (args.skip_peers and s != "ours")]
    if unknown := set(names) - set(SYSTEMS):
        p.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    if "diffusers-recipe" in names:  # it copies ours' recipe and sampler: refuse what it cannot copy
        if args.our_sampler != "ddim":
            p.error(f"--our-sampler {args.our_sampler}: diffusers-recipe samples with DDIM-50 on ours' grid; "
                    "drop --our-sampler or run without diffusers-recipe")  # fmt: skip
        try:
            recipe_flags(args.our_flags)
        except ValueError as e:
            p.error(str(e))
    if not args.sequential and len(names) > len(os.sched_getaffinity(0)):
        p.error(f"{len(names)} systems side by side need as many cores, this process has "
                f"{len(os.sched_getaffinity(0))}; add --sequential or run fewer --systems")  # fmt: skip
    from cleardiffusion.features import file_sha256, reference_classifier_path

    classifier = Path(args.classifier) if args.classifier else reference_classifier_path(args.dataset)
    if classifier is None or not classifier.is_file():
        p.error(f"no classifier for {args.dataset}: pass --classifier FILE (from `cleardiffusion train-classifier`)")
    args.classifier = classifier.resolve()
    stem = results_name(args.dataset, names)
    work = Path(args.work or ROOT / "runs" / "cpu_quality" / stem.removeprefix("cpu_quality_")).resolve()
    if work.exists() and any(work.iterdir()) and not args.rescore:
        p.error(f"{work} is not empty; remove it or pass another --work")
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"{stem}.md")

    peers = [n for n in names if n in PEER_RECIPES]
    peer_python = ensure_peers() if peers and not args.rescore else None
    if peers and peer_python is None and not args.rescore:
        names = [n for n in names if n not in peers]

    started = datetime.datetime.now(datetime.timezone.utc)
    if args.rescore:
        wall = json.loads((work / "wall.json").read_text())
    else:
        wall = run_systems(names, args, work, peer_python)
        (work / "wall.json").write_text(json.dumps(wall))
    rows = {}
    for name in names:
        if not (work / f"{name}.npz").is_file():
            print(f"[{name}] produced no samples; see {work / f'{name}.log'}", flush=True)
            continue
        info = {"wall_seconds": wall[name]}
        if name == "ours":
            summary = json.loads((work / "ours" / "summary.json").read_text())
            amp = re.search(r" on cpu \((\w+)\)", (work / "ours.log").read_text())  # train's first line
            config = json.loads((work / "ours" / "config.json").read_text())
            info |= {"steps": summary["step"], "train_seconds": summary["elapsed"], "parameters": summary["parameters"],
                     "sampler": f"{args.our_sampler}-50", "precision": amp.group(1) if amp else None,
                     "recipe": {k: config[k] for k in (
                         "model", "prediction", "loss_weighting", "schedule", "batch_size", "lr", "warmup",
                         "ema_decay")}}  # fmt: skip
        else:
            info |= json.loads((work / f"{name}.json").read_text())
        rows[name] = info | {"metrics": score(name, args, work, classifier)}
    out.parent.mkdir(parents=True, exist_ok=True)
    if rows:
        side_by_side(work, list(rows), out.with_name(out.stem + "-grid.png"))
    import torch
    from sampler_speed import device_name  # benchmarks/ is on the path of a script run from it

    header = {
        "machine": f"{device_name('cpu').split(',')[0]}, {len(os.sched_getaffinity(0))} of {os.cpu_count()} cores ("
        + ("sequential, all of them each)" if args.sequential else "side by side, an equal share of them each)"),
        "torch": torch.__version__,
        "command": "python benchmarks/cpu_quality.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "budget": f"{args.budget:g} min of training per system; N = {args.n} samples each; features: the "
        f"{args.dataset} classifier ({classifier.name}, SHA-256 {file_sha256(classifier)})",
    }  # fmt: skip
    lines = [f"# Quality per CPU-minute: {args.dataset}", ""] + [f"- {k}: {v}" for k, v in header.items()] + [""]
    peers = [n for n in PEER_RECIPES if n in rows]  # a ratio column for each peer of this run
    lines += ["| system | parameters | steps | train min | train dtype | sampler | FID | KID x1e3 | precision | "
              "recall | confident |" + "".join(f" FID / {n} |" for n in peers),
              "|---" * (11 + len(peers)) + "|"]  # fmt: skip
    for name, r in rows.items():
        m = r["metrics"]
        ratios = "".join(f" {m['fid'] / rows[n]['metrics']['fid']:.2f} |" for n in peers)
        lines.append(
            f"| {name} | {r['parameters']:,} | {r['steps']:,} | {r['train_seconds'] / 60:.1f} | "
            f"{r.get('precision') or '-'} | {r['sampler']} | {m['fid']:.2f} | {m['kid']['mean'] * 1e3:.2f} | "
            f"{m['precision']:.3f} | {m['recall']:.3f} | {m['confident']:.1%} |{ratios}"
        )
    if "ours" in rows:
        lines += ["", f"Our recipe: `{json.dumps(rows['ours']['recipe'])}`"]
    lines += ["", f"Samples side by side: `{out.stem}-grid.png` (first 100 of each system)."]
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"header": header, "systems": rows}, indent=1) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
