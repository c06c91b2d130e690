"""Numbers in docs/quality.md's sentences, each read from the results file the sentence cites: the 6-minute
ablations (quality_ablation/results.json), bf16 against fp32 (bf16_cpu/README.md), diffusers' network
(cpu_quality_mnist.json), the README model's redraw (readme_path_cpu/), and the samplers on the 15-minute models
(few_steps_cpu/, few_steps_cpu_n1000/, few_steps_other_cpu/); render_docs.py merges them. Every NAME starts with
"q." so it cannot collide with another source's."""

import re

from doc_sources import (
    ABLATION_FORMAT,
    HEADLINE,
    HEADLINE_SEED1,
    RESULTS,
    f2,
    few_steps_fid,
    headline_eval,
    load_json,
    md_row,
    num,
    ratio,
    thousands,
)

ABLATION = "quality_ablation/results.json"
BF16 = "bf16_cpu/README.md"
N1000 = "few_steps_cpu_n1000/README.md"
OTHER = "few_steps_other_cpu"
SMALL32_PAIRS = {"small32": "b16m124", "small32_vminsnr": "b16m124_vminsnr"}  # the same objective, two layouts
SAMPLERS = {"sde": "dpm++2m-sde", "dpm": "dpm++2m", "ddim": "ddim"}  # short names in the markers
N1000_FIDS = [  # (sampler, spacing, solver type, NFE) of few_steps_cpu_n1000/results.json quoted in section 6
    ("sde", "trailing", "midpoint", 20),
    ("sde", "trailing", "midpoint", 50),
    ("sde", "trailing", "exact", 50),
    ("sde", "logsnr", "midpoint", 10),
    ("sde", "karras", "midpoint", 10),
    ("dpm", "trailing", "midpoint", 10),
    ("dpm", "logsnr", "midpoint", 10),
    ("ddim", "trailing", None, 10),
    ("ddim", "uniform", None, 10),
]
OTHER_FIDS = {  # marker -> (model folder, spacing, solver type, NFE) of few_steps_other_cpu/*/results.json
    "mnist.exact10": ("mnist-bf16", "trailing", "exact", 10),
    "mnist.logsnr10": ("mnist-bf16", "logsnr", "midpoint", 10),
    "fashion.exact20": ("fashion-mnist", "trailing", "exact", 20),
    "fashion.logsnr20": ("fashion-mnist", "logsnr", "midpoint", 20),
    "fashion.exact50": ("fashion-mnist", "trailing", "exact", 50),
    "fashion.mid50": ("fashion-mnist", "trailing", "midpoint", 50),
}


# -------------------------------------------------------------------------------------------- helpers
def run(name: str) -> dict:
    """One row of the ablations' results.json."""
    return next(r for r in load_json(ABLATION) if r["name"] == name)


def field(name: str, column: str) -> str:
    """A cell of the ablation tables, formatted as they format it."""
    return ABLATION_FORMAT[column](run(name))


def fid_text(x: float) -> str:
    """An FID in a sentence: whole numbers from 100 up, one decimal below."""
    return f"{x:.0f}" if x >= 100 else d1(x)


def d1(x: float) -> str:
    return f"{x:.1f}"


def span(values: list[float], fmt) -> str:
    return f"{fmt(min(values))}-{fmt(max(values))}"


def prose(rel: str, pattern: str) -> tuple[str, ...]:
    """The groups of `pattern` in a results file's text (line breaks read as spaces)."""
    m = re.search(pattern, " ".join((RESULTS / rel).read_text().split()))
    if m is None:
        raise KeyError(f"{rel}: no text matching {pattern!r}")
    return m.groups()


def s_step(name: str) -> float:
    return run(name)["train_s"] / run(name)["steps"]


def seed_over_resnet(key: str) -> float:
    """The seed network's loss or FID over the resnet family's at the same size (section 1)."""
    return run("seed32")[key] / run("small16")[key]


def steps_gain() -> str:
    """Steps of 16 -> 32 -> 64 over 32 -> 64 -> 64 in the same six minutes, for each pair with one objective."""
    return span([run(small)["steps"] / run(big)["steps"] for big, small in SMALL32_PAIRS.items()], d1) + "x"


def bf16_cell(precision: str, column: str) -> float:
    return num(md_row(BF16, "precision", precision, 0)[column])


def bf16_over_fp32(column: str) -> str:
    return ratio(bf16_cell("bf16", column), bf16_cell("fp32", column))


def lr_fids(which: int) -> str:
    """The fixed-N FIDs of the lr 2e-3 run (0) and of lr 1e-3 (1), one decimal each."""
    groups = prose(BF16, r"fixed-N FID ([\d. /]+?) at steps .*? against ([\d. /]+?) for lr 1e-3")
    return " / ".join(d1(float(x)) for x in groups[which].split(" / "))


FEW500 = "few_steps_cpu/results.json"  # the 15-minute fp32 models, 500 samples per setting
DETERMINISTIC = ("ddim", "dpm++2m", "heun")  # the probability-flow ODE samplers


def few500_rows(rel: str = FEW500) -> list[dict]:
    """A few_steps.py results file's rows of the eps model (few_steps_cpu's other model is a flow model)."""
    return [r for r in load_json(rel)["rows"] if r["model"] == "eps"]


def few500_fid(sampler: str, nfe: int) -> float:
    return next(r["fid"] for r in few500_rows() if (r["sampler"], r["nfe"]) == (sampler, nfe))


def ode_limit(rel: str = FEW500) -> float:
    """The lowest FID of a deterministic sampler of the eps model in a few_steps.py results file."""
    return min(r["fid"] for r in few500_rows(rel) if r["sampler"] in DETERMINISTIC)


def seed1_fid(i: int) -> str:
    """The --seed 1 draw (N = 1,000): trailing midpoint / exact at 10 NFE, then midpoint / exact at 50."""
    return f2(float(prose(N1000, r"trailing ([\d.]+) \(midpoint\) and ([\d.]+) \(exact\) at 10 NFE, ([\d.]+) "
                                 r"and ([\d.]+) at 50")[i]))  # fmt: skip


def other_fid(model: str, spacing: str, solver: str, nfe: int) -> float:
    rows = load_json(f"{OTHER}/{model}/results.json")["rows"]
    return next(r["fid"] for r in rows if (r["spacing"], r["solver_type"], r["nfe"]) == (spacing, solver, nfe))


def trailing_over_logsnr(model: str) -> list[float]:
    """|trailing exact / log-SNR midpoint - 1| at each budget both were drawn."""
    return [abs(other_fid(model, "trailing", "exact", n) / other_fid(model, "logsnr", "midpoint", n) - 1)
            for n in (10, 20, 50)]  # fmt: skip


def redraw_spread() -> float:
    """The README model's guided FID redrawn with --seed 1, against its first draw."""
    first = headline_eval(0)["fid"]
    return abs(load_json(f"{HEADLINE}/{HEADLINE_SEED1}")["fid"] - first) / first


# ------------------------------------------------------------------------------------------- numbers
QUALITY_NUMBERS = {
    **{f"q.params.{n}": (lambda n=n: field(n, "params")) for n in ("seed32", "small16", "small32", "b16m124")},
    **{f"q.s_step.{n}": (lambda n=n: field(n, "s_step")) for n in ("seed32", "small16")},
    **{f"q.steps.{n}": (lambda n=n: thousands(run(n)["steps"])) for n in ("seed32", "seed32_every")},
    **{
        f"q.fid.{n}": (lambda n=n: fid_text(run(n)["fid"]))
        for n in ("seed32", "seed32_g8", "seed32_every", "b16m124", "b16m124_vminsnr")
    },
    "q.confident.seed32": lambda: field("seed32", "confident"),
    **{f"q.seed.{key}_x": (lambda key=key: d1(seed_over_resnet(key)) + "x") for key in ("loss", "fid")},
    "q.resnet.loss_x": lambda: f"{1 / seed_over_resnet('loss'):.2f}x",
    "q.resnet.fid_part": lambda: f"1/{seed_over_resnet('fid'):.0f}",
    "q.small32.s_step": lambda: span([s_step(n) for n in SMALL32_PAIRS], d1),
    "q.small32.steps": lambda: span([run(n)["steps"] for n in SMALL32_PAIRS], str),
    "q.small.steps_x": steps_gain,
    "q.bf16.steps_x": lambda: bf16_over_fp32("steps in 15 min"),
    "q.bf16.fid_x": lambda: bf16_over_fp32("FID (2,000)"),
    **{
        f"q.bf16.{p}.fid{k}": (lambda p=p, k=k: d1(bf16_cell(p, f"FID @ step {k} (256)")))
        for p in ("fp32", "bf16")
        for k in (1000, 2000)
    },
    "q.bf16.fp32_fid": lambda: f2(bf16_cell("fp32", "FID (2,000)")),
    "q.bf16.read_ddim50": lambda: prose(BF16, r"against about (\d+) with DDIM-50")[0],
    "q.bf16.read_ddpm1000": lambda: prose(BF16, r"about (\d+) of 100 digits readable at a glance against")[0],
    "q.bf16.read_sde50": lambda: prose(BF16, r"about (\d+) of 100 readable at a glance, as many as DDPM-1000")[0],
    "q.lr2e3.steps": lambda: prose(BF16, r"15 minutes, ([\d,]+) steps")[0],
    "q.lr2e3.fids": lambda: lr_fids(0),
    "q.lr1e3.fids": lambda: lr_fids(1),
    "q.diffusers.params": lambda: (
        f"{load_json('cpu_quality_mnist.json')['systems']['diffusers']['parameters'] / 1e6:.2f}M"
    ),
    "q.redraw_spread": lambda: f"{redraw_spread():.0%}",
    "q.few500.ode_limit": lambda: f2(ode_limit()),
    "q.few500.ddpm1000": lambda: f2(few500_fid("ddpm", 1000)),
    **{f"q.few500.sde{n}": (lambda n=n: f2(few500_fid("dpm++2m-sde", n))) for n in (10, 20, 50)},
    **{
        f"q.n1000.{s}{n}_{p}{'_exact' if v == 'exact' else ''}": (
            lambda s=s, p=p, v=v, n=n: f2(few_steps_fid(SAMPLERS[s], p, v, n))
        )
        for s, p, v, n in N1000_FIDS
    },
    "q.n1000.trailing_gain": lambda: f2(
        float(prose(N1000, r"dpm\+\+2m-sde at 10 NFE not in the table: uniform ([\d.]+)")[0])
        - few_steps_fid("dpm++2m-sde", "trailing", "midpoint", 10)
    ),
    **{
        f"q.seed1.{name}": (lambda i=i: seed1_fid(i)) for i, name in enumerate(("mid10", "exact10", "mid50", "exact50"))
    },
    **{f"q.other.{name}": (lambda key=key: f2(other_fid(*key))) for name, key in OTHER_FIDS.items()},
    "q.other.mnist.read": lambda: prose(f"{OTHER}/README.md", r"about (\d+) of 100 readable by my count")[0],
    "q.other.cifar.within": lambda: span(trailing_over_logsnr("cifar10"), lambda x: f"{100 * x:.0f}"),
}
