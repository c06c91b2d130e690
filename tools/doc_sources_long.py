"""Longer dmd, and a code drawn apart from the noise (session 29; benchmarks/dmd_long.sh) for docs/few_step.md;
render_docs.py merges these. From session 28's bf16 trajectory students: dmd for 14 minutes with its weights kept
every 200 steps (on three draws also at --lr 4e-5, on one at --batch-size 64), and 5 minutes of dmd with the
one-step code drawn apart from x_T (few_step_ablation/free_code.py) or with the lower maps anchored
(few_step_ablation/dmd_anchor.py), and the first step of one student with the later of another
(few_step_ablation/two_students.py), all scored by readability_proxy.py in
dmd_long_mnist_uncond.jsonl; the minute each kept step was reached at in dmd_long_steps.jsonl. Beside them, session
28's 5-minute dmd of the same draws (bf16_bank_mnist_uncond.jsonl)."""

from doc_sources import load_jsonl, table
from doc_sources_bank import FILE as BANK_FILE
from doc_sources_bank import STEPS as BANK_STEPS
from doc_sources_extra import mean
from doc_sources_fresh import DRAWS, LIMITS, line, steps_line, teacher
from doc_sources_quality import span

FILE = "one_step_cpu/dmd_long_mnist_uncond.jsonl"
STEPS = "one_step_cpu/dmd_long_steps.jsonl"
CURVE = ("chain 0, seed 2", "chain 1, seed 2", "chain 0, seed 3", "chain 1, seed 3")  # the draws of the long runs
LR4 = ("chain 1, seed 2", "chain 1, seed 3", "chain 0, seed 2")  # twice dmd's step, first on the lowest draw
# the long runs with one of dmd's settings changed: (draw, run-name suffix, the flag)
SCREENS = (*((label, "-lr4", "--lr 4e-5") for label in LR4), ("chain 1, seed 2", "-batch64", "--batch-size 64"))
LONG = tuple((label, "", "") for label in CURVE) + SCREENS  # every long run
FREE = ("chain 0, seed 2", "chain 1, seed 2")  # the draws of the free code
SHOWN = (400, 800, 1600, 2400)  # the kept steps in the table, beside the last


def run(prefix: str, label: str, suffix: str = "") -> str:
    chain, seed = DRAWS[label]
    return f"runs/{prefix}-s{chain}-seed{seed}{suffix}"


def kept_run(name: str) -> list[dict]:
    """runs/<name>'s kept steps in order, each {'step', 'minutes'} (the last one: the end of its time budget)."""
    return sorted({r["step"]: r for r in load_jsonl(STEPS) if r["run"] == name}.values(), key=lambda r: r["step"])


def kept(label: str, suffix: str = "") -> list[dict]:
    """The long run's kept steps (kept_run)."""
    return kept_run(run("s29-curve", label, suffix))


def last_step(label: str, suffix: str = "") -> int:
    return kept(label, suffix)[-1]["step"]


def scored(label: str, step: int, steps: int, suffix: str = "") -> dict:
    """readability_proxy's line of the long run's weights kept at `step` (the last: last.pt beyond one step)."""
    name = f"{run('s29-curve', label, suffix)}/checkpoints/step_{step:07d}.pt"
    last = f"{run('s29-curve', label, suffix)}/checkpoints/last.pt"
    final = step == last_step(label, suffix)
    return next(r for r in load_jsonl(FILE) if r["steps"] == steps and "code" not in r
                and (r["checkpoint"] == name or (final and steps > 1 and r["checkpoint"] == last)))  # fmt: skip


def over(label: str, fid: float) -> float:
    return fid / teacher(DRAWS[label][0])["fid"]


def times(label: str, r: dict) -> str:
    """A readability_proxy line's FID over the draw's teacher-50, as the tables write it."""
    return f"{over(label, r['fid']):.2f}x"


def at_minutes(label: str, minutes: float) -> dict:
    """The kept step of the draw's default long run reached nearest to `minutes`."""
    return min(kept(label), key=lambda r: abs(r["minutes"] - minutes))


def read(label: str, step: int, suffix: str = "") -> float:
    return scored(label, step, 1, suffix)["per_100"]


def ratios(label: str, step: int, steps: int = 1, suffix: str = "") -> str:
    """FID / teacher-50 of the long run's weights kept at `step`, sampled in `steps`."""
    return times(label, scored(label, step, steps, suffix))


def t_dmd_long() -> str:
    def ratio(label: str, step: int, steps: int, suffix: str) -> str:  # "-": not scored beyond one step there
        try:
            return ratios(label, step, steps, suffix)
        except StopIteration:
            return "-"

    rows = []
    for label, suffix, flag in LONG:
        for r in [k for k in kept(label, suffix) if k["step"] in SHOWN or k["step"] == last_step(label, suffix)]:
            one = scored(label, r["step"], 1, suffix)
            rows.append([label, flag or "defaults", f"{r['step']:,}", f"{r['minutes']:.1f}",
                         f"{one['per_100']:.1f} ({one['first_100']})", times(label, one),
                         *(ratio(label, r["step"], k, suffix) for k in (2, 4))])  # fmt: skip
    return table(["draw", "dmd", "step", "minutes", "1 step: readable per 100 (of the first 100)",
                  "1 step: FID / teacher-50", "2 steps", "4 steps"], rows)  # fmt: skip


def free_line(label: str, steps: int, code: str, noise_scale: float = 1.0) -> dict:
    name = f"{run('s29-fc', label)}/checkpoints/last.pt"
    return next(r for r in load_jsonl(FILE) if r["checkpoint"] == name and r["steps"] == steps
                and r["noise_scale"] == noise_scale and (r.get("code") == "free") == (code == "free"))  # fmt: skip


def bank_line(label: str, steps: int, noise_scale: float = 1.0, stage: str = "dmd") -> dict:
    """Session 28's run of the draw with the bf16 bank (bf16_bank.sh): its trajectory student or its 5-minute dmd."""
    chain, seed = DRAWS[label]
    return line(f"s28-s{chain}-seed{seed}-bf16-{stage}", steps, noise_scale, file=BANK_FILE)


# the free-code table's rows: how dmd drew the one-step code, how sampling drew it, and the lines of that model
CASES = (
    ("the head's (session 28)", "the head's", lambda label, k, s: bank_line(label, k, s)),
    ("drawn apart from x_T", "drawn apart from x_T", lambda label, k, s: free_line(label, k, "free", s)),
    ("drawn apart from x_T", "the head's", lambda label, k, s: free_line(label, k, "head", s)),
)


def t_free_code() -> str:
    """Per draw: session 28's dmd (the head's code), and dmd with the free code sampled with it and with the head's;
    "-" where that model was not scored so."""

    def cell(label: str, get, steps: int, noise_scale: float, read: bool) -> str:
        try:
            r = get(label, steps, noise_scale)
        except StopIteration:
            return "-"
        return f"{r['per_100']:.1f} ({r['first_100']}; {times(label, r)})" if read else times(label, r)

    rows = [[label, trained, sampled, cell(label, get, 1, 1.0, True), cell(label, get, 2, 1.0, False),
             cell(label, get, 4, 1.0, False), cell(label, get, 1, 0.85, True)]
            for label in FREE for trained, sampled, get in CASES]  # fmt: skip
    return table(["draw", "dmd's one-step code (5 min)", "code at sampling",
                  "1 step: readable per 100 (first 100; FID / teacher-50)", "2 steps, FID / teacher-50", "4 steps",
                  "1 step, S = 0.85: readable (first 100; FID / teacher-50)"], rows)  # fmt: skip


ANCHOR_DRAW = "chain 1, seed 2"  # few_step_ablation/dmd_anchor.py's runs: (name, dmd's flags)
ANCHORED = (("lr4", "--lr 4e-5"), ("lr8", "--lr 8e-5 --dmd-fake-lr 5e-4"))


def anchor_line(name: str, steps: int) -> dict:
    path = f"{run('s29x-anchor', ANCHOR_DRAW)}-{name}/checkpoints/last.pt"
    return next(r for r in load_jsonl(FILE) if r["checkpoint"] == path and r["steps"] == steps)


def t_dmd_anchor() -> str:
    """On the lowest draw: dmd at its defaults (session 28), twice its step at step 800 of the long run, and the
    anchored runs, each at 1, 2 and 4 steps."""

    def row(what: str, steps: int, get) -> list[str]:
        one = get(1)
        return [what, f"{steps:,}", f"{one['per_100']:.1f} ({one['first_100']})",
                *(times(ANCHOR_DRAW, get(k)) for k in (1, 2, 4))]  # fmt: skip

    chain, seed = DRAWS[ANCHOR_DRAW]
    minute = next(r["minutes"] for r in kept(ANCHOR_DRAW, "-lr4") if r["step"] == 800)
    default_steps = steps_line(f"s28-s{chain}-seed{seed}-bf16-dmd", file=BANK_STEPS)["step"]
    rows = [
        row("defaults, 5 minutes (session 28)", default_steps, lambda k: bank_line(ANCHOR_DRAW, k)),
        row(f"--lr 4e-5, its long run at {minute:.1f} minutes", 800, lambda k: scored(ANCHOR_DRAW, 800, k, "-lr4")),
    ]  # fmt: skip
    for name, flags in ANCHORED:
        steps = kept_run(f"{run('s29x-anchor', ANCHOR_DRAW)}-{name}")[-1]["step"]
        rows.append(row(f"{flags}, anchored, 5 minutes", steps, lambda k, name=name: anchor_line(name, k)))
    return table(["dmd", "steps", "1 step: readable per 100 (of the first 100)", "1 step: FID / teacher-50",
                  "2 steps", "4 steps"], rows)  # fmt: skip


def split_line(label: str, steps: int) -> dict:
    """few_step_ablation/two_students.py: the --lr 4e-5 long run's first step, session 28's dmd's later steps."""
    chain, seed = DRAWS[label]
    first = f"{run('s29-curve', label, '-lr4')}/checkpoints/last.pt"
    pair = f"{first}+runs/s28-s{chain}-seed{seed}-bf16-dmd/checkpoints/last.pt"
    return next(r for r in load_jsonl(FILE) if r["checkpoint"] == pair and r["steps"] == steps)


def t_two_students() -> str:
    """Per --lr 4e-5 draw, two and four steps three ways: the 14-minute student alone, session 28's 5-minute dmd
    alone, and the first from the one with the later from the other."""
    cases = (
        ("--lr 4e-5, 14 minutes", lambda d, k: scored(d, last_step(d, "-lr4"), k, "-lr4")),
        ("defaults, 5 minutes (session 28)", lambda d, k: bank_line(d, k)),
        ("the first step from the one, the later from the other", split_line),
    )

    def cell(r: dict, label: str) -> str:
        return f"{r['per_100']:.1f} ({times(label, r)})"

    rows = [[label, what, *(cell(get(label, k), label) for k in (2, 4))] for label in LR4 for what, get in cases]
    return table(["draw", "student", "2 steps: readable per 100 (FID / teacher-50)", "4 steps"], rows)


def split_met(label: str) -> bool:
    return all(over(label, split_line(label, k)["fid"]) <= LIMITS[k] for k in (2, 4))


LONG_TABLES = {"fs_dmd_long": t_dmd_long, "fs_free_code": t_free_code, "fs_dmd_anchor": t_dmd_anchor,
               "fs_two_students": t_two_students}  # fmt: skip


def gain(label: str, a: float, b: float) -> float:
    """Readable per 100 at one step at about `b` minutes less at about `a`."""
    return read(label, at_minutes(label, b)["step"]) - read(label, at_minutes(label, a)["step"])


def last_read(label: str, suffix: str = "") -> float:
    return read(label, last_step(label, suffix), suffix)


def first100_last(label: str, suffix: str = "") -> int:
    return scored(label, last_step(label, suffix), 1, suffix)["first_100"]


def met_at(label: str, step: int, suffix: str = "") -> bool:
    """Every FID target of the issue (LIMITS) met by the long run's weights kept at `step`."""
    return all(over(label, scored(label, step, k, suffix)["fid"]) <= limit for k, limit in LIMITS.items())


def peak(label: str, suffix: str) -> dict:
    """The kept step whose one step read the most."""
    return max(kept(label, suffix), key=lambda r: read(label, r["step"], suffix))


def lr4_numbers() -> dict:
    """fs.long.lr4.*: twice the step over its draws (lists in LR4's order), beside the defaults' runs of them."""
    each = lambda f: lambda: ", ".join(f(d) for d in LR4)  # noqa: E731
    return {
        "fs.long.lr4.draws": lambda: str(len(LR4)),
        "fs.long.lr4.peak_read": each(lambda d: f"{read(d, peak(d, '-lr4')['step'], '-lr4'):.1f}"),
        "fs.long.lr4.peak_minutes": each(lambda d: f"{peak(d, '-lr4')['minutes']:.0f}"),
        "fs.long.lr4.last_read": each(lambda d: f"{last_read(d, '-lr4'):.1f}"),
        "fs.long.lr4.last_first100": each(lambda d: str(first100_last(d, "-lr4"))),
        "fs.long.lr4.default_last_read": each(lambda d: f"{last_read(d):.1f}"),
        **{f"fs.long.lr4.u{k}_800": each(lambda d, k=k: ratios(d, 800, k, "-lr4")) for k in (1, 2, 4)},
        **{
            f"fs.long.lr4.u{k}_last": each(lambda d, k=k: ratios(d, last_step(d, "-lr4"), k, "-lr4")) for k in (1, 2, 4)
        },
        "fs.long.lr4.met_800": lambda: str(sum(met_at(d, 800, "-lr4") for d in LR4)),
        "fs.long.lr4.met_last": lambda: str(sum(met_at(d, last_step(d, "-lr4"), "-lr4") for d in LR4)),
        "fs.long.batch64.last_read": lambda: f"{last_read(SCREENS[-1][0], '-batch64'):.1f}",
    }


LONG_NUMBERS = {
    "fs.long.traj_read": lambda: f"{mean([bank_line(d, 1, stage='traj')['per_100'] for d in CURVE]):.1f}",
    "fs.long.first100_last": lambda: ", ".join(str(first100_last(d)) for d in CURVE),
    "fs.long.first100_last80": lambda: str(sum(first100_last(d) >= 80 for d in CURVE)),
    "fs.long.u1_800": lambda: ", ".join(ratios(d, 800) for d in CURVE),
    "fs.long.u1_last": lambda: ", ".join(ratios(d, last_step(d)) for d in CURVE),
    "fs.long.u2_last": lambda: ", ".join(ratios(d, last_step(d), 2) for d in CURVE),
    "fs.long.met_800": lambda: str(sum(met_at(d, 800) for d in CURVE)),
    "fs.long.minutes_800": lambda: span(
        [next(r["minutes"] for r in kept(d) if r["step"] == 800) for d in CURVE], "{:.1f}".format
    ),
    "fs.long.met_last": lambda: str(sum(met_at(d, last_step(d)) for d in CURVE)),
    "fs.long.draws": lambda: str(len(CURVE)),
    "fs.long.gain_5_14": lambda: f"{mean([gain(d, 5, 14) for d in CURVE]):+.1f}",
    "fs.long.gain_1_5": lambda: f"{mean([gain(d, 1, 5) for d in CURVE]):+.1f}",
    "fs.long.last_read": lambda: ", ".join(f"{last_read(d):.1f}" for d in CURVE),
    "fs.long.last_steps": lambda: ", ".join(f"{last_step(d):,}" for d in CURVE),
    "fs.long.free_read": lambda: " and ".join(f"{free_line(d, 1, 'free')['per_100']:.1f}" for d in FREE),
    "fs.long.free_head_read": lambda: " and ".join(f"{free_line(d, 1, 'head')['per_100']:.1f}" for d in FREE),
    "fs.long.bank_read": lambda: " and ".join(f"{bank_line(d, 1)['per_100']:.1f}" for d in FREE),
    **lr4_numbers(),
    "fs.long.split.met": lambda: str(sum(split_met(d) for d in LR4)),
    "fs.long.split.read2": lambda: ", ".join(f"{split_line(d, 2)['per_100']:.1f}" for d in LR4),
}
