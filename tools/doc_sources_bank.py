"""The trajectory bank at the training step's precision (session 28; benchmarks/bf16_bank.sh) for docs/few_step.md;
render_docs.py merges these. Each of the six fresh-teacher draws ran twice side by side, the bank in bf16 (the
library since session 28) and in fp32 (few_step_ablation/fp32_bank.py): bf16_bank_mnist_uncond.jsonl
(readability_proxy.py) and bf16_bank_steps.jsonl (the steps and the seconds before the first step)."""

from doc_sources import table
from doc_sources_extra import mean
from doc_sources_fresh import DRAWS, LIMITS, SCALES, steps_line, teacher
from doc_sources_fresh import line as proxy_line
from doc_sources_quality import span

FILE = "one_step_cpu/bf16_bank_mnist_uncond.jsonl"
STEPS = "one_step_cpu/bf16_bank_steps.jsonl"
BANKS = ("bf16", "fp32")


def name(label: str, bank: str, stage: str) -> str:
    chain, seed = DRAWS[label]
    return f"s28-s{chain}-seed{seed}-{bank}-{stage}"


def line(label: str, bank: str, stage: str, steps: int, noise_scale: float = 1.0) -> dict:
    return proxy_line(name(label, bank, stage), steps, noise_scale, file=FILE)


def over(label: str, bank: str, stage: str, steps: int, noise_scale: float = 1.0) -> float:
    """FID over the 50-step FID of the draw's fresh teacher (fresh_teachers_mnist_uncond.jsonl)."""
    return line(label, bank, stage, steps, noise_scale)["fid"] / teacher(DRAWS[label][0])["fid"]


def taken(label: str, bank: str, stage: str) -> dict:
    return steps_line(name(label, bank, stage), file=STEPS)


def read(label: str, bank: str, noise_scale: float = 1.0) -> dict:
    return line(label, bank, "dmd", 1, noise_scale)


def fid_targets(label: str, bank: str) -> bool:
    return all(over(label, bank, "dmd", k) <= limit for k, limit in LIMITS.items())


def met(bank: str) -> int:
    """On how many draws the bank's students meet every FID target."""
    return sum(fid_targets(d, bank) for d in DRAWS)


def read80(bank: str, noise_scale: float = 1.0) -> int:
    """On how many draws 80 or more of the first 100 one-step samples read."""
    return sum(read(d, bank, noise_scale)["first_100"] >= 80 for d in DRAWS)


def t_bank_pairs() -> str:
    rows = []
    for label in DRAWS:
        for bank in BANKS:
            traj, dmd, one = taken(label, bank, "traj"), taken(label, bank, "dmd"), read(label, bank)
            quarter = read(label, bank, 0.75)
            rows.append(
                [
                    label,
                    bank,
                    f"{traj['before_first_step_s']:.0f}",
                    f"{traj['step']:,}",
                    f"{line(label, bank, 'traj', 1)['per_100']:.1f} ({over(label, bank, 'traj', 1):.2f}x)",
                    f"{dmd['step']:,}",
                    f"{one['per_100']:.1f} ({one['first_100']}; {over(label, bank, 'dmd', 1):.2f}x)",
                    *(f"{over(label, bank, 'dmd', k):.2f}x" for k in (2, 4)),
                    f"{quarter['per_100']:.1f} ({quarter['first_100']}; {over(label, bank, 'dmd', 1, 0.75):.2f}x)",
                ]
            )
    return table(["draw", "bank", "seconds before the first step", "trajectory steps (8 min)",
                  "trajectory student, 1 step: readable (FID / teacher-50)", "dmd steps (5 min)",
                  "after dmd, 1 step: readable (first 100; FID / teacher-50)", "2 steps, FID / teacher-50", "4 steps",
                  "1 step, S = 0.75: readable (first 100; FID / teacher-50)"], rows)  # fmt: skip


def pair_summary(arms: tuple[str, str], headers: list[str], first_rows: list, over, read, scales) -> str:
    """Two settings run side by side on the six draws: per setting the means of `first_rows` (each (label, f(draw,
    arm), fmt, better(a, b)): the first arm's a beats the second's b), of the FID over the teacher at 1, 2 and 4 steps
    (over(draw, arm, k)) and of the one-step count from each of `scales` (read(draw, arm, s)); then how many draws
    meet each target. The last column counts the draws where the first arm did better."""
    first, second = arms

    def row(label, f, fmt, better):
        cells = [fmt(mean([f(d, a) for d in DRAWS])) for a in arms]
        return [label, *cells, str(sum(better(f(d, first), f(d, second)) for d in DRAWS))]

    lower, higher = (lambda a, b: a < b), (lambda a, b: a > b)
    rows = [
        *(row(*r) for r in first_rows),
        *(row(f"{k} step{'s' * (k > 1)}, FID / teacher-50", lambda d, a, k=k: over(d, a, k), "{:.2f}x".format, lower)
          for k in (1, 2, 4)),
        *(row(f"1 step, S = {s:g}: readable per 100", lambda d, a, s=s: read(d, a, s)["per_100"], "{:.1f}".format,
              higher) for s in scales),
    ]  # fmt: skip
    counts = [
        ("every FID target (1 step 2x, 2 steps 1.3x, 4 steps 1.1x)",
         lambda a: sum(all(over(d, a, k) <= limit for k, limit in LIMITS.items()) for d in DRAWS)),
        ("1 step within 1.5x (the stretch)", lambda a: sum(over(d, a, 1) <= 1.5 for d in DRAWS)),
        *((f"80 or more of the first 100 read, S = {s:g}", lambda a, s=s: sum(read(d, a, s)["first_100"] >= 80
                                                                               for d in DRAWS)) for s in scales),
    ]  # fmt: skip
    rows += [[label, *(f"{f(a)} of {len(DRAWS)}" for a in arms), "-"] for label, f in counts]
    return table(headers, rows)


def t_bank_summary() -> str:
    lower, higher = (lambda a, b: a < b), (lambda a, b: a > b)
    first_rows = [
        ("seconds before the first step", lambda d, b: taken(d, b, "traj")["before_first_step_s"], "{:.0f}".format,
         lower),
        ("trajectory steps", lambda d, b: taken(d, b, "traj")["step"], "{:,.0f}".format, higher),
        ("dmd steps", lambda d, b: taken(d, b, "dmd")["step"], "{:,.0f}".format, higher),
    ]  # fmt: skip
    return pair_summary(BANKS, ["over the six draws", "bf16 bank (mean)", "fp32 bank (mean)",
                                "draws where bf16 did better"], first_rows,
                        lambda d, b, k: over(d, b, "dmd", k), read, SCALES)  # fmt: skip


BANK_TABLES = {"fs_bank_pairs": t_bank_pairs, "fs_bank_summary": t_bank_summary}


def diff_read(noise_scale: float = 1.0) -> float:
    return mean([read(d, "bf16", noise_scale)["per_100"] - read(d, "fp32", noise_scale)["per_100"] for d in DRAWS])


def gain(label: str) -> float:
    """The bf16 run's trajectory steps over the fp32 run's, in the same 8 minutes side by side."""
    return taken(label, "bf16", "traj")["step"] / taken(label, "fp32", "traj")["step"]


BANK_NUMBERS = {
    "fs.bank.bank_s": lambda: " and ".join(span([round(taken(d, b, "traj")["before_first_step_s"]) for d in DRAWS],
                                                "{:,}".format) for b in BANKS),
    "fs.bank.traj_gain": lambda: f"{mean([gain(d) for d in DRAWS]) - 1:.0%}",
    "fs.bank.diff_read": lambda: f"{diff_read():+.1f}",
    "fs.bank.diff_read75": lambda: f"{diff_read(0.75):+.1f}",
    **{f"fs.bank.u{k}_better": (lambda k=k: str(sum(over(d, "bf16", "dmd", k) < over(d, "fp32", "dmd", k)
                                                    for d in DRAWS))) for k in (1, 2, 4)},
    **{f"fs.bank.u{k}_mean": (lambda k=k: " and ".join(f"{mean([over(d, b, 'dmd', k) for d in DRAWS]):.2f}x"
                                                        for b in BANKS)) for k in (1, 2, 4)},
    "fs.bank.read_better": lambda: str(sum(read(d, "bf16")["per_100"] > read(d, "fp32")["per_100"] for d in DRAWS)),
    "fs.bank.read_mean": lambda: " and ".join(f"{mean([read(d, b)['per_100'] for d in DRAWS]):.1f}" for b in BANKS),
    "fs.bank.read80": lambda: " and ".join(str(read80(b)) for b in BANKS),
    "fs.bank.met_all": lambda: " and ".join(str(met(b)) for b in BANKS),
    "fs.bank.draws": lambda: str(len(DRAWS)),
    # the library's pipeline since session 28 alone (the README, results.md)
    "fs.bank.bf16.met_all": lambda: str(met("bf16")),
    "fs.bank.bf16.mean_read": lambda: f"{mean([read(d, 'bf16')['per_100'] for d in DRAWS]):.1f}",
}  # fmt: skip
