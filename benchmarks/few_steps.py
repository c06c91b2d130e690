"""FID against network evaluations (NFE): DDIM, DPM-Solver++(2M) and Heun against DDPM-T, and flow matching (issue 13).

For each checkpoint and each sampler, samples are drawn at every NFE budget (default 5, 10, 20, 50, 100) from the
same per-sample seeds and scored with the project's evaluator (`evaluation_runner.evaluate_samples`, classifier
features: the network shipped for the dataset unless --classifier; each row names its features_sha256; the same
N everywhere). A budget is spent as the largest step count whose NFE fits in it: Heun on a
DDPM checkpoint costs 2 * steps - 1 (so budget 10 runs 5 steps, NFE 9), flow Heun 2 * steps; the NFE actually
spent is what the table and plot show. DDPM over all T steps is the reference.

    python benchmarks/few_steps.py --checkpoint runs/mnist/checkpoints/last.pt \\
        [--flow-checkpoint runs/mnist-flow/checkpoints/last.pt] --data-dir ../shared/data/mnist \\
        --n 10000 --device cuda --out benchmarks/results/few_steps_gpu

A run is sampler:spacing, or sampler:spacing:exact for DPM-Solver++ with its second-order term integrated
exactly (the default, midpoint, is the paper's). Writes OUT/results.json, OUT/README.md (table, the issue's
targets), OUT/fid_vs_nfe.png and a grid of 64 samples per run at --grid-nfe (default 10) NFE,
OUT/grid_<model>_<sampler>[_<spacing>][_exact]_nfe<N>.png.
"""

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import torch
from sampler_speed import device_name  # benchmarks/ is on the path of a script run from it

from cleardiffusion.checkpoint import load_for_sampling
from cleardiffusion.data import from_model_range
from cleardiffusion.evaluation_runner import evaluate_samples
from cleardiffusion.features import REFERENCE_SHA256, file_sha256
from cleardiffusion.generate import generate_images
from cleardiffusion.recipe import SamplingRecipe
from cleardiffusion.samplers import SAMPLERS, SOLVER_TYPED, sampler_nfe
from cleardiffusion.viz import save_grid

# sampler:spacing[:solver type]; the solver type (midpoint, the paper's, or exact) is for the dpm++ solvers
DDPM_RUNS = ("ddim:trailing", "dpm++2m:trailing", "dpm++2m-sde:trailing", "dpm++2m-sde:trailing:exact", "heun:karras")
FLOW_RUNS = ("euler:uniform", "heun:uniform")
DETERMINISTIC = ("ddim", "dpm++2m", "heun")  # the probability-flow ODE solvers (DDIM with eta = 0)


def label(row: dict) -> str:
    """The sampler's name, with its solver type unless that is the paper's (midpoint)."""
    solver = row.get("solver_type")
    return row["sampler"] + (f" {solver}" if solver not in (None, "midpoint") else "")


def steps_within(path, sampler: str, budget: int) -> int:
    """The most steps whose NFE fits in `budget` (0 if even one step does not)."""
    return max((s for s in range(1, budget + 1) if sampler_nfe(sampler, s, path) <= budget), default=0)


def draw(model, path, meta, sampler, spacing, solver, steps, args) -> tuple[torch.Tensor, float]:
    """n samples as uint8 (n, C, H, W) and the seconds they took; class-balanced labels if conditional."""
    k = meta["num_classes"]
    labels = torch.arange(args.n) * k // args.n if k > 0 else None
    start = time.perf_counter()
    batches = [
        b.float().cpu()
        for b in generate_images(
            model, path, n=args.n, shape=tuple(meta["image_shape"]), seed=args.seed, labels=labels,
            recipe=SamplingRecipe(sampler=sampler, steps=steps, spacing=spacing, solver_type=solver,
                                  guidance=args.guidance),
            batch_size=args.batch_size, device=args.device, precision=args.precision,
        )
    ]  # fmt: skip
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return from_model_range(torch.cat(batches)), time.perf_counter() - start


def measure(name: str, path: str, runs: list[str], args, out: Path) -> list[dict]:
    """Every (sampler, spacing, budget) of one checkpoint, plus DDPM-T for a DDPM checkpoint."""
    model, schedule, meta = load_for_sampling(path, device=args.device)  # schedule: the checkpoint's path
    objective = meta["objective"]
    plan = []
    for run in runs:
        sampler, spacing, solver = (run.split(":") + [None])[:3]
        if sampler not in SAMPLERS:
            sys.exit(f"few_steps: unknown sampler {sampler} ({path})")
        if sampler in SOLVER_TYPED:
            solver = solver or "midpoint"
        elif solver:
            sys.exit(f"few_steps: {run}: only {' and '.join(SOLVER_TYPED)} take a solver type")
        for budget in args.nfe:
            steps = steps_within(schedule, sampler, budget)
            steps = min(steps, schedule.max_steps)
            if steps > 0:
                plan.append((sampler, spacing, solver, steps, budget))
    if objective == "ddpm" and args.reference_steps != 0:
        plan.append(("ddpm", "uniform", None, args.reference_steps or schedule.T, None))
    rows = []
    dataset = args.dataset or meta["dataset"]
    features = file_sha256(args.classifier) if args.classifier else REFERENCE_SHA256.get(dataset)
    for sampler, spacing, solver, steps, budget in plan:
        key = (name, sampler, spacing, solver, steps, meta["step"], args.n, args.seed, features)
        if key in args.earlier:  # the same samples (per-sample seeds), already scored by an earlier run
            rows.append({**args.earlier[key], "budget": budget, "reused": True})
            print(f"{name} {label(args.earlier[key])}-{steps} ({spacing}): reused from {args.reuse}", flush=True)
            continue
        images, seconds = draw(model, schedule, meta, sampler, spacing, solver, steps, args)
        labels = torch.arange(args.n) * meta["num_classes"] // args.n if meta["num_classes"] else None
        metrics = evaluate_samples(
            images, labels, dataset, args.data_dir,
            classifier_path=args.classifier, device=args.device, cache_dir=args.cache_dir,
        )  # fmt: skip
        nfe = sampler_nfe(sampler, steps, schedule)
        row = {"model": name, "objective": objective, "sampler": sampler, "spacing": spacing, "solver_type": solver,
               "steps": steps, "nfe": nfe, "budget": budget, "fid": metrics["fid"], "kid": metrics["kid"]["mean"],
               "seconds": round(seconds, 2), "checkpoint_step": meta["step"],
               "features_sha256": metrics["features_sha256"]}  # fmt: skip
        if budget == args.grid_nfe or budget is None:
            tag = "_".join(v for v in (sampler.replace("+", "p"), spacing, solver) if v and v != "midpoint")
            grid = out / f"grid_{name}_{tag}_nfe{nfe}.png"
            save_grid(images[:64], grid, nrow=8, scale=2)
            row["grid"] = grid.name
        rows.append(row)
        print(f"{name} {label(row)}-{steps} ({spacing}, NFE {nfe}): FID {row['fid']:.3f}, {seconds:.1f} s", flush=True)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """FID against NFE, one line per model and sampler; DDPM-T as a dashed horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(9.5, 4.8), dpi=110)
    lines: dict[tuple, list[dict]] = {}
    for r in rows:
        lines.setdefault((r["model"], label(r), r["spacing"], r["budget"] is None), []).append(r)
    for (model, sampler, spacing, reference), rs in lines.items():
        if reference:
            ax.axhline(rs[0]["fid"], linestyle="--", color="gray", label=f"{model} {sampler}-{rs[0]['steps']}")
        else:
            rs.sort(key=lambda r: r["nfe"])
            ax.plot([r["nfe"] for r in rs], [r["fid"] for r in rs], marker="o", label=f"{model} {sampler} ({spacing})")
    ax.set(xscale="log", yscale="log", xlabel="NFE (network evaluations)", ylabel="FID (classifier features)")
    nfes = sorted({r["nfe"] for r in rows if r["budget"] is not None})
    fids = [r["fid"] for r in rows]
    yticks = [
        v
        for v in (1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 10, 15, 20, 30, 50, 100, 200, 500)
        if min(fids) <= v <= max(fids)
    ]
    ax.set_xticks(nfes, [str(n) for n in nfes])
    ax.set_yticks(yticks, [f"{v:g}" for v in yticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the plot: no line hidden
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def best_at(rows: list[dict], model: str, sampler: str, budget: int, solver: str | None = None) -> dict | None:
    """The lowest-FID row of `sampler` at `budget` over every spacing (and solver type, unless given)."""
    rs = [r for r in rows if (r["model"], r["sampler"], r["budget"]) == (model, sampler, budget)]
    rs = [r for r in rs if solver is None or r.get("solver_type", "midpoint") == solver]
    return min(rs, key=lambda r: r["fid"], default=None)


def report(rows: list[dict], args, out: Path) -> str:
    from cleardiffusion.experiments.report import git_commit

    commit = git_commit()
    lines = [
        "# FID against NFE: DDIM, DPM-Solver++(2M), Heun, DDPM-T and flow matching",
        "",
        f"- device: {device_name(args.device)}; torch {torch.__version__}; {date.today()}; commit {commit}",
        f"- command: `python benchmarks/few_steps.py {' '.join(sys.argv[1:])}`",
        f"- {args.n} samples per setting, the same per-sample seeds everywhere; FID with classifier features "
        f"(features_sha256 {', '.join(sorted({str(r.get('features_sha256'))[:16] for r in rows}))}) "
        "against the training split; NFE = network evaluations actually spent (a guided one counts once)",
        *(
            [f"- rows marked * are reused from `{args.reuse}` (the same samples: every sample has its own seed)"]
            if any(r.get("reused") for r in rows)
            else []
        ),
        "- model eps: the DDPM objective (whatever its network predicts; samplers see eps); flow: flow matching",
        "",
        "| model | sampler | spacing | steps | NFE | FID | FID / model's best | KID | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    best = {m: min(r["fid"] for r in rows if r["model"] == m) for m in {r["model"] for r in rows}}
    for r in rows:
        lines.append(
            f"| {r['model']} | {label(r)}{'*' if r.get('reused') else ''} | {r['spacing']} | {r['steps']} "
            f"| {r['nfe']} | {r['fid']:.3f} "
            f"| {r['fid'] / best[r['model']]:.2f} | {r['kid']:.4f} | {r['seconds']:.1f} |"
        )
    lines += ["", "## Targets", ""]
    ode = [r["fid"] for r in rows if r["model"] == "eps" and r["sampler"] in DETERMINISTIC]
    best_ode = min(ode) if ode else None
    if best_ode:
        lines.append(
            f"Best FID of the eps model: {best['eps']:.3f} (any sampler); {best_ode:.3f} with a deterministic "
            "(probability-flow ODE) sampler, the measured limit of the ODE solvers at these NFE."
        )
        lines.append("")
    lines += ["Each line takes the lowest FID of a sampler at a budget over the spacings run (the table has all):", ""]
    targets = (("dpm++2m", 10, 1.25), ("dpm++2m", 20, 1.1), ("dpm++2m-sde", 10, 1.25), ("dpm++2m-sde", 20, 1.1))
    for sampler, budget, target in (*targets, ("ddim", 10, None)):
        found = [best_at(rows, "eps", sampler, budget)]
        if sampler in SOLVER_TYPED:  # also the paper's own D_i, if the best used the exact one
            found.append(best_at(rows, "eps", sampler, budget, solver="midpoint"))
        for r in {id(r): r for r in found if r}.values():  # each distinct row once
            goal = f" (target <= {target})" if target else ""
            against_ode = f"; against the best deterministic sampler: {r['fid'] / best_ode:.2f}" if best_ode else ""
            lines.append(
                f"- eps {label(r)} ({r['spacing']}) at NFE {r['nfe']}: FID {r['fid']:.3f}, "
                f"FID / best = {r['fid'] / best['eps']:.2f}{goal}{against_ode}"
            )
    flows = [r for r in rows if r["model"] == "flow" and r["budget"] == 10]
    for name, title in (("dpm++2m", "DPM-Solver++(2M)"), ("dpm++2m-sde", "DPM-Solver++(2M) SDE")):
        dpm = best_at(rows, "eps", name, 10)
        for r in flows if dpm else []:
            verdict = "better" if r["fid"] < dpm["fid"] else f"worse by {r['fid'] / dpm['fid']:.2f}x"
            lines.append(
                f"- flow {r['sampler']} at NFE {r['nfe']}: FID {r['fid']:.3f} against eps {title} "
                f"({label(dpm)}, {dpm['spacing']}) at NFE {dpm['nfe']}: {dpm['fid']:.3f} ({verdict})"
            )
    lines += ["", "![FID against NFE](fid_vs_nfe.png)", ""]
    grids = [r for r in rows if "grid" in r]
    lines += [f"![{r['model']} {label(r)} ({r['spacing']}) NFE {r['nfe']}]({r['grid']})" for r in grids]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a DDPM (eps) checkpoint")
    parser.add_argument("--flow-checkpoint", default=None, help="optional: a `train --objective flow` checkpoint")
    parser.add_argument("--dataset", default=None, help="dataset of the reference statistics (default: checkpoint's)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--classifier", default=None, help="features for FID (default: the shipped one)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--n", type=int, default=10_000, help="samples per setting")
    parser.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 20, 50, 100], help="NFE budgets")
    parser.add_argument(
        "--runs", nargs="+", default=list(DDPM_RUNS),
        help="sampler:spacing[:midpoint|exact] for the DDPM checkpoint (the solver type: dpm++ solvers only)",
    )  # fmt: skip
    parser.add_argument("--flow-runs", nargs="+", default=list(FLOW_RUNS), help="sampler:spacing for flow")
    parser.add_argument("--reference-steps", type=int, default=None, help="DDPM reference steps (default T; 0: none)")
    parser.add_argument("--grid-nfe", type=int, default=10, help="budget whose samples are saved as grids")
    parser.add_argument("--guidance", type=float, default=1.0, help="guidance scale for conditional checkpoints")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="the network's (generate_images): auto is bf16 on CUDA and on CPUs with native bf16",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="benchmarks/results/few_steps")
    parser.add_argument(
        "--reuse",
        metavar="RESULTS_JSON",
        help="take rows of an earlier results.json with the same checkpoint step, sampler, spacing, steps, N, "
        "seed and features_sha256 instead of drawing them again (every sample has its own seed, so they are the "
        "same samples)",
    )
    args = parser.parse_args(argv)
    args.earlier = {}
    if args.reuse:
        earlier = json.loads(Path(args.reuse).read_text())
        n, seed = earlier["args"]["n"], earlier["args"]["seed"]
        for row in earlier["rows"]:
            solver = row.get("solver_type", "midpoint" if row["sampler"] in SOLVER_TYPED else None)
            row["solver_type"] = solver  # rows written before the solver type was recorded used the midpoint one
            key = (row["model"], row["sampler"], row["spacing"], solver, row["steps"], row["checkpoint_step"], n, seed,
                   row.get("features_sha256"))  # fmt: skip
            args.earlier[key] = row

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = measure("eps", args.checkpoint, args.runs, args, out)
    if args.flow_checkpoint:
        rows += measure("flow", args.flow_checkpoint, args.flow_runs, args, out)
    recorded = {k: v for k, v in vars(args).items() if k != "earlier"}
    (out / "results.json").write_text(json.dumps({"args": recorded, "rows": rows}, indent=1) + "\n")
    plot(rows, out / "fid_vs_nfe.png")
    text = report(rows, args, out)
    (out / "README.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
