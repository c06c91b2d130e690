"""The documentation tells the truth: generated tables match their results files, every command line parses.

tools/render_docs.py writes the tables and numbers between markers from benchmarks/results/; here its output
must equal what is committed. Every `cleardiffusion ...` line in README.md and docs/*.md (code blocks and
inline code) goes through the real parser, so a renamed or required flag fails a test instead of a reader.
"""

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest

from cleardiffusion.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("render_docs", ROOT / "tools" / "render_docs.py")
render_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render_docs)

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# ------------------------------------------------------------------------------------ generated numbers
@pytest.mark.parametrize("path", render_docs.documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_tables_match_the_results(path):
    text = path.read_text()
    assert render_docs.render(text, str(path)) == text, (
        f"{path.relative_to(ROOT)} differs from its results files: run python tools/render_docs.py"
    )


def test_a_stale_number_is_caught_and_rewritten():
    text = "FID <!-- n:few.best -->9.99<!-- /n -->\n<!-- table:mnist30_fid -->\n| old |\n<!-- /table:mnist30_fid -->\n"
    new = render_docs.render(text, "here")
    assert new != text
    assert "9.99" not in new and "| old |" not in new
    assert render_docs.render(new, "here") == new  # rendering is idempotent


def test_an_unknown_marker_is_an_error():
    with pytest.raises(SystemExit, match="unknown table"):
        render_docs.render("<!-- table:nonesuch -->\n<!-- /table:nonesuch -->", "here")
    with pytest.raises(SystemExit, match="unknown number"):
        render_docs.render("<!-- n:nonesuch -->1<!-- /n -->", "here")


def test_a_committed_recipe_run_adds_its_rows_with_ratios_to_its_own_peer(tmp_path, monkeypatch):
    """cpu_quality's runs live in one results file each; a diffusers-recipe run's rows join the table, each row
    naming its run, and its ratios divide by its own peer, not by the diffusers row of the older run."""
    import doc_sources  # loaded by render_docs (tools/ is on its path)
    import doc_sources_extra

    results = ROOT / "benchmarks" / "results"
    (tmp_path / "bf16_cpu").mkdir()
    for rel in ("cpu_quality_mnist.json", "cpu_quality_fashion-mnist.json", "bf16_cpu/README.md"):
        (tmp_path / rel).write_text((results / rel).read_text())
    old = json.loads((results / "cpu_quality_mnist.json").read_text())
    ours, peer = json.loads(json.dumps(old["systems"]["ours"])), json.loads(json.dumps(old["systems"]["diffusers"]))
    ours |= {"precision": "bf16", "metrics": {**ours["metrics"], "fid": 3.0}}
    peer |= {"precision": "bf16", "metrics": {**peer["metrics"], "fid": 6.0}}
    recipe_run = {"header": {**old["header"], "date": "2099-01-02 03:04 UTC"},
                  "systems": {"ours": ours, "diffusers-recipe": peer}}  # fmt: skip
    (tmp_path / "cpu_quality_mnist_recipe.json").write_text(json.dumps(recipe_run))
    monkeypatch.setattr(doc_sources, "RESULTS", tmp_path)
    monkeypatch.setattr(doc_sources_extra, "RESULTS", tmp_path)

    before = render_docs.TABLES["cpu_quality"]()
    rows = [r for r in before.splitlines() if "`cpu_quality_mnist_recipe` 2099-01-02" in r]
    assert len(rows) == 2 and "given our recipe" in rows[1] and "| 6.00 |" in rows[1]
    assert rows[0].endswith("| 0.50x |") and rows[1].endswith("| 1.00x |")  # 3.0 / 6.0: ours / its own peer
    note = render_docs.NUMBERS["cpu.recipe_note"]()
    plain = old["systems"]["diffusers"]["metrics"]["fid"]
    assert f"{6.0 / plain:.2f}x, two runs" in note and "0.50x, one run" in note
    (tmp_path / "cpu_quality_mnist_recipe.json").unlink()  # before the run: no rows, and the note says so
    assert "cpu_quality_mnist_recipe" not in render_docs.TABLES["cpu_quality"]()
    assert "not been run yet" in render_docs.NUMBERS["cpu.recipe_note"]()


def test_the_readme_has_generated_tables_and_stays_short():
    text = (ROOT / "README.md").read_text()
    assert "<!-- table:headline -->" in text
    assert len(text.splitlines()) <= 160


def test_the_readme_starts_with_the_two_set_up_commands():
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks[0].strip().endswith("cleardiffusion toy --out runs/toy")
    assert "python -m pytest" in blocks[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[1].strip().split("&& python -m pytest")[1] in ci


# ---------------------------------------------------------------------------------------- command lines
def command_lines(path: Path) -> list[str]:
    """`cleardiffusion ...` lines of code blocks (continuations joined) and of inline code."""
    text = path.read_text()
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("cleardiffusion "):
                found.append(line)
    outside = re.sub(r"```.*?```", "", text, flags=re.S)
    found += [m.replace("\n", " ") for m in re.findall(r"`(cleardiffusion [^`]+)`", outside)]
    return found


def all_command_lines() -> list[tuple[str, str]]:
    return [(str(p.relative_to(ROOT)), line) for p in DOCS for line in command_lines(p)]


def test_the_docs_have_command_lines():
    assert len(all_command_lines()) >= 10


@pytest.mark.parametrize("where,line", all_command_lines())
def test_every_command_line_parses(where, line):
    parser = build_parser()
    argv = shlex.split(line, comments=True)[1:]
    commands = parser._subparsers._group_actions[0].choices
    if len(argv) == 1:  # a command's name in running text, as in the commands table
        assert argv[0] in commands, f"{where}: no command {argv[0]!r}"
        return
    try:
        parser.parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"{where}: the parser rejects `{line}` (exit {e.code})")


# ------------------------------------------------------------------------------------------------ --help
def test_every_command_help_has_examples():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"toy", "train", "sample", "train-classifier", "eval", "experiment"} <= set(commands)
    for name, sub in commands.items():
        help_text = sub.format_help()
        assert "examples:" in help_text, f"`cleardiffusion {name} --help` has no examples"
        examples = help_text.split("examples:", 1)[1]
        assert f"cleardiffusion {name}" in examples, f"`cleardiffusion {name} --help`: examples of another command"


def test_help_examples_parse():
    commands = build_parser()._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        examples = sub.format_help().split("examples:", 1)[1].replace("\\\n", " ")
        for line in examples.splitlines():
            line = line.strip()
            if not line.startswith("cleardiffusion ") or "..." in line:
                continue
            try:
                build_parser().parse_args(shlex.split(line, comments=True)[1:])
            except SystemExit as e:
                pytest.fail(f"`cleardiffusion {name} --help` example does not parse: `{line}` (exit {e.code})")


# ------------------------------------------------------------------------------------ no machine paths
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|home|root|Users|mnt|scratch)/[\w.-]+")


def committed_text_files() -> list[Path]:
    """README, docs and every results file a reader sees: markdown, JSON, JSON lines, CSV and text."""
    results = (ROOT / "benchmarks" / "results").rglob("*")
    suffixes = {".md", ".json", ".jsonl", ".csv", ".txt"}
    return [*DOCS, *(p for p in results if p.suffix in suffixes and p.is_file())]


def test_results_and_docs_name_no_folder_of_the_machine_that_wrote_them():
    """Commands and paths in results are relative to the repository (`runs/...`, `../shared/data/...`)."""
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in committed_text_files()
             for m in MACHINE_PATH.finditer(p.read_text(errors="replace"))]  # fmt: skip
    assert not found, "\n".join(found[:20])


def test_the_machine_path_check_sees_one():
    assert MACHINE_PATH.search('"command": "eval --classifier /work/scratch/clf.pt"')
    assert MACHINE_PATH.search("data from /home/ada/mnist")
    assert not MACHINE_PATH.search("runs/mnist/checkpoints/last.pt and ../shared/data/mnist, 1/work/x")
