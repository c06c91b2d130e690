"""Numbers in docs/results.md's sentences and in its table of the seeds' claims, each read from the results file
the sentence or row cites: the `cleardiffusion experiment` reports (experiments_cpu/), the samplers on the
15-minute models (few_steps_cpu/, few_steps_cpu_n1000/, few_steps_cpu_bf16/, few_steps_other_cpu/), the
30-minute and CIFAR-10 runs, the red-square toy (toy_cpu.md) and the smaller CPU reports; render_docs.py merges
them. Numbers another source already writes keep that source's NAME in the text. Every NAME here starts with
"r." so it cannot collide with another source's."""

from doc_sources import (
    CALIBRATION,
    RESULTS,
    calibration,
    f2,
    few_steps_best,
    few_steps_fid,
    load_json,
    md_row,
    md_tables,
    num,
    ratio,
    thousands,
)
from doc_sources_cost import DDPM, network
from doc_sources_quality import DETERMINISTIC, FEW500, d1, few500_fid, fid_text, ode_limit, other_fid, prose, run, span

EXP = "experiments_cpu"
DATASETS = ("mnist", "fashion-mnist")
FEW_BF16 = "few_steps_cpu_bf16/results.json"
TOY = "toy_cpu.md"
PCT = "{:.1%}".format
CFG_ROW = "classifier-free guidance (s = 3, one forward of 2B)"  # sampler_speed_cpu.md's second table

# few_steps_cpu/ (N = 500, eps model): marker -> (sampler, NFE); "ode" is the deterministic samplers' limit
FEW500_KEYS = {"ddpm": ("ddpm", 1000), "dpm10": ("dpm++2m", 10), "dpm20": ("dpm++2m", 20), "ddim5": ("ddim", 5),
               "ddim10": ("ddim", 10), "sde10": ("dpm++2m-sde", 10), "sde20": ("dpm++2m-sde", 20),
               "sde50": ("dpm++2m-sde", 50)}  # fmt: skip
FEW500_RATIOS = [("dpm10", "ddpm"), ("dpm10", "ode"), ("dpm20", "ddpm"), ("dpm20", "ode"), ("ddim10", "ddpm"),
                 ("ddim10", "ode"), ("sde10", "ddpm"), ("sde20", "ddpm"), ("sde50", "ddpm")]  # fmt: skip

# few_steps_cpu_n1000/: marker -> (sampler, spacing, solver type, NFE); "best" is the table's best FID
N1000_KEYS = {"ddpm": ("ddpm", "uniform", None, 1000), "sde10_exact": ("dpm++2m-sde", "trailing", "exact", 10),
              "dpm10": ("dpm++2m", "trailing", "midpoint", 10), "dpm20": ("dpm++2m", "trailing", "midpoint", 20),
              "ddim10": ("ddim", "trailing", None, 10), "ddim50": ("ddim", "trailing", None, 50),
              "flow10": ("euler", "uniform", None, 10)}  # fmt: skip
N1000_RATIOS = [("ddim10", "ddpm"), ("sde10_exact", "ddpm"), ("ddim50", "ddpm"), ("dpm20", "best"),
                ("ddim10", "best"), ("flow10", "dpm10"), ("flow10", "sde10_exact")]  # fmt: skip


# ------------------------------------------------------------------------------- experiments_cpu/
def experiment(ds: str, name: str) -> dict:
    return load_json(f"{EXP}/{ds}/{name}/results.json")["results"]


def ddim(ds: str) -> dict:
    return experiment(ds, "ddim-steps")


def ddim_row(ds: str, steps: int) -> dict:
    return next(r for r in ddim(ds)["ddim"] if (r["spacing"], r["steps"]) == ("uniform", steps))


def ddim_over_ddpm(ds: str, steps: int) -> float:
    return ddim_row(ds, steps)["fid"] / ddim(ds)["ddpm"]["fid"]


def ode_floor(ds: str) -> float:
    """The lowest FID / DDPM-1000 of any deterministic sampler at any step count of ddim-steps."""
    rows = ddim(ds)["ddim"] + ddim(ds)["solvers"]
    return min(r["fid_ratio"] for r in rows if r["sampler"] in DETERMINISTIC)


def ddpm_steps_fid(steps: int) -> float:
    return next(r["fid"] for r in experiment("mnist", "ddpm-steps")["settings"] if r["steps"] == steps)


def experiment_minutes_span() -> str:
    """Measured minutes of every committed experiment report, least to most."""
    minutes = [load_json(str(p.relative_to(RESULTS)))["seconds"] / 60 for p in (RESULTS / EXP).glob("*/*/results.json")]
    return span(minutes, "{:.0f}".format)


def cfg(key: str, guidance: float) -> list[float]:
    """`key` of cfg-dropout at one guidance scale, one value per label-dropout rate."""
    return [r[key] for r in experiment("mnist", "cfg-dropout")["settings"] if r["guidance"] == guidance]


def cfg_span(key: str, guidance: float, fmt) -> str:
    return span(cfg(key, guidance), fmt)


def dropout_spread(guidance: float) -> float:
    """How far apart the dropout rates' FIDs are at one scale, as the report's noise floor measures it."""
    fids = cfg("fid", guidance)
    return (max(fids) - min(fids)) / (sum(fids) / len(fids))


def whole_percent(x: float) -> str:
    """0.966 -> 97 (the % sign follows the span)."""
    return f"{100 * x:.0f}"


def time_embedding(ds: str) -> dict:
    return experiment(ds, "time-embedding")


def te_fid(ds: str, arm: str) -> str:
    return f2(time_embedding(ds)["runs"][arm]["fid"])


def te_noise_x(ds: str) -> str:
    floor = time_embedding(ds)["training_noise_floor"]
    return f"{floor['difference_middle_every_block'] / floor['spread']:.1f}x"


def overfit() -> dict:
    return experiment("mnist", "overfit-one-image")


# ------------------------------------------------------------------------------------- few-step samplers
def few_row(rel: str, **match) -> dict:
    return next(r for r in load_json(rel)["rows"] if all(r.get(k) == v for k, v in match.items()))


def few500(key: str) -> float:
    return ode_limit() if key == "ode" else few500_fid(*FEW500_KEYS[key])


def flow500(nfe: int) -> float:
    return few_row(FEW500, model="flow", sampler="euler", nfe=nfe)["fid"]


def ddim50_wall_clock() -> str:
    """DDPM-1000's seconds over DDIM-50's on few_steps_cpu's quiet core."""
    ddpm = few_row(FEW500, model="eps", sampler="ddpm")["seconds"]
    return f"{ddpm / few_row(FEW500, model='eps', sampler='ddim', nfe=50)['seconds']:.1f}x"


def n1000(key: str) -> float:
    return few_steps_best() if key == "best" else few_steps_fid(*N1000_KEYS[key])


# ------------------------------------------------------------------------------------ the other reports
def toy(config: str, column: str) -> str:
    return md_row(TOY, "config", config, 0)[column]


def toy_seeds(config: str) -> str:
    return toy(config, "seeds < 0.01").replace("/", " of ")


def sci(x: float) -> str:
    """4.1e-06 -> 4e-6."""
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def calibration_seconds() -> str:
    return span([num(r["seconds"]) for r in md_tables(CALIBRATION)[0]], "{:.0f}".format)


# ------------------------------------------------------------------------------------------- numbers
RESULTS_NUMBERS = {
    # experiments_cpu/
    "r.exp.minutes": experiment_minutes_span,
    **{f"r.ddpm_steps.{n}": (lambda n=n: f2(ddpm_steps_fid(n))) for n in (100, 300, 1000)},
    "r.ddpm_steps.floor": lambda: PCT(experiment("mnist", "ddpm-steps")["noise_floor"]["relative_spread"]),
    **{f"r.{ds}.ddim.ddpm": (lambda ds=ds: f2(ddim(ds)["ddpm"]["fid"])) for ds in DATASETS},
    **{f"r.{ds}.ddim.floor": (lambda ds=ds: PCT(ddim(ds)["noise_floor"]["relative_spread"])) for ds in DATASETS},
    **{f"r.mnist.ddim{n}": (lambda n=n: f2(ddim_row("mnist", n)["fid"])) for n in (10, 50)},
    **{f"r.mnist.ddim{n}_x": (lambda n=n: f"{ddim_over_ddpm('mnist', n):.2f}x") for n in (10, 50, 100)},
    "r.mnist.ddim50_worse": lambda: f"{ddim_over_ddpm('mnist', 50) - 1:.0%}",
    "r.mnist.ode_floor": lambda: f"{ode_floor('mnist'):.2f}x",
    "r.fashion-mnist.ddim50": lambda: f2(ddim_row("fashion-mnist", 50)["fid"]),
    "r.fashion-mnist.ddim50_speedup": lambda: f"{ddim_row('fashion-mnist', 50)['speedup']:.1f}x",
    **{
        f"r.fashion-mnist.fewest.{spacing}": (
            lambda spacing=spacing: str(ddim("fashion-mnist")["fewest_steps_within_tolerance"][spacing])
        )
        for spacing in ("uniform", "quadratic")
    },
    "r.fashion-mnist.fewest.dpm": lambda: str(
        ddim("fashion-mnist")["fewest_nfe_within_tolerance_solvers"]["dpm++2m (logsnr)"]
    ),
    "r.cfg.fid_s2": lambda: cfg_span("fid", 2.0, f2),
    "r.cfg.fid_s1": lambda: cfg_span("fid", 1.0, f2),
    "r.cfg.fid_s0": lambda: cfg_span("fid", 0.0, d1),
    "r.cfg.fid_s5": lambda: cfg_span("fid", 5.0, d1),
    "r.cfg.accuracy_s2": lambda: cfg_span("accuracy", 2.0, whole_percent),
    "r.cfg.accuracy_s5": lambda: cfg_span("accuracy", 5.0, whole_percent),
    "r.cfg.recall_s1": lambda: cfg_span("recall", 1.0, f2),
    "r.cfg.recall_s5": lambda: cfg_span("recall", 5.0, f2),
    "r.cfg.dropout_spread_s2": lambda: PCT(dropout_spread(2.0)),
    "r.cfg.floor": lambda: PCT(experiment("mnist", "cfg-dropout")["noise_floor"]["relative_spread"]),
    "r.overfit.first_mse": lambda: f"{overfit()['stages'][0]['mean_mse']:.4f}",
    "r.overfit.mse": lambda: f"{overfit()['mean_mse']:.4f}",
    "r.overfit.other": lambda: f2(overfit()["baseline_mse_other_digits"]),
    **{
        f"r.{ds}.te.{arm}": (lambda ds=ds, arm=arm: te_fid(ds, arm))
        for ds in DATASETS
        for arm in ("middle", "every-block")
    },
    **{f"r.{ds}.te.noise": (lambda ds=ds: f2(time_embedding(ds)["training_noise_floor"]["spread"])) for ds in DATASETS},
    "r.fashion-mnist.te.noise_x": lambda: te_noise_x("fashion-mnist"),
    "r.fid.small16": lambda: fid_text(run("small16")["fid"]),
    # few-step samplers
    **{f"r.few500.{k}": (lambda k=k: f2(few500(k))) for k in ("dpm10", "ddim5")},
    **{f"r.few500.{a}_x_{b}": (lambda a=a, b=b: ratio(few500(a), few500(b))) for a, b in FEW500_RATIOS},
    **{f"r.few500.flow{n}": (lambda n=n: f2(flow500(n))) for n in (5, 10)},
    "r.few500.flow_steps": lambda: thousands(few_row(FEW500, model="flow")["checkpoint_step"]),
    "r.few500.ddim50_wall_clock": ddim50_wall_clock,
    **{f"r.n1000.{k}": (lambda k=k: f2(n1000(k))) for k in ("dpm20", "flow10")},
    **{f"r.n1000.{a}_x_{b}": (lambda a=a, b=b: ratio(n1000(a), n1000(b))) for a, b in N1000_RATIOS},
    "r.bf16.ddpm1000": lambda: f2(few_row(FEW_BF16, sampler="ddpm")["fid"]),
    "r.bf16.ode_limit": lambda: f2(ode_limit(FEW_BF16)),
    "r.other.mnist.exact50": lambda: f2(other_fid("mnist-bf16", "trailing", "exact", 50)),
    "r.other.mnist.logsnr50": lambda: f2(other_fid("mnist-bf16", "logsnr", "midpoint", 50)),
    "r.mnist30.fid50": lambda: f2(few_row("mnist_30min_cpu/few_steps.json", nfe=50)["fid"]),
    # the other reports
    "r.cifar.fid": lambda: f2(load_json("cifar10_cpu/s3-eval.json")["fid"]),
    "r.cifar.real_fid": lambda: f2(load_json("cifar10_cpu/real-eval.json")["fid"]),
    "r.toy.seed.loss": lambda: d1(num(toy("seed", "final loss (median)"))),
    **{f"r.toy.{c}.mse": (lambda c=c: toy(c, "MSE median")) for c in ("seed", "default-eps")},
    "r.toy.default.mse": lambda: sci(num(toy("default", "MSE median"))),
    **{f"r.toy.{c}.seeds": (lambda c=c: toy_seeds(c)) for c in ("seed", "default")},
    "r.toy.default.sample_s": lambda: toy("default", "sample s (median)"),
    "r.toy.default.train_s": lambda: d1(num(toy("default", "train s (median)"))),
    "r.toy.alpha_bar_T": lambda: prose(TOY, r"whose alpha_bar_T = ([\d.]+) makes")[0],
    "r.kill.kills": lambda: md_row("kill_resume_cpu.md", "result", "SIGKILLs", 0)["value"],
    "r.kill.corrupted": lambda: md_row("kill_resume_cpu.md", "result", "corrupted checkpoints (must be 0)", 0)["value"],
    "r.mnist_cpu.minutes": lambda: prose("mnist_cpu/README.md", r"training \((\d+) min")[0],
    "r.mnist_cpu.params": lambda: prose("mnist_cpu/README.md", r"\(([\d.]+) M parameters")[0],
    "r.cal.mnist.real_fid": lambda: f"{calibration('mnist', 'real test', 'FID'):.3f}",
    "r.cal.mnist.noise_fid": lambda: d1(calibration("mnist", "test + noise 0.2", "FID")),
    "r.cal.seconds": calibration_seconds,
    "r.cost.ddpm_params": lambda: f"{network(DDPM)['params'] / 1e6:.1f}M",
    "r.speed.cfg_x": lambda: md_row("sampler_speed_cpu.md", "DDIM-50, conditional model", CFG_ROW, 1)["cost vs plain"],
}
