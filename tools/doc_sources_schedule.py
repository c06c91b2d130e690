"""dmd's schedule (benchmarks/dmd_schedule.sh, session 21) for docs/few_step.md and the README: at batch 16, a
longer EMA of the student, a learning rate decayed to 0, 5 + 8 minutes, and one step from a smaller starting noise
(--noise-scale 0.75 to 0.45), and the same change on a conditional teacher; render_docs.py merges these."""

from doc_sources import load_jsonl, table
from doc_sources_batch import B8, B16, B16_LR3, TARGETS, key, met_all, ratio, read, read_ratio, steps, target_rows
from doc_sources_redraw import AG15_25, draw_ratio, mean_read, met, proxy_line, reading, reads_along, run_chains

S1 = "chain 1, seed 1"  # the screening student of sessions 19-21
NOISES = (1.0, 0.85, 0.75, 0.65)  # the starting noise scales each setting's six draws were scored at, one step
SMALLER = NOISES[2:]  # this session's
LOWEST = (0.55, 0.45)  # the new default's six draws only
EMA998 = {label: run.replace("s20-", "s21-") + "-ema998" for label, run in B16.items()}  # batch 16, --ema-decay 0.998
GAN0 = {label: f"{EMA998[label]}-gan0" for label in ("chain 1, seed 1", "chain 0, seed 0", "chain 1, seed 2")}
SETTINGS = {  # dmd's setting -> (its name in the tables, {draw label: run})
    "64": ("batch 64", AG15_25), "16": ("batch 16", B16), "16ema998": ("batch 16, --ema-decay 0.998", EMA998),
    "8": ("batch 8", B8), "16lr3": ("batch 16, --lr 3e-5", B16_LR3),
}  # fmt: skip
SCREEN = {  # run on chain 1's first student -> dmd's change (all at batch 16; dmd's EMA is 0.995 a step)
    B16[S1]: "none (session 20)",
    "s21-s1-dmd25-b16-ema998": "--ema-decay 0.998",
    "s21-s1-dmd25-b16-ema999": "--ema-decay 0.999",
    "s21-s1-dmd25-b16-ema998-gan01": "--ema-decay 0.998 --dmd-gan 0.1",
    "s21-s1-dmd25-b16-ema998-gan0": "--ema-decay 0.998 --dmd-gan 0",
    B16_LR3[S1]: "--lr 3e-5 (session 20)",
    "s21-s1-dmd25-b16-lr3-ema998": "--lr 3e-5 --ema-decay 0.998",
    "s21-s1-dmd25-b16-lr5dec": "--lr 5e-5, decayed linearly to 0",
    "s21-s1-dmd25-b16-lr10dec-fake5": "--lr 1e-4 --dmd-fake-lr 5e-4, decayed linearly to 0",
    "s20-s1-dmd25-b16-lr5": "--lr 5e-5 (session 20)",
}  # fmt: skip
MINUTES = {  # draw -> (5 + 8 minutes at batch 64 and --lr 5e-5 (session 19), the same at batch 16 and --lr 2e-5)
    "chain 0, seed 0": ("s19-s0-agtraj5-dmd8", "s21-s0-agtraj5-dmd8-b16"),
    "chain 1, seed 1": ("s19-s1-agtraj5-dmd8", "s21-s1-agtraj5-dmd8-b16"),
}  # fmt: skip


def s(noise_scale: float) -> str:
    return f"S = {noise_scale:g}"


def tag(noise_scale: float) -> str:
    """A noise scale in a marker's name: 1 -> '', 0.85 -> '85'."""
    return "" if noise_scale == 1.0 else f"{noise_scale:g}"[2:]


def t_dmd_schedule() -> str:
    """Each screening run: its change, steps, readable at 1 step (S = 1, 0.75), FID ratio at 1, 2, 4 steps."""
    rows = []
    for run, change in SCREEN.items():
        rows.append([change, f"{steps(run):,}", read(run), *(ratio(S1, run, k) for k in (1, 2, 4)),
                     read_ratio(S1, run, 0.75)])  # fmt: skip
    return table(["dmd's change (batch 16)", "student steps", "readable, 1 step", "FID / teacher-50, 1 step",
                  "2 steps", "4 steps", f"readable at {s(0.75)} (FID / teacher-50)"], rows)  # fmt: skip


def t_dmd_minutes16() -> str:
    """Per draw and batch: 8 minutes of dmd after 5 of trajectories, readable and FID ratio at 1, 2, 4 steps."""
    rows = []
    for label, runs in MINUTES.items():
        for batch, run in zip(("64, --lr 5e-5", "16"), runs):
            rows.append([label, batch, read(run),
                         *(draw_ratio(label, proxy_line(run, k)) for k in (1, 2, 4)), reads_along(run)])  # fmt: skip
    return table(["draw", "dmd's batch", "readable, 1 step", "FID / teacher-50, 1 step", "2 steps", "4 steps",
                  "readable during the 8 minutes"], rows)  # fmt: skip


def t_dmd_ema_draws() -> str:
    """The six draws at batch 16 with dmd's EMA at 0.995 and 0.998: FID ratio at 1, 2, 4 steps, readable."""
    rows = []
    for label in B16:
        for name in ("16", "16ema998"):
            run = SETTINGS[name][1][label]
            rows.append([label, SETTINGS[name][0], f"{steps(run):,}", *(ratio(label, run, k) for k in (1, 2, 4)),
                         read(run), read_ratio(label, run, 0.75)])  # fmt: skip
    return table(["draw", "dmd", "student steps", "FID / teacher-50, 1 step", "2 steps", "4 steps", "readable, 1 step",
                  f"readable at {s(0.75)} (FID / teacher-50)"], rows)  # fmt: skip


COND_FILE = "one_step_cpu/dmd_schedule_mnist_cond.jsonl"  # the defaults on a conditional teacher (one draw)
COND_TEACHER = "s21-cond"  # the default recipe with --conditional, 15 minutes; its students below
COND = {"s21-cond-dmd-b64": "batch 64, --ema-decay 0.995 (its defaults from this teacher)",
        "s21-cond-dmd-b16": "batch 16, --ema-decay 0.998 (from an unconditional one)"}  # fmt: skip


def cond_fid(run: str, steps: int | None = None) -> float:
    """A class-conditional FID of runs/<run> (grid_search.py --labels): the student at `steps` on the jump grid,
    or (steps None) the teacher's default sampler guided at 3."""
    return next(r["fid"] for r in load_jsonl(COND_FILE) if r["checkpoint"] == f"runs/{run}/checkpoints/last.pt"
                and (r["grid"] is None if steps is None else len(r["grid"] or ()) == steps))  # fmt: skip


def cond_ratio(run: str, steps: int) -> str:
    """The student's FID at `steps` (its guidance in its weights) over the teacher's guided 50-step FID."""
    return f"{cond_fid(run, steps) / cond_fid(COND_TEACHER):.2f}x"


def t_dmd_cond() -> str:
    """dmd's defaults before and now from one conditional trajectory student: FID (ratio) at 1, 2, 4 steps."""
    rows = [[name, f"{steps(run):,}", *(f"{cond_fid(run, k):.2f} ({cond_ratio(run, k)})" for k in (1, 2, 4))]
            for run, name in COND.items()]  # fmt: skip
    return table(["dmd", "student steps", "FID (/ teacher guided at 3, 50 steps), 1 step", "2 steps", "4 steps"], rows)


def t_dmd_gan0() -> str:
    """The longer EMA without the GAN term on three draws: one step readable (FID ratio) at each S; 2, 4 steps."""
    rows = [[label, f"{steps(run):,}", *(read_ratio(label, run, v) for v in NOISES),
             *(ratio(label, run, k) for k in (2, 4))] for label, run in GAN0.items()]  # fmt: skip
    return table(["draw", "student steps", *(f"readable, 1 step, {s(v)} (FID / teacher-50)" for v in NOISES),
                  "FID / teacher-50, 2 steps", "4 steps"], rows)  # fmt: skip


BY_SETTING = {name: run_chains(runs) for name, (_, runs) in SETTINGS.items()}


def read_range(setting: str, k: int) -> str:
    """The lowest and highest readable per 100 at k steps over the setting's six draws: 'a-b'."""
    reads = sorted(proxy_line(run, k)["per_100"] for run in BY_SETTING[setting])
    return f"{reads[0]:.1f}-{reads[-1]:.1f}"


def read80(setting: str, k: int) -> int:
    """How many of the setting's six draws read 80 per 100 or more at k steps."""
    return sum(proxy_line(run, k)["per_100"] >= 80 for run in BY_SETTING[setting])


def t_dmd_schedule_targets() -> str:
    """Per setting: how many of the six draws meet each of issue 24's targets; the mean readable per 100."""
    rows = target_rows(list(BY_SETTING.values()))
    rows.append(["all four at once", *(str(met_all(BY_SETTING[b])) for b in SETTINGS)])
    for noise_scale in SMALLER:
        for x in (2.0, 1.5):
            rows.append([f"1 step at {s(noise_scale)} within {x:g}x",
                         *(str(met(BY_SETTING[b], 1, x, noise_scale)) for b in SETTINGS)])  # fmt: skip
    for noise_scale in NOISES:
        rows.append([f"80 readable per 100 at one step, {s(noise_scale)}",
                     *(str(reading(BY_SETTING[b], 80, noise_scale)) for b in SETTINGS)])  # fmt: skip
    for noise_scale in NOISES:
        rows.append([f"mean readable per 100, one step, {s(noise_scale)}",
                     *(f"{mean_read(BY_SETTING[b], noise_scale):.1f}" for b in SETTINGS)])  # fmt: skip
    return table(["of the six draws", *(name for name, _ in SETTINGS.values())], rows)


NEW = BY_SETTING["16ema998"]  # dmd's defaults from an unconditional teacher since session 21
SCHEDULE_TABLES = {"fs_dmd_schedule": t_dmd_schedule, "fs_dmd_minutes16": t_dmd_minutes16,
                   "fs_dmd_ema_draws": t_dmd_ema_draws, "fs_dmd_schedule_targets": t_dmd_schedule_targets,
                   "fs_dmd_gan0": t_dmd_gan0, "fs_dmd_cond": t_dmd_cond}  # fmt: skip
SCHEDULE_NUMBERS = {
    "fs.sched.draws": lambda: str(len(B16)),
    **{f"fs.sched.{b}.met_all": (lambda b=b: str(met_all(BY_SETTING[b]))) for b in SETTINGS},
    **{f"fs.sched.{b}.read_range{k}": (lambda b=b, k=k: read_range(b, k)) for b in SETTINGS for k in (2, 4)},
    **{f"fs.sched.{b}.read80_steps{k}": (lambda b=b, k=k: str(read80(b, k))) for b in SETTINGS for k in (2, 4)},
    "fs.sched.cond.teacher_fid": lambda: f"{cond_fid(COND_TEACHER):.2f}",
    **{f"fs.sched.16ema998.mean_read{tag(v)}": (lambda v=v: f"{mean_read(NEW, v):.1f}") for v in LOWEST},
    **{f"fs.sched.16ema998.met1_2.0_{tag(v)}": (lambda v=v: str(met(NEW, 1, 2.0, v))) for v in LOWEST},
    **{f"fs.sched.16ema998.read80{tag(v)}": (lambda v=v: str(reading(NEW, 80, v))) for v in LOWEST},
    "fs.sched.before.met_all": lambda: str(max(met_all(BY_SETTING[b]) for b in ("64", "16", "8", "16lr3"))),
    **{f"fs.sched.{b}.met{k}_{x}": (lambda b=b, k=k, x=x: str(met(BY_SETTING[b], k, x)))
       for b in SETTINGS for k, x in TARGETS},
    **{f"fs.sched.{b}.met1_{x}_{tag(v)}": (lambda b=b, x=x, v=v: str(met(BY_SETTING[b], 1, x, v)))
       for b in SETTINGS for x in (2.0, 1.5) for v in SMALLER},
    **{f"fs.sched.{b}.mean_read{tag(v)}": (lambda b=b, v=v: f"{mean_read(BY_SETTING[b], v):.1f}")
       for b in SETTINGS for v in NOISES},
    **{f"fs.sched.{b}.read80{tag(v)}": (lambda b=b, v=v: str(reading(BY_SETTING[b], 80, v)))
       for b in SETTINGS for v in NOISES},
    **{f"fs.sched.{run}.read1": (lambda run=run: read(run)) for run in SCREEN},
    **{f"fs.sched.{run}.read75": (lambda run=run: read(run, 0.75)) for run in SCREEN},
    **{f"fs.sched.{run}.u{k}": (lambda run=run, k=k: ratio(S1, run, k)) for run in SCREEN for k in (1, 2, 4)},
    **{f"fs.sched.{run}.steps": (lambda run=run: f"{steps(run):,}") for run in SCREEN},
    "fs.sched.gan0.draws": lambda: str(len(GAN0)),
    **{f"fs.sched.gan0.met{k}_{x}": (lambda k=k, x=x: str(met(run_chains(GAN0), k, x)))
       for k, x in TARGETS},
    "fs.sched.gan0.mean_read": lambda: f"{mean_read(GAN0.values()):.1f}",
    **{f"fs.sched.minutes.{key(d)}.{i}.read1": (lambda run=run: read(run))
       for d, runs in MINUTES.items() for i, run in enumerate(runs)},
    **{f"fs.sched.minutes.{key(d)}.{i}.u{k}": (lambda d=d, run=run, k=k: draw_ratio(d, proxy_line(run, k)))
       for d, runs in MINUTES.items() for i, run in enumerate(runs) for k in (1, 2, 4)},
    **{f"fs.sched.minutes.{key(d)}.curve": (lambda run=runs[1]: reads_along(run)) for d, runs in MINUTES.items()},
}  # fmt: skip
