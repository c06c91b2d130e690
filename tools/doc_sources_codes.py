"""A code inside the one-step map (`distill --student-codes K`) and a stronger GAN term (session 26;
benchmarks/grow_student.sh) for docs/few_step.md and the README; render_docs.py merges these."""

from doc_sources import load_jsonl, table
from doc_sources_band import whole
from doc_sources_batch import met_all, ratio, read, steps
from doc_sources_encode import ENCODED
from doc_sources_grow import GROWN, scores, targets_table, whole_cell
from doc_sources_redraw import draw_chain, mean_read, proxy_line, run_chains, teacher

# the grown pipeline with a code of 20 classes, the six draws with the default pipeline's seeds: <prefix>-traj (8
# minutes of trajectories), <prefix>-dmd (5 more of dmd)
CODED = {label: prefix.replace("s23", "s26").replace("grow4x10", "coded20") for label, prefix in GROWN.items()}
# the same draws without a code: session 23's trajectory students, session 25's dmd through the encoder (the default
# until this session)
PLAIN = {label: (f"{prefix}-traj", ENCODED[label]) for label, prefix in GROWN.items()}
BOTH = {"no code (session 25)": run_chains(ENCODED),
        "--student-codes 20": run_chains({label: f"{prefix}-dmd" for label, prefix in CODED.items()})}  # fmt: skip
# the two thinnest draws drawn again through the library's flag at its defaults (the runs above: the wrapper)
LIBRARY = {"chain 1, seed 1": "s26-s1-lib", "chain 1, seed 3": "s26-s1-seed3-lib"}
K40 = {"chain 1, seed 1": "s26-s1-codes40", "chain 1, seed 3": "s26-s1-seed3-codes40"}  # ... with --student-codes 40
# dmd's GAN weight (--dmd-gan; 0.3 the default) from chain 1's first grown trajectory student, seed 1
GAN = {"0.3 (the default)": ENCODED["chain 1, seed 1"], "1": "s26-s1-gan1", "3": "s26-s1-gan3"}
GAN_LABEL = "chain 1, seed 1"


def t_codes_six() -> str:
    """Per draw, the grown pipeline without and with a code: the trajectory student, then after dmd."""
    rows = []
    for label in GROWN:
        for name, (traj, dmd) in (("no code (session 25)", PLAIN[label]),
                                  ("20 codes", (f"{CODED[label]}-traj", f"{CODED[label]}-dmd"))):  # fmt: skip
            rows.append([label, name, f"{steps(traj):,}", read(traj), ratio(label, traj, 1), f"{steps(dmd):,}",
                         *scores(label, dmd), whole_cell(label, dmd)])  # fmt: skip
    return table(["draw", "student", "trajectory steps (8 min)", "trajectory student: readable, 1 step",
                  "FID / teacher-50, 1 step", "dmd steps (5 min)", "after dmd: readable, 1 step",
                  "FID / teacher-50, 1 step", "2 steps", "4 steps", "readable at S = 0.65 (FID / teacher-50)",
                  "issue whole at S = 0.65"], rows)  # fmt: skip


def t_codes_targets() -> str:
    """Over the six draws, without and with a code: targets_table."""
    return targets_table(BOTH)


def t_codes_library() -> str:
    """The wrapper's runs and the library's of the same draws and seeds: trajectory student, then after dmd."""
    rows = []
    for label, prefix in LIBRARY.items():
        for name, p in (("the screening wrapper, 20 codes", CODED[label]), ("`distill` at its defaults (20)", prefix),
                        ("`distill --student-codes 40`", K40[label])):  # fmt: skip
            traj, dmd = f"{p}-traj", f"{p}-dmd"
            rows.append([label, name, f"{steps(traj):,}", read(traj), f"{steps(dmd):,}", *scores(label, dmd),
                         whole_cell(label, dmd)])  # fmt: skip
    return table(["draw", "made through", "trajectory steps (8 min)", "trajectory student: readable, 1 step",
                  "dmd steps (5 min)", "after dmd: readable, 1 step", "FID / teacher-50, 1 step", "2 steps",
                  "4 steps", "readable at S = 0.65 (FID / teacher-50)", "issue whole at S = 0.65"], rows)  # fmt: skip


def t_gan_weight() -> str:
    rows = [[w, f"{steps(run):,}", *scores(GAN_LABEL, run)] for w, run in GAN.items()]
    return table(["GAN weight (--dmd-gan)", "dmd steps (5 min)", "readable, 1 step", "FID / teacher-50, 1 step",
                  "2 steps", "4 steps", "readable at S = 0.65 (FID / teacher-50)"], rows)  # fmt: skip


def first_100(runs: dict[str, str], noise_scale: float) -> str:
    """Readable among the first 100 one-step samples (the issue's own count), per draw in GROWN's order."""
    return ", ".join(str(proxy_line(run, 1, noise_scale)["first_100"]) for run in runs)


def mean_gain(stage: str, noise_scale: float = 1.0) -> str:
    """The code's mean gain in readable per 100 at one step over the six draws: the trajectory students or dmd's."""
    pick = 0 if stage == "traj" else 1
    plain = [PLAIN[label][pick] for label in GROWN]
    coded = [f"{CODED[label]}-{stage}" for label in GROWN]
    return f"{mean_read(coded, noise_scale) - mean_read(plain, noise_scale):.1f}"


def u_range(noise_scale: float) -> str:
    """The coded students' one-step FID over their draw's plain teacher at 50 steps: the range over the draws."""
    ratios = sorted(proxy_line(f"{prefix}-dmd", 1, noise_scale)["fid"] / teacher(draw_chain(label))["fid"]
                    for label, prefix in CODED.items())  # fmt: skip
    return f"{ratios[0]:.2f}-{ratios[-1]:.2f}x"


SPEED = "one_step_cpu/codes_speed.jsonl"  # few_step_ablation/one_step_speed.py: the teacher (50 steps), grown, coded
PURITY = {0: "one_step_cpu/code_purity_c0.jsonl", 1: "one_step_cpu/code_purity_c1.jsonl"}  # code_purity.py


def speed_range(model: str) -> str:
    """One step's images per second over the teacher's 50 steps, the range over the rounds."""
    s = sorted(r["over_teacher"] for r in load_jsonl(SPEED) if r["model"] == model)
    return f"{s[0]:.0f}-{s[-1]:.0f}x" if f"{s[0]:.0f}" != f"{s[-1]:.0f}" else f"{s[0]:.0f}x"


def purity(chain: int) -> dict:
    return load_jsonl(PURITY[chain])[0]


def student_range(key: str) -> str:
    """A code_purity.py share over every coded student of both chains: its range."""
    v = sorted(st[key] for c in PURITY for st in purity(c)["students"])
    return f"{v[0]:.2f}-{v[-1]:.2f}"


CODES_TABLES = {"fs_codes_six": t_codes_six, "fs_codes_targets": t_codes_targets, "fs_gan_weight": t_gan_weight,
                "fs_codes_library": t_codes_library}  # fmt: skip
CODES_NUMBERS = {
    **{f"fs.codes.{key}.{name}": (lambda runs=runs, f=f: f(runs))
       for key, runs in (("plain", BOTH["no code (session 25)"]), ("coded", BOTH["--student-codes 20"]))
       for name, f in (("met_all", lambda r: str(met_all(r))), ("whole65", lambda r: str(whole(r, 0.65))),
                       ("whole", lambda r: str(whole(r, 1.0))), ("mean_read", lambda r: f"{mean_read(r):.1f}"),
                       ("mean_read65", lambda r: f"{mean_read(r, 0.65):.1f}"),
                       ("first100", lambda r: first_100(r, 1.0)), ("first100_65", lambda r: first_100(r, 0.65)))},
    **{f"fs.codes.gain.{stage}": (lambda stage=stage: mean_gain(stage)) for stage in ("traj", "dmd")},
    "fs.codes.gain.dmd65": lambda: mean_gain("dmd", 0.65),
    "fs.codes.coded.u65_range": lambda: u_range(0.65),
    "fs.codes.lib.first100_65": lambda: first_100([f"{p}-dmd" for p in LIBRARY.values()], 0.65),
    "fs.codes.lib.u65": lambda: " and ".join(ratio(label, f"{p}-dmd", 1, 0.65) for label, p in LIBRARY.items()),
    "fs.codes.lib.read65": lambda: " and ".join(read(f"{p}-dmd", 0.65) for p in LIBRARY.values()),
    "fs.codes.lib.read1": lambda: " and ".join(read(f"{p}-dmd") for p in LIBRARY.values()),
    "fs.codes.wrapper.read1": lambda: " and ".join(read(f"{CODED[label]}-dmd") for label in LIBRARY),
    "fs.codes.k40.read1": lambda: " and ".join(read(f"{p}-dmd") for p in K40.values()),
    "fs.codes.k40.read65": lambda: " and ".join(read(f"{p}-dmd", 0.65) for p in K40.values()),
    "fs.codes.k40.u65": lambda: " and ".join(ratio(label, f"{p}-dmd", 1, 0.65) for label, p in K40.items()),
    "fs.codes.k40.first100_65": lambda: first_100([f"{p}-dmd" for p in K40.values()], 0.65),
    "fs.codes.k40.traj": lambda: " and ".join(read(f"{p}-traj") for p in K40.values()),
    "fs.codes.lib.traj": lambda: " and ".join(read(f"{p}-traj") for p in LIBRARY.values()),
    **{f"fs.codes.speed.{m}": (lambda m=m: speed_range(m)) for m in ("grown", "coded")},
    **{f"fs.codes.purity.c{c}": (lambda c=c: f"{purity(c)['purity']:.2f}") for c in PURITY},
    **{f"fs.codes.purity_random.c{c}": (lambda c=c: f"{purity(c)['purity_random_codes']:.2f}") for c in PURITY},
    "fs.codes.purity.n": lambda: f"{purity(0)['n']:,}",
    **{f"fs.codes.{key}": (lambda key=key: student_range(key))
       for key in ("head_in_end_clusters", "head_in_end_digits", "head_in_own_digits")},
    "fs.codes.same_digit": lambda: student_range("same_digit_both_read"),
    **{f"fs.codes.gan.{w.split()[0]}.read1": (lambda run=run: read(run)) for w, run in GAN.items()},
    **{f"fs.codes.gan.{w.split()[0]}.u1": (lambda run=run: ratio(GAN_LABEL, run, 1)) for w, run in GAN.items()},
}  # fmt: skip
