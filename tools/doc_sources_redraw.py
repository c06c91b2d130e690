"""Issue 24's unconditional protocol drawn again (benchmarks/one_step_redraw.sh) for docs/few_step.md and the
README: the chains' one_step.py results, the one-step FIDs at --noise-scale below 1, and the blind readability
sittings (benchmarks/blind_count.py); render_docs.py merges them."""

from doc_sources import f2, load_json, load_jsonl, table, thousands

ONE_STEP = "one_step_cpu"
CHAINS = {"the committed run": "mnist-unconditional", "chain 0": "mnist-unconditional-redraw/seed0",
          "chain 1": "mnist-unconditional-redraw/seed1"}  # fmt: skip
STUDENTS = {"trajectory-10min": "10 min trajectory", "dmd": "+ 5 min dmd (defaults then: batch 64)",
            "dmd-ema99": "+ 5 min dmd, --ema-decay 0.99"}  # fmt: skip
NOISE = f"{ONE_STEP}/noise_scale_mnist_uncond.jsonl"
SCALES = (1.0, 0.9, 0.85, 0.8)
BLIND = f"{ONE_STEP}/mnist-unconditional/blind"


def chain_rows(chain: str) -> list[dict]:
    return load_json(f"{ONE_STEP}/{CHAINS[chain]}/results.json")["rows"]


def teacher(chain: str) -> dict:
    return next(r for r in chain_rows(chain) if r["model"] == "teacher" and r["steps"] == 50)


def student_fid(chain: str, model: str, steps: int) -> float:
    return next(r["fid"] for r in chain_rows(chain) if r["model"] == model and r["steps"] == steps)


def over_teacher(chain: str, fid: float) -> str:
    """An FID as a multiple of the chain's plain teacher at 50 steps."""
    return f"{fid / teacher(chain)['fid']:.2f}x"


def chain_ratio(chain: str, model: str, steps: int) -> str:
    return over_teacher(chain, student_fid(chain, model, steps))


def speedup(chain: str) -> float:
    """Images per second of the dmd student at one step over the teacher's 50-step sampler's."""
    one = next(r for r in chain_rows(chain) if r["model"] == "dmd" and r["steps"] == 1)
    return one["images_per_sec"] / teacher(chain)["images_per_sec"]


def t_redraw() -> str:
    rows = []
    for chain in CHAINS:
        t = teacher(chain)
        rows.append([chain, f"teacher, 15 min ({thousands(t['checkpoint_step'])} steps)", "50", f2(t["fid"]), "1.00x"])
        for model, what in STUDENTS.items():
            if not any(r["model"] == model for r in chain_rows(chain)):
                continue
            for k in (1, 2, 4):
                rows.append([chain, what, str(k), f2(student_fid(chain, model, k)), chain_ratio(chain, model, k)])
    return table(["chain", "model", "NFE", "FID", "/ its teacher-50"], rows)


def noise_runs() -> dict[str, dict]:
    """{checkpoint: {(noise scale, evaluations): FID}} of the grid-search lines (a line without a recipe: 1)."""
    runs: dict[str, dict] = {}
    for r in load_jsonl(NOISE):
        if "grid" in r and r["grid"] is not None:
            scale = r.get("recipe", {}).get("noise_scale", 1.0)
            runs.setdefault(r["checkpoint"], {})[(scale, len(r["grid"]))] = r["fid"]
    return runs


def run_label(checkpoint: str) -> str:
    """runs/s17-uncond-s1-dmd3-seed2/checkpoints/last.pt -> 'chain 1, dmd seed 2'."""
    name = checkpoint.split("/")[1].removeprefix("s17-uncond-s")
    chain, _, rest = name.partition("-")
    parts = {"dmd3": "dmd", "dmd99": "dmd --ema-decay 0.99", "traj10": "10-min student", "seed2": "seed 2",
             "seed3": "seed 3", "ag": "8-min student + autoguided"}  # fmt: skip
    return f"chain {chain}, " + " ".join(parts.get(p, p) for p in rest.split("-"))


def t_noise_scale() -> str:
    rows = []
    for checkpoint, fids in noise_runs().items():
        if (0.85, 1) not in fids:
            continue
        one = [f2(fids[(s, 1)]) for s in SCALES]
        more = [f"{f2(fids[(1.0, k)])} / {f2(fids[(0.85, k)])}" for k in (2, 4)]
        rows.append([run_label(checkpoint), *one, *more])
    header = ["model", *[f"1 step, S = {s:g}" for s in SCALES], "2 steps, S = 1 / 0.85", "4 steps, S = 1 / 0.85"]
    return table(header, rows)


def noise_gain(scale: float, k: int = 1) -> list[float]:
    """FID at noise scale `scale` over FID at 1, at k evaluations, for each model scored at both."""
    runs = noise_runs().values()
    return [f[(scale, k)] / f[(1.0, k)] for f in runs if (scale, k) in f and (1.0, k) in f and (0.85, 1) in f]


def ode16(chain: int) -> float:
    return next(r["fid"] for r in load_jsonl(NOISE) if r.get("grid") is None
                and r["checkpoint"] == f"runs/s17-uncond-s{chain}/checkpoints/last.pt")  # fmt: skip


def blind(sitting: int) -> dict:
    return load_json(f"{BLIND}/sitting_{sitting}/counts.json")


BLIND_LABELS = {
    "committed-dmd": "the committed `dmd` row, 1 step",
    "committed-dmd-gan-warm": "the committed `dmd-gan-warm` row, 1 step",
    "committed-teacher50": "the committed teacher, 50 steps",
    "seed0-dmd": "chain 0, dmd, 1 step",
    "seed1-dmd": "chain 1, dmd, 1 step",
    "seed0-dmd-ema99": "chain 0, dmd --ema-decay 0.99, 1 step",
    "seed1-dmd-ema99": "chain 1, dmd --ema-decay 0.99, 1 step",
    "seed0-teacher50": "chain 0, teacher, 50 steps",
    "seed1-teacher50": "chain 1, teacher, 50 steps",
    "real": "real test digits 0-99 (the control)",
    **{f"s{c}-{s}": f"chain {c}, dmd, 1 step" + (f", S = {s}" if s != "1.0" else "")
       for c in (0, 1) for s in ("1.0", "0.9", "0.8")},
    **{f"s{c}-plain": f"chain {c}, dmd, 1 step" for c in (0, 1)},  # the third sitting (session 18)
    **{f"s{c}-w{w}": f"chain {c}, 2 + 8 + 5 min autoguided at {w}, 1 step" for c in (0, 1) for w in ("1.5", "2.5")},
}  # fmt: skip


def t_blind() -> str:
    rows = []
    for k in (1, 2, 3):
        for name, c in blind(k).items():
            rows.append([f"{k}", BLIND_LABELS[name], str(c["readable"])])
    return table(["sitting", "grid (first 100 samples)", "readable"], rows)


SAME_GRID = {"chain0": ("seed0-dmd", "s0-1.0"), "chain1": ("seed1-dmd", "s1-1.0"), "real": ("real", "real")}


def recount(grid: str, part: str) -> str:
    """How the two sittings' unreadable sets of one grid overlap: both, first only, second only."""
    a, b = (set(blind(k)[name]["unreadable"]) for k, name in zip((1, 2), SAME_GRID[grid]))
    return str(len({"both": a & b, "first": a - b, "second": b - a}[part]))


REDRAW_TABLES = {"fs_redraw": t_redraw, "fs_noise_scale": t_noise_scale, "fs_blind": t_blind}
REDRAW_NUMBERS = {
    **{f"fs.redraw.{c}.{m}.u{k}": (lambda c=c, m=m, k=k: chain_ratio(f"chain {c}", m, k))
       for c in (0, 1) for m in ("dmd", "dmd-ema99") for k in (1, 2, 4)},
    **{f"fs.redraw.{c}.teacher50": (lambda c=c: f2(teacher(f"chain {c}")["fid"])) for c in (0, 1)},
    **{f"fs.redraw.{c}.speedup": (lambda c=c: f"{speedup(f'chain {c}'):.0f}x") for c in (0, 1)},
    **{f"fs.redraw.{c}.ode16": (lambda c=c: f2(ode16(c))) for c in (0, 1)},
    **{f"fs.blind.{k}.{name}": (lambda k=k, name=name: str(blind(k)[name]["readable"]))
       for k, names in ((1, [n for n in BLIND_LABELS if not n.startswith("s0-") and not n.startswith("s1-")]),
                        (2, ["s0-1.0", "s0-0.9", "s0-0.8", "s1-1.0", "s1-0.9", "s1-0.8", "real"]))
       for name in names},
    **{f"fs.blind.3.{name}": (lambda name=name: str(blind(3)[name]["readable"])) for name in blind(3)},
    **{f"fs.blind.recount.{g}.{part}": (lambda g=g, part=part: recount(g, part))
       for g in SAME_GRID for part in ("both", "first", "second")},
    "fs.blind.one_step_counts": lambda: str(sum("1 step" in BLIND_LABELS[n] for k in (1, 2) for n in blind(k))),
    "fs.noise.models": lambda: str(len(noise_gain(0.85))),
    "fs.noise.gain85.min": lambda: f"{(1 - max(noise_gain(0.85))) * 100:.0f}%",
    "fs.noise.gain85.max": lambda: f"{(1 - min(noise_gain(0.85))) * 100:.0f}%",
}  # fmt: skip

# ------------------------------------------------------------------ the classifier's count (readability_proxy.py)
PROXY = f"{ONE_STEP}/readability_proxy.json"
PROXY_MODELS = f"{ONE_STEP}/readability_proxy_models.jsonl"


def proxy_label(r: dict) -> str:
    name = r["checkpoint"].split("/")[1]
    if name.endswith(("-s0", "-s1")):
        guided = f", autoguided at {r['guidance']:g} by a 2-min model" if r.get("autoguide") else ""
        return f"chain {name[-1]}, teacher{guided}"
    return run_label(r["checkpoint"])


WEIGHT = f"{ONE_STEP}/autoguide_weight_mnist_uncond.jsonl"  # the guidance weight study, below
DMD_LR = f"{ONE_STEP}/dmd_lr_mnist_uncond.jsonl"  # dmd's step size (session 19), below
DMD_MINUTES = f"{ONE_STEP}/dmd_minutes_mnist_uncond.jsonl"  # 5 + 8 minutes (session 19; dmd_split_...: session 16's)
DMD_BATCH = f"{ONE_STEP}/dmd_batch_mnist_uncond.jsonl"  # dmd's batch (session 20; doc_sources_batch.py)
DMD_SCHEDULE = f"{ONE_STEP}/dmd_schedule_mnist_uncond.jsonl"  # its EMA, step, noise (session 21; doc_sources_schedule)
BAND = f"{ONE_STEP}/guidance_interval_mnist_uncond.jsonl"  # autoguidance on a band (session 22; doc_sources_band)
GROW = f"{ONE_STEP}/grow_student_mnist_uncond.jsonl"  # a deeper student (session 23; doc_sources_grow)
# every readability_proxy file
PROXY_FILES = (WEIGHT, PROXY_MODELS, DMD_LR, DMD_MINUTES, DMD_BATCH, DMD_SCHEDULE, BAND, GROW)
S17_AUTOGUIDANCE = 1.5  # the weight of every autoguided run in readability_proxy_models.jsonl


def proxy_line(run: str, steps: int, noise_scale: float = 1.0, guidance: float | None = None) -> dict:
    """The readability_proxy line of runs/<run> at `steps` and `noise_scale` (a teacher: autoguided at `guidance`,
    None: plain), from whichever readability_proxy file holds it (no line is in two)."""
    path = f"runs/{run}/checkpoints/last.pt"
    return next(r for f in PROXY_FILES for r in load_jsonl(f)
                if r["checkpoint"] == path and r["steps"] == steps and r["noise_scale"] == noise_scale
                and r.get("guidance") == guidance)  # fmt: skip


def proxy_row(chain: int, name: str, steps: int, autoguided: bool = False) -> dict:
    """The line of session 17's runs/s17-uncond-s<chain><name> at `steps`."""
    return proxy_line(f"s17-uncond-s{chain}{name}", steps, guidance=S17_AUTOGUIDANCE if autoguided else None)


def autoguided_teacher(chain: int) -> dict:
    """The line of the chain's teacher sampled at 50 steps with --autoguide."""
    return proxy_row(chain, "", 50, autoguided=True)


AUTOGUIDED = {"-ag-dmd": "2 min bad + 8 min trajectory + 5 autoguided dmd",
              "-agtraj8": "2 min bad + 8 min autoguided trajectory",
              "-agtraj-dmd": "2 min bad + 8 min autoguided trajectory + 5 autoguided dmd"}  # fmt: skip


def t_autoguide() -> str:
    """Per chain: the teacher plain and autoguided, the 10 + 5 dmd student and the 8 + 5 autoguided one."""
    rows = []
    for c in (0, 1):
        t50 = teacher(f"chain {c}")["fid"]
        plain, guided = proxy_row(c, "", 50), autoguided_teacher(c)
        rows.append([f"chain {c}", "teacher, 50 steps", f2(t50), "1.00x", f"{plain['per_100']:.1f}"])
        rows.append([f"chain {c}", f"teacher autoguided ({guided['guidance']:g}), 50 steps", f2(guided["fid"]),
                     over_teacher(f"chain {c}", guided["fid"]), f"{guided['per_100']:.1f}"])  # fmt: skip
        for k in (1, 2, 4):
            dmd = proxy_row(c, "-dmd3", k) if k != 2 else None
            fid = student_fid(f"chain {c}", "dmd", k)
            rows.append([f"chain {c}", f"10 min trajectory + 5 dmd, {k} step{'s' * (k > 1)}", f2(fid),
                         over_teacher(f"chain {c}", fid), f"{dmd['per_100']:.1f}" if dmd else "-"])  # fmt: skip
        for name, what in AUTOGUIDED.items():
            for k in (1, 2, 4):
                ag = proxy_row(c, name, k)
                rows.append([f"chain {c}", f"{what}, {k} step{'s' * (k > 1)}", f2(ag["fid"]),
                             over_teacher(f"chain {c}", ag["fid"]), f"{ag['per_100']:.1f}"])  # fmt: skip
    return table(["chain", "model", "FID", "/ teacher-50", "readable per 100 (classifier, of 1,000)"], rows)


def ag_ratio(c: int, k: int, name: str = "-ag-dmd") -> str:
    return over_teacher(f"chain {c}", proxy_row(c, name, k)["fid"])


def t_proxy_models() -> str:
    rows = [[proxy_label(r), r["sampler"], str(r["steps"]), f"{r['noise_scale']:g}", f"{r['per_100']:.1f}",
             str(r["first_100"])] for r in load_jsonl(PROXY_MODELS)]  # fmt: skip
    return table(["model", "sampler", "steps", "S", "readable per 100 (of 1,000)", "first 100"], rows)


def proxy_share(key: str) -> str:
    return f"{load_json(PROXY)['confident_0.9'][key] * 100:.0f}%"


REDRAW_TABLES["fs_proxy_models"] = t_proxy_models
REDRAW_TABLES["fs_autoguide"] = t_autoguide
REDRAW_NUMBERS.update({
    **{f"fs.ag.{c}.u{k}": (lambda c=c, k=k: ag_ratio(c, k)) for c in (0, 1) for k in (1, 2, 4)},
    **{f"fs.ag.{c}.read{k}": (lambda c=c, k=k: f"{proxy_row(c, '-ag-dmd', k)['per_100']:.0f}")
       for c in (0, 1) for k in (1, 4)},
    **{f"fs.agtraj.{c}.u{k}": (lambda c=c, k=k: ag_ratio(c, k, "-agtraj-dmd")) for c in (0, 1) for k in (1, 2, 4)},
    **{f"fs.agtraj.{c}.read{k}": (lambda c=c, k=k: f"{proxy_row(c, '-agtraj-dmd', k)['per_100']:.0f}")
       for c in (0, 1) for k in (1, 2, 4)},
    **{f"fs.agtraj8.{c}.read{k}": (lambda c=c, k=k: f"{proxy_row(c, '-agtraj8', k)['per_100']:.0f}")
       for c in (0, 1) for k in (1, 4)},
    **{f"fs.ag.{c}.teacher_fid": (lambda c=c: f2(autoguided_teacher(c)["fid"])) for c in (0, 1)},
    "fs.agtraj.0.fid4": lambda: f2(proxy_row(0, "-agtraj-dmd", 4)["fid"]),
    "fs.redraw.0.dmd.fid4": lambda: f2(student_fid("chain 0", "dmd", 4)),
    **{f"fs.ag.{c}.teacher_ratio": (lambda c=c: over_teacher(f"chain {c}", autoguided_teacher(c)["fid"]))
       for c in (0, 1)},
    **{f"fs.ag.{c}.teacher_read": (lambda c=c: f"{autoguided_teacher(c)['per_100']:.0f}")
       for c in (0, 1)},
    **{f"fs.ag.{c}.teacher_plain_read": (lambda c=c: f"{proxy_row(c, '', 50)['per_100']:.0f}") for c in (0, 1)},
})  # fmt: skip
REDRAW_NUMBERS.update({
    "fs.proxy.auc": lambda: f2(load_json(PROXY)["auc"]),
    "fs.proxy.cells": lambda: thousands(load_json(PROXY)["cells"]),
    "fs.proxy.mae": lambda: f"{load_json(PROXY)['mean_abs_error']:.1f}",
    "fs.proxy.real90": lambda: proxy_share("real test digits"),
    "fs.proxy.blobs90": lambda: proxy_share("teacher ddim 1 step (grey blobs)"),
    "fs.proxy.threshold": lambda: f2(load_jsonl(PROXY_MODELS)[0]["threshold"]),
})  # fmt: skip


# ------------------------------------------------------------- the guidance weight (one_step_redraw.sh, session 18)
PIPELINES = {  # run (chain c) -> (the trajectories' weight, dmd's weight): 8 min trajectory + 5 dmd, 2-min bad model
    "s17-uncond-s{c}-agtraj-dmd": ("1.5", "1.5"),
    "s18-s{c}-agtraj-dmd25": ("1.5", "2.5"),
    "s18-s{c}-agtraj20-dmd20": ("2", "2"),
    "s18-s{c}-agtraj25-dmd25": ("2.5", "2.5"),
}
VARIANTS = {  # one chain each (s18-s<chain>-...)
    **{f"s18-s{c}-agtraj15-seed2-dmd25": ("1.5, --seed 2", "2.5, --seed 2") for c in (0, 1)},
    "s18-s0-agtraj20-seed2-dmd20": ("2, --seed 2", "2, --seed 2"),
    "s18-s0-agtraj20-ema0-seed0-dmd20": ("2, --ema-warmup 0", "2"),
    "s18-s0-agtraj20-ema0-seed2-dmd20": ("2, --ema-warmup 0 --seed 2", "2, --seed 2"),
    "s18-s1-dmd25-lr5": ("1.5", "2.5, --lr 5e-5"),
    "s18-s1-dmd40": ("1.5", "4"),
    "s18-s1-agtraj20-lr2-dmd20": ("2, --lr 2e-4", "2"),
    "s18-s1-agtraj20-lr2-dmd25": ("2, --lr 2e-4", "2.5"),
    "s18-s1-agtraj20-lr2-dmd25-lr5": ("2, --lr 2e-4", "2.5, --lr 5e-5"),
    "s18-s1-agtraj20-n1000-dmd20": ("2, 1,000 trajectories", "2"),
}


def variant_chain(run: str) -> int:
    """The chain of a variant's run name, s18-s<chain>-..."""
    return int(run.split("-")[1][1:])


def chain_runs(c: int) -> dict[str, tuple[str, str]]:
    """The pipelines and this chain's variants: {run name with {c}: (trajectories' weight, dmd's weight)}."""
    return {**PIPELINES, **{run: w for run, w in VARIANTS.items() if run.startswith(f"s18-s{c}-")}}


def t_ag_weight() -> str:
    """Per chain: the teacher autoguided at each weight, then each 8 + 5 pipeline at 1, 2 and 4 steps."""
    rows = []
    for c in (0, 1):
        chain = f"chain {c}"
        for w in (1.5, 2.0, 2.5):
            r = proxy_line(f"s17-uncond-s{c}", 50, guidance=w)
            rows.append([chain, "teacher autoguided, 50 steps", f"{w:g}", "-", f2(r["fid"]),
                         over_teacher(chain, r["fid"]), f"{r['per_100']:.1f}"])  # fmt: skip
        for run, (w_traj, w_dmd) in chain_runs(c).items():
            for k in (1, 2, 4):
                r = proxy_line(run.format(c=c), k)
                rows.append([chain, "8 min trajectory + 5 dmd", w_traj, w_dmd + f", {k} step{'s' * (k > 1)}",
                             f2(r["fid"]), over_teacher(chain, r["fid"]), f"{r['per_100']:.1f}"])  # fmt: skip
    return table(["chain", "model", "trajectories' w", "dmd's w, steps", "FID", "/ teacher-50",
                  "readable per 100 (classifier, of 1,000)"], rows)  # fmt: skip


def t_ag_noise() -> str:
    """One step of each pipeline with the starting noise scaled by S: readable per 100 (FID)."""
    rows = []
    for c in (0, 1):
        for run, (w_traj, w_dmd) in PIPELINES.items():
            cells = []
            for s in (1.0, 0.85, 0.7, 0.5):
                r = proxy_line(run.format(c=c), 1, noise_scale=s)
                cells.append(f"{r['per_100']:.1f} ({f2(r['fid'])})")
            rows.append([f"chain {c}", w_traj, w_dmd, *cells])
    return table(["chain", "trajectories' w", "dmd's w", "S = 1", "0.85", "0.7", "0.5"], rows)


def weight_read(c: int, run: str, k: int = 1, noise_scale: float = 1.0) -> str:
    return f"{proxy_line(run.format(c=c), k, noise_scale)['per_100']:.0f}"


def weight_ratio(c: int, run: str, k: int) -> str:
    return over_teacher(f"chain {c}", proxy_line(run.format(c=c), k)["fid"])


def noise85_held_out() -> list[bool]:
    """For each session-18 run (none of them used to choose S = 0.85): is its one-step FID lower at 0.85 than at 1?"""
    lines = load_jsonl(WEIGHT)
    runs = sorted({r["checkpoint"] for r in lines if r["checkpoint"].startswith("runs/s18-")})
    one = {(r["checkpoint"], r["noise_scale"]): r["fid"] for r in lines if r["steps"] == 1}
    return [one[(c, 0.85)] < one[(c, 1.0)] for c in runs]


def best1() -> str:
    """Chain 1's most readable run at one step from the full starting noise."""
    return max((r.format(c=1) for r in chain_runs(1)), key=lambda r: proxy_line(r, 1)["per_100"])


TRAJ_DRAWS = ("agtraj20", "agtraj20-seed2", "agtraj20-ema0-seed0", "agtraj20-ema0-seed2")  # chain 0, weight 2

REDRAW_TABLES["fs_ag_weight"] = t_ag_weight
REDRAW_TABLES["fs_ag_noise"] = t_ag_noise
REDRAW_NUMBERS.update({
    **{f"fs.agw.{c}.teacher25_read": (lambda c=c: f"{proxy_line(f's17-uncond-s{c}', 50, guidance=2.5)['per_100']:.0f}")
       for c in (0, 1)},
    **{f"fs.agw.{c}.teacher25_ratio": (lambda c=c: over_teacher(f"chain {c}", proxy_line(f"s17-uncond-s{c}", 50,
                                                                                         guidance=2.5)["fid"]))
       for c in (0, 1)},
    **{f"fs.agw.{c}.{w}.read{k}": (lambda c=c, w=w, k=k: weight_read(c, f"s18-s{{c}}-agtraj{w}-dmd{w}", k))
       for c in (0, 1) for w in (20, 25) for k in (1, 2, 4)},
    **{f"fs.agw.{c}.{w}.u{k}": (lambda c=c, w=w, k=k: weight_ratio(c, f"s18-s{{c}}-agtraj{w}-dmd{w}", k))
       for c in (0, 1) for w in (20, 25) for k in (1, 2, 4)},
    **{f"fs.agw.{c}.dmd25.read1": (lambda c=c: weight_read(c, "s18-s{c}-agtraj-dmd25")) for c in (0, 1)},
    **{f"fs.agw.{c}.dmd25.u{k}": (lambda c=c, k=k: weight_ratio(c, "s18-s{c}-agtraj-dmd25", k))
       for c in (0, 1) for k in (1, 2, 4)},
    **{f"fs.agw.{c}.traj25.read1": (lambda c=c: weight_read(c, "s18-s{c}-agtraj25")) for c in (0, 1)},
    "fs.agw.1.best_read1": lambda: weight_read(1, best1()),
    **{f"fs.agw.{v}.u{k}": (lambda v=v, k=k: weight_ratio(variant_chain(v), v, k))
       for v in VARIANTS for k in (1, 2, 4)},
    **{f"fs.agw.{v}.read1": (lambda v=v: weight_read(variant_chain(v), v)) for v in VARIANTS},
    **{f"fs.agw.1.best.s{s}.read1": (lambda s=s: weight_read(1, best1(), 1, s)) for s in (0.7, 0.5)},
    **{f"fs.agw.1.best.s{s}.u1": (lambda s=s: over_teacher("chain 1", proxy_line(best1(), 1, s)["fid"]))
       for s in (0.7, 0.5)},
    **{f"fs.agw.0.{run}.read1": (lambda run=run: weight_read(0, f"s18-s0-{run}")) for run in TRAJ_DRAWS},
    **{f"fs.agw.0.{run}.fid1": (lambda run=run: f2(proxy_line(f"s18-s0-{run}", 1)["fid"])) for run in TRAJ_DRAWS},
    **{f"fs.redraw_proxy.{c}.dmd.read1": (lambda c=c: f"{proxy_row(c, '-dmd3', 1)['per_100']:.0f}") for c in (0, 1)},
    "fs.agw.noise85.models": lambda: str(len(noise85_held_out())),
    "fs.agw.noise85.better": lambda: str(sum(noise85_held_out())),
    "fs.proxy.held.auc": lambda: f2(load_json(PROXY)["held_out_auc"]),
    "fs.proxy.held.cells": lambda: str(100 * len(load_json(PROXY)["held_out"])),
    "fs.proxy.held.mae": lambda: f"{load_json(PROXY)['held_out_mean_abs_error']:.1f}",
    "fs.proxy.held.below": lambda: str(sum(r["classifier"] < r["blind"] for r in load_json(PROXY)["held_out"])),
    "fs.proxy.held.grids": lambda: str(len(load_json(PROXY)["held_out"])),
})  # fmt: skip


# ------------------------------------------------- dmd's step size (one_step_redraw.sh, session 19): readable vs FID
STUDENT_RUNS = {  # the 8-min trajectory student (autoguided at 1.5): label, its default dmd run (at 2.5, lr 2e-5)
    "s1": ("chain 1, seed 1", "s18-s1-agtraj-dmd25"),
    "s1-seed2": ("chain 1, seed 2", "s18-s1-agtraj15-seed2-dmd25"),
    "s0": ("chain 0, seed 0", "s18-s0-agtraj-dmd25"),
    "s0-seed2": ("chain 0, seed 2", "s18-s0-agtraj15-seed2-dmd25"),
}
DMD_SETTINGS = {  # run -> (student, dmd's --lr, fake network's lr, other change); dmd autoguided at 2.5, 5 minutes
    **{default: (s, "2e-5", "2e-4 (10 x)", "") for s, (_, default) in STUDENT_RUNS.items()},
    "s18-s1-dmd25-lr5": ("s1", "5e-5", "5e-4 (10 x)", ""),
    "s19-s1-dmd25-lr5-gan1": ("s1", "5e-5", "5e-4 (10 x)", "--dmd-gan 1"),
    "s19-s1-dmd25-lr10": ("s1", "1e-4", "1e-3 (10 x)", ""),
    "s19-s1-dmd25-lr10-fs2": ("s1", "1e-4", "1e-3 (10 x)", "--dmd-fake-steps 2"),
    "s19-s1-dmd25-lr10-fake25": ("s1", "1e-4", "2.5e-4", ""),
    "s19-s1-dmd25-lr10-fake5": ("s1", "1e-4", "5e-4", ""),
    "s19-s1-dmd25-lr10-fake5-seed3": ("s1", "1e-4", "5e-4", "--seed 3"),
    "s19-s1-dmd25-lr20-fake25": ("s1", "2e-4", "5e-4", ""),
    "s19-s1-seed2-dmd25-lr10-fake5": ("s1-seed2", "1e-4", "5e-4", ""),
    "s19-s0-dmd25-lr10-fake5": ("s0", "1e-4", "5e-4", ""),
    "s19-s0-seed2-dmd25-lr10-fake5": ("s0-seed2", "1e-4", "5e-4", ""),
}
FAST_DMD = [run for run, (_, lr, fake, other) in DMD_SETTINGS.items() if (lr, fake, other) == ("1e-4", "5e-4", "")]
DEFAULT_DMD = [run for _, run in STUDENT_RUNS.values()]


def student_chain(run: str) -> str:
    """The chain of a run's student key, s<chain>[-seed2]."""
    return f"chain {DMD_SETTINGS[run][0][1]}"


def t_dmd_lr() -> str:
    """Each dmd run from an 8-min trajectory student: its settings, one step at S = 1 and 0.85."""
    rows = []
    for run, (student, lr, fake, other) in DMD_SETTINGS.items():
        chain, cells = student_chain(run), []
        for s in (1.0, 0.85):
            r = proxy_line(run, 1, s)
            cells += [f"{r['per_100']:.1f}", f"{f2(r['fid'])} ({over_teacher(chain, r['fid'])})"]
        rows.append([STUDENT_RUNS[student][0], lr, fake, other or "-", *cells])
    return table(["trajectory student", "dmd --lr", "fake network's lr", "other", "readable, 1 step",
                  "FID (/ teacher-50)", "readable, S = 0.85", "FID (/ teacher-50), S = 0.85"], rows)  # fmt: skip


def t_dmd_lr_steps() -> str:
    """The four students with dmd at the default and at --lr 1e-4 --dmd-fake-lr 5e-4: FID ratio at 1, 2, 4 steps."""
    rows = []
    for runs, label in ((DEFAULT_DMD, "2e-5 (default)"), (FAST_DMD, "1e-4, fake 5e-4")):
        for run in runs:
            chain = student_chain(run)
            cells = [over_teacher(chain, proxy_line(run, k)["fid"]) for k in (1, 2, 4)]
            rows.append([STUDENT_RUNS[DMD_SETTINGS[run][0]][0], label, *cells, f"{proxy_line(run, 1)['per_100']:.1f}"])
    return table(["trajectory student", "dmd --lr", "1 step", "2 steps", "4 steps", "readable, 1 step"], rows)


def mean_read(runs, noise_scale: float = 1.0) -> float:
    """The runs' mean readable per 100 at one step."""
    return sum(proxy_line(r, 1, noise_scale)["per_100"] for r in runs) / len(runs)


def met(chains: dict[str, str], k: int, limit: float, noise_scale: float = 1.0) -> int:
    """How many runs ({run: its chain}) keep k steps (from `noise_scale` times the noise) within `limit` times their
    chain's plain 50-step teacher."""
    return sum(proxy_line(run, k, noise_scale)["fid"] <= limit * teacher(chain)["fid"] for run, chain in chains.items())


def reading(runs, threshold: float, noise_scale: float = 1.0) -> int:
    """How many runs read `threshold` per 100 or more at one step."""
    return sum(proxy_line(r, 1, noise_scale)["per_100"] >= threshold for r in runs)


REDRAW_TABLES["fs_dmd_lr"] = t_dmd_lr
REDRAW_TABLES["fs_dmd_lr_steps"] = t_dmd_lr_steps
REDRAW_NUMBERS.update({
    "fs.dmdlr.mean_default": lambda: f"{mean_read(DEFAULT_DMD):.1f}",
    "fs.dmdlr.mean_fast": lambda: f"{mean_read(FAST_DMD):.1f}",
    "fs.dmdlr.mean_fast85": lambda: f"{mean_read(FAST_DMD, 0.85):.1f}",
    "fs.dmdlr.draws": lambda: str(len(FAST_DMD)),
    **{f"fs.dmdlr.{name}.met{k}": (lambda runs=runs, k=k, x=x: str(met({r: student_chain(r) for r in runs}, k, x)))
       for name, runs in (("default", DEFAULT_DMD), ("fast", FAST_DMD)) for k, x in ((1, 2.0), (2, 1.3), (4, 1.1))},
    **{f"fs.dmdlr.{run}.read1": (lambda run=run: f"{proxy_line(run, 1)['per_100']:.0f}") for run in DMD_SETTINGS},
    **{f"fs.dmdlr.{run}.u1": (lambda run=run: over_teacher(student_chain(run), proxy_line(run, 1)['fid']))
       for run in DMD_SETTINGS},
    **{f"fs.dmdlr.{run}.read85": (lambda run=run: f"{proxy_line(run, 1, 0.85)['per_100']:.0f}")
       for run in DMD_SETTINGS},
    **{f"fs.dmdlr.{run}.u85": (lambda run=run: over_teacher(student_chain(run), proxy_line(run, 1, 0.85)['fid']))
       for run in DMD_SETTINGS},
})  # fmt: skip


# ---------------------------------------- minutes of dmd against minutes of trajectories (session 19): 5 + 8 minutes
SPLIT_RUNS = {  # label -> the 5-minute trajectory student's run (seed); its dmd run is <run>-dmd8
    "chain 0, seed 0": "s19-s0-agtraj5", "chain 0, seed 2": "s19-s0-agtraj5-seed2",
    "chain 1, seed 1": "s19-s1-agtraj5", "chain 1, seed 2": "s19-s1-agtraj5-seed2",
}  # fmt: skip
EIGHT_MINUTES = {  # label -> the 8-minute trajectory student of the same chain and seed (autoguided at 1.5)
    "chain 0, seed 0": "s17-uncond-s0-agtraj8", "chain 0, seed 2": "s18-s0-agtraj15-seed2",
    "chain 1, seed 1": "s17-uncond-s1-agtraj8", "chain 1, seed 2": "s18-s1-agtraj15-seed2",
}  # fmt: skip


def draw_chain(label: str) -> str:
    """'chain 1, seed 2' -> 'chain 1'."""
    return label.split(",")[0]


def run_chains(draws: dict[str, str]) -> dict[str, str]:
    """{draw label: run} -> {run: its chain}, the runs that met() counts."""
    return {run: draw_chain(label) for label, run in draws.items()}


def draw_ratio(label: str, line: dict) -> str:
    """A line's FID as a multiple of its draw's plain teacher at 50 steps."""
    return over_teacher(draw_chain(label), line["fid"])


def split_final(run: str, steps: int = 1, noise_scale: float = 1.0) -> dict:
    """The line of the trajectory student's dmd run, <run>-dmd8, at its end."""
    return proxy_line(f"{run}-dmd8", steps, noise_scale)


SPLIT_DMD = {f"{run}-dmd8": draw_chain(label) for label, run in SPLIT_RUNS.items()}  # the dmd runs: their chain


def reads_along(run: str) -> str:
    """Readable per 100 at one step (S = 1) at each of runs/<run>'s kept checkpoints, in step order: 'a -> b -> ...'."""
    prefix = f"runs/{run}/checkpoints/step_"
    lines = sorted((r for f in PROXY_FILES for r in load_jsonl(f) if r["checkpoint"].startswith(prefix)
                    and r["steps"] == 1 and r["noise_scale"] == 1.0), key=lambda r: r["checkpoint"])  # fmt: skip
    return " -> ".join(f"{r['per_100']:.0f}" for r in lines)


def t_dmd_minutes() -> str:
    """Per draw: the 5-minute trajectory student and, after 8 minutes of dmd, 1, 2, 4 steps and S = 0.85."""
    rows = []
    for label, run in SPLIT_RUNS.items():
        chain, student, s85 = draw_chain(label), proxy_line(run, 1), split_final(run, 1, 0.85)
        rows.append([label, f"{proxy_line(EIGHT_MINUTES[label], 1)['per_100']:.1f}",
                     f"{student['per_100']:.1f} ({over_teacher(chain, student['fid'])})",
                     f"{split_final(run)['per_100']:.1f}",
                     *(over_teacher(chain, split_final(run, k)["fid"]) for k in (1, 2, 4)),
                     f"{s85['per_100']:.1f} ({over_teacher(chain, s85['fid'])})"])  # fmt: skip
    return table(["draw", "8 min trajectory (same seed): readable", "5 min trajectory: readable (FID / teacher-50)",
                  "+ 8 min dmd: readable, 1 step",
                  "FID / teacher-50, 1 step", "2 steps", "4 steps", "readable at S = 0.85 (FID / teacher-50)"],
                 rows)  # fmt: skip


def split_reads(label: str) -> str:
    """The dmd run's readable per 100 at each kept checkpoint (every 100 steps and the last)."""
    return reads_along(f"{SPLIT_RUNS[label]}-dmd8")


def chain2(label: str, steps: int) -> dict:
    """The first draws' 5-minute students with 8 minutes of dmd at --dmd-chain 2 (<run>-dmd8-chain2)."""
    return proxy_line(f"{SPLIT_RUNS[label]}-dmd8-chain2", steps)


FIRST_DRAWS = ("chain 0, seed 0", "chain 1, seed 1")
REDRAW_TABLES["fs_dmd_minutes"] = t_dmd_minutes
REDRAW_NUMBERS.update({
    "fs.minutes.draws": lambda: str(len(SPLIT_RUNS)),
    **{f"fs.minutes.chain2.{i}.read1": (lambda label=label: f"{chain2(label, 1)['per_100']:.0f}")
       for i, label in enumerate(FIRST_DRAWS)},
    **{f"fs.minutes.chain2.{i}.u{k}": (lambda label=label, k=k: draw_ratio(label, chain2(label, k)))
       for i, label in enumerate(FIRST_DRAWS) for k in (1, 2, 4)},
    **{f"fs.minutes.{i}.u{k}": (lambda label=label, k=k: draw_ratio(label, split_final(SPLIT_RUNS[label], k)))
       for i, label in enumerate(FIRST_DRAWS) for k in (1, 2, 4)},
    **{f"fs.minutes.{i}.read1": (lambda label=label: f"{split_final(SPLIT_RUNS[label])['per_100']:.0f}")
       for i, label in enumerate(FIRST_DRAWS)},
    **{f"fs.minutes.curve.{i}": (lambda label=label: split_reads(label)) for i, label in enumerate(SPLIT_RUNS)},
    **{f"fs.minutes.met{k}": (lambda k=k, x=x: str(met(SPLIT_DMD, k, x))) for k, x in ((1, 2.0), (2, 1.3), (4, 1.1))},
    "fs.minutes.read80": lambda: str(reading(SPLIT_DMD, 80)),
    "fs.minutes.read80_85": lambda: str(reading(SPLIT_DMD, 80, 0.85)),
    "fs.minutes.mean": lambda: f"{mean_read(SPLIT_DMD):.1f}",
})  # fmt: skip


# ------------------------------- trajectories at 1.5 and dmd at 2.5, a third draw on each chain (session 19: seed 3)
AG15_25 = {  # label -> run of the 8 + 5 pipeline, trajectories autoguided at 1.5 and dmd at 2.5 (2-min bad model)
    "chain 0, seed 0": "s18-s0-agtraj-dmd25", "chain 0, seed 2": "s18-s0-agtraj15-seed2-dmd25",
    "chain 0, seed 3": "s19-s0-agtraj15-seed3-dmd25", "chain 1, seed 1": "s18-s1-agtraj-dmd25",
    "chain 1, seed 2": "s18-s1-agtraj15-seed2-dmd25", "chain 1, seed 3": "s19-s1-agtraj15-seed3-dmd25",
}  # fmt: skip
SEED3 = {c: AG15_25[f"chain {c}, seed 3"] for c in (0, 1)}
AG15_25_CHAINS = run_chains(AG15_25)


REDRAW_NUMBERS.update({
    "fs.ag15_25.draws": lambda: str(len(AG15_25)),
    **{f"fs.ag15_25.met{k}_{x}": (lambda k=k, x=x: str(met(AG15_25_CHAINS, k, x)))
       for k, x in ((1, 2.0), (1, 1.5), (2, 1.3), (4, 1.1))},
    "fs.ag15_25.mean_read": lambda: f"{mean_read(AG15_25_CHAINS):.1f}",
    **{f"fs.ag15_25.teacher_read.{c}": (lambda c=c: f"{proxy_row(c, '', 50)['per_100']:.1f}") for c in (0, 1)},
    "fs.ag15_25.read80": lambda: str(reading(AG15_25_CHAINS, 80)),
    **{f"fs.ag15_25.seed3.{c}.u{k}": (lambda c=c, k=k: weight_ratio(c, SEED3[c], k))
       for c in (0, 1) for k in (1, 2, 4)},
    **{f"fs.ag15_25.seed3.{c}.read1": (lambda c=c: weight_read(c, SEED3[c])) for c in (0, 1)},
})  # fmt: skip
