"""dmd's discriminator without the fake network's decoder, and two screens of the one-step map (session 25;
benchmarks/grow_student.sh) for docs/few_step.md and the README; render_docs.py merges these."""

from doc_sources import load_jsonl, table
from doc_sources_band import whole
from doc_sources_batch import met_all, ratio, read, steps
from doc_sources_grow import GROWN, scores, targets_table, whole_cell
from doc_sources_redraw import mean_read, run_chains

# dmd from session 24's "again" trajectory students (chain 1's first and third draws): session 24's run, and this
# session's with the library before (-dmd: the discriminator's input through the whole fake network) and after
# (-dmdenc: through its encoder and middle only)
AGAIN = {"chain 1, seed 1": "s24-s1-grow4x10-again", "chain 1, seed 3": "s24-s1-seed3-grow4x10-again"}
ENCODE_AB = {label: [("full forward", "24", f"{prefix}-dmd"),
                     ("full forward", "25", f"{prefix.replace('s24', 's25').replace('-grow4x10', '')}-dmd"),
                     ("encoder and middle", "25", f"{prefix.replace('s24', 's25').replace('-grow4x10', '')}-dmdenc")]
             for label, prefix in AGAIN.items()}  # fmt: skip
# the grown default pipeline's dmd stage drawn again, through the encoder, from session 23's trajectory students
ENCODED = {label: f"{prefix.replace('s23', 's25')}-dmdenc" for label, prefix in GROWN.items()}
DEFAULT = {label: f"{prefix}-dmd" for label, prefix in GROWN.items()}  # session 23's final runs
SIX = {"session 23 (full forward)": run_chains(DEFAULT), "session 25 (encoder and middle)": run_chains(ENCODED)}
# the trajectory stage with half its pairs at the trajectories' starts (few_step_ablation/start_share.py 0.5)
START = {"chain 1, seed 1": "s25-s1-start50", "chain 1, seed 3": "s25-s1-seed3-start50"}


def t_dmd_encode() -> str:
    """The same trajectory students through dmd before and after the change: steps and scores."""
    rows = [[label, reads, session, f"{steps(run):,}", *scores(label, run), whole_cell(label, run)]
            for label, runs in ENCODE_AB.items() for reads, session, run in runs]  # fmt: skip
    return table(["draw (session 24's trajectory student)", "discriminator's input through", "session",
                  "dmd steps (5 min)", "readable, 1 step", "FID / teacher-50, 1 step", "2 steps", "4 steps",
                  "readable at S = 0.65 (FID / teacher-50)", "issue whole at S = 0.65"], rows)  # fmt: skip


def t_dmd_encode_six() -> str:
    """Per draw, session 23's grown pipeline and its dmd stage again through the encoder: steps and scores."""
    rows = []
    for label in GROWN:
        for name, run in (("session 23 (full forward)", DEFAULT[label]),
                          ("session 25 (encoder and middle)", ENCODED[label])):  # fmt: skip
            rows.append([label, name, f"{steps(run):,}", *scores(label, run), whole_cell(label, run)])
    return table(["draw", "dmd", "dmd steps (5 min)", "readable, 1 step", "FID / teacher-50, 1 step", "2 steps",
                  "4 steps", "readable at S = 0.65 (FID / teacher-50)", "issue whole at S = 0.65"], rows)  # fmt: skip


def t_dmd_encode_targets() -> str:
    """Over the six draws, for either dmd: targets_table."""
    return targets_table(SIX)


def step_gain() -> str:
    """dmd steps through the encoder over steps through the whole network, this session, the same students."""
    gains = [steps(runs[2][2]) / steps(runs[1][2]) for runs in ENCODE_AB.values()]
    return f"{min(gains):.2f}-{max(gains):.2f}x" if f"{min(gains):.2f}" != f"{max(gains):.2f}" else f"{gains[0]:.2f}x"


SPEED = {"chain1": "one_step_cpu/dmd_encode_speed_c1.jsonl", "chain0": "one_step_cpu/dmd_encode_speed_c0.jsonl"}
# few_step_ablation/dmd_encode_speed.py: one minute of dmd, the two variants alternating, on each core one chain's
# student: chain 1's first "again" student (session 24), chain 0's first grown student (session 23)
SPEED_LABELS = {"chain1": "chain 1, seed 1 (session 24, again)", "chain0": "chain 0, seed 0 (session 23)"}


def speed_rows(chain: str) -> list[dict]:
    return load_jsonl(SPEED[chain])


def speed_gain(chain: str) -> str:
    """Per round, steps through the encoder over steps through the whole network: the range over the rounds."""
    rows = speed_rows(chain)
    gains = sorted(next(r["steps"] for r in rows if r["round"] == k and r["variant"] == "encoder and middle")
                   / next(r["steps"] for r in rows if r["round"] == k and r["variant"] == "full forward")
                   for k in {r["round"] for r in rows})  # fmt: skip
    return f"{gains[0]:.2f}-{gains[-1]:.2f}x"


def t_dmd_encode_speed() -> str:
    rows = [[SPEED_LABELS[chain], str(r["round"]), r["variant"], f"{r['steps']:,}"]
            for chain in SPEED for r in speed_rows(chain)]  # fmt: skip
    return table(["trajectory student", "round", "discriminator's input through", "dmd steps in 1 minute"], rows)


def t_start_share() -> str:
    """The trajectory stage with half its pairs at the starts, beside session 24's "again" runs (1 in 16)."""
    rows = []
    for label, prefix in START.items():
        for share, p in (("1 in 16 (uniform)", AGAIN[label]), ("1 in 2", prefix)):
            traj = f"{p}-traj"
            rows.append([label, share, f"{steps(traj):,}", read(traj), ratio(label, traj, 1),
                         *scores(label, f"{p}-dmd"), whole_cell(label, f"{p}-dmd")])  # fmt: skip
    return table(["draw", "pairs at the trajectories' starts", "trajectory steps (8 min)",
                  "trajectory student: readable, 1 step", "FID / teacher-50, 1 step", "after dmd: readable, 1 step",
                  "FID / teacher-50, 1 step", "2 steps", "4 steps", "readable at S = 0.65 (FID / teacher-50)",
                  "issue whole at S = 0.65"], rows)  # fmt: skip


# dmd from chain 1's first "again" student with x_T from a mixture of K Gaussians (few_step_ablation/mixture_prior.py
# K A), beside the same student's dmd from one Gaussian this session: run -> (K, A)
MIXTURE_LABEL = "chain 1, seed 1"
# K, A, the InfoGAN term's weight (few_step_ablation/mixture_info.py K A LAMBDA)
MIXTURE = {"s25-s1-again-dmdenc": ("1 (the library)", "-", "-"), "s25-s1-again-dmdenc-mix10a4": ("10", "4", "-"),
           "s25-s1-again-dmdenc-mix10a8": ("10", "8", "-"), "s25-s1-again-dmdenc-info10a8l03": ("10", "8", "0.3"),
           "s25-s1-again-dmdenc-info10a8l1": ("10", "8", "1")}  # fmt: skip
CODES = "one_step_cpu/mixture_codes.jsonl"  # few_step_ablation/mixture_codes.py: the digits each component draws
Q_LOG = "one_step_cpu/mixture_info_q.jsonl"  # mixture_info.py's stderr: Q's cross-entropy every 100 steps


def q_range() -> str:
    """Q's cross-entropy over both InfoGAN runs, every 100 steps from the 100th."""
    ce = [r["q_cross_entropy"] for r in load_jsonl(Q_LOG)]
    return f"{min(ce):.1f}-{max(ce):.1f}"


def top_share(run: str) -> str:
    """The mean over the components of the share of each one's most frequent digit (1: one digit per component)."""
    rows = [r for r in load_jsonl(CODES) if r["checkpoint"] == f"runs/{run}/checkpoints/last.pt"]
    return f"{sum(r['top_share'] for r in rows) / len(rows):.2f}" if rows else "-"


def t_mixture() -> str:
    rows = [[k, a, w, f"{steps(run):,}", *scores(MIXTURE_LABEL, run), top_share(run)]
            for run, (k, a, w) in MIXTURE.items()]  # fmt: skip
    return table(["Gaussians in x_T's mixture", "their means' norm", "InfoGAN weight", "dmd steps (5 min)",
                  "readable, 1 step", "FID / teacher-50, 1 step", "2 steps", "4 steps",
                  "readable at S = 0.65 (FID / teacher-50)", "a component's top digit's share (mean)"],
                 rows)  # fmt: skip


ENCODE_TABLES = {"fs_dmd_encode": t_dmd_encode, "fs_dmd_encode_six": t_dmd_encode_six,
                 "fs_dmd_encode_targets": t_dmd_encode_targets, "fs_start_share": t_start_share,
                 "fs_mixture": t_mixture, "fs_dmd_encode_speed": t_dmd_encode_speed}  # fmt: skip
ENCODE_NUMBERS = {
    "fs.enc.step_gain": step_gain,
    **{f"fs.enc.{k}.{name}": (lambda runs=runs, f=f: f(runs))
       for k, runs in (("s23", SIX["session 23 (full forward)"]), ("s25", SIX["session 25 (encoder and middle)"]))
       for name, f in (("met_all", lambda r: str(met_all(r))), ("whole65", lambda r: str(whole(r, 0.65))),
                       ("whole", lambda r: str(whole(r, 1.0))), ("mean_read", lambda r: f"{mean_read(r):.1f}"),
                       ("mean_read65", lambda r: f"{mean_read(r, 0.65):.1f}"))},
    **{f"fs.enc.{run}.{q}": (lambda label=label, run=run, q=q: read(run) if q == "read1" else read(run, 0.65)
                            if q == "read65" else ratio(label, run, int(q[1:])))
       for label, runs in ENCODE_AB.items() for _, _, run in runs for q in ("read1", "read65", "u1", "u2", "u4")},
    **{f"fs.enc.{p}-{stage}.read1": (lambda run=f"{p}-{stage}": read(run))
       for p in (*START.values(), *AGAIN.values()) for stage in ("traj", "dmd")},
    **{f"fs.enc.{p}-dmd.u{k}": (lambda label=label, run=f"{p}-dmd", k=k: ratio(label, run, k))
       for label, p in START.items() for k in (1, 2, 4)},
    **{f"fs.enc.{run}.{q}": (lambda run=run, q=q: read(run) if q == "read1" else read(run, 0.65))
       for run in MIXTURE for q in ("read1", "read65")},
    **{f"fs.enc.{run}.u1": (lambda run=run: ratio(MIXTURE_LABEL, run, 1)) for run in MIXTURE},
    "fs.enc.q_range": q_range,
    **{f"fs.enc.{run}.top": (lambda run=run: top_share(run)) for run in MIXTURE if run.endswith(("a8", "l03", "l1"))},
    **{f"fs.enc.speed.{c}": (lambda c=c: speed_gain(c)) for c in SPEED},
    "fs.enc.speed.rounds": lambda: str(len({r["round"] for r in speed_rows("chain1")})),
}  # fmt: skip
