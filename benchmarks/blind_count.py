"""Count readable samples without knowing whose they are: a blind sitting for issue 24's "digits a person reads".

One person's count of a grid moves with the sitting and with knowing which model drew it (readable.json: the
same grid counted 75 and 79). This deals the first 100 samples of several grids, and optionally 100 real test
images as a control of the counter's strictness, into shuffled sheets of 100 cells, so the counter marks the
unreadable cells of each sheet without knowing which grid a cell came from; `reveal` then gives each source's
count.

    G=benchmarks/results/one_step_cpu/mnist-unconditional
    python benchmarks/blind_count.py deal --out runs/blind --source dmd=$G/grid_dmd_consistency1_unconditional.png \\
        --source teacher=$G/grid_teacher_dpmpp2m-sde50_unconditional.png --real mnist=../shared/data/mnist
    # look at runs/blind/sheet_1.png ...; write the unreadable cells of each sheet (row letter, column digit) in
    # runs/blind/marks.json, e.g. {"sheet_1": ["A3", "J0"], "sheet_2": []}; only then:
    python benchmarks/blind_count.py reveal runs/blind

`deal` writes OUT/sheet_<k>.png and OUT/key.json (the sources, their files, the shuffle's seed and which cell
of which sheet holds which sample: do not open it before marking). `reveal` writes OUT/counts.json: per source,
the readable count of its 100 samples and the indices of the unreadable ones. `sheets DIR` writes a deal's
sheets again, pixel for pixel, from its key (the committed sittings keep key, marks and counts, not sheets).
A grid is the 10 x 10 PNG `one_step.py` writes (28 x 28 cells, 2-pixel gaps); the real images are the first 100
of the dataset's test split.
"""

import argparse
import json
import secrets
import string
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CELLS = 100  # samples per source, and cells per sheet (10 x 10)
SIDE, GAP = 28, 2  # a grid's cell and gap, in pixels
ROWS = string.ascii_uppercase[:10]


class Refused(Exception):
    """Input this script cannot use: main() prints it as a usage error (exit 2)."""


def grid_cells(png: Path) -> np.ndarray:
    """The 100 (28, 28) cells of a 10 x 10 grid PNG, in reading order."""
    if not png.is_file():
        raise Refused(f"no grid {png}; give a PNG one_step.py wrote")
    a = np.asarray(Image.open(png).convert("L"))
    if a.shape != (10 * (SIDE + GAP) + GAP,) * 2:
        raise Refused(f"{png} is {a.shape[1]} x {a.shape[0]} pixels, not a 10 x 10 grid of 28-pixel "
                         "cells (the grids one_step.py writes)")  # fmt: skip
    step = SIDE + GAP
    return np.stack([a[GAP + r * step :][:SIDE, GAP + c * step :][:, :SIDE] for r in range(10) for c in range(10)])


def real_cells(dataset: str, data_dir: str) -> np.ndarray:
    from cleardiffusion.data import load_dataset

    images = load_dataset(dataset, data_dir, "test").images[:CELLS]  # (100, 1, 28, 28) uint8
    return images[:, 0].numpy()


def sheet(cells: np.ndarray, scale: int = 3) -> Image.Image:
    """100 cells, enlarged `scale` times, with row letters A-J and column digits 0-9 to name a cell by."""
    side, gap, margin = SIDE * scale, 6, 24
    step = side + gap
    im = Image.new("L", (margin + 10 * step, margin + 10 * step), 255)
    draw = ImageDraw.Draw(im)
    for i, cell in enumerate(cells):
        r, c = divmod(i, 10)
        im.paste(Image.fromarray(cell).resize((side, side), Image.NEAREST), (margin + c * step, margin + r * step))
    for k in range(10):
        draw.text((margin + k * step + side // 2 - 3, 6), str(k), fill=0)
        draw.text((6, margin + k * step + side // 2 - 6), ROWS[k], fill=0)
    return im


def deal(sources: dict[str, np.ndarray], out: Path, seed: int, files: dict[str, str] | None = None) -> dict:
    """Shuffle every source's 100 cells together into sheets of 100; write the sheets and the key (with where
    each source came from, `files`)."""
    names = list(sources)
    order = np.random.default_rng(seed).permutation(len(names) * CELLS)  # position p holds sample order[p]
    cells = np.concatenate([sources[n] for n in names])
    out.mkdir(parents=True, exist_ok=True)
    sheets = {}
    for k in range(len(names)):
        positions = order[k * CELLS : (k + 1) * CELLS]
        sheet(cells[positions]).save(out / f"sheet_{k + 1}.png")
        sheets[f"sheet_{k + 1}"] = [[names[int(p) // CELLS], int(p) % CELLS] for p in positions]
    key = {"seed": seed, "sources": names, "files": files or {}, "sheets": sheets}
    (out / "key.json").write_text(json.dumps(key) + "\n")
    return key


def cell_index(name: str) -> int:
    """'C7' -> 27: a cell's position on its sheet in reading order."""
    name = name.strip().upper()
    if len(name) != 2 or name[0] not in ROWS or not name[1].isdigit():
        raise Refused(f"{name!r} is not a cell; name one as a row letter A-J and a column 0-9, e.g. C7")
    return ROWS.index(name[0]) * 10 + int(name[1])


def reveal(key: dict, marks: dict[str, list[str]]) -> dict:
    """Each source's readable count: its 100 samples less the cells marked unreadable."""
    missing = sorted(set(key["sheets"]) - set(marks), key=lambda s: int(s.split("_")[1]))
    if missing:
        raise Refused(f"marks.json has no entry for {', '.join(missing)}; write [] for a sheet "
                         "with nothing unreadable")  # fmt: skip
    unreadable = {n: [] for n in key["sources"]}
    for name, cells in marks.items():
        if name not in key["sheets"]:
            raise Refused(f"marks.json names {name}, which this deal has no sheet of")
        for i in sorted({cell_index(c) for c in cells}):
            source, index = key["sheets"][name][i]
            unreadable[source].append(index)
    return {n: {"readable": CELLS - len(u), "unreadable": sorted(u)} for n, u in unreadable.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("deal", help="shuffle the sources into sheets")
    d.add_argument("--source", action="append", default=[], metavar="NAME=GRID.png", help="a grid, by a name")
    d.add_argument("--real", metavar="DATASET=DATA_DIR", help="also the first 100 test images, as source 'real'")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--seed", type=int, help="the shuffle's seed (default: a random one, kept in the key)")
    r = sub.add_parser("reveal", help="count each source from OUT/marks.json")
    r.add_argument("dir", type=Path)
    w = sub.add_parser("sheets", help="write a deal's sheets again from its key.json (its files and seed)")
    w.add_argument("dir", type=Path)
    w.add_argument("--data-dir", default="../shared/data/mnist", help="the real images' folder (default: %(default)s)")
    args = p.parse_args(argv)
    try:
        return run(args)
    except Refused as e:
        p.error(str(e))


def run(args) -> int:
    if args.command == "deal":
        if (args.out / "key.json").exists():
            raise Refused(f"{args.out} holds a deal already; give another --out")
        sources, files = {}, {}
        for spec in args.source:
            name, _, png = spec.partition("=")
            if not png or name in sources or name == "real":
                raise Refused(f"--source {spec!r}: give NAME=GRID.png, each name once, not 'real'")
            sources[name], files[name] = grid_cells(Path(png)), png
        if args.real:
            dataset, _, data_dir = args.real.partition("=")
            sources["real"], files["real"] = real_cells(dataset, data_dir), f"{dataset} test images 0-99"
        if len(sources) < 2:
            raise Refused("deal at least two sources (a --source and --real, or two --source)")
        seed = args.seed if args.seed is not None else secrets.randbits(32)
        deal(sources, args.out, seed, files)
        print(f"{len(sources)} sheets in {args.out}; mark each one's unreadable cells in {args.out}/marks.json")
        return 0
    if args.command == "sheets":  # the committed sittings keep their key, not their sheets
        if not (args.dir / "key.json").is_file():
            raise Refused(f"{args.dir} has no key.json")
        key = json.loads((args.dir / "key.json").read_text())
        files = key["files"]
        cells = {n: real_cells(files[n].split()[0], args.data_dir) if n == "real" else grid_cells(Path(files[n]))
                 for n in key["sources"]}  # fmt: skip
        deal(cells, args.dir, key["seed"], key["files"])
        print(f"wrote the {len(cells)} sheets of {args.dir} again")
        return 0
    for name in ("key.json", "marks.json"):
        if not (args.dir / name).is_file():
            raise Refused(f"{args.dir} has no {name}: deal the sheets (deal --out DIR), then mark them in "
                          f"DIR/marks.json")  # fmt: skip
    key = json.loads((args.dir / "key.json").read_text())
    counts = reveal(key, json.loads((args.dir / "marks.json").read_text()))
    (args.dir / "counts.json").write_text(json.dumps(counts, indent=1) + "\n")
    for name, c in counts.items():
        print(f"{name}: {c['readable']} of {CELLS} readable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
