"""dmd's batch (benchmarks/one_step_redraw.sh, session 20) for docs/few_step.md and the README: the same 5 minutes
of dmd autoguided at 2.5 from the 8-minute trajectory students, at smaller batches (more, noisier steps) and the
changes tried beside them; render_docs.py merges these."""

from doc_sources import load_jsonl, table
from doc_sources_redraw import AG15_25, draw_ratio, mean_read, met, proxy_line, reading, run_chains

STEPS = tuple(
    f"one_step_cpu/{name}_steps.jsonl" for name in ("dmd_batch", "dmd_schedule", "guidance_interval", "grow_student")
)
# sessions 20, 21, 22, 23: the student steps of each run
B16 = {  # draw label -> its student's dmd run at --batch-size 16 (otherwise AG15_25's run: the same seed)
    "chain 0, seed 0": "s20-s0-dmd25-b16", "chain 0, seed 2": "s20-s0-seed2-dmd25-b16",
    "chain 0, seed 3": "s20-s0-seed3-dmd25-b16", "chain 1, seed 1": "s20-s1-dmd25-b16",
    "chain 1, seed 2": "s20-s1-seed2-dmd25-b16", "chain 1, seed 3": "s20-s1-seed3-dmd25-b16",
}  # fmt: skip
B8 = {label: run.replace("-b16", "-b8") for label, run in B16.items()}  # ... and at --batch-size 8
B16_LR3 = {label: f"{run}-lr3" for label, run in B16.items()}  # ... and at 16 with --lr 3e-5
BATCHES = {"64": AG15_25, "16": B16, "8": B8, "16lr3": B16_LR3}  # dmd's setting -> {draw label: run}
SETTING = {"64": "64", "16": "16", "8": "8", "16lr3": "16, --lr 3e-5"}  # its name in the tables
SCREEN = {  # run -> (draw of its student, what differs from dmd's defaults besides the autoguidance at 2.5)
    AG15_25["chain 1, seed 1"]: ("chain 1, seed 1", "none (batch 64)"),
    "s20-s1-dmd25-gan0": ("chain 1, seed 1", "--dmd-gan 0"),
    "s20-s1-dmd25-b32": ("chain 1, seed 1", "--batch-size 32"),
    "s20-s1-dmd25-b16": ("chain 1, seed 1", "--batch-size 16"),
    "s20-s1-dmd25-b8": ("chain 1, seed 1", "--batch-size 8"),
    "s20-s1-dmd25-b4": ("chain 1, seed 1", "--batch-size 4"),
    "s20-s1-dmd25-b16-gan01": ("chain 1, seed 1", "--batch-size 16 --dmd-gan 0.1"),
    "s20-s1-dmd25-b16-lr3": ("chain 1, seed 1", "--batch-size 16 --lr 3e-5"),
    "s20-s1-dmd25-b16-lr5": ("chain 1, seed 1", "--batch-size 16 --lr 5e-5"),
    "s20-s1-dmd25-b16-lr5-tlo10": ("chain 1, seed 1", "--batch-size 16 --lr 5e-5, noise levels from 0.1 T"),
    "s20-s1-dmd25-b16-lr5-tlo20": ("chain 1, seed 1", "--batch-size 16 --lr 5e-5, noise levels from 0.2 T"),
    "s20-s1-dmd25-b16-chain2": ("chain 1, seed 1", "--batch-size 16 --dmd-chain 2"),
    "s20-s1-agtraj8-b32-dmd25-b16": ("chain 1, seed 1 (its trajectory stage at batch 32)", "--batch-size 16"),
    AG15_25["chain 1, seed 2"]: ("chain 1, seed 2", "none (batch 64)"),
    "s20-s1-seed2-dmd25-b32": ("chain 1, seed 2", "--batch-size 32"),
    AG15_25["chain 0, seed 0"]: ("chain 0, seed 0", "none (batch 64)"),
    "s20-s0-dmd25-b16-chain2": ("chain 0, seed 0", "--batch-size 16 --dmd-chain 2"),
}  # fmt: skip


def steps(run: str) -> int:
    """The student steps a run took (its summary.json, copied by one_step_redraw.sh or dmd_schedule.sh)."""
    return next(r["step"] for f in STEPS for r in load_jsonl(f) if r["run"] == f"runs/{run}")


def ratio(label: str, run: str, k: int, noise_scale: float = 1.0) -> str:
    """The run's FID at k steps over its draw's plain teacher at 50 steps."""
    return draw_ratio(label, proxy_line(run, k, noise_scale))


def read(run: str, noise_scale: float = 1.0, steps: int = 1) -> str:
    """Readable per 100 of runs/<run> at `steps` from `noise_scale` times the noise."""
    return f"{proxy_line(run, steps, noise_scale)['per_100']:.1f}"


def read_ratio(label: str, run: str, noise_scale: float) -> str:
    """One step from `noise_scale` times the noise: readable per 100 and, in brackets, the FID over the draw's
    plain teacher at 50 steps ("80.8 (1.64x)")."""
    return f"{read(run, noise_scale)} ({ratio(label, run, 1, noise_scale)})"


def t_dmd_batch() -> str:
    """Each screening run: its student, its change, its steps, 1 step readable, FID ratio at 1, 2, 4, S = 0.85."""
    rows = []
    for run, (label, change) in SCREEN.items():
        cells = [ratio(label, run, k) for k in (1, 2, 4)]
        s85 = read_ratio(label, run, 0.85)
        rows.append([label, change, f"{steps(run):,}", read(run), *cells, s85])
    return table(["trajectory student", "dmd's change", "student steps", "readable, 1 step", "FID / teacher-50, 1 step",
                  "2 steps", "4 steps", "readable at S = 0.85 (FID / teacher-50)"], rows)  # fmt: skip


def t_dmd_batch_draws() -> str:
    """The six draws at each batch of BATCHES: FID ratio at 1, 2, 4 steps, readable at S = 1 and 0.85."""
    rows = []
    for label in B16:
        for batch, runs in BATCHES.items():
            run = runs[label]
            cells = [ratio(label, run, k) for k in (1, 2, 4)]
            rows.append([label, SETTING[batch], f"{steps(run):,}", *cells, read(run), read(run, 0.85)])
    return table(["draw", "dmd's batch", "student steps", "FID / teacher-50, 1 step", "2 steps", "4 steps",
                  "readable, 1 step", "readable at S = 0.85"], rows)  # fmt: skip


BY_BATCH = {batch: run_chains(runs) for batch, runs in BATCHES.items()}
TARGETS = ((1, 2.0), (1, 1.5), (2, 1.3), (4, 1.1))  # (steps, FID limit over the teacher's 50 steps): issue 24's


def key(label: str) -> str:
    """'chain 1, seed 2' -> 'c1s2', a draw's name in the doc markers."""
    return "c{}s{}".format(*(word for word in label.replace(",", "").split() if word.isdigit()))


def step_range(batch: str) -> str:
    counts = sorted(steps(run) for run in BY_BATCH[batch])
    return f"{counts[0]:,}-{counts[-1]:,}"


def met_all(runs: dict[str, str], noise_scale: float = 1.0) -> int:
    """How many runs ({run: its chain}) meet every FID target of TARGETS at once (one step from `noise_scale`
    times the noise, two and four from all of it)."""
    return sum(all(met({run: chain}, k, x, noise_scale if k == 1 else 1.0) for k, x in TARGETS)
               for run, chain in runs.items())  # fmt: skip


def target_rows(settings: list[dict[str, str]]) -> list[list[str]]:
    """One row per FID target of TARGETS: how many runs of each setting ({run: its chain}) meet it."""
    return [[f"{k} step{'s' * (k > 1)} within {x:g}x the teacher's 50-step FID",
             *(str(met(runs, k, x)) for runs in settings)] for k, x in TARGETS]  # fmt: skip


def t_dmd_batch_targets() -> str:
    """Per batch: how many of the six draws meet each of issue 24's targets, the mean readable per 100."""
    rows = target_rows(list(BY_BATCH.values()))
    rows.append(["80 readable per 100 at one step", *(str(reading(BY_BATCH[b], 80)) for b in BATCHES)])
    rows.append(["... at --noise-scale 0.85", *(str(reading(BY_BATCH[b], 80, 0.85)) for b in BATCHES)])
    rows.append(["mean readable per 100, one step", *(f"{mean_read(BY_BATCH[b]):.1f}" for b in BATCHES)])
    rows.append(["... at --noise-scale 0.85", *(f"{mean_read(BY_BATCH[b], 0.85):.1f}" for b in BATCHES)])
    return table(["of the six draws", *(f"batch {SETTING[b]}" for b in BATCHES)], rows)


TRAJECTORY_BATCH = {"64": "s17-uncond-s1-agtraj8", "32": "s20-s1-agtraj8-b32"}  # chain 1's 8-min students, seed 1
BATCH_TABLES = {"fs_dmd_batch": t_dmd_batch, "fs_dmd_batch_draws": t_dmd_batch_draws,
                "fs_dmd_batch_targets": t_dmd_batch_targets}  # fmt: skip
BATCH_NUMBERS = {
    "fs.batch.draws": lambda: str(len(B16)),
    **{f"fs.batch.{b}.steps": (lambda b=b: step_range(b)) for b in BY_BATCH},
    **{f"fs.batch.{b}.mean_read": (lambda b=b: f"{mean_read(BY_BATCH[b]):.1f}") for b in BY_BATCH},
    **{f"fs.batch.{b}.mean_read85": (lambda b=b: f"{mean_read(BY_BATCH[b], 0.85):.1f}") for b in BY_BATCH},
    **{f"fs.batch.{b}.met{k}_{x}": (lambda b=b, k=k, x=x: str(met(BY_BATCH[b], k, x)))
       for b in BY_BATCH for k, x in TARGETS},
    **{f"fs.batch.{b}.read80": (lambda b=b: str(reading(BY_BATCH[b], 80))) for b in BY_BATCH},
    **{f"fs.batch.{b}.read80_85": (lambda b=b: str(reading(BY_BATCH[b], 80, 0.85))) for b in BY_BATCH},
    **{f"fs.batch.{b}.met1_2.0_85": (lambda b=b: str(met(BY_BATCH[b], 1, 2.0, 0.85))) for b in BY_BATCH},
    **{f"fs.batch.{b}.more_read": (lambda b=b: str(sum(proxy_line(BATCHES[b][d], 1)["per_100"]
                                                       > proxy_line(AG15_25[d], 1)["per_100"] for d in B16)))
       for b in ("16", "8", "16lr3")},
    **{f"fs.batch.{b}.lower_fid1": (lambda b=b: str(sum(proxy_line(BATCHES[b][d], 1)["fid"]
                                                        < proxy_line(AG15_25[d], 1)["fid"] for d in B16)))
       for b in ("16", "8", "16lr3")},
    **{f"fs.batch.{run}.read1": (lambda run=run: read(run)) for run in SCREEN},
    **{f"fs.batch.{run}.read85": (lambda run=run: read(run, 0.85)) for run in SCREEN},
    **{f"fs.batch.{run}.u{k}": (lambda run=run, k=k: ratio(SCREEN[run][0], run, k))
       for run in SCREEN for k in (1, 2, 4)},
    **{f"fs.batch.{run}.steps": (lambda run=run: f"{steps(run):,}") for run in SCREEN},
    **{f"fs.batch.traj{b}.read1": (lambda run=run: read(run)) for b, run in TRAJECTORY_BATCH.items()},
    **{f"fs.batch.traj{b}.u1": (lambda run=run: ratio("chain 1", run, 1)) for b, run in TRAJECTORY_BATCH.items()},
    **{f"fs.batch.{key(d)}.{b}.u{k}": (lambda d=d, run=runs[d], k=k: ratio(d, run, k))
       for d in B16 for b, runs in BATCHES.items() for k in (1, 2, 4)},
    **{f"fs.batch.{key(d)}.{b}.read1": (lambda run=runs[d]: read(run)) for d in B16 for b, runs in BATCHES.items()},
}  # fmt: skip
