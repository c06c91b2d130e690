"""Mutation testing of the core modules with mutmut 3: which deliberate one-line bugs does the suite miss?

    python tools/mutation.py                                  # every module in MODULE_TESTS
    python tools/mutation.py schedule guidance --label after  # some modules, results tagged "after"
    python tools/mutation.py --report                         # only rebuild the README from the JSON files

For each module the script builds a scratch copy of the repository (src/, tests/ and a pyproject.toml whose
[tool.mutmut] is the repository's plus this module's `only_mutate` and test files), runs `mutmut run` there,
and writes benchmarks/results/mutation_cpu/<module>-<label>.json (counts per status, every surviving mutant
with its diff) and README.md (a table over all the JSON files). It is not part of the test suite.

Each module is checked against its own test files only (MODULE_TESTS): a mutant counts as killed when those
tests fail, not when some far-away test happens to notice. mutmut skips decorated functions, so in the scratch
copy (only) a top-level `@torch.no_grad()` / `@torch.inference_mode()` is rewritten as `f = torch.no_grad()(f)`
after the function: the same function, now mutated like the others. A survivor whose diff only changes the
text of a string (an error message) is counted apart as "message": a test checks that the right error is
raised and names the fix, not its every word. docs/testing.md says which survivors are equivalent or accepted.
"""

import argparse
import ast
import fnmatch
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "mutation_cpu"
PACKAGE = "src/cleardiffusion"
# module -> the test files that own it (a mutant survives unless one of these fails)
MODULE_TESTS: dict[str, list[str]] = {
    "schedule": [
        "tests/test_schedule.py",
        "tests/test_samplers.py",
        "tests/test_solvers.py",
        "tests/test_objective.py",
    ],
    "objective": ["tests/test_objective.py", "tests/test_schedule.py"],
    "guidance": ["tests/test_guidance.py", "tests/test_objective.py"],
    "denoiser": [  # test_consistency / test_meanflow: the few-step paths, the jump grid, their parts
        "tests/test_samplers.py",
        "tests/test_solvers.py",
        "tests/test_flow.py",
        "tests/test_objective.py",
        "tests/test_consistency.py",
        "tests/test_meanflow.py",
    ],
    "samplers": [
        "tests/test_samplers.py",
        "tests/test_solvers.py",
        "tests/test_flow.py",
        "tests/test_consistency.py",
        "tests/test_meanflow.py",
    ],  # the last two: consistency_sample and meanflow_sample
    "flow": ["tests/test_flow.py", "tests/test_meanflow.py"],  # the latter: the two network times of MeanFlow
    "generate": ["tests/test_plumbing.py", "tests/test_consistency.py"],  # the latter: teacher_trajectories
    "train": [
        "tests/test_train.py::test_label_dropout_and_flips_follow_their_probabilities",
        "tests/test_train.py::test_a_process_slice_of_the_global_draw_is_what_a_single_process_draws",
        "tests/test_guidance.py",
        "tests/test_plumbing.py",
    ],
    "evaluate": ["tests/test_evaluate.py", "tests/test_scorer.py"],  # test_scorer: score_features and softmax
    "checkpoint": ["tests/test_checkpoint.py"],
}
# modules whose run is limited to some functions (the rest is I/O and bookkeeping, or too slow to test per mutant)
MODULE_FUNCTIONS: dict[str, list[str]] = {
    "train": ["draw_batch", "learning_rate", "ema_decay", "ema_update_", "train_step"]
}
UNWRAPPED_DECORATORS = ("torch.no_grad()", "torch.inference_mode()")
STRING = re.compile(r"""(?:[rbfu]{0,2})("[^"]*"|'[^']*')""", re.IGNORECASE)


def toml_value(value) -> str:
    """A TOML literal for a string, number, bool or list of them (json's quoting is valid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def write_pyproject(work: Path, module: str, tests: list[str]) -> None:
    """The repository's pytest options and [tool.mutmut], narrowed to one module and its tests."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pytest_options = dict(project["tool"]["pytest"]["ini_options"])
    pytest_options.pop("addopts", None)  # --durations output is noise in a mutant's log
    mutmut = dict(project["tool"].get("mutmut", {}))
    mutmut["only_mutate"] = [f"{PACKAGE}/{module}.py"]
    mutmut["pytest_add_cli_args_test_selection"] = tests
    lines = ["[tool.pytest.ini_options]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in pytest_options.items()]
    lines += ["", "[tool.mutmut]"] + [f"{k} = {toml_value(v)}" for k, v in mutmut.items()]
    (work / "pyproject.toml").write_text("\n".join(lines) + "\n")


def unwrap_decorators(path: Path) -> list[str]:
    """Rewrite `@torch.no_grad()\\ndef f` as `def f ... f = torch.no_grad()(f)` so mutmut mutates f."""
    source = path.read_text()
    lines = source.splitlines(keepends=True)
    edits = []  # (decorator line, end line, name, decorator), applied bottom-up
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and len(node.decorator_list) == 1:
            decorator = ast.unparse(node.decorator_list[0])
            if decorator in UNWRAPPED_DECORATORS:
                edits.append((node.decorator_list[0].lineno, node.end_lineno, node.name, decorator))
    for line, end, name, decorator in sorted(edits, reverse=True):
        lines.insert(end, f"{name} = {decorator}({name})\n")
        del lines[line - 1]
    path.write_text("".join(lines))
    return [name for _, _, name, _ in edits]


def mutant_patterns(module: str, functions: list[str]) -> list[str]:
    """mutmut's names of the mutants of these functions ("f" or "Class.method"), as fnmatch patterns."""
    names = [f"x{'ǁ'.join(['', *f.split('.')])}" if "." in f else f"x_{f}" for f in functions]
    return [f"cleardiffusion.{module}.{name}__mutmut_*" for name in names]


def run_mutmut(work: Path, max_children: int, time_limit: float, log: Path, patterns: list[str]) -> tuple[float, bool]:
    """`mutmut run` in `work`, niced, one torch thread per child; stopped after `time_limit` seconds."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the mutated copy, never the original
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    mutmut = Path(sys.executable).with_name("mutmut")
    command = [str(mutmut), "run", "--max-children", str(max_children), *patterns]
    start = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=lambda: os.nice(10),
        )  # fmt: skip
        try:
            process.wait(timeout=time_limit)
            finished = process.returncode == 0
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            finished = False
    return time.monotonic() - start, finished


def message_only(diff: str) -> bool:
    """True when every changed line differs from its original only inside string literals (or -> None)."""
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    if not removed or len(removed) != len(added):
        return False
    for old, new in zip(removed, added, strict=True):
        if STRING.sub('""', old) == STRING.sub('""', new):
            continue
        if re.fullmatch(r"\s*raise \w+\(None\)\s*", new) and re.match(r"\s*raise \w+\(", old):
            continue
        return False
    return True


def collect(work: Path, module: str, patterns: list[str]) -> dict:
    """Status counts and surviving mutants (with diffs) from mutmut's metadata in `work`."""
    here = Path.cwd()
    os.chdir(work)  # mutmut reads its configuration and mutants/ from the current folder
    try:
        from mutmut.configuration import reset_config
        from mutmut.mutation.diff_apply import get_diff_for_mutant
        from mutmut.stats import status_by_exit_code

        reset_config()
        source = Path(f"{PACKAGE}/{module}.py")
        meta_path = Path("mutants") / f"{source}.meta"
        codes = json.loads(meta_path.read_text())["exit_code_by_key"] if meta_path.exists() else {}
        if patterns:
            codes = {k: v for k, v in codes.items() if any(fnmatch.fnmatch(k, p) for p in patterns)}
        counts = Counter(status_by_exit_code[code] for code in codes.values())
        by_function: dict[str, Counter] = {}
        for name, code in codes.items():
            function = name.split(".")[-1].rsplit("__mutmut_", 1)[0][2:].replace("ǁ", ".")  # x_f, xǁClassǁmethod
            by_function.setdefault(function, Counter())[status_by_exit_code[code]] += 1
        survivors = []
        for name, code in codes.items():
            if status_by_exit_code[code] in ("survived", "no tests", "timeout", "suspicious"):
                diff = get_diff_for_mutant(name, path=source)
                changed = [line for line in diff.splitlines()[2:] if line[:1] in "+-"]
                survivors.append({"name": name.split(".")[-1], "status": status_by_exit_code[code],
                                  "message_only": message_only(diff), "diff": changed})  # fmt: skip
    finally:
        os.chdir(here)
    functions = {f: dict(c) for f, c in by_function.items()}
    return {"counts": dict(counts), "total": len(codes), "by_function": functions, "survivors": survivors}


def summarise(result: dict) -> dict:
    """Killed / survived, with message-only survivors apart, and the score over the rest."""
    counts, survivors = result["counts"], result["survivors"]
    messages = sum(s["message_only"] for s in survivors if s["status"] == "survived")
    survived = counts.get("survived", 0) + counts.get("no tests", 0)
    tried = result["total"] - counts.get("not checked", 0)
    behavioural = max(tried - messages, 1)
    return {"tried": tried, "killed": counts.get("killed", 0) + counts.get("caught by type check", 0),
            "survived": survived, "message_only": messages, "timeout": counts.get("timeout", 0),
            "not_checked": counts.get("not checked", 0),
            "survived_pct_of_behavioural": round(100 * (survived - messages) / behavioural, 1)}  # fmt: skip


def _describe(ref: str | None) -> str:
    """The commit that was mutated: REF's short hash, or HEAD's plus "+ working tree"."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref or "HEAD"], capture_output=True)
    return head.stdout.decode().strip() + ("" if ref else " + working tree")


def _committed(ref: str, path: str) -> bool:
    check = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{ref}:{path}"], capture_output=True)
    return check.returncode == 0


def run_module(module: str, args) -> dict:
    tests = MODULE_TESTS[module]
    exists = (lambda t: _committed(args.ref, t)) if args.ref else (lambda t: (ROOT / t).is_file())
    missing = [t for t in tests if not exists(t.split("::")[0])]  # a file, or a file::test
    tests = [t for t in tests if t not in missing]
    if not tests:
        raise SystemExit(f"no test file of {module} exists ({', '.join(missing)})")
    work = Path(args.work) / module
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if args.ref:  # src/ and tests/ as committed at REF, e.g. to measure "before" while the tests change
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.ref, "src", "tests"], capture_output=True)
        if archive.returncode:
            raise SystemExit(f"git archive {args.ref} failed: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive.stdout, check=True)
    else:
        shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    write_pyproject(work, module, tests)
    unwrapped = unwrap_decorators(work / PACKAGE / f"{module}.py")
    functions = MODULE_FUNCTIONS.get(module, [])
    patterns = mutant_patterns(module, functions)
    only = f" (functions {', '.join(functions)})" if functions else ""
    print(f"{module}: mutating {PACKAGE}/{module}.py{only} against {' '.join(tests)} (log: {work / 'mutmut.log'})")
    seconds, finished = run_mutmut(work, args.max_children, args.time_limit, work / "mutmut.log", patterns)
    result = collect(work, module, patterns)
    import mutmut
    import torch

    result.update(
        module=module, label=args.label, ref=_describe(args.ref), tests=tests, missing_tests=missing,
        functions=functions or "all", unwrapped_decorators=unwrapped,
        finished=finished, seconds=round(seconds), date=time.strftime("%Y-%m-%d", time.gmtime()),
        mutmut=mutmut.__version__ if hasattr(mutmut, "__version__") else "3", torch=torch.__version__,
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, max_children={args.max_children}",
    )  # fmt: skip
    result["summary"] = summarise(result)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{module}-{args.label}.json").write_text(json.dumps(result, indent=1) + "\n")
    s = result["summary"]
    print(f"{module}: {s['tried']} mutants, {s['killed']} killed, {s['survived']} survived "
          f"({s['message_only']} message-only), {s['timeout']} timeouts; {seconds:.0f} s"
          + ("" if finished else " (stopped: time limit or error, see the log)"))  # fmt: skip
    for s in result["survivors"]:
        if not s["message_only"]:
            print(f"  {s['status']}: {s['name']}\n    " + "\n    ".join(s["diff"]))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def write_readme() -> None:
    """A table over every results file, modules in MODULE_TESTS order, "before" ahead of "after"."""
    rows = []
    order = list(MODULE_TESTS)
    for path in sorted(OUT.glob("*-*.json")):
        r = json.loads(path.read_text())
        s = r["summary"]
        rows.append((order.index(r["module"]) if r["module"] in order else 99, r["label"] != "before", r, s))
    lines = [
        "# Mutation testing (CPU)",
        "",
        "Produced by `python tools/mutation.py MODULE... --label LABEL` (mutmut 3, one run per module against",
        "that module's own test files; see docs/testing.md). `survived` counts mutants no test of the module",
        "caught; `message` those among them that only change the text of a string (an error message);",
        "`% survived` is (survived - message) / (tried - message). Each JSON file lists every survivor's diff.",
        "",
        "`untried`: mutants left when the run hit its time limit (`--time-limit`). `ref`: the commit mutated",
        "(`+`: the working tree had uncommitted changes then; the run's JSON file says so too).",
        "",
        "| module | label | ref | tests | tried | killed | survived | message | timeout | % survived | untried"
        " | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, _, r, s in sorted(rows, key=lambda row: row[:2]):
        tests = ", ".join(Path(t).name for t in r["tests"])
        ref = r["ref"].replace(" + working tree", "+")
        cells = [r["module"], r["label"], ref, tests, s["tried"], s["killed"], s["survived"], s["message_only"],
                 s["timeout"], s["survived_pct_of_behavioural"], s["not_checked"], r["seconds"]]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    (OUT / "README.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help=f"modules to mutate (default: all of {', '.join(MODULE_TESTS)})")
    parser.add_argument("--label", default="current", help="tag of this run in the file names (e.g. before, after)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested in parallel")
    parser.add_argument("--time-limit", type=float, default=1800, help="seconds per module before mutmut is stopped")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "cleardiffusion-mutation"),
                        help="scratch folder for the mutated copies")  # fmt: skip
    parser.add_argument("--ref", help="mutate and test src/ and tests/ as committed at this ref (default: as they are)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (for `mutmut show` there)")
    parser.add_argument("--report", action="store_true", help="only rebuild README.md from the JSON files")
    args = parser.parse_args()
    unknown = [m for m in args.modules if m not in MODULE_TESTS]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULE_TESTS)}")
    if not re.fullmatch(r"[\w.]+", args.label):
        parser.error("--label must be letters, digits, '_' or '.'")
    if not args.report:
        for module in args.modules or list(MODULE_TESTS):
            run_module(module, args)
    write_readme()


if __name__ == "__main__":
    main()
