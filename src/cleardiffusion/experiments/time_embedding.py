"""time-embedding: seed 000's open question 2. Timestep embedding in the middle block only vs every block.

Two runs of the size's U-Net (quick and full: the seed's; cpu: the CPU recipe's `small`) that differ only in
`time_embedding` (same data, seed, steps, batch, learning rate: equal training budget). Compared by their
loss curves, a held-out eps-MSE per timestep band (where in the diffusion the embedding matters), and FID of
DDIM samples. The cpu and full sizes train every-block again with the next seed: the training noise floor.
"""

from dataclasses import asdict, dataclass

import torch

from ..data import to_model_range
from ..objective import diffusion_loss
from ..viz import save_grid
from .common import Context, TrainedRun, sample_timed, train_config, train_run
from .report import Report, figure, fmt, save_figure
from .scoring import scorer

TITLE = "Time embedding: middle block only vs every block"
QUESTION = (
    "Seed 000, open question 2: how does injecting the timestep embedding only at the middle layer affect "
    "sample quality and training dynamics?"
)


@dataclass(frozen=True)
class Config:
    ddim_steps: int  # sampler for the FID
    bands: int  # timestep bands of the held-out loss
    heldout_images: int  # test images for the held-out loss
    repeat: bool  # train every-block again with the next seed: the noise floor of a training run


QUICK = Config(ddim_steps=5, bands=5, heldout_images=64, repeat=False)
CPU = Config(ddim_steps=50, bands=10, heldout_images=2000, repeat=True)
FULL = Config(ddim_steps=50, bands=10, heldout_images=2000, repeat=True)
CONFIGS = {"quick": QUICK, "cpu": CPU, "full": FULL}


@torch.no_grad()
def heldout_loss_by_band(ctx: Context, run: TrainedRun, bands: int, n: int) -> list[float]:
    """eps-MSE on n test images, per band of timesteps [k T / bands, (k + 1) T / bands), fixed noise."""
    x0 = to_model_range(ctx.load("test").images[:n]).to(ctx.device)  # (n, C, H, W)
    T, g = run.schedule.T, torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    losses = []
    for k in range(bands):
        lo, hi = k * T // bands, (k + 1) * T // bands
        t = torch.randint(lo, hi, (n,), generator=g, device=ctx.device)
        eps = torch.randn(x0.shape, generator=g, device=ctx.device)
        losses.append(float(diffusion_loss(run.model, run.schedule, x0, t, eps)))
    return losses


def run(ctx: Context) -> dict:
    c = CONFIGS[ctx.size]
    runs = {
        "middle": train_run(ctx, train_config(ctx, "unconditional-middle", time_embedding="middle")),
        "every-block": train_run(ctx, train_config(ctx, "unconditional-every-block", time_embedding="every-block")),
    }
    if c.repeat:
        runs["every-block, next seed"] = train_run(
            ctx,
            train_config(
                ctx, f"unconditional-every-block-seed{ctx.seed + 1}", time_embedding="every-block", seed=ctx.seed + 1
            ),
        )
    score, n = scorer(ctx), ctx.sizes.n_samples
    ctx.images.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, trained in runs.items():
        images, seconds = sample_timed(ctx, trained, n, sampler="ddim", steps=c.ddim_steps)
        slug = name.replace(", ", "_").replace(" ", "-")
        grid = save_grid(images[:64], ctx.images / f"samples_{slug}.png", nrow=8, scale=2)
        rows[name] = {
            "parameters": trained.parameters,
            "final_loss": trained.final_loss,
            "train_seconds": trained.seconds,
            **score(images),
            "sample_seconds": seconds,
            "heldout_loss_by_band": heldout_loss_by_band(ctx, trained, c.bands, c.heldout_images),
            "grid": grid,
        }
        print(f"time-embedding: {name}: FID {rows[name]['fid']:.3f}", flush=True)
    T = runs["middle"].schedule.T
    band_names = [f"t in [{k * T // c.bands}, {(k + 1) * T // c.bands})" for k in range(c.bands)]

    fig, (ax_loss, ax_band) = figure(2, 5, 3.8)
    for name, trained in runs.items():
        ax_loss.plot(trained.steps, trained.losses, label=name, linewidth=1)
        ax_band.plot(range(c.bands), rows[name]["heldout_loss_by_band"], "o-", label=name)
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title="loss curves (equal budget)")
    ax_band.set(
        xlabel=f"timestep band (of {c.bands}, small t first)",
        ylabel="held-out eps-MSE",
        yscale="log",
        title="held-out loss by timestep",
    )
    plot = save_figure(fig, ctx.images / "time_embedding.png")

    mid, every = rows["middle"], rows["every-block"]
    winner = "every-block" if every["fid"] < mid["fid"] else "middle"
    results = {
        "runs": {k: {kk: vv for kk, vv in v.items() if kk != "grid"} for k, v in rows.items()},
        "lower_fid": winner,
        "fid_ratio_middle_over_every_block": mid["fid"] / every["fid"],
        "loss_curves": {k: {"step": r.steps, "loss": r.losses} for k, r in runs.items()},
    }
    repeat = rows.get("every-block, next seed")
    if repeat:
        spread = abs(repeat["fid"] - every["fid"])
        results["training_noise_floor"] = {
            "fid_seed": every["fid"],
            "fid_next_seed": repeat["fid"],
            "spread": spread,
            "difference_middle_every_block": abs(mid["fid"] - every["fid"]),
            "difference_exceeds_noise": abs(mid["fid"] - every["fid"]) > spread,
        }
    report = Report(ctx.out, TITLE, QUESTION)
    report.heading("Result")
    report.text(
        f"At equal training budget ({runs['middle'].config['steps']} steps, batch "
        f"{runs['middle'].config['batch_size']}), **{winner}** injection gives the lower FID "
        f"(middle / every-block FID ratio {fmt(results['fid_ratio_middle_over_every_block'])}); final "
        "training "
        f"loss {fmt(mid['final_loss'])} (middle) vs {fmt(every['final_loss'])} (every-block)."
    )
    if repeat:
        noise = results["training_noise_floor"]
        verdict = "larger" if noise["difference_exceeds_noise"] else "NOT larger"
        report.text(
            f"Noise floor: every-block trained again with the next seed (new initialisation, batches and "
            f"noise) scores FID {fmt(repeat['fid'])} against {fmt(every['fid'])}, a spread of "
            f"{fmt(noise['spread'])}; the middle / every-block difference "
            f"({fmt(noise['difference_middle_every_block'])}) is {verdict} than that."
        )
    report.table(
        [
            "injection",
            "parameters",
            "final loss",
            "train s",
            f"FID (DDIM-{c.ddim_steps})",
            "KID",
            "precision",
            "recall",
        ],
        [
            (
                k,
                r["parameters"],
                r["final_loss"],
                r["train_seconds"],
                r["fid"],
                r["kid"],
                r["precision"],
                r["recall"],
            )
            for k, r in rows.items()
        ],
    )
    report.image(plot, "loss curves and held-out loss by timestep band")
    report.heading("Held-out eps-MSE by timestep band")
    report.table(
        ["timestep band", "middle", "every-block", "middle / every-block"],
        [
            (b, m, e, m / e)
            for b, m, e in zip(band_names, mid["heldout_loss_by_band"], every["heldout_loss_by_band"], strict=True)
        ],
    )
    report.heading("Samples")
    for name, r in rows.items():
        report.image(r["grid"], f"samples, time embedding {name}")
        report.text(f"time embedding: {name}")
    report.text(
        f"Loss curves: the mean training loss of each {runs['middle'].config['log_every']}-step window "
        "from metrics.jsonl. Held-out loss: test images, the same t and eps for both models."
    )
    return {
        "results": results,
        "config": asdict(c),
        "report": report,
        "uses_scorer": True,
        "headline": f"lower FID: {winner} (FID ratio middle / every-block {fmt(mid['fid'] / every['fid'])})",
    }
