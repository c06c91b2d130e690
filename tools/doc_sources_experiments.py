"""Numbers in benchmarks/results/experiments_cpu/README.md, the index of the `cleardiffusion experiment` reports,
each read from that report's results.json (or its report.md where only the text has it); render_docs.py merges
them. Numbers doc_sources_results.py or doc_sources_cost.py already writes keep their NAME in the text. Every NAME
here starts with "x." so it cannot collide with another source's."""

import math

from doc_sources import experiment_minutes, f2, load_json, ratio
from doc_sources_cost import COST
from doc_sources_quality import prose, span
from doc_sources_results import (
    DATASETS,
    EXP,
    PCT,
    ddim,
    ddim_over_ddpm,
    ddim_row,
    dropout_spread,
    experiment,
    te_fid,
    time_embedding,
    whole_percent,
)

COST_REPORT = COST.replace("results.json", "report.md")
MINUTES = {  # reports without a minutes NAME elsewhere (exp.ddpm_steps_min, exp.cost_minutes)
    "mnist": ("ddim-steps", "cfg-dropout", "overfit-one-image", "time-embedding"),
    "fashion-mnist": ("ddim-steps", "time-embedding"),
}
DDIM_FIDS = [("mnist", 100), ("fashion-mnist", 20), ("fashion-mnist", 100)]  # r.<ds>.ddim<n> has the others
SOLVER_FIDS = [("mnist", "sde", 20), ("fashion-mnist", "dpm", 10), ("fashion-mnist", "sde", 10),
               ("fashion-mnist", "sde", 20)]  # fmt: skip
SOLVERS = {"dpm": "dpm++2m", "sde": "dpm++2m-sde"}  # short names in the markers
NEXT_SEED = "every-block, next seed"


# ------------------------------------------------------------------------------------------- helpers
def report(ds: str, name: str) -> dict:
    """The whole results.json of one report (experiment() is its "results" part)."""
    return load_json(f"{EXP}/{ds}/{name}/results.json")


def solver(ds: str, sampler: str, nfe: int) -> dict:
    return next(r for r in ddim(ds)["solvers"] if (r["sampler"], r["nfe"]) == (SOLVERS[sampler], nfe))


def tolerance_miss(ds: str, steps: int) -> str:
    """How far DDIM-`steps`'s FID / DDPM-1000 lies beyond the report's tolerance, in points of DDPM-1000's FID."""
    return PCT(ddim_over_ddpm(ds, steps) - 1 - ddim(ds)["tolerance"])


def cfg_by_dropout(key: str, guidance: float, fmt) -> str:
    """`key` of cfg-dropout at one guidance scale for each label-dropout rate, lowest rate first: "a / b / c"."""
    rows = sorted(experiment("mnist", "cfg-dropout")["settings"], key=lambda r: r["label_dropout"])
    return " / ".join(fmt(r[key]) for r in rows if r["guidance"] == guidance)


def params(arm: str) -> int:
    return time_embedding("mnist")["runs"][arm]["parameters"]


def every_block_lower(ds: str) -> list[float]:
    """Per timestep band, how much lower every-block's held-out loss is than middle-only's (a fraction of it)."""
    runs = time_embedding(ds)["runs"]
    bands = zip(runs["middle"]["heldout_loss_by_band"], runs["every-block"]["heldout_loss_by_band"])
    return [1 - every / middle for middle, every in bands]


def inner_bands_within(ds: str) -> str:
    """The whole percent that every band but the first and last stays within (rounded up)."""
    return f"{math.ceil(100 * max(abs(x) for x in every_block_lower(ds)[1:-1]))}"


def lower_bands(ds: str) -> list[float]:
    return [x for x in every_block_lower(ds) if x > 0]


# ------------------------------------------------------------------------------------------- numbers
EXPERIMENT_NUMBERS = {
    **{
        f"x.classifier.{ds}": (lambda ds=ds: f"{report(ds, 'ddim-steps')['features']['classifier_test_accuracy']:.1%}")
        for ds in DATASETS
    },
    "x.params": lambda: f"{params('every-block') / 1e6:.2f}M",
    **{
        f"x.minutes.{ds}.{name}": (lambda ds=ds, name=name: experiment_minutes(name, ds))
        for ds, names in MINUTES.items()
        for name in names
    },
    "x.mnist.ddim.ddpm_min": lambda: f"{ddim('mnist')['ddpm']['seconds'] / 60:.0f}",
    **{f"x.{ds}.ddim{n}": (lambda ds=ds, n=n: f2(ddim_row(ds, n)["fid"])) for ds, n in DDIM_FIDS},
    "x.fashion-mnist.ddim50_x": lambda: f"{ddim_over_ddpm('fashion-mnist', 50):.2f}x",
    "x.fashion-mnist.ddim20_miss": lambda: tolerance_miss("fashion-mnist", 20),
    **{f"x.{ds}.{s}{n}": (lambda ds=ds, s=s, n=n: f2(solver(ds, s, n)["fid"])) for ds, s, n in SOLVER_FIDS},
    "x.mnist.sde20_x": lambda: ratio(solver("mnist", "sde", 20)["fid"], ddim("mnist")["ddpm"]["fid"]),
    **{f"x.cfg.fid_s{s:.0f}_by_p": (lambda s=s: cfg_by_dropout("fid", s, f2)) for s in (1.0, 2.0)},
    **{f"x.cfg.dropout_spread_s{s:.0f}": (lambda s=s: PCT(dropout_spread(s))) for s in (3.0, 5.0)},
    "x.cfg.best_fid": lambda: f"{experiment('mnist', 'cfg-dropout')['best_fid']['fid']:.1f}",
    "x.te.fewer_params": lambda: PCT(1 - params("middle") / params("every-block")),
    **{f"x.{ds}.te.next": (lambda ds=ds: te_fid(ds, NEXT_SEED)) for ds in DATASETS},
    **{
        f"x.{ds}.te.difference": (
            lambda ds=ds: f2(time_embedding(ds)["training_noise_floor"]["difference_middle_every_block"])
        )
        for ds in DATASETS
    },
    "x.mnist.te.inner_within": lambda: inner_bands_within("mnist"),
    "x.mnist.te.extremes_lower": lambda: span([every_block_lower("mnist")[i] for i in (0, -1)], whole_percent),
    "x.fashion-mnist.te.lower": lambda: span(lower_bands("fashion-mnist"), whole_percent),
    "x.fashion-mnist.te.lower_bands": lambda: str(len(lower_bands("fashion-mnist"))),
    "x.cost.seed_mlp_s": lambda: prose(COST_REPORT, r"seed 003: ~([\d.]+) s for 100 steps on an M2")[0],
    "x.cost.old_fit_params": lambda: prose(COST_REPORT, r"read the fit at (\d+)M and 256x256")[0],
}
