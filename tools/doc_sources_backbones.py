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


QUALITY = "backbones_cpu"  # benchmarks/backbone_quality.sh: DATASET/MODEL-{summary,unconditional,guided}.json
QUALITY_DATASETS = {"MNIST": "mnist", "Fashion-MNIST": "fashion-mnist"}


def t_backbone_quality() -> str:
    """Each preset beside the U-Net `small` of the same run: steps in the same minutes and FID of 1,000 samples."""
    from doc_sources import RESULTS

    rows = []
    for label, ds in QUALITY_DATASETS.items():
        folder = RESULTS / QUALITY / ds
        if not (folder / "small-guided.json").is_file():  # not run (or still running) on this dataset
            continue
        unet = {k: load_json(f"{QUALITY}/{ds}/small-{k}.json")["fid"] for k in ("unconditional", "guided")}
        for summary in sorted(folder.glob("*-summary.json"), key=lambda f: f.name != "small-summary.json"):
            model = summary.name.removesuffix("-summary.json")
            if not (folder / f"{model}-guided.json").is_file():
                continue
            run = load_json(f"{QUALITY}/{ds}/{summary.name}")
            fid = {k: load_json(f"{QUALITY}/{ds}/{model}-{k}.json")["fid"] for k in ("unconditional", "guided")}
            rows.append([label, f"`{model}`", f"{run['parameters']:,}", f"{run['step']:,}",
                         f"{run['elapsed'] / 60:.1f}", f2(fid["unconditional"]),
                         f"{fid['unconditional'] / unet['unconditional']:.2f}x", f2(fid["guided"]),
                         f"{fid['guided'] / unet['guided']:.2f}x"])  # fmt: skip
    header = ["dataset", "model", "parameters", "steps", "minutes", "FID uncond.", "/ U-Net", "FID guided (3)",
              "/ U-Net"]  # fmt: skip
    return table(header, rows)


def quality_verdict() -> str:
    """One sentence per dataset with results: steps and FIDs of vit-small against the U-Net of the same run."""
    from doc_sources import RESULTS

    parts = []
    for label, ds in QUALITY_DATASETS.items():
        if not all((RESULTS / QUALITY / ds / f"{m}-guided.json").is_file() for m in ("small", "vit-small")):
            continue
        steps = {m: load_json(f"{QUALITY}/{ds}/{m}-summary.json")["step"] for m in ("small", "vit-small")}
        fid = {(m, k): load_json(f"{QUALITY}/{ds}/{m}-{k}.json")["fid"]
               for m in ("small", "vit-small") for k in ("unconditional", "guided")}  # fmt: skip
        parts.append(
            f"On {label} `vit-small` made {steps['vit-small']:,} steps to the U-Net's {steps['small']:,} "
            f"({steps['small'] / steps['vit-small']:.1f}x as many for the U-Net) and its FID is "
            f"{fid['vit-small', 'unconditional'] / fid['small', 'unconditional']:.1f}x the U-Net's "
            f"unconditional and {fid['vit-small', 'guided'] / fid['small', 'guided']:.1f}x guided."
        )
    return " ".join(parts) or "Not measured yet."


BACKBONE_TABLES = {"backbone_presets": t_backbone_presets, "vit_small_choice": t_vit_small_choice,
                   "backbone_quality": t_backbone_quality}  # fmt: skip
BACKBONE_NUMBERS = {
    "bb.verdict": quality_verdict,
    "bb.jit.parameters": lambda: millions(preset("jit-b16")["parameters"]),
    "bb.jit.trunk": lambda: millions(preset("jit-b16")["parameters"] - preset("jit-b16")["conditioning"]),
    "bb.jit.conditioning": lambda: millions(preset("jit-b16")["conditioning"]),
}
