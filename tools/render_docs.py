"""Write every generated table and number in README.md and the docs from the committed results files.

A table sits between `<!-- table:NAME -->` and `<!-- /table:NAME -->`; a number in a sentence between
`<!-- n:NAME -->` and `<!-- /n -->`. NAME is a key of TABLES or NUMBERS in doc_sources.py, each a function that reads
benchmarks/results/ and nothing else. Measured data files are never written; only the text between markers.

    python tools/render_docs.py           # rewrite README.md, docs/*.md, benchmarks/results/*/README.md
    python tools/render_docs.py --check   # exit 1, naming each file that differs from what it would write

A rerun of a measurement (for example the 15-minute headline in benchmarks/results/readme_path_cpu/) updates
the text that cites it by running this script again.
"""

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or loaded by the tests
from doc_sources import NUMBERS, ROOT, TABLES  # noqa: E402
from doc_sources_backbones import BACKBONE_NUMBERS, BACKBONE_TABLES  # noqa: E402
from doc_sources_band import BAND_NUMBERS, BAND_TABLES  # noqa: E402
from doc_sources_bank import BANK_NUMBERS, BANK_TABLES  # noqa: E402
from doc_sources_batch import BATCH_NUMBERS, BATCH_TABLES  # noqa: E402
from doc_sources_codes import CODES_NUMBERS, CODES_TABLES  # noqa: E402
from doc_sources_cost import COST_NUMBERS  # noqa: E402
from doc_sources_encode import ENCODE_NUMBERS, ENCODE_TABLES  # noqa: E402
from doc_sources_experiments import EXPERIMENT_NUMBERS  # noqa: E402
from doc_sources_extra import FEW_NUMBERS, FEW_TABLES  # noqa: E402
from doc_sources_fresh import FRESH_NUMBERS, FRESH_TABLES  # noqa: E402
from doc_sources_grow import GROW_NUMBERS, GROW_TABLES  # noqa: E402
from doc_sources_long import LONG_NUMBERS, LONG_TABLES  # noqa: E402
from doc_sources_ownbad import OWNBAD_NUMBERS, OWNBAD_TABLES  # noqa: E402
from doc_sources_quality import QUALITY_NUMBERS  # noqa: E402
from doc_sources_redraw import REDRAW_NUMBERS, REDRAW_TABLES  # noqa: E402
from doc_sources_results import RESULTS_NUMBERS  # noqa: E402
from doc_sources_schedule import SCHEDULE_NUMBERS, SCHEDULE_TABLES  # noqa: E402
from doc_sources_tmax import TMAX_NUMBERS, TMAX_TABLES  # noqa: E402
from doc_sources_two import TWO_NUMBERS, TWO_TABLES  # noqa: E402


def merged(*sources: dict) -> dict:
    """One dict of every source's names; a name two sources define is an error, not a silent override."""
    out: dict = {}
    for source in sources:
        if twice := sorted(out.keys() & source.keys()):
            raise SystemExit(f"render_docs: defined by two doc_sources modules: {', '.join(twice)}")
        out.update(source)
    return out


TABLES = merged(
    TABLES,
    FEW_TABLES,
    BACKBONE_TABLES,
    REDRAW_TABLES,
    BATCH_TABLES,
    SCHEDULE_TABLES,
    BAND_TABLES,
    GROW_TABLES,
    ENCODE_TABLES,
    CODES_TABLES,
    FRESH_TABLES,
    BANK_TABLES,
    LONG_TABLES,
    TMAX_TABLES,
    OWNBAD_TABLES,
    TWO_TABLES,
)
NUMBERS = merged(
    NUMBERS,
    FEW_NUMBERS,
    BACKBONE_NUMBERS,
    COST_NUMBERS,
    REDRAW_NUMBERS,
    BATCH_NUMBERS,
    SCHEDULE_NUMBERS,
    BAND_NUMBERS,
    GROW_NUMBERS,
    ENCODE_NUMBERS,
    CODES_NUMBERS,
    FRESH_NUMBERS,
    BANK_NUMBERS,
    LONG_NUMBERS,
    TMAX_NUMBERS,
    OWNBAD_NUMBERS,
    TWO_NUMBERS,
    QUALITY_NUMBERS,
    RESULTS_NUMBERS,
    EXPERIMENT_NUMBERS,
)

TABLE_RE = re.compile(r"(<!-- table:([\w.-]+) -->\n)(.*?)(<!-- /table:\2 -->)", re.S)
NUMBER_RE = re.compile(r"(<!-- n:([\w.-]+) -->)(.*?)(<!-- /n -->)", re.S)


# ------------------------------------------------------------------------------------------- rendering
def render(text: str, where: str) -> str:
    """The text with every marked table and number written from the results."""

    def fill_table(m: re.Match) -> str:
        if m.group(2) not in TABLES:
            raise SystemExit(f"{where}: unknown table {m.group(2)!r} (known: {', '.join(TABLES)})")
        return m.group(1) + TABLES[m.group(2)]() + m.group(4)

    def fill_number(m: re.Match) -> str:
        if m.group(2) not in NUMBERS:
            raise SystemExit(f"{where}: unknown number {m.group(2)!r} (known: {', '.join(NUMBERS)})")
        return m.group(1) + NUMBERS[m.group(2)]() + m.group(4)

    return NUMBER_RE.sub(fill_number, TABLE_RE.sub(fill_table, text))


def documents(root: Path = ROOT) -> list[Path]:
    return [
        root / "README.md",
        *sorted((root / "docs").glob("*.md")),
        *sorted((root / "benchmarks" / "results").glob("*/README.md")),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would change")
    args = parser.parse_args(argv)
    stale = []
    for path in documents():
        text = path.read_text()
        new = render(text, str(path.relative_to(ROOT)))
        if new != text:
            stale.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print("out of date with benchmarks/results (run python tools/render_docs.py): " + ", ".join(stale))
        return 1
    print(("checked " if args.check else "rendered ") + f"{len(documents())} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
