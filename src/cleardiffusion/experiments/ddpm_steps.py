"""ddpm-steps: seed 000's second experiment. DDPM sampling with 100, 300 and 1000 steps: quality and time.

Design: ONE model trained at T = 1000, sampled with DDPM over 100, 300 and 1000 respaced steps (beta taken
between visited steps: 1 - alpha_bar_t / alpha_bar_s). The seed asks to "sample with DDPM at [100, 300,
1000] steps", i.e. a property of the sampler; one set of weights keeps training noise out of the comparison
(three models at equal budget would differ by their training runs too), and costs one training run.
"""

from dataclasses import asdict, dataclass

from ..viz import save_grid
from .common import Context, base_run, sample_timed, sampling_noise
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


def run(ctx: Context) -> dict:
    c = CONFIGS[ctx.size]
    trained = base_run(ctx)
    score = scorer(ctx)
    n = ctx.sizes.n_samples
    rows = []
    ctx.images.mkdir(parents=True, exist_ok=True)
    for steps in c.steps:
        images, seconds = sample_timed(ctx, trained, n, sampler="ddpm", steps=steps, spacing="uniform")
        metrics = score(images)
        grid = save_grid(images[:64], ctx.images / f"ddpm_{steps}.png", nrow=8, scale=2)
        rows.append(
            {
                "steps": steps,
                **metrics,
                "seconds": seconds,
                "ms_per_image": 1000 * seconds / n,
                "grid": grid.relative_to(ctx.out).as_posix(),
            }
        )
        print(f"ddpm-steps: DDPM-{steps}: FID {metrics['fid']:.3f}, {seconds:.1f} s", flush=True)
    fids = [r["fid"] for r in rows]
    monotone = all(a >= b for a, b in zip(fids, fids[1:], strict=False))
    best = min(rows, key=lambda r: r["fid"])
    first = rows[0]  # the fewest steps (the cheapest to redraw): its FID's sampling noise floor
    noise = sampling_noise(ctx, trained, score, first["fid"], sampler="ddpm", steps=first["steps"], spacing="uniform")

    fig, (ax_fid, ax_time) = figure(2, 5, 3.6)
    ax_fid.plot(c.steps, fids, "o-")
    ax_fid.set(ylabel="FID (classifier features)", title="quality")
    step_axis(ax_fid, c.steps, "DDPM steps")
    ax_time.plot(c.steps, [r["ms_per_image"] for r in rows], "o-")
    ax_time.set(yscale="log", ylabel="ms per image", title="cost")
    step_axis(ax_time, c.steps, "DDPM steps")
    plot = save_figure(fig, ctx.images / "ddpm_steps.png")

    results = {
        "design": "one model at T, respaced DDPM steps",
        "T": trained.schedule.T,
        "n_samples": n,
        "settings": [{k: v for k, v in r.items() if k != "grid"} for r in rows],
        "fid_decreases_with_steps": monotone,
        "best_steps": best["steps"],
        "train_seconds": trained.seconds,
        "parameters": trained.parameters,
        "noise_floor": noise,
    }
    report = Report(ctx.out, TITLE, QUESTION)
    report.heading("Result")
    trend = "decreases monotonically" if monotone else "does NOT decrease monotonically"
    report.text(
        f"FID {trend} with the number of DDPM steps over {list(c.steps)}; the best is DDPM-{best['steps']} "
        f"(FID {fmt(best['fid'])}). {n} samples per setting, sampler batch {ctx.sizes.sample_batch}. "
        "Seconds of a setting another experiment drew first (the shared DDPM-T samples of ddim-steps) are the "
        "seconds measured then."
    )
    report.text(noise_floor_text(noise, f"DDPM-{first['steps']}", n))
    report.table(
        ["DDPM steps", "FID", "KID", "precision", "recall", "seconds", "ms / image"],
        [(r["steps"], r["fid"], r["kid"], r["precision"], r["recall"], r["seconds"], r["ms_per_image"]) for r in rows],
    )
    report.image(plot, "FID and time against DDPM steps")
    report.heading("Samples")
    for r in rows:
        report.image(ctx.out / r["grid"], f"DDPM-{r['steps']} samples")
        report.text(f"DDPM-{r['steps']}")
    report.heading("Design")
    report.text(
        f"One model ({trained.config['model']} U-Net, time embedding {trained.config['time_embedding']}, "
        f"{trained.parameters} parameters) trained once at T = {trained.schedule.T} "
        f"({trained.config['schedule']} betas, "
        f"{trained.config['steps']} steps, batch {trained.config['batch_size']}, {fmt(trained.seconds)} s), "
        "then sampled with DDPM over respaced step subsequences (uniform spacing; beta between visited "
        "steps is 1 - alpha_bar_t / alpha_bar_s, sigma^2 = beta). Why not one model per T: the seed's "
        "question is about the sampler's step count, and one set of weights keeps the differences "
        "between three training runs out of the comparison, for a third of the training cost."
    )
    return {
        "results": results,
        "config": asdict(c),
        "report": report,
        "uses_scorer": True,
        "headline": f"FID by steps {dict(zip(c.steps, [round(f, 3) for f in fids], strict=True))}",
    }
