"""Issue 24's protocol on fresh teachers (session 27; benchmarks/fresh_teachers.sh) for docs/few_step.md and the
README; render_docs.py merges these. Every line is in one file, fresh_teachers_mnist_uncond.jsonl
(readability_proxy.py), and the steps each run took in fresh_teachers_steps.jsonl."""

from doc_sources import load_json, load_jsonl, table
from doc_sources_batch import steps as earlier_steps
from doc_sources_codes import CODED
from doc_sources_quality import span
from doc_sources_redraw import proxy_line
from doc_sources_redraw import teacher as s17_teacher

FILE = "one_step_cpu/fresh_teachers_mnist_uncond.jsonl"
STEPS = "one_step_cpu/fresh_teachers_steps.jsonl"
SPEED = "one_step_cpu/fresh_teachers_speed.jsonl"  # few_step_ablation/one_step_speed.py, 3 rounds
DRAWS = {"chain 0, seed 0": (0, 0), "chain 0, seed 2": (0, 2), "chain 0, seed 3": (0, 3),
         "chain 1, seed 1": (1, 1), "chain 1, seed 2": (1, 2), "chain 1, seed 3": (1, 3)}  # fmt: skip
SCALES = (1.0, 0.85, 0.75, 0.65)  # the starting noise of the one-step counts
# the targets: k steps within this multiple of the teacher's 50-step FID
LIMITS = {1: 2.0, 2: 1.3, 4: 1.1}


def line(name: str, steps: int, noise_scale: float = 1.0, file: str = FILE) -> dict:
    """The readability_proxy line of runs/<name> at `steps` from `noise_scale` times the noise (in `file`)."""
    path = f"runs/{name}/checkpoints/last.pt"
    return next(r for r in load_jsonl(file)
                if r["checkpoint"] == path and r["steps"] == steps and r["noise_scale"] == noise_scale)  # fmt: skip


def teacher(chain: int) -> dict:
    """The fresh teacher's default sampler (50 steps of DPM-Solver++(2M) SDE)."""
    return line(f"s27-uncond-s{chain}", 50)


def prefix(label: str) -> str:
    """The draw's runs at distill's defaults: <prefix>-traj (8 minutes), <prefix>-dmd (5 more)."""
    chain, seed = DRAWS[label]
    return f"s27-s{chain}-seed{seed}"


def run(label: str, stage: str) -> str:
    return f"{prefix(label)}-{stage}"


def over_run(label: str, name: str, steps: int, noise_scale: float = 1.0) -> float:
    """runs/<name>'s FID at `steps` over the 50-step FID of the teacher of the draw's chain."""
    return line(name, steps, noise_scale)["fid"] / teacher(DRAWS[label][0])["fid"]


def over(label: str, stage: str, steps: int, noise_scale: float = 1.0) -> float:
    """over_run for the draw's own run of `stage` (traj or dmd)."""
    return over_run(label, run(label, stage), steps, noise_scale)


def s26_line(label: str) -> dict:
    """Session 26's coded dmd student of the same draw on session 17's teacher, one step."""
    return proxy_line(f"{CODED[label]}-dmd", 1)


def steps_line(name: str, file: str = STEPS) -> dict:
    """The steps_taken line of runs/<name> (benchmarks/steps_taken.sh) in `file`."""
    return next(r for r in load_jsonl(file) if r["run"] == f"runs/{name}")


def steps_taken(name: str) -> int:
    return steps_line(name)["step"]


def fid_targets(label: str, noise_scale: float = 1.0) -> bool:
    """One step (from `noise_scale` times the noise) within 2x, two within 1.3x, four within 1.1x."""
    return all(over(label, "dmd", k, noise_scale if k == 1 else 1.0) <= limit for k, limit in LIMITS.items())


def whole(label: str, noise_scale: float = 1.0) -> bool:
    """The issue whole on one draw: the FID targets, and 80 of the first 100 one-step samples read."""
    return fid_targets(label, noise_scale) and line(run(label, "dmd"), 1, noise_scale)["first_100"] >= 80


def t_fresh_teachers() -> str:
    rows = []
    for chain in (0, 1):
        t = teacher(chain)
        rows.append([f"chain {chain}", f"{steps_taken(f's27-uncond-s{chain}'):,}", f"{t['fid']:.2f}",
                     f"{t['per_100']:.1f}", str(t["first_100"])])  # fmt: skip
    return table(["teacher (15 min, train --seed = chain)", "steps", "FID, 50 steps", "readable per 100",
                  "of the first 100"], rows)  # fmt: skip


def t_fresh_draws() -> str:
    """Per draw: the trajectory student, then after dmd: readable per 100 (of the first 100) and FID ratios."""
    rows = []
    for label in DRAWS:
        traj, dmd = run(label, "traj"), run(label, "dmd")
        t1 = line(traj, 1)
        cells = [f"{line(dmd, 1, s)['per_100']:.1f} ({line(dmd, 1, s)['first_100']}; {over(label, 'dmd', 1, s):.2f}x)"
                 for s in SCALES]  # fmt: skip
        rows.append([label, f"{steps_taken(traj):,}", f"{t1['per_100']:.1f} ({over(label, 'traj', 1):.2f}x)",
                     f"{steps_taken(dmd):,}", *cells, *(f"{over(label, 'dmd', k):.2f}x" for k in (2, 4))])  # fmt: skip
    return table(["draw", "trajectory steps (8 min)", "trajectory student, 1 step: readable (FID / teacher-50)",
                  "dmd steps (5 min)", *(f"after dmd, 1 step, S = {s:g}: readable (first 100; FID / teacher-50)"
                                         for s in SCALES),
                  "2 steps, FID / teacher-50", "4 steps"], rows)  # fmt: skip


# the second draw of each chain again at the step counts session 26's same draws took (on session 17's teachers)
MATCHED = {"chain 0, seed 2": "s27-s0-seed2-steps26", "chain 1, seed 2": "s27-s1-seed2-steps26"}


def draw_cells(label: str, name: str) -> list[str]:
    """Steps, the trajectory student's readable (FID ratio), dmd's steps, one step after dmd at S = 1 and 0.65
    (readable, first 100, FID ratio), two and four steps' FID ratios."""
    t = teacher(DRAWS[label][0])["fid"]
    traj, dmd = line(f"{name}-traj", 1), [line(f"{name}-dmd", 1, s) for s in (1.0, 0.65)]
    return [f"{steps_taken(f'{name}-traj'):,}", f"{traj['per_100']:.1f} ({traj['fid'] / t:.2f}x)",
            f"{steps_taken(f'{name}-dmd'):,}",
            *(f"{r['per_100']:.1f} ({r['first_100']}; {r['fid'] / t:.2f}x)" for r in dmd),
            *(f"{line(f'{name}-dmd', k)['fid'] / t:.2f}x" for k in (2, 4))]  # fmt: skip


def t_fresh_matched() -> str:
    rows = []
    for label, steps26 in MATCHED.items():
        rows.append([label, "8 + 5 minutes", *draw_cells(label, prefix(label))])
        rows.append([label, "session 26's steps", *draw_cells(label, steps26)])
    return table(["draw", "budget", "trajectory steps", "trajectory student, 1 step: readable (FID / teacher-50)",
                  "dmd steps", "after dmd, 1 step, S = 1: readable (first 100; FID / teacher-50)", "S = 0.65",
                  "2 steps, FID / teacher-50", "4 steps"], rows)  # fmt: skip


def t_fresh_targets() -> str:
    """Over the six draws, per starting noise of the one step: each target's count and the means."""
    n = len(DRAWS)
    rows = [
        [f"1 step within {LIMITS[1]:g}x the teacher's 50-step FID",
         *(str(sum(over(d, "dmd", 1, s) <= LIMITS[1] for d in DRAWS)) for s in SCALES)],
        ["1 step within 1.5x (the stretch)", *(str(sum(over(d, "dmd", 1, s) <= 1.5 for d in DRAWS)) for s in SCALES)],
        ["80 or more of the first 100 read", *(str(sum(line(run(d, "dmd"), 1, s)["first_100"] >= 80 for d in DRAWS))
                                              for s in SCALES)],
        ["mean readable per 100 (of 1,000)",
         *(f"{sum(line(run(d, 'dmd'), 1, s)['per_100'] for d in DRAWS) / n:.1f}" for s in SCALES)],
        ["the issue whole (with 2 steps within 1.3x and 4 within 1.1x)", *(str(sum(whole(d, s) for d in DRAWS))
                                                                          for s in SCALES)],
    ]  # fmt: skip
    return table([f"of the {n} draws, one step at", *(f"S = {s:g}" for s in SCALES)], rows)


FRESH_TABLES = {"fs_fresh_teachers": t_fresh_teachers, "fs_fresh_draws": t_fresh_draws,
                "fs_fresh_targets": t_fresh_targets, "fs_fresh_matched": t_fresh_matched}  # fmt: skip


def first_100(noise_scale: float) -> str:
    """Readable among the first 100 one-step samples, per draw in DRAWS' order."""
    return ", ".join(str(line(run(d, "dmd"), 1, noise_scale)["first_100"]) for d in DRAWS)


def mean_read(noise_scale: float, stage: str = "dmd") -> str:
    return f"{sum(line(run(d, stage), 1, noise_scale)['per_100'] for d in DRAWS) / len(DRAWS):.1f}"


def count_range(values) -> str:
    """The range of whole counts, "1,001-1,075" (doc_sources_quality.span)."""
    return span(list(values), "{:,}".format)


def ratio_range(values) -> str:
    """The range of FID ratios, "1.04-1.52x"."""
    return span(list(values), "{:.2f}".format) + "x"


def lowers(noise_scale: float) -> int:
    """On how many draws one step from `noise_scale` times the noise scores a lower FID than from the full noise."""
    return sum(line(run(d, "dmd"), 1, noise_scale)["fid"] < line(run(d, "dmd"), 1)["fid"] for d in DRAWS)


FRESH_NUMBERS = {
    "fs.fresh.cpu": lambda: load_json("one_step_cpu/fresh-teachers/machine.json")["cpu"],
    "fs.fresh.teacher_steps": lambda: " and ".join(f"{steps_taken(f's27-uncond-s{c}'):,}" for c in (0, 1)),
    "fs.fresh.s17_teacher_steps": lambda: " and ".join(f"{s17_teacher(f'chain {c}')['checkpoint_step']:,}"
                                                       for c in (0, 1)),
    "fs.fresh.teacher_fid": lambda: " and ".join(f"{teacher(c)['fid']:.2f}" for c in (0, 1)),
    "fs.fresh.s17_teacher_fid": lambda: " and ".join(f"{s17_teacher(f'chain {c}')['fid']:.2f}" for c in (0, 1)),
    "fs.fresh.teacher_read": lambda: " and ".join(f"{teacher(c)['per_100']:.1f}" for c in (0, 1)),
    "fs.fresh.traj_steps": lambda: count_range(steps_taken(run(d, "traj")) for d in DRAWS),
    "fs.fresh.dmd_steps": lambda: count_range(steps_taken(run(d, "dmd")) for d in DRAWS),
    "fs.fresh.s26_traj_steps": lambda: count_range(earlier_steps(f"{p}-traj") for p in CODED.values()),
    "fs.fresh.s26_dmd_steps": lambda: count_range(earlier_steps(f"{p}-dmd") for p in CODED.values()),
    "fs.fresh.traj_read": lambda: mean_read(1.0, "traj"),
    "fs.fresh.bank_s": lambda: count_range(round(steps_line(run(d, "traj"))["before_first_step_s"]) for d in DRAWS),
    **{f"fs.fresh.u{k}": (lambda k=k: ratio_range(over(d, "dmd", k) for d in DRAWS)) for k in (1, 2, 4)},
    "fs.fresh.met_all": lambda: str(sum(fid_targets(d) for d in DRAWS)),
    "fs.fresh.met_stretch": lambda: str(sum(over(d, "dmd", 1) <= 1.5 for d in DRAWS)),
    "fs.fresh.draws": lambda: str(len(DRAWS)),
    **{f"fs.fresh.matched.{key}": (lambda f=f: " and ".join(f(label, name) for label, name in MATCHED.items()))
       for key, f in (("read", lambda label, p: f"{line(f'{p}-dmd', 1)['per_100']:.1f}"),
                      ("read_minutes", lambda label, p: f"{line(run(label, 'dmd'), 1)['per_100']:.1f}"),
                      ("u1", lambda label, p: f"{over_run(label, f'{p}-dmd', 1):.2f}x"),
                      ("u1_minutes", lambda label, p: f"{over(label, 'dmd', 1):.2f}x"),
                      ("traj", lambda label, p: f"{line(f'{p}-traj', 1)['per_100']:.1f}"),
                      ("traj_minutes", lambda label, p: f"{line(run(label, 'traj'), 1)['per_100']:.1f}"),
                      ("first100_75", lambda label, p: str(line(f"{p}-dmd", 1, 0.75)["first_100"])),
                      ("u1_75", lambda label, p: f"{over_run(label, f'{p}-dmd', 1, 0.75):.2f}x"),
                      ("s26_read", lambda label, p: f"{s26_line(label)['per_100']:.1f}"))},
    "fs.fresh.speed": lambda: count_range(round(r["over_teacher"]) for r in load_jsonl(SPEED) if r["model"] == "coded"),
    "fs.fresh.mean_read": lambda: mean_read(1.0),
    "fs.fresh.first100": lambda: first_100(1.0),
    **{f"fs.fresh.read80{tag}": (lambda s=s: str(sum(line(run(d, "dmd"), 1, s)["first_100"] >= 80 for d in DRAWS)))
       for s, tag in ((1.0, ""), (0.85, "85"), (0.75, "75"), (0.65, "65"))},
    **{f"fs.fresh.lowers{tag}": (lambda s=s: str(lowers(s))) for s, tag in ((0.85, "85"), (0.75, "75"), (0.65, "65"))},
}  # fmt: skip
