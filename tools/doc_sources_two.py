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
PAIR = "one_step_cpu/two_networks_pair.jsonl"  # two_networks.sh pair


def name(label: str, stage: str) -> str:
    """runs/s32-s<chain>-seed<seed>-<stage>: traj, chain, or an ARMS stage."""
    chain, seed = {**DRAWS, **HELD_OUT}[label]
    return f"s32-s{chain}-seed{seed}-{stage}"


def score(label: str, stage: str, steps: int) -> dict:
    return line(name(label, stage), steps, file=FILE)


def over(label: str, stage: str, steps: int) -> float:
    """FID over the 50-step FID of the draw's fresh teacher (fresh_teachers_mnist_uncond.jsonl)."""
    return score(label, stage, steps)["fid"] / teacher({**DRAWS, **HELD_OUT}[label][0])["fid"]


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


def t_two_networks() -> str:
    rows = [[label, " / ".join(f"{taken(label, s):,}" for s in ("traj", "chain", *ARMS.values())), cell(label, "chain"),
             *(f"{over(label, 'chain', k):.2f}x" for k in (2, 4)),
             *(f"{cell(label, stage)}{' *' if whole(label, stage) else ''}" for stage in ARMS.values())]
            for label in DRAWS]  # fmt: skip
    return table(["draw", "steps: trajectories / chain / one-step maps", "the chain, 1 step: readable (first 100; "
                  "FID / teacher-50)", "the chain, 2 steps: FID / teacher-50", "4 steps",
                  *(f"the one-step map at --lr {lr}" for lr in ARMS)], rows)  # fmt: skip


def t_two_held_out() -> str:
    rows = [[label, " / ".join(f"{taken(label, s):,}" for s in ("traj", "chain", HELD_STAGE)), cell(label, "chain"),
             *(f"{over(label, 'chain', k):.2f}x" for k in (2, 4)),
             f"{cell(label, HELD_STAGE)}{' *' if whole(label, HELD_STAGE) else ''}"] for label in HELD_OUT]  # fmt: skip
    return table(["new draw", "steps: trajectories / chain / one-step map", "the chain, 1 step: readable (first "
                  "100; FID / teacher-50)", "the chain, 2 steps: FID / teacher-50", "4 steps",
                  "the one-step map at --lr 6e-5"], rows)  # fmt: skip


def count(test, *args, draws=DRAWS) -> str:
    return str(sum(test(d, *args) for d in draws))


TWO_TABLES = {"fs_two_networks": t_two_networks, "fs_two_held_out": t_two_held_out}
TWO_NUMBERS = {
    "fs.two.draws": lambda: str(len(DRAWS)),
    "fs.two.chain_targets": lambda: count(chain_targets),
    "fs.two.mean_read_chain": lambda: f"{mean([score(d, 'chain', 1)['per_100'] for d in DRAWS]):.1f}",
    "fs.two.read80_chain": lambda: count(reads80, "chain"),
}
for _lr, _stage in ARMS.items():
    TWO_NUMBERS |= {
        f"fs.two.{_lr}.read80": lambda s=_stage: count(reads80, s),
        f"fs.two.{_lr}.within": lambda s=_stage: count(within, s),
        f"fs.two.{_lr}.whole": lambda s=_stage: count(whole, s),
        f"fs.two.{_lr}.mean_read": lambda s=_stage: f"{mean([score(d, s, 1)['per_100'] for d in DRAWS]):.1f}",
        f"fs.two.{_lr}.one_range": lambda s=_stage: span([over(d, s, 1) for d in DRAWS], "{:.2f}x".format),
        f"fs.two.{_lr}.first100": lambda s=_stage: ", ".join(str(score(d, s, 1)["first_100"]) for d in DRAWS),
    }
TWO_NUMBERS |= {
    "fs.two.held.draws": lambda: str(len(HELD_OUT)),
    "fs.two.held.read80": lambda: count(reads80, HELD_STAGE, draws=HELD_OUT),
    "fs.two.held.within": lambda: count(within, HELD_STAGE, draws=HELD_OUT),
    "fs.two.held.chain_targets": lambda: count(chain_targets, draws=HELD_OUT),
    "fs.two.held.whole": lambda: count(whole, HELD_STAGE, draws=HELD_OUT),
    "fs.two.held.mean_read": lambda: f"{mean([score(d, HELD_STAGE, 1)['per_100'] for d in HELD_OUT]):.1f}",
    "fs.two.held.one_range": lambda: span([over(d, HELD_STAGE, 1) for d in HELD_OUT], "{:.2f}x".format),
    "fs.two.held.first100": lambda: ", ".join(str(score(d, HELD_STAGE, 1)["first_100"]) for d in HELD_OUT),
}


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
    "fs.two.held.missed_read": lambda: " and ".join(f"{score(d, HELD_STAGE, 1)['per_100']:.1f}" for d in missed()),
    "fs.two.held.missed_first": lambda: " and ".join(str(score(d, HELD_STAGE, 1)["first_100"]) for d in missed()),
    "fs.two.held.missed_p": lambda: " and ".join(
        f"{below80(score(d, HELD_STAGE, 1)['per_100']):.0%}" for d in missed()
    ),
    "fs.two.all.draws": lambda: str(len(DRAWS) + len(HELD_OUT)),
    "fs.two.all.read_min": lambda: f"{min(score(d, HELD_STAGE, 1)['per_100'] for d in {**DRAWS, **HELD_OUT}):.1f}",
    "fs.two.all.fid": lambda: str(sum(within(d, HELD_STAGE) and chain_targets(d) for d in {**DRAWS, **HELD_OUT})),
    "fs.two.pair.steps": lambda: f"{pair_line('pair')['steps']:,}",
    "fs.two.pair.same": same,
    "fs.two.pair.speed": lambda: span(pair_speed("pair"), "{:.0f}x".format),
    "fs.two.pair.cpu": lambda: pair_line("cpu")["cpu"],
}
