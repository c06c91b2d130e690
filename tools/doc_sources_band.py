"""Autoguidance on a band of noise levels (benchmarks/guidance_interval.sh, session 22) for docs/few_step.md: the
teachers' 50-step sampler and the trajectory stage's ODE autoguided only where t / T lies in [lo, hi), and dmd and
the trajectory stage trained towards such targets; render_docs.py merges these."""

from doc_sources import load_jsonl, table
from doc_sources_batch import TARGETS, met_all, ratio, read, read_ratio, steps, target_rows
from doc_sources_redraw import mean_read, met, over_teacher, proxy_line, reading, run_chains
from doc_sources_schedule import tag

TEACHERS = "one_step_cpu/guidance_interval_teachers.jsonl"  # the default sampler, 50 steps
ODE = "one_step_cpu/guidance_interval_ode.jsonl"  # dpm++2m, 16 trailing steps: the trajectory stage's solver
FULL = (0, 1)  # the band of every autoguided run before this session
NOISES = (0.85, 0.65)  # the smaller starting noises each student was scored at, one step


def band(lo: float, hi: float) -> str:
    ends = [f"{x:g} T" if x not in (0, 1) else "T" if x else "0" for x in (lo, hi)]
    return "every level" if (lo, hi) == FULL else f"[{ends[0]}, {ends[1]})"


def lines_of(file: str, chain: int) -> list[dict]:
    """The lines of the chain's teacher in a results file, in the order they ran."""
    return [r for r in load_jsonl(file) if r["checkpoint"] == f"runs/s17-uncond-s{chain}/checkpoints/last.pt"]


def teacher_lines(chain: int) -> list[dict]:
    """The chain's autoguided 50-step teachers, every level at 1.5 and 2 (chain 0 at 2.5 too) from the weight study
    and this session's lines: every level first, then by weight and band."""
    old = [1.5, 2] if chain == 1 else [1.5, 2, 2.5]
    full = [{**proxy_line(f"s17-uncond-s{chain}", 50, guidance=w), "band": list(FULL)} for w in old]
    return sorted(full + lines_of(TEACHERS, chain), key=lambda r: (r["band"] != list(FULL), r["guidance"], r["band"]))


def guided_rows(lines: list[dict], chain: int) -> list[list[str]]:
    return [[f"chain {chain}", band(*r["band"]), f"{r['guidance']:g}",
             *(cell(chain, r, q) for q in ("fid", "ratio", "read"))] for r in lines]  # fmt: skip


def t_band_teachers() -> str:
    """Each chain's teacher, default sampler at 50 steps, autoguided on a band: FID, its ratio, readable."""
    rows = [row for c in (1, 0) for row in guided_rows(teacher_lines(c), c)]
    return table(["teacher", "guided on", "w", "FID", "/ plain teacher-50", "readable per 100"], rows)


def t_band_ode() -> str:
    """The trajectory stage's ODE (dpm++2m, 16 steps) autoguided on a band: FID, its ratio, readable."""
    rows = [row for c in (1, 0) for row in guided_rows(lines_of(ODE, c), c)]
    return table(["teacher", "guided on", "w", "FID", "/ plain teacher-50", "readable per 100"], rows)


def teacher_line(chain: int, lo: float, hi: float, w: float, file: str = TEACHERS) -> dict:
    return next(r for r in (teacher_lines(chain) if file == TEACHERS else lines_of(file, chain))
                if r["band"] == [lo, hi] and r["guidance"] == w)  # fmt: skip


TRAJ = "1.5, every level"  # the trajectory stage of every student before this session
BAND15 = "2.5 on [0.15 T, T)"
DEFAULT_DMD = "2.5, every level (default)"
DRAWS = {  # draw -> (its 8-minute trajectory student at 1.5, the default dmd run from it, this session's prefix)
    "chain 1, seed 1": ("s17-uncond-s1-agtraj8", "s21-s1-dmd25-b16-ema998", "s22-s1"),
    "chain 1, seed 2": ("s18-s1-agtraj15-seed2", "s21-s1-seed2-dmd25-b16-ema998", "s22-s1-seed2"),
    "chain 1, seed 3": ("s19-s1-agtraj15-seed3", "s21-s1-seed3-dmd25-b16-ema998", "s22-s1-seed3"),
    "chain 0, seed 0": ("s17-uncond-s0-agtraj8", "s21-s0-dmd25-b16-ema998", "s22-s0"),
    "chain 0, seed 2": ("s18-s0-agtraj15-seed2", "s21-s0-seed2-dmd25-b16-ema998", "s22-s0-seed2"),
    "chain 0, seed 3": ("s19-s0-agtraj15-seed3", "s21-s0-seed3-dmd25-b16-ema998", "s22-s0-seed3"),
}  # fmt: skip
SCREEN = [("s22-s1-dmd25-band15", TRAJ, "2.5 on [0.15 T, T)"), ("s22-s1-dmd35-band15", TRAJ, "3.5 on [0.15 T, T)")]
STUDENTS = {  # draw -> [(run, its trajectory stage, dmd's real score)]; "-": no dmd
    label: [(traj, TRAJ, "-"), (default, TRAJ, DEFAULT_DMD), *(SCREEN if label == "chain 1, seed 1" else []),
            (f"{new}-traj25-band15", BAND15, "-"), (f"{new}-traj25-band15-dmd25", BAND15, "2.5, every level")]
    for label, (traj, default, new) in DRAWS.items()
}  # fmt: skip
DMD_RUNS = {run: label for label, runs in STUDENTS.items() for run, _, real in runs if real != "-"}
PIPELINES = {  # the six draws' final runs, {run: chain}: the default pipeline, and trajectories on the band
    "default": run_chains({label: default for label, (_, default, _) in DRAWS.items()}),
    "band": run_chains({label: f"{new}-traj25-band15-dmd25" for label, (_, _, new) in DRAWS.items()}),
}  # fmt: skip
PIPELINE_NAMES = {"default": "8 min at 1.5 + dmd at 2.5 (the default pipeline)",
                  "band": "8 min at 2.5 on [0.15 T, T) + dmd at 2.5"}  # fmt: skip


def whole(runs: dict[str, str], noise_scale: float) -> int:
    """How many runs meet issue 24 whole with one step from `noise_scale` times the noise: it reads 80 per 100 or
    more within 2x the teacher's 50-step FID, and two and four steps (S = 1) keep their FID targets."""
    return sum(proxy_line(run, 1, noise_scale)["per_100"] >= 80 and met({run: chain}, 1, 2.0, noise_scale)
               and met({run: chain}, 2, 1.3) and met({run: chain}, 4, 1.1) for run, chain in runs.items())  # fmt: skip


def t_band_targets() -> str:
    """Per pipeline, over the six draws: each FID target's count, all at once, readable counts and means."""
    rows = target_rows(list(PIPELINES.values()))
    rows.append(["all four at once", *(str(met_all(r)) for r in PIPELINES.values())])
    for v in (1.0, *NOISES):
        rows.append([f"mean readable per 100, one step, S = {v:g}",
                     *(f"{mean_read(r, v):.1f}" for r in PIPELINES.values())])  # fmt: skip
        rows.append([f"80 readable per 100 or more, one step, S = {v:g}",
                     *(str(reading(r, 80, v)) for r in PIPELINES.values())])  # fmt: skip
    rows.append([f"1 step at S = {NOISES[0]:g} within 1.5x, 2 and 4 steps (S = 1) within their targets",
                 *(str(met_all(r, NOISES[0])) for r in PIPELINES.values())])  # fmt: skip
    for v in (1.0, *NOISES):
        rows.append([f"1 step at S = {v:g} reading 80 or more within 2x, 2 and 4 steps within their targets",
                     *(str(whole(r, v)) for r in PIPELINES.values())])  # fmt: skip
    return table([f"of the {len(DRAWS)} draws", *PIPELINE_NAMES.values()], rows)


def t_band_students() -> str:
    """Per draw: each student's stages, readable at one step, FID ratio at 1, 2, 4 steps, one step at S < 1."""
    rows = []
    for label, runs in STUDENTS.items():
        for run, traj, real in runs:
            smaller = [read_ratio(label, run, v) if real != "-" else "-" for v in NOISES]
            rows.append([label, traj, real, read(run), *(ratio(label, run, k) for k in (1, 2, 4)), *smaller])
    return table(["draw", "trajectories (8 min) autoguided at", "dmd (5 min) autoguided at", "readable, 1 step",
                  "FID / teacher-50, 1 step", "2 steps", "4 steps",
                  *(f"readable at S = {v:g} (FID / teacher-50)" for v in NOISES)], rows)  # fmt: skip


def cell(chain: int, line: dict, quantity: str) -> str:
    """A teacher line's readable per 100 ('read'), FID ('fid') or FID over the chain's plain teacher ('ratio')."""
    return {"read": f"{line['per_100']:.1f}", "fid": f"{line['fid']:.2f}",
            "ratio": over_teacher(f"chain {chain}", line["fid"])}[quantity]  # fmt: skip


SAMPLE_FLAG = "one_step_cpu/autoguide_from_teachers.jsonl"  # the band through `sample --autoguide-from` (session 24)


def flag_line(chain: int) -> dict:
    return lines_of(SAMPLE_FLAG, chain)[0]


def flag_matches() -> str:
    """On how many teachers the library's --autoguide-from 0.15 gives the screening wrapper's [0.15 T, T) row at
    the same weight: the same FID and readable count to the digit printed."""
    same = 0
    for c in (0, 1):
        flag = flag_line(c)
        wrapper = teacher_line(c, flag["autoguide_from"], 1, flag["guidance"])
        same += all(flag[q] == wrapper[q] for q in ("fid", "per_100", "first_100"))
    return f"{same} of 2"


BAND_TABLES = {"fs_band_teachers": t_band_teachers, "fs_band_ode": t_band_ode, "fs_band_students": t_band_students,
               "fs_band_targets": t_band_targets}  # fmt: skip
BAND_NUMBERS = {
    **{f"fs.band.t{c}.{lo:g}_{hi:g}.w{w:g}.{q}": (lambda c=c, g=(lo, hi, w), q=q: cell(c, teacher_line(c, *g), q))
       for c, lo, hi, w in ((1, 0, 1, 1.5), (1, 0, 1, 2), (1, 0, 1, 2.5), (1, 0.15, 1, 1.5), (1, 0.15, 1, 2),
                            (1, 0.15, 1, 2.5), (1, 0.15, 1, 3.5), (1, 0, 0.6, 2.5), (1, 0, 0.3, 2.5), (1, 0.1, 1, 2.5),
                            (1, 0.3, 1, 2.5), (1, 0.3, 0.7, 2.5), (0, 0, 1, 1.5), (0, 0, 1, 2), (0, 0, 1, 2.5),
                            (0, 0.15, 1, 1.5), (0, 0.15, 1, 2), (0, 0.15, 1, 2.5), (0, 0.15, 1, 3.5))
       for q in ("read", "fid", "ratio")},
    **{f"fs.band.ode{c}.{lo:g}_{hi:g}.w{w:g}.{q}": (
        lambda c=c, g=(lo, hi, w, ODE), q=q: cell(c, teacher_line(c, *g), q))
       for c in (0, 1) for lo, hi, w in ((0, 1, 1.5), (0.15, 1, 2.5), (0.15, 1, 3.5)) for q in ("read", "ratio")},
    **{f"fs.band.{run}.read{k}": (lambda run=run, k=k: read(run, steps=k))
       for runs in STUDENTS.values() for run, _, _ in runs for k in (1, 2, 4)},
    **{f"fs.band.{run}.u{k}": (lambda run=run, label=label, k=k: ratio(label, run, k))
       for label, runs in STUDENTS.items() for run, _, _ in runs for k in (1, 2, 4)},
    **{f"fs.band.{run}.steps": (lambda run=run: f"{steps(run):,}") for run in DMD_RUNS},
    **{f"fs.band.{name}.mean_read{tag(v)}": (lambda runs=runs, v=v: f"{mean_read(runs, v):.1f}")
       for name, runs in PIPELINES.items() for v in (1.0, *NOISES)},
    **{f"fs.band.{name}.read80{tag(v)}": (lambda runs=runs, v=v: str(reading(runs, 80, v)))
       for name, runs in PIPELINES.items() for v in (1.0, *NOISES)},
    "fs.band.draws": lambda: str(len(DRAWS)),
    **{f"fs.band.flag.t{c}.{q}": (lambda c=c, q=q: cell(c, flag_line(c), q))
       for c in (0, 1) for q in ("fid", "read", "ratio")},
    "fs.band.flag.matches": flag_matches,
    "fs.band.gain": lambda: f"{mean_read(PIPELINES['band']) - mean_read(PIPELINES['default']):.1f}",
    "fs.band.met_all_lost": lambda: str(met_all(PIPELINES["default"]) - met_all(PIPELINES["band"])),
    "fs.band.more_draws": lambda: str(sum(proxy_line(band, 1)["per_100"] > proxy_line(default, 1)["per_100"]
                                          for band, default in zip(PIPELINES["band"], PIPELINES["default"]))),
    **{f"fs.band.{name}.whole{tag(v)}": (lambda runs=runs, v=v: str(whole(runs, v)))
       for name, runs in PIPELINES.items() for v in (1.0, *NOISES)},
    **{f"fs.band.{name}.met_all{tag(v)}": (lambda runs=runs, v=v: str(met_all(runs, v)))
       for name, runs in PIPELINES.items() for v in (1.0, NOISES[0])},
    **{f"fs.band.{name}.met{k}_{x}": (lambda runs=runs, k=k, x=x: str(met(runs, k, x)))
       for name, runs in PIPELINES.items() for k, x in TARGETS},
}  # fmt: skip
