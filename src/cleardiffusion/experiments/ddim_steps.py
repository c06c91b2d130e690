"""ddim-steps: seed 000's third experiment and open question 3. DDIM with 5-100 steps against DDPM-1000.

Same checkpoint for every sampler; DDIM (eta = 0) over uniform and quadratic step spacings, and the
few-step solvers (DPM-Solver++(2M), its SDE variant, Heun) beside it. Reports FID, wall clock per image, the
speed-up over DDPM-T, the fewest DDIM steps whose FID is within 10% of DDPM-T's, and the FID's sampling
noise floor.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..recipe import SOLVER_TYPED
from ..samplers import sampler_nfe, steps_for_nfe
from ..viz import save_grid
from .common import Context, base_run, describe, sample_timed, sampling_noise
from .report import Report, figure, fmt, noise_floor_text, save_figure, step_axis
from .scoring import scorer

TITLE = "DDIM: number of steps against DDPM over all T steps"
QUESTION = (
    "Seed 000, open question 3 and the 10-50x claim: how many DDIM steps reach DDPM-1000's quality, and "
    "how much faster is that?"
)


@dataclass(frozen=True)
class Config:
    ddim_steps: tuple[int, ...]
    spacings: tuple[str, ...]
    tolerance: float  # "within 10%": FID <= (1 + tolerance) * FID(DDPM-T)
    solvers: tuple[tuple[str, str], ...] = ()  # (sampler, spacing) drawn beside DDIM at the same NFE budgets
    solver_nfe: tuple[int, ...] = ()  # their NFE budgets (Heun, whose NFE is odd: the budget or one below)


SOLVERS = (("dpm++2m", "logsnr"), ("dpm++2m-sde", "logsnr"), ("heun", "karras"))
QUICK = Config((2, 5, 10), ("uniform", "quadratic"), 0.10, SOLVERS, (5,))
CPU = Config((5, 10, 20, 50, 100), ("uniform", "quadratic"), 0.10, SOLVERS, (5, 10, 20))
FULL = Config((5, 10, 20, 50, 100), ("uniform", "quadratic"), 0.10, SOLVERS, (5, 10, 20))
CONFIGS = {"quick": QUICK, "cpu": CPU, "full": FULL}
RENDER_NEEDS = (
    "T",
    "n_samples",
    "tolerance",
    "ddpm",
    "ddim",
    "solvers",
    "fewest_overall",
    "fewest_steps_within_tolerance",
    "fewest_nfe_within_tolerance_solvers",
    "noise_floor",
    "training",
)  # keys of results.json["results"] that render reads


def fewest_steps_within(
    rows: Sequence[dict], reference_fid: float, tolerance: float, key: str = "steps"
) -> dict | None:
    """The row with the fewest `key` (steps or nfe) whose FID <= (1 + tolerance) * reference (ties: lower
    FID), or None."""
    ok = [r for r in rows if r["fid"] <= (1 + tolerance) * reference_fid]
    return min(ok, key=lambda r: (r[key], r["fid"])) if ok else None


def grid(row: dict) -> str:
    """A sampler setting's sample grid, relative to OUT."""
    return f"images/{row['sampler']}_{row['spacing']}_{row['steps']}.png"


def measure(ctx: Context) -> dict:
    """DDPM-T, DDIM at every step count and spacing, the solvers at their NFE budgets; FID, time, speed-up."""
    c = CONFIGS[ctx.size]
    trained = base_run(ctx)
    T, n, score = trained.schedule.T, ctx.sizes.n_samples, scorer(ctx)

    def sample(sampler: str, steps: int, spacing: str) -> dict:
        solver = {"solver_type": "midpoint"} if sampler in SOLVER_TYPED else {}  # the paper's, as measured
        images, seconds = sample_timed(ctx, trained, n, sampler=sampler, steps=steps, spacing=spacing, **solver)
        row = {"sampler": sampler, "spacing": spacing, "steps": steps, "nfe": sampler_nfe(sampler, steps)}
        save_grid(images[:64], ctx.out / grid(row), nrow=8, scale=2)
        print(f"ddim-steps: {sampler.upper()}-{steps} ({spacing}): {seconds:.1f} s", flush=True)
        return {**row, **score(images), "seconds": seconds, "ms_per_image": 1000 * seconds / n}

    ddpm = sample("ddpm", T, "uniform")
    rows = [sample("ddim", steps, spacing) for spacing in c.spacings for steps in c.ddim_steps]
    solver_rows = [
        sample(sampler, steps_for_nfe(sampler, nfe - (sampler == "heun" and nfe % 2 == 0)), spacing)
        for sampler, spacing in c.solvers
        for nfe in c.solver_nfe
    ]
    last = rows[len(c.ddim_steps) - 1]  # the most DDIM steps, first spacing: its FID's sampling noise floor
    noise = sampling_noise(
        ctx, trained, score, last["fid"], sampler="ddim", steps=last["steps"], spacing=last["spacing"]
    )
    for r in [ddpm, *rows, *solver_rows]:
        r["fid_ratio"] = r["fid"] / ddpm["fid"]
        r["speedup"] = ddpm["seconds"] / r["seconds"]
    best = {
        s: fewest_steps_within([r for r in rows if r["spacing"] == s], ddpm["fid"], c.tolerance) for s in c.spacings
    }
    overall = fewest_steps_within(rows, ddpm["fid"], c.tolerance)
    solver_best = {
        f"{sampler} ({spacing})": fewest_steps_within(
            [r for r in solver_rows if r["sampler"] == sampler], ddpm["fid"], c.tolerance, key="nfe"
        )
        for sampler, spacing in c.solvers
    }
    results = {
        "T": T,
        "n_samples": n,
        "tolerance": c.tolerance,
        "ddpm": ddpm,
        "ddim": rows,
        "solvers": solver_rows,
        "fewest_steps_within_tolerance": {s: (b["steps"] if b else None) for s, b in best.items()},
        "fewest_nfe_within_tolerance_solvers": {s: (b["nfe"] if b else None) for s, b in solver_best.items()},
        "noise_floor": noise,
        "fewest_overall": {k: overall[k] for k in ("steps", "spacing", "fid", "speedup")} if overall else None,
        "train_seconds": trained.seconds,
        "training": describe(trained),
    }
    headline = (
        f"fewest DDIM steps within {c.tolerance:.0%}: {overall['steps']} ({overall['spacing']})"
        if overall
        else "no DDIM setting within tolerance"
    )
    return {"results": results, "config": asdict(c), "uses_scorer": True, "headline": headline}


def plot(results: dict, out: Path) -> Path:
    """FID (with DDPM-T's +-10% band) and the measured speed-up against the ideal T / steps."""
    r, c = results["results"], results["config"]
    T, tolerance, ddpm, rows, solver_rows = r["T"], r["tolerance"], r["ddpm"], r["ddim"], r["solvers"]
    fig, (ax_fid, ax_speed) = figure(2, 5, 3.8)
    for spacing in c["spacings"]:
        sub = [row for row in rows if row["spacing"] == spacing]
        ax_fid.plot([row["steps"] for row in sub], [row["fid"] for row in sub], "o-", label=f"DDIM {spacing}")
        ax_speed.plot([row["steps"] for row in sub], [row["speedup"] for row in sub], "o-", label=f"DDIM {spacing}")
    for sampler, spacing in c["solvers"]:
        sub = [row for row in solver_rows if row["sampler"] == sampler]
        ax_fid.plot([row["nfe"] for row in sub], [row["fid"] for row in sub], "s--", label=f"{sampler} {spacing}")
    ax_fid.axhline(ddpm["fid"], color="k", linestyle="--", label=f"DDPM-{T}")
    floor = min(row["fid"] for row in [ddpm, *rows, *solver_rows]) / 1.5  # log scale: a diverged run stays readable
    ax_fid.axhspan(floor, (1 + tolerance) * ddpm["fid"], color="g", alpha=0.1, label=f"within {tolerance:.0%}")
    ax_fid.set(ylabel="FID (classifier features)", title="quality", yscale="log")
    step_axis(ax_fid, sorted({*c["ddim_steps"], T}), "network evaluations (DDPM-T drawn as the dashed line)")
    ax_speed.plot(c["ddim_steps"], [T / s for s in c["ddim_steps"]], "k:", label=f"ideal {T} / steps")
    ax_speed.axhspan(10, 50, color="orange", alpha=0.15, label="seed's 10-50x")
    ax_speed.set(yscale="log", ylabel=f"speed-up over DDPM-{T}", title="wall clock")
    step_axis(ax_speed, c["ddim_steps"], "DDIM steps")
    return save_figure(fig, out / "images" / "ddim_speedup.png")


def render(results: dict, out: Path) -> Report:
    """The report and its plot from results.json."""
    r, c = results["results"], results["config"]
    T, n, tolerance, ddpm, rows, overall = (
        r["T"],
        r["n_samples"],
        r["tolerance"],
        r["ddpm"],
        r["ddim"],
        r["fewest_overall"],
    )
    every = [ddpm, *rows, *r["solvers"]]
    report = Report(out, TITLE, QUESTION)
    report.heading("Answer")
    if overall:
        answer = (
            f"The fewest DDIM steps within {tolerance:.0%} of DDPM-{T}'s FID ({fmt(ddpm['fid'])}) is "
            f"**{overall['steps']}** ({overall['spacing']} spacing, FID {fmt(overall['fid'])}), "
            f"**{fmt(overall['speedup'])}x** faster in wall clock."
        )
    else:
        answer = (
            f"None of the DDIM step counts {list(c['ddim_steps'])} came within {tolerance:.0%} of "
            f"DDPM-{T}'s FID ({fmt(ddpm['fid'])})."
        )
    report.text(answer)
    none_of = {"ddim": f"none of {list(c['ddim_steps'])}", "solvers": f"none of {list(c['solver_nfe'])}"}
    report.table(
        ["sampler (spacing)", f"fewest NFE within {tolerance:.0%}"],
        [(f"ddim ({s})", none_of["ddim"] if b is None else b) for s, b in r["fewest_steps_within_tolerance"].items()]
        + [(s, none_of["solvers"] if b is None else b) for s, b in r["fewest_nfe_within_tolerance_solvers"].items()],
    )
    last = rows[len(c["ddim_steps"]) - 1]
    report.text(noise_floor_text(r["noise_floor"], f"DDIM-{last['steps']} ({last['spacing']})", n))
    speedups = [row["speedup"] for row in rows]
    report.text(
        f"Measured speed-ups over DDPM-{T} range from {fmt(min(speedups))}x to {fmt(max(speedups))}x "
        f"(ideal: {fmt(T / max(c['ddim_steps']))}x to {fmt(T / min(c['ddim_steps']))}x, the ratio of "
        "forward passes)."
    )
    keys = ("sampler", "spacing", "steps", "nfe", "fid", "fid_ratio", "kid", "ms_per_image", "speedup")
    report.table(
        ["sampler", "spacing", "steps", "NFE", "FID", "FID / DDPM", "KID", "ms / image", "speed-up"],
        [tuple(row[k] for k in keys) for row in every],
    )
    report.image(plot(results, out), "FID and speed-up against steps")
    report.heading("Samples")
    for row in every:
        report.image(out / grid(row), f"{row['sampler']}-{row['steps']} {row['spacing']}")
        report.text(f"{row['sampler'].upper()}-{row['steps']} ({row['spacing']})")
    report.heading("Setup")
    report.text(
        f"One checkpoint (the shared unconditional model, {r['training']['parameters']} parameters, T = {T}); "
        f"{n} samples per sampler from the same per-sample seeds; DDIM with eta = 0; wall clock "
        f"includes everything the sampler does (batch {results['sizes']['sample_batch']}), after a warm-up pass. "
        "DDPM draws fresh noise each step from per-sample CPU generators, which DDIM (eta = 0) does not."
    )
    return report
