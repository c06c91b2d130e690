"""Write an experiment's report.md: every table is built from the numbers of its results.json.

A `Report` collects markdown blocks (headings, text, tables, images linked by relative path) and writes
them to OUT/report.md, next to results.json, atomically. `fmt` is the one number format used in every table, so a reader
(or a test) can find each number of results.json in the report as `fmt(value)`.
"""

import datetime
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..files import write_text


def fmt(value: Any) -> str:
    """A table cell: 4 significant digits for floats, plain integers, 'n/a' for None, yes/no for bools."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def noise_floor_text(noise: dict, what: str, n: int) -> str:
    """One sentence for a report: `what`, redrawn with the next sampling seed (`common.sampling_noise`)."""
    return (
        f"Noise floor: {what} redrawn with the next sampling seed scores FID {fmt(noise['fid_next_seed'])} "
        f"against {fmt(noise['fid_seed'])}: FIDs of {n} samples differ by about "
        f"{fmt(100 * noise['relative_spread'])}% from the draw alone, so smaller differences are not real."
    )


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_commit(where: Path | None = None) -> str:
    """The short hash of the git checkout this package (or `where`) runs from, "" outside one: what benchmarks
    record. "+ uncommitted changes" follows it when tracked files other than results (benchmarks/results/) and
    text (*.md) differ from that commit, so a result measured with code not yet committed does not claim the
    commit's code, while a benchmark that runs after another's results were written (one_step.sh) still can."""
    where = str(where or Path(__file__).parent)
    done = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    commit = done.stdout.strip()
    code = [":(top)", ":(top,exclude)benchmarks/results", ":(top,exclude,glob)**/*.md"]
    if commit and subprocess.run(["git", "-C", where, "diff", "--quiet", "HEAD", "--", *code]).returncode:
        commit += " + uncommitted changes"
    return commit


def environment(device: torch.device) -> dict[str, Any]:
    """Device name, torch and Python versions, threads and the UTC date of this run."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{cpu_model()} ({os.cpu_count()} logical cores)"
    return {
        "device": f"{device.type}: {name}",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; every cell goes through `fmt`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} has {len(row)} cells for {len(headers)} headers")
        lines.append("| " + " | ".join(fmt(cell) for cell in row) + " |")
    return "\n".join(lines)


class Report:
    """Markdown blocks of one experiment's report, written to OUT/report.md."""

    def __init__(self, out: Path, title: str, question: str):
        self.out, self.blocks = Path(out), [f"# {title}", f"> {question}"]
        self.images: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(f"{'#' * level} {text}")

    def text(self, text: str) -> None:
        self.blocks.append(text)

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append("\n".join(f"- {item}" for item in items))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(markdown_table(headers, rows))

    def code(self, text: str, language: str = "") -> None:
        self.blocks.append(f"```{language}\n{text}\n```")

    def image(self, path: str | Path, alt: str) -> None:
        """Link an image written under OUT, by its path relative to OUT."""
        rel = Path(path).resolve().relative_to(self.out.resolve()).as_posix()
        if not (self.out / rel).is_file():
            raise FileNotFoundError(f"report image {self.out / rel} was not written")
        self.images.append(rel)
        self.blocks.append(f"![{alt}]({rel})")

    def provenance(self, command: str, env: dict[str, Any], extra: Sequence[tuple[str, Any]] = ()) -> None:
        """The exact command, the machine and the versions that produced this report."""
        self.heading("How this was produced")
        self.code(command, "bash")
        rows = [
            ("device", env["device"]),
            ("torch", env["torch"]),
            ("python", env["python"]),
            ("CPU threads", env["cpu_threads"]),
            ("date", env["date"]),
            *extra,
        ]
        self.table(["", "value"], rows)

    def write(self) -> Path:
        """Write OUT/report.md atomically (files.write_text: unique temp name, fsync, rename); returns its path."""
        return write_text(self.out / "report.md", "\n\n".join(self.blocks) + "\n")


def figure(ncols: int = 1, width: float = 6.0, height: float = 4.0):
    """A matplotlib figure with `ncols` axes on the Agg backend (imported lazily)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), dpi=100, squeeze=False)
    return fig, list(axes[0])


def step_axis(ax, steps, label: str) -> None:
    """A log x axis labelled with exactly the step counts that were run."""
    ax.set_xscale("log")
    ax.set_xticks(list(steps), [str(s) for s in steps])
    ax.minorticks_off()
    ax.set_xlabel(label)


def save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    for ax in fig.axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
