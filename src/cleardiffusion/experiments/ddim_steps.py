"""ddim-steps: seed 000's third experiment and open question 3. DDIM with 5-100 steps against DDPM-1000.

Same checkpoint for every sampler; DDIM (eta = 0) over uniform and quadratic step spacings, and the
few-step solvers (DPM-Solver++(2M), its SDE variant, Heun) beside it. Reports FID, wall clock per image, the
speed-up over DDPM-T, the fewest DDIM steps whose FID is within 10% of DDPM-T's, and the FID's sampling
noise floor.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from ..generate import count_nfe, steps_for_budget
from ..viz import save_grid
from .common import Context, base_run, sample_timed, sampling_noise
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


def fewest_steps_within(
    rows: Sequence[dict], reference_fid: float, tolerance: float, key: str = "steps"
) -> dict | None:
    """The row with the fewest `key` (steps or nfe) whose FID <= (1 + tolerance) * reference (ties: lower
    FID), or None."""
    ok = [r for r in rows if r["fid"] <= (1 + tolerance) * reference_fid]
    return min(ok, key=lambda r: (r[key], r["fid"])) if ok else None


def run(ctx: Context) -> dict:
    c = CONFIGS[ctx.size]
    trained = base_run(ctx)
    T, n, score = trained.schedule.T, ctx.sizes.n_samples, scorer(ctx)
    ctx.images.mkdir(parents=True, exist_ok=True)

    def measure(sampler: str, steps: int, spacing: str) -> dict:
        images, seconds = sample_timed(ctx, trained, n, sampler=sampler, steps=steps, spacing=spacing)
        grid = save_grid(images[:64], ctx.images / f"{sampler}_{spacing}_{steps}.png", nrow=8, scale=2)
        print(f"ddim-steps: {sampler.upper()}-{steps} ({spacing}): {seconds:.1f} s", flush=True)
        return {
            "sampler": sampler,
            "spacing": spacing,
            "steps": steps,
            "nfe": count_nfe("ddpm", sampler, steps),
            **score(images),
            "seconds": seconds,
            "ms_per_image": 1000 * seconds / n,
            "grid": grid.relative_to(ctx.out).as_posix(),
        }

    ddpm = measure("ddpm", T, "uniform")
    rows = [measure("ddim", steps, spacing) for spacing in c.spacings for steps in c.ddim_steps]
    solver_rows = [
        measure(sampler, steps_for_budget("ddpm", sampler, nfe - (sampler == "heun" and nfe % 2 == 0)), spacing)
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
        spacing: fewest_steps_within([r for r in rows if r["spacing"] == spacing], ddpm["fid"], c.tolerance)
        for spacing in c.spacings
    }
    overall = fewest_steps_within(rows, ddpm["fid"], c.tolerance)
    solver_best = {
        f"{sampler} ({spacing})": fewest_steps_within(
            [r for r in solver_rows if r["sampler"] == sampler], ddpm["fid"], c.tolerance, key="nfe"
        )
        for sampler, spacing in c.solvers
    }

    # ---- the plot: FID (with DDPM-T's +-10% band) and the measured speed-up against the ideal T / steps
    fig, (ax_fid, ax_speed) = figure(2, 5, 3.8)
    for spacing in c.spacings:
        sub = [r for r in rows if r["spacing"] == spacing]
        ax_fid.plot([r["steps"] for r in sub], [r["fid"] for r in sub], "o-", label=f"DDIM {spacing}")
        ax_speed.plot([r["steps"] for r in sub], [r["speedup"] for r in sub], "o-", label=f"DDIM {spacing}")
    for sampler, spacing in c.solvers:
        sub = [r for r in solver_rows if r["sampler"] == sampler]
        ax_fid.plot([r["nfe"] for r in sub], [r["fid"] for r in sub], "s--", label=f"{sampler} {spacing}")
    ax_fid.axhline(ddpm["fid"], color="k", linestyle="--", label=f"DDPM-{T}")
    floor = min(r["fid"] for r in [ddpm, *rows, *solver_rows]) / 1.5  # log scale: one diverged run stays readable
    ax_fid.axhspan(floor, (1 + c.tolerance) * ddpm["fid"], color="g", alpha=0.1, label=f"within {c.tolerance:.0%}")
    ax_fid.set(ylabel="FID (classifier features)", title="quality", yscale="log")
    step_axis(ax_fid, sorted({*c.ddim_steps, T}), "network evaluations (DDPM-T drawn as the dashed line)")
    ax_speed.plot(c.ddim_steps, [T / s for s in c.ddim_steps], "k:", label=f"ideal {T} / steps")
    ax_speed.axhspan(10, 50, color="orange", alpha=0.15, label="seed's 10-50x")
    ax_speed.set(yscale="log", ylabel=f"speed-up over DDPM-{T}", title="wall clock")
    step_axis(ax_speed, c.ddim_steps, "DDIM steps")
    plot = save_figure(fig, ctx.images / "ddim_speedup.png")

    strip = lambda r: {k: v for k, v in r.items() if k != "grid"}  # noqa: E731
    results = {
        "T": T,
        "n_samples": n,
        "tolerance": c.tolerance,
        "ddpm": strip(ddpm),
        "ddim": [strip(r) for r in rows],
        "solvers": [strip(r) for r in solver_rows],
        "fewest_steps_within_tolerance": {s: (b["steps"] if b else None) for s, b in best.items()},
        "fewest_nfe_within_tolerance_solvers": {s: (b["nfe"] if b else None) for s, b in solver_best.items()},
        "noise_floor": noise,
        "fewest_overall": {
            "steps": overall["steps"],
            "spacing": overall["spacing"],
            "fid": overall["fid"],
            "speedup": overall["speedup"],
        }
        if overall
        else None,
        "train_seconds": trained.seconds,
    }
    report = Report(ctx.out, TITLE, QUESTION)
    report.heading("Answer")
    if overall:
        answer = (
            f"The fewest DDIM steps within {c.tolerance:.0%} of DDPM-{T}'s FID ({fmt(ddpm['fid'])}) is "
            f"**{overall['steps']}** ({overall['spacing']} spacing, FID {fmt(overall['fid'])}), "
            f"**{fmt(overall['speedup'])}x** faster in wall clock."
        )
    else:
        answer = (
            f"None of the DDIM step counts {list(c.ddim_steps)} came within {c.tolerance:.0%} of "
            f"DDPM-{T}'s FID ({fmt(ddpm['fid'])})."
        )
    report.text(answer)
    report.table(
        ["sampler (spacing)", f"fewest NFE within {c.tolerance:.0%}"],
        [(f"ddim ({s})", b["steps"] if b else f"none of {list(c.ddim_steps)}") for s, b in best.items()]
        + [(s, b["nfe"] if b else f"none of {list(c.solver_nfe)}") for s, b in solver_best.items()],
    )
    report.text(noise_floor_text(noise, f"DDIM-{last['steps']} ({last['spacing']})", n))
    speedups = [r["speedup"] for r in rows]
    report.text(
        f"Measured speed-ups over DDPM-{T} range from {fmt(min(speedups))}x to {fmt(max(speedups))}x "
        f"(ideal: {fmt(T / max(c.ddim_steps))}x to {fmt(T / min(c.ddim_steps))}x, the ratio of "
        "forward passes)."
    )
    report.table(
        ["sampler", "spacing", "steps", "NFE", "FID", "FID / DDPM", "KID", "ms / image", "speed-up"],
        [
            (
                r["sampler"],
                r["spacing"],
                r["steps"],
                r["nfe"],
                r["fid"],
                r["fid_ratio"],
                r["kid"],
                r["ms_per_image"],
                r["speedup"],
            )
            for r in [ddpm, *rows, *solver_rows]
        ],
    )
    report.image(plot, "FID and speed-up against steps")
    report.heading("Samples")
    for r in [ddpm, *rows, *solver_rows]:
        report.image(ctx.out / r["grid"], f"{r['sampler']}-{r['steps']} {r['spacing']}")
        report.text(f"{r['sampler'].upper()}-{r['steps']} ({r['spacing']})")
    report.heading("Setup")
    report.text(
        f"One checkpoint (the shared unconditional model, {trained.parameters} parameters, T = {T}); "
        f"{n} samples per sampler from the same per-sample seeds; DDIM with eta = 0; wall clock "
        f"includes everything the sampler does (batch {ctx.sizes.sample_batch}), after a warm-up pass. "
        "DDPM draws fresh noise each step from per-sample CPU generators, which DDIM (eta = 0) does not."
    )
    headline = (
        f"fewest DDIM steps within {c.tolerance:.0%}: {overall['steps']} ({overall['spacing']})"
        if overall
        else "no DDIM setting within tolerance"
    )
    return {
        "results": results,
        "config": asdict(c),
        "report": report,
        "uses_scorer": True,
        "headline": headline,
    }
