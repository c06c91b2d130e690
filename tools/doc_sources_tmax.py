"""dmd's highest noise level (session 30; benchmarks/dmd_t_max.sh) for docs/few_step.md, the README and results.md;
render_docs.py merges these. Each of the six fresh-teacher draws ran 5 minutes of dmd twice side by side from session
28's bf16 trajectory student, at --dmd-t-max 0.5 (distill's default from an unconditional teacher since session 30)
and at 0.98 (the default before): dmd_t_max_mnist_uncond.jsonl (readability_proxy.py) and dmd_t_max_steps.jsonl
(the steps each run took: steps_taken.sh). Session 31 scored the 0.5 students again at one step from a smaller
starting noise (benchmarks/dmd_t_max_noise.sh): dmd_t_max_noise_mnist_uncond.jsonl."""

from doc_sources import table
from doc_sources_bank import pair_summary
from doc_sources_extra import mean
from doc_sources_fresh import DRAWS, LIMITS, steps_line, teacher
from doc_sources_fresh import line as proxy_line
from doc_sources_quality import span

FILE = "one_step_cpu/dmd_t_max_mnist_uncond.jsonl"
STEPS = "one_step_cpu/dmd_t_max_steps.jsonl"
ARMS = ("0.5", "0.98")  # --dmd-t-max: today's default from an unconditional teacher, and the one before
NEW, OLD = ARMS
SCALES = (1.0, 0.85, 0.75)  # the starting noise of the one-step counts
NOISE_FILE = "one_step_cpu/dmd_t_max_noise_mnist_uncond.jsonl"
LOW_SCALES = (0.65, 0.55)  # dmd_t_max_noise.sh: the 0.5 students at one step from a smaller starting noise still


def name(label: str, arm: str) -> str:
    chain, seed = DRAWS[label]
    return f"s30-s{chain}-seed{seed}-tmax{arm}"


def line(label: str, arm: str, steps: int, noise_scale: float = 1.0) -> dict:
    return proxy_line(name(label, arm), steps, noise_scale, file=NOISE_FILE if noise_scale in LOW_SCALES else FILE)


def over(label: str, arm: str, steps: int, noise_scale: float = 1.0) -> float:
    """FID over the 50-step FID of the draw's fresh teacher (fresh_teachers_mnist_uncond.jsonl)."""
    return line(label, arm, steps, noise_scale)["fid"] / teacher(DRAWS[label][0])["fid"]


def taken(label: str, arm: str) -> int:
    return steps_line(name(label, arm), file=STEPS)["step"]


def read(label: str, arm: str, noise_scale: float = 1.0) -> dict:
    return line(label, arm, 1, noise_scale)


def fid_targets(label: str, arm: str) -> bool:
    return all(over(label, arm, k) <= limit for k, limit in LIMITS.items())


def met(arm: str) -> int:
    """On how many draws the arm's students meet every FID target."""
    return sum(fid_targets(d, arm) for d in DRAWS)


def reads80(label: str, arm: str, noise_scale: float = 1.0) -> bool:
    """80 or more of the draw's first 100 one-step samples read."""
    return read(label, arm, noise_scale)["first_100"] >= 80


def read80(arm: str, noise_scale: float = 1.0) -> int:
    """On how many draws 80 or more of the first 100 one-step samples read."""
    return sum(reads80(d, arm, noise_scale) for d in DRAWS)


def mean_read(arm: str, noise_scale: float = 1.0) -> float:
    return mean([read(d, arm, noise_scale)["per_100"] for d in DRAWS])


def cell(label: str, arm: str, noise_scale: float = 1.0) -> str:
    """Readable per 100 at one step (the first 100; FID / teacher-50)."""
    r = read(label, arm, noise_scale)
    return f"{r['per_100']:.1f} ({r['first_100']}; {over(label, arm, 1, noise_scale):.2f}x)"


def t_tmax_pairs() -> str:
    rows = [[label, arm, f"{taken(label, arm):,}", cell(label, arm), *(f"{over(label, arm, k):.2f}x" for k in (2, 4)),
             *(cell(label, arm, s) for s in SCALES[1:])]
            for label in DRAWS for arm in ARMS]  # fmt: skip
    return table(["draw", "--dmd-t-max", "dmd steps (5 min)", "1 step: readable (first 100; FID / teacher-50)",
                  "2 steps, FID / teacher-50", "4 steps", "1 step, S = 0.85", "1 step, S = 0.75"], rows)  # fmt: skip


def t_tmax_summary() -> str:
    first_rows = [("dmd steps", taken, "{:,.0f}".format, lambda a, b: a > b)]
    return pair_summary(ARMS, ["over the six draws", "--dmd-t-max 0.5 (mean)", "0.98 (mean)",
                               "draws where 0.5 did better"], first_rows, over, read, SCALES)  # fmt: skip


def low_within(label: str, noise_scale: float) -> bool:
    return over(label, NEW, 1, noise_scale) <= LIMITS[1]


def low_whole(label: str, noise_scale: float) -> bool:
    """80 of the first 100 read and one step within 2x at `noise_scale`, two and four steps (S = 1) within theirs."""
    return reads80(label, NEW, noise_scale) and low_within(label, noise_scale) and fid_targets(label, NEW)


def t_tmax_noise() -> str:
    rows = [[label, *(cell(label, NEW, s) for s in (1.0, 0.75, *LOW_SCALES))] for label in DRAWS]
    return table(["draw (--dmd-t-max 0.5)", "1 step, S = 1: readable (first 100; FID / teacher-50)", "S = 0.75",
                  *(f"S = {s:g}" for s in LOW_SCALES)], rows)  # fmt: skip


TMAX_TABLES = {"fs_tmax_pairs": t_tmax_pairs, "fs_tmax_summary": t_tmax_summary, "fs_tmax_noise": t_tmax_noise}


def low_count(test) -> str:
    """On how many draws `test` holds at each of LOW_SCALES, joined by "and"."""
    return " and ".join(str(sum(test(d, s) for d in DRAWS)) for s in LOW_SCALES)


def diff_read(noise_scale: float = 1.0) -> list[float]:
    return [read(d, NEW, noise_scale)["per_100"] - read(d, OLD, noise_scale)["per_100"] for d in DRAWS]


TMAX_NUMBERS = {
    "fs.tmax.draws": lambda: str(len(DRAWS)),
    "fs.tmax.steps": lambda: " and ".join(span([taken(d, a) for d in DRAWS], "{:,}".format) for a in ARMS),
    "fs.tmax.diff_read": lambda: f"{mean(diff_read()):+.1f}",
    "fs.tmax.diff_read_span": lambda: f"{min(diff_read()):+.1f} to {max(diff_read()):+.1f}",
    "fs.tmax.read_better": lambda: str(sum(x > 0 for x in diff_read())),
    "fs.tmax.read_mean": lambda: " and ".join(f"{mean_read(a):.1f}" for a in ARMS),
    "fs.tmax.first100": lambda: ", ".join(str(read(d, NEW)["first_100"]) for d in DRAWS),
    **{f"fs.tmax.read80{tag}": (lambda s=s: " and ".join(str(read80(a, s)) for a in ARMS))
       for s, tag in ((1.0, ""), (0.85, "85"), (0.75, "75"))},
    **{f"fs.tmax.u{k}_better": (lambda k=k: str(sum(over(d, NEW, k) < over(d, OLD, k) for d in DRAWS)))
       for k in (1, 2, 4)},
    **{f"fs.tmax.u{k}_mean": (lambda k=k: " and ".join(f"{mean([over(d, a, k) for d in DRAWS]):.2f}x" for a in ARMS))
       for k in (1, 2, 4)},
    "fs.tmax.met_all": lambda: " and ".join(str(met(a)) for a in ARMS),
    "fs.tmax.stretch": lambda: " and ".join(str(sum(over(d, a, 1) <= 1.5 for d in DRAWS)) for a in ARMS),
    # the library's unconditional pipeline since session 30 alone (the README, results.md)
    "fs.tmax.new.met_all": lambda: str(met(NEW)),
    "fs.tmax.new.mean_read": lambda: f"{mean_read(NEW):.1f}",
    "fs.tmax.new.mean_read75": lambda: f"{mean_read(NEW, 0.75):.1f}",
    **{f"fs.tmax.new.read80{tag}": (lambda s=s: str(read80(NEW, s))) for s, tag in ((1.0, ""), (0.75, "75"))},
    # the 0.5 students from a smaller starting noise (dmd_t_max_noise.sh), at 0.65 and at 0.55
    "fs.tmax.low.read80": lambda: " and ".join(str(read80(NEW, s)) for s in LOW_SCALES),
    "fs.tmax.low.within": lambda: low_count(low_within),
    "fs.tmax.low.whole": lambda: low_count(low_whole),
    "fs.tmax.low.mean_read": lambda: " and ".join(f"{mean_read(NEW, s):.1f}" for s in LOW_SCALES),
    "fs.tmax.low.read80_55": lambda: str(read80(NEW, 0.55)),
    "fs.tmax.low.beyond2_55": lambda: str(sum(not low_within(d, 0.55) for d in DRAWS)),
    "fs.tmax.low.whole_draws55": lambda: "; ".join(d for d in DRAWS if low_whole(d, 0.55)),
    "fs.tmax.low.u55_chain1": lambda: ", ".join(f"{over(d, NEW, 1, 0.55):.2f}x" for d in DRAWS if DRAWS[d][0] == 1),
}  # fmt: skip
