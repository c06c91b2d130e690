"""time-embedding: seed 000's open question 2. Timestep embedding in the middle block only vs every block.

Two runs of the size's U-Net (quick and full: the seed's; cpu: the CPU recipe's `small`) that differ only in
`time_embedding` (same data, seed, steps, batch, learning rate: equal training budget). Compared by their
loss curves, a held-out eps-MSE per timestep band (where in the diffusion the embedding matters), and FID of
DDIM samples. The cpu and full sizes train every-block again with the next seed: the training noise floor.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data import to_model_range
from ..objective import diffusion_loss
from ..viz import save_grid
from .common import Context, TrainedRun, describe, sample_timed, train_config, train_run
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
RENDER_NEEDS = (
    "runs",
    "lower_fid",
    "fid_ratio_middle_over_every_block",
    "loss_curves",
    "training",
)  # keys of results.json["results"] that render reads


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


def grid(name: str) -> str:
    """A run's sample grid, relative to OUT."""
    return f"images/samples_{name.replace(', ', '_').replace(' ', '-')}.png"


def measure(ctx: Context) -> dict:
    """Train middle and every-block (and every-block with the next seed); FID, held-out loss by band, curves."""
    c = CONFIGS[ctx.size]
    runs = {
        "middle": train_run(ctx, train_config(ctx, "unconditional-middle", time_embedding="middle")),
        "every-block": train_run(ctx, train_config(ctx, "unconditional-every-block", time_embedding="every-block")),
    }
    if c.repeat:
        again = train_config(ctx, "unconditional-every-block", time_embedding="every-block", seed=ctx.seed + 1)
        runs["every-block, next seed"] = train_run(ctx, again)
    score, n = scorer(ctx), ctx.sizes.n_samples
    rows = {}
    for name, trained in runs.items():
        images, seconds = sample_timed(ctx, trained, n, sampler="ddim", steps=c.ddim_steps)
        save_grid(images[:64], ctx.out / grid(name), nrow=8, scale=2)
        rows[name] = {
            "parameters": trained.parameters,
            "final_loss": trained.final_loss,
            "train_seconds": trained.seconds,
            **score(images),
            "sample_seconds": seconds,
            "heldout_loss_by_band": heldout_loss_by_band(ctx, trained, c.bands, c.heldout_images),
        }
        print(f"time-embedding: {name}: FID {rows[name]['fid']:.3f}", flush=True)
    mid, every = rows["middle"], rows["every-block"]
    winner = "every-block" if every["fid"] < mid["fid"] else "middle"
    results = {
        "runs": rows,
        "lower_fid": winner,
        "fid_ratio_middle_over_every_block": mid["fid"] / every["fid"],
        "loss_curves": {k: {"step": r.steps, "loss": r.losses} for k, r in runs.items()},
        "training": describe(runs["middle"]),
    }
    repeat = rows.get("every-block, next seed")
    if repeat:
        spread, difference = abs(repeat["fid"] - every["fid"]), abs(mid["fid"] - every["fid"])
        results["training_noise_floor"] = {"fid_seed": every["fid"], "fid_next_seed": repeat["fid"], "spread": spread,
                                           "difference_middle_every_block": difference,
                                           "difference_exceeds_noise": difference > spread}  # fmt: skip
    headline = f"lower FID: {winner} (FID ratio middle / every-block {fmt(mid['fid'] / every['fid'])})"
    return {"results": results, "config": asdict(c), "uses_scorer": True, "headline": headline}


def plot(results: dict, out: Path) -> Path:
    """Loss curves and the held-out loss by timestep band, a line per run."""
    r, bands = results["results"], results["config"]["bands"]
    fig, (ax_loss, ax_band) = figure(2, 5, 3.8)
    for name, curve in r["loss_curves"].items():
        ax_loss.plot(curve["step"], curve["loss"], label=name, linewidth=1)
        ax_band.plot(range(bands), r["runs"][name]["heldout_loss_by_band"], "o-", label=name)
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title="loss curves (equal budget)")
    ax_band.set(xlabel=f"timestep band (of {bands}, small t first)", ylabel="held-out eps-MSE", yscale="log",
                title="held-out loss by timestep")  # fmt: skip
    return save_figure(fig, out / "images" / "time_embedding.png")


def render(results: dict, out: Path) -> Report:
    """The report and its plot from results.json."""
    r, c, train = results["results"], results["config"], results["results"]["training"]
    rows, T, bands = r["runs"], train["T"], c["bands"]
    mid, every, repeat = rows["middle"], rows["every-block"], rows.get("every-block, next seed")
    report = Report(out, TITLE, QUESTION)
    report.heading("Result")
    report.text(
        f"At equal training budget ({train['steps']} steps, batch {train['batch_size']}), **{r['lower_fid']}** "
        f"injection gives the lower FID (middle / every-block FID ratio {fmt(r['fid_ratio_middle_over_every_block'])}"
        f"); final training loss {fmt(mid['final_loss'])} (middle) vs {fmt(every['final_loss'])} (every-block)."
    )
    if repeat:
        noise = r["training_noise_floor"]
        verdict = "larger" if noise["difference_exceeds_noise"] else "NOT larger"
        report.text(
            f"Noise floor: every-block trained again with the next seed (new initialisation, batches and "
            f"noise) scores FID {fmt(repeat['fid'])} against {fmt(every['fid'])}, a spread of "
            f"{fmt(noise['spread'])}; the middle / every-block difference "
            f"({fmt(noise['difference_middle_every_block'])}) is {verdict} than that."
        )
    keys = ("parameters", "final_loss", "train_seconds", "fid", "kid", "precision", "recall")
    report.table(
        ["injection", "parameters", "final loss", "train s", f"FID (DDIM-{c['ddim_steps']})", "KID", "precision",
         "recall"],
        [(k, *[row[key] for key in keys]) for k, row in rows.items()],
    )  # fmt: skip
    report.image(plot(results, out), "loss curves and held-out loss by timestep band")
    report.heading("Held-out eps-MSE by timestep band")
    band_names = [f"t in [{k * T // bands}, {(k + 1) * T // bands})" for k in range(bands)]
    report.table(
        ["timestep band", "middle", "every-block", "middle / every-block"],
        [(b, m, e, m / e)
         for b, m, e in zip(band_names, mid["heldout_loss_by_band"], every["heldout_loss_by_band"], strict=True)],
    )  # fmt: skip
    report.heading("Samples")
    for name in rows:
        report.image(out / grid(name), f"samples, time embedding {name}")
        report.text(f"time embedding: {name}")
    report.text(
        f"Loss curves: the mean training loss of each {train['log_every']}-step window "
        "from metrics.jsonl. Held-out loss: test images, the same t and eps for both models."
    )
    return report
