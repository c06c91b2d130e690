"""A deeper student (benchmarks/grow_student.sh, session 23) for docs/few_step.md and the README: `distill
--grow-student 4`, the teacher's U-Net with four more residual blocks at its lowest resolution, in the trajectory
stage and then dmd, on the six draws of the default pipeline; render_docs.py merges these."""

from doc_sources import load_jsonl, table
from doc_sources_band import DRAWS as BAND_DRAWS
from doc_sources_band import PIPELINES as BAND_PIPELINES
from doc_sources_band import whole
from doc_sources_batch import TARGETS, met_all, ratio, read, read_ratio, steps, target_rows
from doc_sources_redraw import mean_read, met, proxy_line, reading, run_chains
from doc_sources_schedule import tag

SPEED = "one_step_cpu/grow_student_speed.jsonl"  # few_step_ablation/one_step_speed.py
NOISES = (1.0, 0.65)  # the starting noises each final student was scored at, one step
GROWN = {  # draw -> the prefix of its grown pipeline's runs: <prefix>-traj (8 minutes), <prefix>-dmd (5 more)
    "chain 1, seed 1": "s23-s1-grow4x10", "chain 1, seed 2": "s23-s1-seed2-grow4x10",
    "chain 1, seed 3": "s23-s1-seed3-grow4x10", "chain 0, seed 0": "s23-s0-grow4x10",
    "chain 0, seed 2": "s23-s0-seed2-grow4x10", "chain 0, seed 3": "s23-s0-seed3-grow4x10",
}  # fmt: skip
SCREEN = {  # dmd alone grown, its new blocks at dmd's own step: run -> (draw, the default dmd run of that student)
    "s23-s1-dmd25-grow4": "chain 1, seed 1", "s23-s0-dmd25-grow4": "chain 0, seed 0",
}  # fmt: skip
# ... and grown with its trajectory stage autoguided at 2.5 on [0.15 T, T) (few_step_ablation/guidance_interval.py)
BAND_GROWN = {label: prefix.replace("grow4x10", "band15-grow4x10") for label, prefix in GROWN.items()}
PIPELINES = {
    "default": BAND_PIPELINES["default"],
    "grown": run_chains({label: f"{prefix}-dmd" for label, prefix in GROWN.items()}),
    "band": BAND_PIPELINES["band"],
    "band_grown": run_chains({label: f"{prefix}-dmd" for label, prefix in BAND_GROWN.items()}),
}
PIPELINE_NAMES = {"default": "the default pipeline", "grown": "--grow-student 4",
                  "band": "trajectories on the band (session 22)",
                  "band_grown": "trajectories on the band, --grow-student 4"}  # fmt: skip


def stages(label: str) -> list[tuple[str, str, str, bool]]:
    """A draw's runs: (run, its network, its trajectory stage's guidance, whether dmd followed): the default
    pipeline's, the grown one's, then the grown one's on the band."""
    traj, default, _ = BAND_DRAWS[label]
    plain, band = "1.5, every level", "2.5 on [0.15 T, T)"
    runs = [(traj, "the teacher's", plain, False), (default, "the teacher's", plain, True)]
    for prefix, guided in ((GROWN[label], plain), (BAND_GROWN[label], band)):
        runs += [(f"{prefix}-traj", "+ 4 blocks", guided, False), (f"{prefix}-dmd", "+ 4 blocks", guided, True)]
    return runs


def scores(label: str, run: str) -> list[str]:
    """A final run's cells: readable at one step, FID / teacher-50 at 1, 2 and 4 steps, one step at S = 0.65."""
    return [read(run), *(ratio(label, run, k) for k in (1, 2, 4)), read_ratio(label, run, 0.65)]


def whole_cell(label: str, run: str) -> str:
    """ "yes" if the run meets issue 24 whole with one step from 0.65 times the noise (doc_sources_band.whole)."""
    return "yes" if whole(run_chains({label: run}), 0.65) else "no"


def t_grow_students() -> str:
    """Per draw and network: the trajectory student's and the final one's readable count and FID ratios."""
    rows = []
    for label in GROWN:
        for run, net, guided, final in stages(label):
            cells = scores(label, run) if final else [read(run), ratio(label, run, 1), "-", "-", "-"]
            rows.append([label, net, guided, "+ 5 min dmd" if final else "-", f"{steps(run):,}", *cells])
    return table(["draw", "student network", "8 min trajectories autoguided at", "then", "student steps",
                  "readable, 1 step", "FID / teacher-50, 1 step", "2 steps", "4 steps",
                  "readable at S = 0.65 (FID / teacher-50)"], rows)  # fmt: skip


def targets_table(settings: dict[str, dict[str, str]]) -> str:
    """Per setting (its name -> {run: its chain}), over the six draws: each FID target's count, all at once,
    readable counts and means, and the issue whole."""
    rows = target_rows(list(settings.values()))
    rows.append(["all four at once", *(str(met_all(r)) for r in settings.values())])
    for v in NOISES:
        rows.append([f"mean readable per 100, one step, S = {v:g}",
                     *(f"{mean_read(r, v):.1f}" for r in settings.values())])  # fmt: skip
        rows.append([f"80 readable per 100 or more, one step, S = {v:g}",
                     *(str(reading(r, 80, v)) for r in settings.values())])  # fmt: skip
    for v in NOISES:
        rows.append([f"1 step at S = {v:g} reading 80 or more within 2x, 2 and 4 steps within their targets",
                     *(str(whole(r, v)) for r in settings.values())])  # fmt: skip
    return table([f"of the {len(GROWN)} draws", *settings], rows)


def t_grow_targets() -> str:
    """Per pipeline: targets_table."""
    return targets_table({PIPELINE_NAMES[name]: runs for name, runs in PIPELINES.items()})


def t_grow_screen() -> str:
    """dmd alone grown (new blocks at its own step) beside the default dmd run from the same student."""
    rows = []
    for run, label in SCREEN.items():
        default = BAND_DRAWS[label][1]
        for name, r in (("the teacher's (default)", default), ("+ 4 blocks at dmd's step", run)):
            rows.append([label, name, f"{steps(r):,}", *scores(label, r)])
    return table(["trajectory student", "dmd's network", "student steps", "readable, 1 step",
                  "FID / teacher-50, 1 step", "2 steps", "4 steps", "readable at S = 0.65 (FID / teacher-50)"],
                 rows)  # fmt: skip


def grown_wins(field: str, k: int = 1, stage: str = "dmd") -> str:
    """On how many draws the grown run beats the default pipeline's at k steps: more readable ("per_100") or a
    lower "fid"; the final runs ("dmd") or the trajectory students ("traj")."""
    sign = 1 if field == "per_100" else -1
    wins = 0
    for label, prefix in GROWN.items():
        default = BAND_DRAWS[label][1 if stage == "dmd" else 0]  # (trajectory student, default dmd run, ...)
        wins += sign * (proxy_line(f"{prefix}-{stage}", k)[field] - proxy_line(default, k)[field]) > 0
    return str(wins)


EIGHT = {"chain 1, seed 1": "s23-s1-grow8x10", "chain 1, seed 3": "s23-s1-seed3-grow8x10"}  # --grow-student 8


def t_grow_blocks() -> str:
    """Chain 1's two weakest draws grown by 4 and by 8 blocks: trajectory steps, the final run's scores."""
    rows = []
    for label, prefix8 in EIGHT.items():
        for blocks, prefix in ((4, GROWN[label]), (8, prefix8)):
            rows.append([label, str(blocks), f"{steps(prefix + '-traj'):,}", *scores(label, f"{prefix}-dmd")])
    return table(["draw", "blocks grown", "trajectory steps (8 min)", "readable, 1 step", "FID / teacher-50, 1 step",
                  "2 steps", "4 steps", "readable at S = 0.65 (FID / teacher-50)"], rows)  # fmt: skip


# session 24's screens: draw -> [(its runs' prefix, where the blocks are and their step, the trajectory stage's
# guidance, its final run's suffix[, another run's prefix whose trajectory student it started from])]:
# <prefix>-traj (8 minutes), <prefix>-<suffix> (5 more of dmd)
AT14, X3, AGAIN = "4 at 14x14", "4 at 7x7, 3 x the step", "4 at 7x7 (default), again"
FAST10, FAST3 = "4 at 7x7, again; in dmd 10 x its step", "4 at 7x7, again; in dmd 3 x its step"
FAST3_23 = "4 at 7x7, session 23's; in dmd 3 x its step"
EVERY, BAND25, BAND20 = "1.5, every level", "2.5 on [0.15 T, T)", "2 on [0.15 T, T)"
SCREENS24 = {
    "chain 1, seed 1": [(GROWN["chain 1, seed 1"], "4 at 7x7 (default)", EVERY, "dmd"),
                        ("s24-s1-grow4x10-again", AGAIN, EVERY, "dmd"),
                        ("s24-s1-grow4at14", AT14, EVERY, "dmd"), ("s24-s1-grow4x3", X3, EVERY, "dmd"),
                        ("s24-s1-grow4x10-again", FAST10, EVERY, "dmdfast"),
                        ("s24-s1-grow4x10-again", FAST3, EVERY, "dmdfast3")],
    "chain 1, seed 3": [(GROWN["chain 1, seed 3"], "4 at 7x7 (default)", EVERY, "dmd"),
                        ("s24-s1-seed3-grow4x10-again", AGAIN, EVERY, "dmd"),
                        ("s24-s1-seed3-grow4at14", AT14, EVERY, "dmd"), ("s24-s1-seed3-grow4x3", X3, EVERY, "dmd"),
                        ("s24-s1-seed3-grow4x10-again", FAST10, EVERY, "dmdfast"),
                        ("s24-s1-seed3-grow4x10-again", FAST3, EVERY, "dmdfast3"),
                        (BAND_GROWN["chain 1, seed 3"], "4 at 7x7 (default)", BAND25, "dmd"),
                        ("s24-s1-seed3-band15w20-grow4", "4 at 7x7 (default)", BAND20, "dmd")],
    "chain 0, seed 0": [(GROWN["chain 0, seed 0"], "4 at 7x7 (default)", EVERY, "dmd"),
                        ("s24-s0-grow4x10", FAST3_23, EVERY, "dmdfast3", GROWN["chain 0, seed 0"]),
                        (BAND_GROWN["chain 0, seed 0"], "4 at 7x7 (default)", BAND25, "dmd"),
                        ("s24-s0-band15w20-grow4", "4 at 7x7 (default)", BAND20, "dmd")],
    **{label: [(GROWN[label], "4 at 7x7 (default)", EVERY, "dmd"),
               (GROWN[label].replace("s23", "s24"), FAST3_23, EVERY, "dmdfast3", GROWN[label])]
       for label in ("chain 0, seed 2", "chain 0, seed 3", "chain 1, seed 2")},
}  # fmt: skip


# the new blocks at 3 x dmd's step in dmd, on all six draws: chain 1's first and third from this session's
# trajectory students ("again"), the other four from session 23's
FAST3_RUNS = {label: f"{prefix}-{suffix}" for label, runs in SCREENS24.items()
              for prefix, _, _, suffix, *_ in runs if suffix == "dmdfast3"}  # fmt: skip
OTHER_FOUR = ("chain 0, seed 0", "chain 0, seed 2", "chain 0, seed 3", "chain 1, seed 2")


def fast3_more_read() -> str:
    """On how many of the other four draws one step at 3 x reads more than session 23's grown default."""
    return str(sum(proxy_line(FAST3_RUNS[label], 1)["per_100"] > proxy_line(f"{GROWN[label]}-dmd", 1)["per_100"]
                   for label in OTHER_FOUR))  # fmt: skip


def screen24_key(prefix: str, suffix: str) -> str:
    """How the doc names a screened run: its prefix, and the final run's suffix when that is not -dmd."""
    return prefix if suffix == "dmd" else f"{prefix}-{suffix}"


def t_grow_screens24() -> str:
    """Session 24's screens beside session 23's runs of the same draws: the trajectory student's one step, the final
    run's scores, and whether it meets the issue whole at S = 0.65."""
    rows = []
    for label, runs in SCREENS24.items():
        for prefix, blocks, guided, suffix, *start in runs:
            final, traj = f"{prefix}-{suffix}", f"{(start or [prefix])[0]}-traj"
            rows.append([label, blocks, guided, f"{steps(traj):,}", read(traj), *scores(label, final),
                         whole_cell(label, final)])  # fmt: skip
    return table(["draw", "blocks grown", "8 min trajectories autoguided at", "trajectory steps",
                  "trajectory student: readable, 1 step", "final: readable, 1 step", "FID / teacher-50, 1 step",
                  "2 steps", "4 steps", "readable at S = 0.65 (FID / teacher-50)", "issue whole at S = 0.65"],
                 rows)  # fmt: skip


def screen24_number(label: str, prefix: str, suffix: str, q: str) -> str:
    """One of a screened run's numbers: its trajectory student's readable count, or the final run's."""
    final = f"{prefix}-{suffix}"
    if q == "traj_read1":
        return read(prefix + "-traj") if suffix == "dmd" else "-"
    if q == "u65":
        return ratio(label, final, 1, 0.65)
    return read(final, 0.65) if q == "read65" else read(final) if q == "read1" else ratio(label, final, int(q[1:]))


def speed_rows() -> list[dict]:
    return load_jsonl(SPEED)


def speed(model: str) -> list[float]:
    """A model's images per second over the teacher's in each round, sorted."""
    return sorted(r["over_teacher"] for r in speed_rows() if r["model"] == model)


def speed_range(model: str) -> str:
    s = speed(model)
    return f"{s[0]:.0f}x" if s[0] == s[-1] else f"{s[0]:.0f}-{s[-1]:.0f}x"


def t_grow_speed() -> str:
    rows = [[r["model"], str(r["round"]), str(r["steps"]), f"{r['images_per_sec']:.1f}", f"{r['over_teacher']:.1f}x"]
            for r in speed_rows()]  # fmt: skip
    return table(["model", "round", "steps", "images per second", "/ teacher"], rows)


GROW_TABLES = {"fs_grow_students": t_grow_students, "fs_grow_targets": t_grow_targets, "fs_grow_screen": t_grow_screen,
               "fs_grow_speed": t_grow_speed, "fs_grow_blocks": t_grow_blocks,
               "fs_grow_screens24": t_grow_screens24}  # fmt: skip
GROW_NUMBERS = {
    "fs.grow.draws": lambda: str(len(GROWN)),
    **{f"fs.grow.{name}.mean_read{tag(v)}": (lambda runs=runs, v=v: f"{mean_read(runs, v):.1f}")
       for name, runs in PIPELINES.items() for v in NOISES},
    **{f"fs.grow.{name}.read80{tag(v)}": (lambda runs=runs, v=v: str(reading(runs, 80, v)))
       for name, runs in PIPELINES.items() for v in NOISES},
    **{f"fs.grow.{name}.whole{tag(v)}": (lambda runs=runs, v=v: str(whole(runs, v)))
       for name, runs in PIPELINES.items() for v in NOISES},
    **{f"fs.grow.{name}.met_all": (lambda runs=runs: str(met_all(runs))) for name, runs in PIPELINES.items()},
    **{f"fs.grow.{name}.met{k}_{x}": (lambda runs=runs, k=k, x=x: str(met(runs, k, x)))
       for name, runs in PIPELINES.items() for k, x in TARGETS},
    **{f"fs.grow.{run}.read1": (lambda run=run: read(run)) for run in SCREEN},
    **{f"fs.grow.{run}.u1": (lambda run=run, label=label: ratio(label, run, 1)) for run, label in SCREEN.items()},
    **{f"fs.grow.speed.{m}": (lambda m=m: speed_range(m)) for m in ("default", "grown")},
    **{f"fs.grow.{prefix}-dmd.read65": (lambda run=f"{prefix}-dmd": read(run, 0.65))
       for prefix in (*GROWN.values(), *BAND_GROWN.values())},
    **{f"fs.grow.{prefix}-dmd.read1": (lambda run=f"{prefix}-dmd": read(run)) for prefix in BAND_GROWN.values()},
    **{f"fs.grow.{prefix}-dmd.u{k}": (lambda run=f"{prefix}-dmd", label=label, k=k: ratio(label, run, k))
       for label, prefix in BAND_GROWN.items() for k in (1, 2, 4)},
    **{f"fs.grow24.{screen24_key(prefix, suffix)}.{q}": (
        lambda label=label, run=(prefix, suffix), q=q: screen24_number(label, *run, q))
       for label, runs in SCREENS24.items() for prefix, _, _, suffix, *_ in runs
       for q in ("traj_read1", "read1", "read65", "u1", "u2", "u4", "u65")},
    "fs.grow24.fast3.draws": lambda: str(len(FAST3_RUNS)),
    "fs.grow24.fast3.whole65": lambda: str(whole(run_chains(FAST3_RUNS), 0.65)),
    "fs.grow24.fast3.more_read": fast3_more_read,
    "fs.grow.more_read": lambda: grown_wins("per_100"),
    **{f"fs.grow.lower_fid{k}": (lambda k=k: grown_wins("fid", k)) for k in (1, 2, 4)},
    "fs.grow.traj_more_read": lambda: grown_wins("per_100", stage="traj"),
}  # fmt: skip
