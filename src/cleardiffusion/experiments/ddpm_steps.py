"""ddpm-steps: seed 000's second experiment. DDPM sampling with 100, 300 and 1000 steps: quality and time.

Design: ONE model trained at T = 1000, sampled with DDPM over 100, 300 and 1000 respaced steps (beta taken
between visited steps: 1 - alpha_bar_t / alpha_bar_s). The seed asks to "sample with DDPM at [100, 300,
1000] steps", i.e. a property of the sampler; one set of weights keeps training noise out of the comparison
(three models at equal budget would differ by their training runs too), and costs one training run.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

from ..viz import save_grid
from .common import Context, base_run, describe, sample_timed, sampling_noise
from .report import Report, figure, fmt, noise_floor_text, save_figure, step_axis
from .scoring import scorer

TITLE = "DDPM: number of sampling steps"
QUESTION = (
    "Seed 000, second experiment: sample with DDPM at 100, 300 and 1000 steps and confirm that quality "
    "increases with steps; at what cost in time?"
)


@dataclass(frozen=True)
class Config:
    steps: tuple[int, ...]  # respaced DDPM step counts; the largest is T (every step)


QUICK = Config(steps=(5, 10, 50))
CPU = Config(steps=(100, 300, 1000))
FULL = Config(steps=(100, 300, 1000))
CONFIGS = {"quick": QUICK, "cpu": CPU, "full": FULL}
RENDER_NEEDS = (
    "settings",
    "n_samples",
    "best_steps",
    "fid_decreases_with_steps",
    "noise_floor",
    "T",
    "parameters",
    "train_seconds",
    "training",
)  # keys of results.json["results"] that render reads


def grid(steps: int) -> str:
    """A setting's sample grid, relative to OUT."""
    return f"images/ddpm_{steps}.png"


def measure(ctx: Context) -> dict:
    """Sample the shared model with DDPM at each step count; FID, time, grids; the noise floor of the fewest."""
    c = CONFIGS[ctx.size]
    trained, score, n = base_run(ctx), scorer(ctx), ctx.sizes.n_samples
    rows = []
    for steps in c.steps:
        images, seconds = sample_timed(ctx, trained, n, sampler="ddpm", steps=steps, spacing="uniform")
        metrics = score(images)
        save_grid(images[:64], ctx.out / grid(steps), nrow=8, scale=2)
        rows.append({"steps": steps, **metrics, "seconds": seconds, "ms_per_image": 1000 * seconds / n})
        print(f"ddpm-steps: DDPM-{steps}: FID {metrics['fid']:.3f}, {seconds:.1f} s", flush=True)
    fids = [r["fid"] for r in rows]
    first = rows[0]  # the fewest steps (the cheapest to redraw): its FID's sampling noise floor
    noise = sampling_noise(ctx, trained, score, first["fid"], sampler="ddpm", steps=first["steps"], spacing="uniform")
    results = {
        "design": "one model at T, respaced DDPM steps",
        "T": trained.schedule.T,
        "n_samples": n,
        "settings": rows,
        "fid_decreases_with_steps": all(a >= b for a, b in zip(fids, fids[1:], strict=False)),
        "best_steps": min(rows, key=lambda r: r["fid"])["steps"],
        "train_seconds": trained.seconds,
        "parameters": trained.parameters,
        "noise_floor": noise,
        "training": describe(trained),
    }
    headline = f"FID by steps {dict(zip(c.steps, [round(f, 3) for f in fids], strict=True))}"
    return {"results": results, "config": asdict(c), "uses_scorer": True, "headline": headline}


def render(results: dict, out: Path) -> Report:
    """The report and its plot from results.json."""
    r, steps = results["results"], results["config"]["steps"]
    rows, n, train = r["settings"], r["n_samples"], r["training"]
    best = next(row for row in rows if row["steps"] == r["best_steps"])
    fig, (ax_fid, ax_time) = figure(2, 5, 3.6)
    ax_fid.plot(steps, [row["fid"] for row in rows], "o-")
    ax_fid.set(ylabel="FID (classifier features)", title="quality")
    step_axis(ax_fid, steps, "DDPM steps")
    ax_time.plot(steps, [row["ms_per_image"] for row in rows], "o-")
    ax_time.set(yscale="log", ylabel="ms per image", title="cost")
    step_axis(ax_time, steps, "DDPM steps")
    plot = save_figure(fig, out / "images" / "ddpm_steps.png")

    report = Report(out, TITLE, QUESTION)
    report.heading("Result")
    trend = "decreases monotonically" if r["fid_decreases_with_steps"] else "does NOT decrease monotonically"
    report.text(
        f"FID {trend} with the number of DDPM steps over {list(steps)}; the best is DDPM-{best['steps']} "
        f"(FID {fmt(best['fid'])}). {n} samples per setting, sampler batch {results['sizes']['sample_batch']}. "
        "Seconds of a setting another experiment drew first (the shared DDPM-T samples of ddim-steps) are the "
        "seconds measured then."
    )
    report.text(noise_floor_text(r["noise_floor"], f"DDPM-{rows[0]['steps']}", n))
    report.table(
        ["DDPM steps", "FID", "KID", "precision", "recall", "seconds", "ms / image"],
        [(s["steps"], s["fid"], s["kid"], s["precision"], s["recall"], s["seconds"], s["ms_per_image"]) for s in rows],
    )
    report.image(plot, "FID and time against DDPM steps")
    report.heading("Samples")
    for s in rows:
        report.image(out / grid(s["steps"]), f"DDPM-{s['steps']} samples")
        report.text(f"DDPM-{s['steps']}")
    report.heading("Design")
    report.text(
        f"One model ({train['model']} U-Net, time embedding {train['time_embedding']}, {r['parameters']} "
        f"parameters) trained once at T = {r['T']} ({train['schedule']} betas, {train['steps']} steps, batch "
        f"{train['batch_size']}, {fmt(r['train_seconds'])} s), then sampled with DDPM over respaced step "
        "subsequences (uniform spacing; beta between visited steps is 1 - alpha_bar_t / alpha_bar_s, sigma^2 = "
        "beta). Why not one model per T: the seed's question is about the sampler's step count, and one set of "
        "weights keeps the differences between three training runs out of the comparison, for a third of the "
        "training cost."
    )
    return report
