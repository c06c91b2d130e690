"""Time the README's test command the way `.ci/run` meets it: a fresh clone, the README's set-up, no extras.

Clones the repository's HEAD into a temporary folder beside nothing of this checkout (no venv, no build, no
cache), runs the README's test command (the second fenced block of README.md, verbatim: it makes the virtual
environment and installs `.[dev]` first), and then runs its pytest part --runs - 1 more times in the same
environment. Each run's time is pytest's own ("in 61.23s"), the set-up excluded. Nothing else should run on
the machine meanwhile; the script does not check that, so say so when you commit its numbers.

    python benchmarks/suite_time.py --runs 2 --out benchmarks/results/test_suite_cpu.json

The README's command installs torch==2.13.0 from the configured index (on these machines a local CPU build);
the data the real-data tests read is ../shared/data/ beside the clone, as for any checkout.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from cleardiffusion.experiments.report import cpu_model, git_commit

ROOT = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    """The README's second fenced bash block: the set-up-and-test command."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return blocks[1].strip()


def pytest_part(command: str) -> str:
    """`python -m pytest ...`: the part of the README's command that runs the tests once set up."""
    return ". .venv/bin/activate && " + command[command.index("python -m pytest") :]


def timed(command: str, cwd: Path) -> dict:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True)
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0:
        raise SystemExit(
            f"the test command failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
    seconds = float(re.search(r"in ([\d.]+)s", tail).group(1))
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|skipped|failed|xfailed)", tail)}
    return {"seconds": seconds, "passed": counts.get("passed", 0), "skipped": counts.get("skipped", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="timed runs (the first includes the set-up)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/test_suite_cpu.json")
    args = parser.parse_args()
    command = readme_test_command()
    commit = git_commit()
    # the clone sits beside the repository, as a clean clone does, so that ../shared/data resolves the same way
    parent = Path(tempfile.mkdtemp(prefix=".suite-time-", dir=ROOT.parent))
    clone = parent / "clone"
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        if (ROOT.parent / "shared").exists() and not (parent / "shared").exists():
            (parent / "shared").symlink_to(ROOT.parent / "shared")
        runs = [timed(command, clone)]
        for _ in range(args.runs - 1):
            runs.append(timed(pytest_part(command), clone))
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    for run in runs:
        print(f"{run['seconds']:.2f} s: {run['passed']} passed, {run['skipped']} skipped")
    result = {
        "command": command[command.index("python -m pytest") :],
        "where": f"a fresh clone of commit {commit} with the README's set-up and test command "
        "(benchmarks/suite_time.py): no extras, so the ONNX tests skip",
        "machine": f"{cpu_model()}, {len(os.sched_getaffinity(0))} cores",
        "date": datetime.date.today().isoformat(),
        "runs": runs,
        "note": "pytest's own reported time of each run, the set-up excluded; nothing else heavy was meant to run",
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
