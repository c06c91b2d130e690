"""Tables and numbers of docs/backbones.md from benchmarks/results/vit_small_choice_cpu/results.json (written by
benchmarks/vit_presets.py): the transformer presets' sizes and the short runs that chose vit-small."""

from doc_sources import f2, load_json, table

CHOICE = "vit_small_choice_cpu/results.json"


def millions(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def t_backbone_presets() -> str:
    rows = [[f"`{r['preset']}`", r["image"], str(r["patch"]), f"{r['tokens']:,}", f"{r['hidden']} x {r['depth']}",
             str(r["heads"]), r["mixer"], "yes" if r["long_skips"] else "no", f"{r['parameters']:,}",
             f"{r['conditioning']:,}"] for r in load_json(CHOICE)["presets"]]  # fmt: skip
    header = ["preset", "image", "patch", "tokens", "width x depth", "heads", "mixer", "long skips", "parameters",
              "of which adaLN + e(t)"]  # fmt: skip
    return table(header, rows)


def network(run: dict) -> str:
    n = run["network"]
    skips = ", long skips" if n["long_skips"] else ""
    return f"patch {n['patch_size']}, {n['hidden']} x {n['depth']}, {n['heads']} heads, {n['mixer']}{skips}"


def t_vit_small_choice() -> str:
    rows = [[run["name"], network(run), f"{run['steps']:,}", f2(run["seconds_per_step"]),
             f"{run['cpu_seconds']:.0f}" if run["cpu_seconds"] else "-", f"{run['loss_last50']:.4f}",
             f"{run['loss_steps_51_100']:.4f}"]
            for run in load_json(CHOICE)["runs"]]  # fmt: skip
    header = ["run", "network", "steps", "s / step", "CPU s", "loss, last 50 steps", "loss, steps 51-100"]
    return table(header, rows)


def preset(name: str) -> dict:
    return next(r for r in load_json(CHOICE)["presets"] if r["preset"] == name)


BACKBONE_TABLES = {"backbone_presets": t_backbone_presets, "vit_small_choice": t_vit_small_choice}
BACKBONE_NUMBERS = {
    "bb.jit.parameters": lambda: millions(preset("jit-b16")["parameters"]),
    "bb.jit.trunk": lambda: millions(preset("jit-b16")["parameters"] - preset("jit-b16")["conditioning"]),
    "bb.jit.conditioning": lambda: millions(preset("jit-b16")["conditioning"]),
}
