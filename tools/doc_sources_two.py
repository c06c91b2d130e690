"""Two networks from one 15-minute distillation (session 32; benchmarks/two_networks.sh) for docs/few_step.md and the
README; render_docs.py merges these. Each of the six fresh-teacher draws: 8 minutes of trajectories autoguided by the
teacher's own 2-minute state, then from that student 2.2 minutes of distill's default dmd (the chain, sampled at 2
and 4 steps) and 4.8 of dmd at --lr 8e-5 --dmd-fake-lr 5e-4 (the one-step network), all on one core:
two_networks_mnist_uncond.jsonl (readability_proxy.py) and two_networks_steps.jsonl (steps_taken.sh). The one-step
maps trained again at --lr 6e-5 (`two_networks.sh 6e-5`), and that pipeline on four new draws, seeds 4 and 5 of
both teachers (`two_networks.sh 6e-5 4 5`), which the choice of 6e-5 did not see."""

import math

from doc_sources import load_jsonl, table
from doc_sources_extra import mean
from doc_sources_fresh import DRAWS, LIMITS, line, steps_line, teacher
from doc_sources_quality import span

FILE = "one_step_cpu/two_networks_mnist_uncond.jsonl"
STEPS = "one_step_cpu/two_networks_steps.jsonl"
ARMS = {"8e-5": "one", "6e-5": "one6e-5"}  # the one-step map's --lr: its run's stage (two_networks.sh [LR])
HELD_OUT = {"chain 0, seed 4": (0, 4), "chain 1, seed 4": (1, 4), "chain 0, seed 5": (0, 5), "chain 1, seed 5": (1, 5)}
HELD_STAGE = ARMS["6e-5"]  # the held-out draws' one-step maps
ALL = {**DRAWS, **HELD_OUT}
PAIR = "one_step_cpu/two_networks_pair.jsonl"  # two_networks.sh pair


def name(label: str, stage: str) -> str:
    """runs/s32-s<chain>-seed<seed>-<stage>: traj, chain, or an ARMS stage."""
    chain, seed = ALL[label]
    return f"s32-s{chain}-seed{seed}-{stage}"


def score(label: str, stage: str, steps: int) -> dict:
    return line(name(label, stage), steps, file=FILE)


def over(label: str, stage: str, steps: int) -> float:
    """FID over the 50-step FID of the draw's fresh teacher (fresh_teachers_mnist_uncond.jsonl)."""
    return score(label, stage, steps)["fid"] / teacher(ALL[label][0])["fid"]


def taken(label: str, stage: str) -> int:
    return steps_line(name(label, stage), file=STEPS)["step"]


def reads80(label: str, stage: str) -> bool:
    return score(label, stage, 1)["first_100"] >= 80


def within(label: str, stage: str) -> bool:
    return over(label, stage, 1) <= LIMITS[1]


def chain_targets(label: str) -> bool:
    """The chain's two and four steps within 1.3x and 1.1x the teacher's FID."""
    return all(over(label, "chain", k) <= LIMITS[k] for k in (2, 4))


def whole(label: str, stage: str) -> bool:
    """Every target of the issue on the draw: the one-step map's count and FID, the chain's two FIDs."""
    return reads80(label, stage) and within(label, stage) and chain_targets(label)


def cell(label: str, stage: str) -> str:
    """Readable per 100 at one step (the first 100; FID / teacher-50)."""
    r = score(label, stage, 1)
    return f"{r['per_100']:.1f} ({r['first_100']}; {over(label, stage, 1):.2f}x)"


def rows(draws: dict, stages: list[str]) -> list[list[str]]:
    """Per draw: the steps of its runs, the chain at one, two and four steps, each one-step map (* every target)."""
    return [[label, " / ".join(f"{taken(label, s):,}" for s in ("traj", "chain", *stages)), cell(label, "chain"),
             *(f"{over(label, 'chain', k):.2f}x" for k in (2, 4)),
             *(f"{cell(label, s)}{' *' if whole(label, s) else ''}" for s in stages)] for label in draws]  # fmt: skip


def header(first: str, lrs: list[str]) -> list[str]:
    maps = "one-step maps" if len(lrs) > 1 else "one-step map"
    return [first, f"steps: trajectories / chain / {maps}", "the chain, 1 step: readable (first 100; FID / "
            "teacher-50)", "the chain, 2 steps: FID / teacher-50", "4 steps",
            *(f"the one-step map at --lr {lr}" for lr in lrs)]  # fmt: skip


def t_two_networks() -> str:
    return table(header("draw", list(ARMS)), rows(DRAWS, list(ARMS.values())))


def t_two_held_out() -> str:
    return table(header("new draw", ["6e-5"]), rows(HELD_OUT, [HELD_STAGE]))


def count(test, *args, draws=DRAWS) -> str:
    return str(sum(test(d, *args) for d in draws))


def reads(stage: str, draws) -> list[float]:
    """Readable per 100 at one step, per draw of `draws` (labels)."""
    return [score(d, stage, 1)["per_100"] for d in draws]


def one_map_numbers(prefix: str, stage: str, draws: dict) -> dict:
    """The one-step maps of `stage` over `draws`: the count, FID and whole-issue tallies the docs name."""
    return {
        f"{prefix}.read80": lambda: count(reads80, stage, draws=draws),
        f"{prefix}.within": lambda: count(within, stage, draws=draws),
        f"{prefix}.whole": lambda: count(whole, stage, draws=draws),
        f"{prefix}.mean_read": lambda: f"{mean(reads(stage, draws)):.1f}",
        f"{prefix}.one_range": lambda: span([over(d, stage, 1) for d in draws], "{:.2f}x".format),
        f"{prefix}.first100": lambda: ", ".join(str(score(d, stage, 1)["first_100"]) for d in draws),
    }


TWO_TABLES = {"fs_two_networks": t_two_networks, "fs_two_held_out": t_two_held_out}
TWO_NUMBERS = {
    "fs.two.draws": lambda: str(len(DRAWS)),
    "fs.two.chain_targets": lambda: count(chain_targets),
    "fs.two.mean_read_chain": lambda: f"{mean(reads('chain', DRAWS)):.1f}",
    "fs.two.read80_chain": lambda: count(reads80, "chain"),
    "fs.two.held.draws": lambda: str(len(HELD_OUT)),
    "fs.two.held.chain_targets": lambda: count(chain_targets, draws=HELD_OUT),
    **one_map_numbers("fs.two.held", HELD_STAGE, HELD_OUT),
}
for _lr, _stage in ARMS.items():
    TWO_NUMBERS |= one_map_numbers(f"fs.two.{_lr}", _stage, DRAWS)


def below80(per_100: float) -> float:
    """P(fewer than 80 of 100 read) for samples that read at the rate per_100 / 100 each (binomial)."""
    p = per_100 / 100
    return sum(math.comb(100, k) * p**k * (1 - p) ** (100 - k) for k in range(80))


def missed() -> list[str]:
    return [d for d in HELD_OUT if not reads80(d, HELD_STAGE)]


def pair_line(key: str) -> dict:
    """two_networks.sh pair: the --chain file against its two runs (key "pair"), or its speed (round r, model)."""
    return next(r for r in load_jsonl(PAIR) if key in r)


def same() -> str:
    """The docs say the --chain file holds the benchmarked networks: a results file that says otherwise stops the
    rendering."""
    line = pair_line("pair")
    if not (line["one_step_as_its_run"] and line["chain_as_its_run"]):
        raise SystemExit(f"{PAIR}: the --chain file's networks differ from their runs'; the docs' claim does not hold")
    return "bit for bit"


def pair_speed(model: str) -> list[float]:
    return [r["over_teacher"] for r in load_jsonl(PAIR) if r.get("model") == model]


TWO_NUMBERS |= {
    "fs.two.held.missed": lambda: " and ".join(missed()) or "none",
    "fs.two.held.missed_read": lambda: " and ".join(f"{r:.1f}" for r in reads(HELD_STAGE, missed())),
    "fs.two.held.missed_first": lambda: " and ".join(str(score(d, HELD_STAGE, 1)["first_100"]) for d in missed()),
    "fs.two.held.missed_p": lambda: " and ".join(f"{below80(r):.0%}" for r in reads(HELD_STAGE, missed())),
    "fs.two.all.draws": lambda: str(len(ALL)),
    "fs.two.all.read_min": lambda: f"{min(reads(HELD_STAGE, ALL)):.1f}",
    "fs.two.all.fid": lambda: str(sum(within(d, HELD_STAGE) and chain_targets(d) for d in ALL)),
    "fs.two.pair.steps": lambda: f"{pair_line('pair')['steps']:,}",
    "fs.two.pair.same": same,
    "fs.two.pair.speed": lambda: span(pair_speed("pair"), "{:.0f}x".format),
    "fs.two.pair.cpu": lambda: pair_line("cpu")["cpu"],
}
