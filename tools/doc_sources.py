"""What the generated documentation says: each table and number, read from benchmarks/results/ alone.

TABLES and NUMBERS map a marker's NAME (see render_docs.py) to a function of no arguments returning the text.
"""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# The headline run (README's 15-minute command): the evaluation files of its newest sampling, by row.
HEADLINE = "readme_path_cpu"
HEADLINE_EVALS = {
    "guidance 3, 100 per class": "s3-eval-shipped.json",
    "guidance 0 (unconditional branch)": "s0-eval-shipped.json",
}
HEADLINE_SEED1 = "s3-eval-seed1-shipped.json"  # the guidance-3 row redrawn with --seed 1: the FID's noise floor


# ----------------------------------------------------------------------------------------------- reading
def load_json(rel: str):
    return json.loads((RESULTS / rel).read_text())


def load_jsonl(rel: str) -> list[dict]:
    return [json.loads(line) for line in (RESULTS / rel).read_text().splitlines() if line.strip()]


def md_tables(rel: str) -> list[list[dict]]:
    """Every pipe table of a markdown file, each a list of {header: cell} rows."""
    tables, current, header = [], None, None
    for line in (RESULTS / rel).read_text().splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:  # a repeated column name gets "#2": bf16_cpu's "precision" is dtype, then metric
                header = [c if c not in cells[:i] else f"{c}#2" for i, c in enumerate(cells)]
                current = []
            elif not set("".join(cells)) <= set("-: "):
                current.append(dict(zip(header, cells)))
        elif header is not None:
            tables.append(current)
            header = None
    return tables


def md_row(rel: str, column: str, value: str, table: int | None = None) -> dict:
    """The first row whose `column` reads `value` (in the table-th table of the file, or in any)."""
    tables = md_tables(rel)
    for rows in tables if table is None else [tables[table]]:
        for row in rows:
            if row.get(column) == value:
                return row
    raise KeyError(f"{rel}: no row with {column} = {value}")


def num(cell: str) -> float:
    return float(re.sub(r"[*,x%]", "", cell))


# ---------------------------------------------------------------------------------------------- formats
def f2(x: float) -> str:
    return f"{x:.2f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def thousands(x: float) -> str:
    return f"{x:,.0f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table; a column whose every cell is a number (or "-") is right-aligned."""

    def numeric(cell: str) -> bool:
        return bool(re.fullmatch(r"[-*\d.,/ x%M()]+|NFE 1000: .*|not measured|not run beside diffusers|", cell))

    align = ["---:" if all(numeric(r[i]) for r in rows) else "---" for i in range(len(header))]
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines) + "\n"


# ------------------------------------------------------------------------------------- the headline run
def headline_training() -> dict:
    rows = load_jsonl(f"{HEADLINE}/metrics.jsonl")
    last = max((r for r in rows if "loss" in r), key=lambda r: r["step"])
    evals = [r for r in rows if "fid" in r]
    return {"steps": last["step"], "elapsed": last["elapsed"], "eval_seconds": sum(r["eval_seconds"] for r in evals)}


def headline_eval(i: int) -> dict:
    return load_json(f"{HEADLINE}/{list(HEADLINE_EVALS.values())[i]}")


def t_headline() -> str:
    rows = []
    for name, file in HEADLINE_EVALS.items():
        m = load_json(f"{HEADLINE}/{file}")
        acc = "-" if name.startswith("guidance 0") or m.get("accuracy") is None else f"{m['accuracy']:.0%}"
        kid = m["kid"]["mean"] if isinstance(m["kid"], dict) else m["kid"]
        rows.append(
            [
                name,
                thousands(m["n"]),
                f2(m["fid"]),
                f"{kid:.3f}",
                f"{m['precision']:.2f}",
                f"{m['recall']:.2f}",
                acc,
                f"{m['features']} ({m['features_sha256'][:8]})" if "features_sha256" in m else m["features"],
            ]
        )
    header = [
        "samples (dpm++2m-sde, 50 steps)",
        "N",
        "FID",
        "KID",
        "precision",
        "recall",
        "class accuracy",
        "scored by",
    ]
    return table(header, rows)


# ---------------------------------------------------------------------------------------- 30 minutes
def t_mnist30_fid() -> str:
    rows = [r for r in load_jsonl("mnist_30min_cpu/metrics.jsonl") if "fid" in r]
    out = [[thousands(r["step"]), f"{r['elapsed'] / 60:.1f}", f2(r["fid"])] for r in rows]
    return table(["step", "minutes", "FID (256 samples, `--eval-every`)"], out)


# -------------------------------------------------------------------------------------- few-step solvers
def few_steps_rows() -> list[dict]:
    return load_json("few_steps_cpu_n1000/results.json")["rows"]


def t_few_steps_n1000() -> str:
    rows = few_steps_rows()
    best = min(r["fid"] for r in rows)
    groups: dict[tuple, dict] = {}
    for r in rows:
        key = (r["model"], r["sampler"], r["spacing"], r["solver_type"] or "-")
        groups.setdefault(key, {})[r["nfe"]] = r["fid"]
    out = []
    for (model, sampler, spacing, solver), by_nfe in groups.items():
        cells = [f"{f2(by_nfe[n])} ({ratio(by_nfe[n], best)})" if n in by_nfe else "" for n in (10, 20, 50)]
        if 1000 in by_nfe:
            cells[2] = f"NFE 1000: {f2(by_nfe[1000])} ({ratio(by_nfe[1000], best)})"
        out.append([model, sampler, spacing, solver, *cells])
    return table(["model", "sampler", "spacing", "solver type", "FID at 10 NFE", "20 NFE", "50 NFE"], out)


def few_steps_fid(sampler: str, spacing: str, solver, nfe: int) -> float:
    for r in few_steps_rows():
        if (r["sampler"], r["spacing"], r["solver_type"], r["nfe"]) == (sampler, spacing, solver, nfe):
            return r["fid"]
    raise KeyError((sampler, spacing, solver, nfe))


def few_steps_best() -> float:
    return min(r["fid"] for r in few_steps_rows())


def few_steps_other_spacings_10() -> float:
    return min(
        r["fid"]
        for r in few_steps_rows()
        if r["sampler"] == "dpm++2m-sde" and r["nfe"] == 10 and r["spacing"] != "trailing"
    )


# ---------------------------------------------------------------------------------------------- GPU
def gpu_rows(file: str) -> dict:
    return {(r["network"], r["variant"], r["case"]): r.get("images_per_sec") for r in load_json(f"gpu_h200/{file}")}


def t_gpu_headline() -> str:
    out = []
    for case in ("train-128", "forward-1024"):
        for label, file in (("run 1", "headline.json"), ("run 2", "headline_rerun.json")):
            g = gpu_rows(file)
            ours, peer = g[("ddpm-cifar10", "compile-bf16-cl", case)], g[("diffusers", "compile-bf16-cl", case)]
            if ours is None or peer is None:
                out.append(
                    [
                        case,
                        label,
                        thousands(ours) if ours else "not measured",
                        thousands(peer) if peer else "not measured",
                        "-",
                    ]
                )
                continue
            out.append([case, label, thousands(ours), thousands(peer), ratio(ours, peer)])
    header = ["case", "pass", "ours compile-bf16-cl (img/s)", "diffusers compile-bf16-cl (img/s)", "ours / diffusers"]
    return table(header, out)


def t_gpu_pairs() -> str:
    g = gpu_rows("headline_rerun.json")
    out = []
    for case in ("train-128", "forward-1024"):
        for peer in ("diffusers", "ddpm-pytorch"):
            for variant in ("compile-bf16-cl", "eager-bf16-cl", "eager-fp32"):
                ours, theirs = g.get(("ddpm-cifar10", variant, case)), g.get((peer, variant, case))
                if (peer, variant, case) not in g or ("ddpm-cifar10", variant, case) not in g:
                    continue
                cell = ratio(ours, theirs) if ours and theirs else "not measured"
                out.append(
                    [case, variant, peer, thousands(ours) if ours else "-", thousands(theirs) if theirs else "-", cell]
                )
    header = ["case", "variant (both sides)", "peer", "ours (img/s)", "peer (img/s)", "ours / peer"]
    return table(header, out)


def gpu_ratio(file: str, case: str) -> str:
    g = gpu_rows(file)
    return f"{g[('ddpm-cifar10', 'compile-bf16-cl', case)] / g[('diffusers', 'compile-bf16-cl', case)]:.2f}"


# -------------------------------------------------------------------------------------- sampler speed
def t_sampler_speed() -> str:
    rows = md_tables("sampler_speed_cpu.md")[0]
    out = [[r["sampler"], r["steps"], r["seconds"], r["ms per step"], r["speed-up vs DDPM-1000"]] for r in rows]
    return table(["sampler (seed-minimal, batch 8)", "steps", "seconds", "ms per step", "speed-up vs DDPM-1000"], out)


CALIBRATION = "eval_calibration_cpu.md"
CAL_SETS = ("mnist", "fashion-mnist")  # benchmarks/eval_calibration.py: real, degraded and random images


def t_eval_calibration() -> str:
    rows = md_tables(CALIBRATION)[0]
    return table(list(rows[0]), [list(r.values()) for r in rows])


def calibration(dataset: str, samples: str, column: str) -> float:
    """A number of the calibration table: `column` of the row (dataset, samples)."""
    row = next(
        r for r in md_tables(CALIBRATION)[0] if (r["dataset"], r["samples (vs real train)"]) == (dataset, samples)
    )
    return num(row[column].split(" +- ")[0])


def calibration_note(dataset: str, field: str) -> str:
    """A field of the file's per-dataset notes, e.g. 'classifier test accuracy 0.9935'."""
    note = next(line for line in (RESULTS / CALIBRATION).read_text().splitlines() if line.startswith(f"- {dataset}:"))
    return re.search(rf"{field} ([\d.]+)", note).group(1)


def experiment_minutes(name: str, dataset: str = "mnist") -> str:
    """The measured minutes of one committed `cleardiffusion experiment` report."""
    return f"{load_json(f'experiments_cpu/{dataset}/{name}/results.json')['seconds'] / 60:.0f}"


# ------------------------------------------------------------- docs/quality.md: the recipe's ablations
# name -> (header, columns of quality_ablation/results.json, rows: (label, run, [words on the samples]))
ABLATIONS = {
    "ablation_6min": (
        ["run", "parameters", "steps in 6 min", "s / step", "final loss", "FID", "confident"],
        ["params", "steps", "s_step", "loss", "fid", "confident"],
        [
            ("`seed-minimal --base-channels 32` (the seed's network, as a user first tries it)", "seed32"),
            ("resnet family, 16 -> 32 -> 32 (`small --base-channels 16`)", "small16"),
            ("resnet family, 32 -> 64 -> 64 (diffusers-like, 1.05M)", "small32"),
            ("resnet family, 16 -> 32 -> 64 (`small`)", "b16m124"),
        ],
    ),
    "ablation_seed": (
        ["change to the seed network", "steps", "s / step", "final loss", "FID", "confident"],
        ["steps", "s_step", "loss", "fid", "confident"],
        [
            ("none (GroupNorm(32) on 32 channels, t only in the middle)", "seed32"),
            ("`--model-option norm_groups=8`", "seed32_g8"),
            ("`--time-embedding every-block`", "seed32_every"),
            (
                "the resnet family instead, same size (`small --base-channels 16 --model-option "
                '"channel_mults=(1,2,2)"`)',
                "small16",
            ),
        ],
    ),
    "ablation_prediction": (
        ["prediction, weighting", "FID", "confident", "what the 100 samples look like"],
        ["fid", "confident"],
        [
            ("eps, none (Ho et al.)", "b16m124", "readable digit shapes, speckled or grey backgrounds"),
            ("eps, min-SNR-5", "b16m124_epsminsnr", "readable shapes, fewer speckled backgrounds"),
            ("v, none", "b16m124_v", "black backgrounds, thin strokes, few readable digits yet"),
            ("v, min-SNR-5", "b16m124_vminsnr", "black backgrounds, thin strokes, a few more readable"),
        ],
    ),
    "ablation_15min": (
        ["15 minutes, `small`", "steps", "FID", "confident", "samples"],
        ["steps", "fid", "confident"],
        [
            ("eps, min-SNR-5", "L_b16m124_epsminsnr", "readable digits; a few backgrounds still speckled"),
            ("v, min-SNR-5", "L_b16m124_vminsnr", "readable digits; every background black"),
        ],
    ),
}
ABLATION_FORMAT = {
    "params": lambda r: f"{r['params'] / 1e6:.2f}M",
    "steps": lambda r: str(r["steps"]),
    "s_step": lambda r: f2(r["train_s"] / r["steps"]),
    "loss": lambda r: f"{r['loss']:.4f}",
    "fid": lambda r: f"{r['fid']:.1f}",
    "confident": lambda r: f"{r['confident']:.0%}",
}


def ablation_table(name: str) -> str:
    runs = {r["name"]: r for r in load_json("quality_ablation/results.json")}
    header, columns, rows = ABLATIONS[name]
    out = [[label, *(ABLATION_FORMAT[c](runs[run]) for c in columns), *words] for label, run, *words in rows]
    return table(header, out)


def t_bf16_precision() -> str:
    out = []
    for r in md_tables("bf16_cpu/README.md")[0]:
        fids = f"{r['FID @ step 1000 (256)']} / {r['FID @ step 2000 (256)']}"
        pr = f"{r['precision#2']} / {r['recall']}"
        out.append([r["precision"], r["steps in 15 min"], r["s / step"], fids, r["FID (2,000)"], pr, r["confident"]])
    header = [
        "precision",
        "steps in 15 min",
        "s / step",
        "FID at step 1000 / 2000 (256 samples)",
        "FID (2,000)",
        "precision / recall",
        ">= 90% confident",
    ]
    return table(header, out)


TABLES = {
    "headline": t_headline,
    "mnist30_fid": t_mnist30_fid,
    "few_steps_n1000": t_few_steps_n1000,
    "gpu_headline": t_gpu_headline,
    "gpu_pairs": t_gpu_pairs,
    "sampler_speed": t_sampler_speed,
    "bf16_precision": t_bf16_precision,
    "eval_calibration": t_eval_calibration,
    **{name: (lambda name=name: ablation_table(name)) for name in ABLATIONS},
}

NUMBERS = {
    "headline.steps": lambda: thousands(headline_training()["steps"]),
    "headline.fid_seed1": lambda: f2(load_json(f"{HEADLINE}/{HEADLINE_SEED1}")["fid"]),
    "headline.minutes": lambda: f"{headline_training()['elapsed'] / 60:.0f}",
    "headline.eval_share": lambda: f"{headline_training()['eval_seconds'] / headline_training()['elapsed']:.1%}",
    "cpu.mnist_fp32_fid": lambda: f2(load_json("cpu_quality_mnist.json")["systems"]["ours"]["metrics"]["fid"]),
    "cpu.mnist_bf16_fid": lambda: f2(num(md_row("bf16_cpu/README.md", "precision", "bf16", 0)["FID (2,000)"])),
    "few.best": lambda: f2(few_steps_best()),
    "few.sde10_trailing": lambda: f2(few_steps_fid("dpm++2m-sde", "trailing", "midpoint", 10)),
    "few.sde10_trailing_ratio": lambda: ratio(
        few_steps_fid("dpm++2m-sde", "trailing", "midpoint", 10), few_steps_best()
    ),
    "few.sde10_exact": lambda: f2(few_steps_fid("dpm++2m-sde", "trailing", "exact", 10)),
    "few.sde10_exact_ratio": lambda: ratio(few_steps_fid("dpm++2m-sde", "trailing", "exact", 10), few_steps_best()),
    "few.sde10_other": lambda: f2(few_steps_other_spacings_10()),
    "few.sde10_other_ratio": lambda: ratio(few_steps_other_spacings_10(), few_steps_best()),
    "few.ddpm1000": lambda: f2(few_steps_fid("ddpm", "uniform", None, 1000)),
    "gpu.train_run1": lambda: gpu_ratio("headline.json", "train-128"),
    "gpu.train_run2": lambda: gpu_ratio("headline_rerun.json", "train-128"),
    "speed.ddim50_ms": lambda: md_row("sampler_speed_cpu.md", "sampler", "DDIM-50")["ms per step"],
    "speed.ddpm1000_ms": lambda: md_row("sampler_speed_cpu.md", "sampler", "DDPM-1000")["ms per step"],
    "speed.ddim50_speedup": lambda: md_row("sampler_speed_cpu.md", "sampler", "DDIM-50")["speed-up vs DDPM-1000"],
    "exp.ddpm_steps_min": lambda: experiment_minutes("ddpm-steps"),
    **{f"cal.{d}.accuracy": (lambda d=d: calibration_note(d, "classifier test accuracy")) for d in CAL_SETS},
    **{
        f"cal.{d}.reference_s": (lambda d=d: f"{num(calibration_note(d, 'reference statistics')):.0f}")
        for d in CAL_SETS
    },
    **{
        f"cal.{d}.floor_ratio": (
            lambda d=d: f"{calibration(d, 'test + noise 0.2', 'FID') / calibration(d, 'real test', 'FID'):.0f}"
        )
        for d in CAL_SETS
    },
    **{f"cal.{d}.score": (lambda d=d: f2(calibration(d, "real test", "classifier score"))) for d in CAL_SETS},
    **{f"cal.{d}.noise_fid": (lambda d=d: f"{calibration(d, 'pure noise', 'FID'):.0f}") for d in CAL_SETS},
    **{
        f"cal.{d}.{k}": (lambda d=d, k=k: f2(calibration(d, "real test", k)))
        for d in CAL_SETS
        for k in ("precision", "recall")
    },
}
