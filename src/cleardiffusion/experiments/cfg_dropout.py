"""cfg-dropout: classifier-free guidance (Ho & Salimans 2022), label dropout p x guidance scale s.

One conditional model per label-dropout probability p (equal training budget); each sampled for balanced
labels at every guidance scale s (eps = eps_uncond + s (eps_cond - eps_uncond): s = 0 unconditional, s = 1
plain conditional). Quality: FID; faithfulness: the classifier's accuracy on the samples vs the requested
labels. This is the seed's "CFG sensitivity analysis" (Next Checks 3).
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..viz import save_grid
from .common import Context, sample_timed, sampling_noise, train_config, train_run
from .report import Report, figure, fmt, noise_floor_text, save_figure
from .scoring import scorer

TITLE = "Classifier-free guidance: label dropout x guidance scale"
QUESTION = (
    "Seed 000, Next Checks 3: how do the label-dropout probability (0.1, 0.3, 0.5) and the guidance scale "
    "trade sample quality (FID) against class faithfulness (accuracy)?"
)


@dataclass(frozen=True)
class Config:
    dropouts: tuple[float, ...]
    scales: tuple[float, ...]
    ddim_steps: int


QUICK = Config(dropouts=(0.1, 0.5), scales=(0.0, 1.0, 3.0), ddim_steps=5)
CPU = Config(dropouts=(0.1, 0.3, 0.5), scales=(0.0, 1.0, 2.0, 3.0, 5.0), ddim_steps=20)  # guided: 2 NFE a step
FULL = Config(dropouts=(0.1, 0.3, 0.5), scales=(0.0, 1.0, 2.0, 3.0, 5.0), ddim_steps=50)
CONFIGS = {"quick": QUICK, "cpu": CPU, "full": FULL}
RENDER_NEEDS = (
    "settings",
    "best_fid",
    "best_accuracy",
    "n_samples",
    "noise_floor",
    "num_classes",
)  # keys of results.json["results"] that render reads


def grid(p: float, s: float) -> str:
    """A setting's sample grid, relative to OUT."""
    return f"images/p{p}_s{s}.png"


def measure(ctx: Context) -> dict:
    """One conditional model per dropout p, sampled at every guidance scale s: FID, accuracy, grids."""
    c = CONFIGS[ctx.size]
    score, n = scorer(ctx), ctx.sizes.n_samples
    num_classes = ctx.load("train").num_classes
    labels = torch.arange(n) % num_classes  # balanced: column k of a grid with num_classes per row is class k
    rows, trained_runs = [], {}
    for p in c.dropouts:
        trained = train_run(ctx, train_config(ctx, f"conditional-p{p}", conditional=True, label_dropout=p))
        trained_runs[p] = trained
        for s in c.scales:
            images, seconds = sample_timed(
                ctx, trained, n, sampler="ddim", steps=c.ddim_steps, labels=labels, guidance=s
            )
            m = score(images, labels)
            save_grid(images[: 4 * num_classes], ctx.out / grid(p, s), nrow=num_classes, scale=2)
            rows.append({"label_dropout": p, "guidance": s, **m, "seconds": seconds,
                         "train_seconds": trained.seconds, "final_loss": trained.final_loss})  # fmt: skip
            print(f"cfg-dropout: p={p} s={s}: FID {m['fid']:.3f} accuracy {m['accuracy']:.3f}", flush=True)
    best_fid = min(rows, key=lambda r: r["fid"])
    best_acc = max(rows, key=lambda r: (r["accuracy"], -r["fid"]))
    noise = sampling_noise(ctx, trained_runs[best_fid["label_dropout"]], score, best_fid["fid"], sampler="ddim",
                           steps=c.ddim_steps, labels=labels, guidance=best_fid["guidance"])  # fmt: skip
    results = {
        "settings": rows,
        "best_fid": {k: best_fid[k] for k in ("label_dropout", "guidance", "fid")},
        "best_accuracy": {k: best_acc[k] for k in ("label_dropout", "guidance", "accuracy")},
        "n_samples": n,
        "noise_floor": noise,
        "num_classes": num_classes,
    }
    headline = (
        f"best FID p={best_fid['label_dropout']} s={fmt(best_fid['guidance'])}; "
        f"best accuracy p={best_acc['label_dropout']} s={fmt(best_acc['guidance'])}"
    )
    return {"results": results, "config": asdict(c), "uses_scorer": True, "headline": headline}


def plot(results: dict, out: Path) -> Path:
    """FID, class accuracy, precision and recall against the guidance scale, a line per dropout p."""
    c, cell = results["config"], {(r["label_dropout"], r["guidance"]): r for r in results["results"]["settings"]}
    fig, (ax_fid, ax_acc, ax_pr) = figure(3, 5, 3.8)
    for k, p in enumerate(c["dropouts"]):
        ax_fid.plot(c["scales"], [cell[p, s]["fid"] for s in c["scales"]], "o-", label=f"p = {p}")
        ax_acc.plot(c["scales"], [cell[p, s]["accuracy"] for s in c["scales"]], "o-", label=f"p = {p}")
        for metric, style in (("precision", "o-"), ("recall", "s:")):
            values = [cell[p, s][metric] for s in c["scales"]]
            ax_pr.plot(c["scales"], values, style, color=f"C{k}", label=f"{metric}, p = {p}")
    ax_pr.set(xlabel="guidance scale s", ylabel="precision / recall", title="fidelity vs diversity", ylim=(0, 1.02))
    ax_fid.set(xlabel="guidance scale s", ylabel="FID (classifier features)", title="quality")
    ax_acc.set(xlabel="guidance scale s", ylabel="class accuracy", title="faithfulness", ylim=(0, 1.02))
    return save_figure(fig, out / "images" / "cfg.png")


def render(results: dict, out: Path) -> Report:
    """The report and its plot from results.json."""
    r, c, n = results["results"], results["config"], results["results"]["n_samples"]
    rows, best_fid, best_acc = r["settings"], r["best_fid"], r["best_accuracy"]
    cell = {(row["label_dropout"], row["guidance"]): row for row in rows}
    report = Report(out, TITLE, QUESTION)
    report.heading("Result")
    report.text(
        f"Lowest FID: p = {best_fid['label_dropout']}, s = {fmt(best_fid['guidance'])} "
        f"(FID {fmt(best_fid['fid'])}). Highest class accuracy: p = {best_acc['label_dropout']}, "
        f"s = {fmt(best_acc['guidance'])} (accuracy {fmt(best_acc['accuracy'])}). s = 0 samples the "
        "unconditional model, so its accuracy is the chance level the guidance has to beat."
    )
    report.text(noise_floor_text(r["noise_floor"], "the lowest-FID setting", n))
    header = ["label dropout p"] + [f"s = {fmt(s)}" for s in c["scales"]]
    report.heading("FID", 3)
    report.table(header, [(p, *[cell[p, s]["fid"] for s in c["scales"]]) for p in c["dropouts"]])
    report.heading("Class accuracy (classifier on samples vs requested labels)", 3)
    report.table(header, [(p, *[cell[p, s]["accuracy"] for s in c["scales"]]) for p in c["dropouts"]])
    report.image(plot(results, out), "FID, accuracy, precision and recall against guidance scale")
    report.heading("All settings", 3)
    keys = ("label_dropout", "guidance", "fid", "accuracy", "kid", "precision", "recall", "seconds")
    report.table(
        ["p", "s", "FID", "accuracy", "KID", "precision", "recall", "sampling s"],
        [tuple(row[k] for k in keys) for row in rows],
    )
    report.heading("Samples (column k: class k)", 3)
    for row in rows:
        p, s = row["label_dropout"], row["guidance"]
        report.image(out / grid(p, s), f"p = {p}, s = {s}")
        report.text(f"p = {p}, s = {fmt(s)}")
    report.heading("Setup")
    report.text(
        f"One conditional U-Net per p, trained for the same number of steps; {n} samples per setting with "
        f"balanced labels (sample i asks for class i mod {r['num_classes']}), DDIM-{c['ddim_steps']}, the same "
        "per-sample seeds for every setting. Guidance costs one batched forward pass of 2B inputs."
    )
    return report
