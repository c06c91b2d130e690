"""Write every generated table and number in README.md and the docs from the committed results files.

A table sits between `<!-- table:NAME -->` and `<!-- /table:NAME -->`; a number in a sentence between
`<!-- n:NAME -->` and `<!-- /n -->`. NAME is a key of TABLES or NUMBERS below, each a function that reads
benchmarks/results/ and nothing else. Measured data files are never written; only the text between markers.

    python tools/render_docs.py           # rewrite README.md, docs/*.md, benchmarks/results/*/README.md
    python tools/render_docs.py --check   # exit 1, naming each file that differs from what it would write

A rerun of a measurement (for example the 15-minute headline in benchmarks/results/readme_path_cpu/) updates
the text that cites it by running this script again.
"""

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# The headline run (README's 15-minute command): the evaluation files of its newest sampling, by row.
HEADLINE = "readme_path_cpu"
HEADLINE_EVALS = {
    "guidance 3, 100 per class": "s3-eval-trailing.json",
    "guidance 0 (unconditional branch)": "s0-eval-trailing.json",
}

TABLE_RE = re.compile(r"(<!-- table:([\w.-]+) -->\n)(.*?)(<!-- /table:\2 -->)", re.S)
NUMBER_RE = re.compile(r"(<!-- n:([\w.-]+) -->)(.*?)(<!-- /n -->)", re.S)


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


def table(header: list[str], rows: list[list[str]], right: int = 1) -> str:
    """A markdown table; the columns from `right` on are right-aligned."""
    align = ["---" if i < right else "---:" for i in range(len(header))]
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
        acc = "-" if name.startswith("guidance 0") else f"{m['accuracy']:.0%}"
        rows.append(
            [
                name,
                thousands(m["n"]),
                f2(m["fid"]),
                f"{m['kid']['mean']:.3f}",
                f"{m['precision']:.2f}",
                f"{m['recall']:.2f}",
                acc,
                m["features"],
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


# ------------------------------------------------------------------------------ quality per CPU-minute
def t_cpu_quality() -> str:
    rows = []
    for label, ds, bf16_table in (("MNIST", "mnist", 0), ("Fashion-MNIST", "fashion-mnist", 1)):
        d = load_json(f"cpu_quality_{ds}.json")["systems"]
        ours, peer = d["ours"], d["diffusers"]
        bf = md_row("bf16_cpu/README.md", "precision" if bf16_table == 0 else "run", "bf16", bf16_table)
        bf_precision = bf["precision#2"] if bf16_table == 0 else bf["precision"]
        rows.append(
            [
                label,
                "cleardiffusion, bf16 (the default where the CPU has native bf16)",
                bf["steps in 15 min"],
                f2(num(bf["FID (2,000)"])),
                bf_precision,
                bf["recall"],
                "not run beside diffusers",
            ]
        )
        for name, s in (("cleardiffusion, fp32", ours), ("diffusers UNet2DModel (eps, fp32, its own loop)", peer)):
            m = s["metrics"]
            rows.append(
                [
                    label,
                    name,
                    thousands(s["steps"]),
                    f2(m["fid"]),
                    f"{m['precision']:.3f}",
                    f"{m['recall']:.3f}",
                    ratio(m["fid"], peer["metrics"]["fid"]),
                ]
            )
    header = ["dataset", "system", "steps in 15 min", "FID (2,000)", "precision", "recall", "FID / diffusers, same run"]
    return table(header, rows, right=2)


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
    return table(["model", "sampler", "spacing", "solver type", "FID at 10 NFE", "20 NFE", "50 NFE"], out, right=4)


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
    return table(header, out, right=2)


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
    return table(header, out, right=3)


def gpu_ratio(file: str, case: str) -> str:
    g = gpu_rows(file)
    return f"{g[('ddpm-cifar10', 'compile-bf16-cl', case)] / g[('diffusers', 'compile-bf16-cl', case)]:.2f}"


# -------------------------------------------------------------------------------------- sampler speed
def t_sampler_speed() -> str:
    rows = md_tables("sampler_speed_cpu.md")[0]
    out = [[r["sampler"], r["steps"], r["seconds"], r["ms per step"], r["speed-up vs DDPM-1000"]] for r in rows]
    return table(["sampler (seed-minimal, batch 8)", "steps", "seconds", "ms per step", "speed-up vs DDPM-1000"], out)


def sampling_cost_mlp(steps: int) -> float:
    timings = load_json("experiments_cpu/mnist/sampling-cost/results.json")["results"]["timings"]
    for t in timings:
        if t["model"].startswith("MLP seed 003") and t["batch"] == 1 and t["steps"] == steps:
            return t["seconds"]
    raise KeyError(steps)


def experiment_minutes(name: str) -> str:
    return f"{load_json(f'experiments_cpu/mnist/{name}/results.json')['seconds'] / 60:.0f}"


TABLES = {
    "headline": t_headline,
    "cpu_quality": t_cpu_quality,
    "mnist30_fid": t_mnist30_fid,
    "few_steps_n1000": t_few_steps_n1000,
    "gpu_headline": t_gpu_headline,
    "gpu_pairs": t_gpu_pairs,
    "sampler_speed": t_sampler_speed,
}

NUMBERS = {
    "headline.steps": lambda: thousands(headline_training()["steps"]),
    "headline.minutes": lambda: f"{headline_training()['elapsed'] / 60:.0f}",
    "headline.eval_share": lambda: f"{headline_training()['eval_seconds'] / headline_training()['elapsed']:.1%}",
    "headline.fid_s3": lambda: f2(headline_eval(0)["fid"]),
    "headline.acc_s3": lambda: f"{headline_eval(0)['accuracy']:.0%}",
    "headline.fid_s0": lambda: f2(headline_eval(1)["fid"]),
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
    "gpu.forward_run2": lambda: gpu_ratio("headline_rerun.json", "forward-1024"),
    "speed.ddim50_ms": lambda: md_row("sampler_speed_cpu.md", "sampler", "DDIM-50")["ms per step"],
    "speed.ddpm1000_ms": lambda: md_row("sampler_speed_cpu.md", "sampler", "DDPM-1000")["ms per step"],
    "speed.ddim50_speedup": lambda: md_row("sampler_speed_cpu.md", "sampler", "DDIM-50")["speed-up vs DDPM-1000"],
    "mlp.s10": lambda: f"{sampling_cost_mlp(10):.4f}",
    "mlp.s50": lambda: f"{sampling_cost_mlp(50):.3f}",
    "mlp.s100_est": lambda: f"{sampling_cost_mlp(50) * 2:.2f}",
    "exp.ddpm_steps_min": lambda: experiment_minutes("ddpm-steps"),
    "exp.ddim_steps_min": lambda: experiment_minutes("ddim-steps"),
}


# ------------------------------------------------------------------------------------------- rendering
def render(text: str, where: str) -> str:
    """The text with every marked table and number written from the results."""

    def fill_table(m: re.Match) -> str:
        if m.group(2) not in TABLES:
            raise SystemExit(f"{where}: unknown table {m.group(2)!r} (known: {', '.join(TABLES)})")
        return m.group(1) + TABLES[m.group(2)]() + m.group(4)

    def fill_number(m: re.Match) -> str:
        if m.group(2) not in NUMBERS:
            raise SystemExit(f"{where}: unknown number {m.group(2)!r} (known: {', '.join(NUMBERS)})")
        return m.group(1) + NUMBERS[m.group(2)]() + m.group(4)

    return NUMBER_RE.sub(fill_number, TABLE_RE.sub(fill_table, text))


def documents(root: Path = ROOT) -> list[Path]:
    return [
        root / "README.md",
        *sorted((root / "docs").glob("*.md")),
        *sorted((root / "benchmarks" / "results").glob("*/README.md")),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would change")
    args = parser.parse_args(argv)
    stale = []
    for path in documents():
        text = path.read_text()
        new = render(text, str(path.relative_to(ROOT)))
        if new != text:
            stale.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print("out of date with benchmarks/results (run python tools/render_docs.py): " + ", ".join(stale))
        return 1
    print(("checked " if args.check else "rendered ") + f"{len(documents())} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
