"""The bad model of autoguidance from the teacher's own run (session 31; benchmarks/own_bad_model.sh) for
docs/few_step.md; render_docs.py merges these. Each fresh teacher's 50-step default sampler, autoguided at 2.5 by its
own state after 2 minutes (a 2-minute run with the teacher's seed) and by the 2-minute model of seed 5 that the
pipeline trains (s27-bad2): own_bad_model_mnist_uncond.jsonl, with the determinism check that makes the first the
teacher's own state."""

from doc_sources import load_jsonl, table
from doc_sources_fresh import teacher

FILE = "one_step_cpu/own_bad_model_mnist_uncond.jsonl"
CHAINS = (0, 1)
BAD = {"own": "runs/s31-own2-s{chain}/checkpoints/last.pt", "pipeline": "runs/s27-bad2/checkpoints/last.pt"}


def guided(chain: int, bad: str) -> dict:
    """The teacher of `chain` autoguided by BAD[bad] (readability_proxy.py's line)."""
    path, ckpt = f"runs/s27-uncond-s{chain}/checkpoints/last.pt", BAD[bad].format(chain=chain)
    return next(r for r in load_jsonl(FILE) if r.get("checkpoint") == path and r.get("autoguide") == ckpt)


def ratio(chain: int, bad: str) -> float:
    """FID over the plain teacher's 50-step FID."""
    return guided(chain, bad)["fid"] / teacher(chain)["fid"]


def deterministic() -> str:
    """The docs' argument rests on it: a results file without identical weights stops the rendering."""
    if not next(r for r in load_jsonl(FILE) if "determinism" in r)["identical_weights"]:
        raise SystemExit(f"{FILE}: the two runs of one seed differ, so the docs' argument does not hold")
    return "bit for bit"


def t_own_bad() -> str:
    def row(chain: int, what: str, r: dict, over: float) -> list[str]:
        return [f"chain {chain}", what, f"{r['fid']:.2f} ({over:.2f}x)", f"{r['per_100']:.1f} ({r['first_100']})"]

    rows = []
    for chain in CHAINS:
        rows.append(row(chain, "none (the teacher's 50 steps)", teacher(chain), 1.0))
        rows.append(row(chain, "the pipeline's 2-minute model (seed 5)", guided(chain, "pipeline"),
                        ratio(chain, "pipeline")))  # fmt: skip
        rows.append(row(chain, "the teacher's own state after 2 minutes", guided(chain, "own"), ratio(chain, "own")))
    return table(["teacher", "autoguided (w = 2.5) by", "FID (/ teacher-50)", "readable per 100 (first 100)"], rows)


OWNBAD_TABLES = {"fs_own_bad": t_own_bad}
OWNBAD_NUMBERS = {
    "fs.ownbad.deterministic": deterministic,
    "fs.ownbad.fid": lambda: " and ".join(f"{ratio(c, 'own'):.2f}x" for c in CHAINS),
    "fs.ownbad.fid_pipeline": lambda: " and ".join(f"{ratio(c, 'pipeline'):.2f}x" for c in CHAINS),
    "fs.ownbad.read": lambda: " and ".join(f"{guided(c, 'own')['per_100']:.1f}" for c in CHAINS),
    "fs.ownbad.fid_lower": lambda: str(sum(ratio(c, "own") < ratio(c, "pipeline") for c in CHAINS)),
    "fs.ownbad.read_higher": lambda: str(
        sum(guided(c, "own")["per_100"] > guided(c, "pipeline")["per_100"] for c in CHAINS)
    ),
    "fs.ownbad.read_pipeline": lambda: " and ".join(f"{guided(c, 'pipeline')['per_100']:.1f}" for c in CHAINS),
}
