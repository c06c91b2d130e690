"""Tables and numbers beyond doc_sources.py (which is at the project's 400-line bound): the few-step results
(docs/few_step.md, the README, docs/results.md) from benchmarks/results/one_step_cpu/, and the README's run in
fp32 from benchmarks/results/readme_path_fp32_cpu/; render_docs.py merges them into doc_sources' TABLES and
NUMBERS."""

from doc_sources import f2, load_json, load_jsonl, table, thousands

FP32 = "readme_path_fp32_cpu"


def fp32_steps() -> str:
    return thousands(max(r["step"] for r in load_jsonl(f"{FP32}/metrics.jsonl") if "loss" in r))


ONE_STEP = "one_step_cpu"
ABLATION = f"{ONE_STEP}/ablation_mnist.jsonl"
ABLATION_ROWS = {  # tag -> what it was
    "teacher0": "teacher, no training (multistep consistency sampling of the teacher itself)",
    "cd_k20_h_lr1e-4": "cd, delta 20, guidance 3 applied at sampling",
    "cd_k20_tg3": "cd, delta 20, teacher on the guided ODE",
    "cd_k100_tg3": "cd, delta 100, teacher on the guided ODE",
    "cd_k250_tg3": "cd, delta 250, teacher on the guided ODE",
    "kd16_tg3": "trajectory (prototype, 30% of the minutes on the bank)",
    "lib_traj640": "trajectory (`distill`, 640 trajectories)",
    "lib_ect_delta250": "ect (`distill`), delta 250, guidance 3 at sampling",
}


def ablation_rows() -> dict:
    return {r["tag"]: r for r in load_jsonl(ABLATION)}


def t_ablation() -> str:
    rows = ablation_rows()
    out = []
    for tag, what in ABLATION_ROWS.items():
        r = rows[tag]
        out.append([what, f"{r.get('steps', r.get('step', 0)):,}",
                    *(f2(r[f"{kind}{n}"]) for n in (1, 2, 4) for kind in ("u", "g"))])  # fmt: skip
    header = ["4 minutes of", "steps", "1 step u", "1 step g", "2 steps u", "2 steps g", "4 steps u", "4 steps g"]
    return table(header, out)


def results(dataset: str) -> dict:
    return load_json(f"{ONE_STEP}/{dataset}/results.json")


def row(dataset: str, model: str, sampler: str, steps: int, samples: str) -> dict:
    for r in results(dataset)["rows"]:
        if (r["model"], r["sampler"], r["steps"], r["samples"]) == (model, sampler, steps, samples):
            return r
    raise KeyError(f"{dataset}: no row {model} {sampler}-{steps} {samples}")


def fid(dataset: str, model: str, sampler: str, steps: int, samples: str) -> float:
    return row(dataset, model, sampler, steps, samples)["fid"]


def teacher50(dataset: str, samples: str) -> float:
    return fid(dataset, "teacher", "dpm++2m-sde", 50, samples)


def t_one_step(dataset: str) -> str:
    """FID (unconditional, and guided for a conditional teacher) and its ratio to the teacher's 50-step default,
    images per second."""
    res = results(dataset)
    settings = []
    for r in res["rows"]:
        key = (r["model"], r["sampler"], r["steps"])
        if key not in settings:
            settings.append(key)
    guided = any(r["samples"] == "guided" for r in res["rows"])
    out = []
    for model, sampler, steps in settings:
        u = row(dataset, model, sampler, steps, "unconditional")
        cells = [model, sampler, str(steps), f2(u["fid"]), f"{u['fid'] / teacher50(dataset, 'unconditional'):.2f}x"]
        if guided:
            g = row(dataset, model, sampler, steps, "guided")
            cells += [f2(g["fid"]), f"{g['fid'] / teacher50(dataset, 'guided'):.2f}x", f"{g['guidance']:g}"]
        out.append([*cells, f"{u['images_per_sec']:.1f}"])
    header = ["model", "sampler", "NFE", "FID uncond.", "/ teacher-50",
              *(["FID guided", "/ teacher-50", "guidance"] if guided else []), "images/s (uncond.)"]  # fmt: skip
    return table(header, out)


def speedup(dataset: str, model: str) -> str:
    one = row(dataset, model, "consistency", 1, "unconditional")["images_per_sec"]
    fifty = row(dataset, "teacher", "dpm++2m-sde", 50, "unconditional")["images_per_sec"]
    return f"{one / fifty:.0f}x"


def ratio_to_teacher(dataset: str, model: str, steps: int, samples: str) -> str:
    sampler = "meanflow" if model == "meanflow" else "consistency"
    return f"{fid(dataset, model, sampler, steps, samples) / teacher50(dataset, samples):.2f}x"


def readable(dataset: str, grid: str) -> str:
    return str(load_json(f"{ONE_STEP}/{dataset}/readable.json")["counts"][f"grid_{grid}.png"])


FEW_TABLES = {
    "fs_ablation": t_ablation,
    "fs_mnist": lambda: t_one_step("mnist"),
    "fs_fashion": lambda: t_one_step("fashion-mnist"),
    "fs_mnist_uncond": lambda: t_one_step("mnist-unconditional"),
}

# dataset -> (the models of its results, the sample kinds: u unconditional, g guided)
ONE_STEP_RUNS = {
    "mnist": (("trajectory", "cd", "meanflow"), "ug"),
    "fashion-mnist": (("trajectory", "cd"), "ug"),
    "mnist-unconditional": (("trajectory",), "u"),
}
KINDS = {"u": "unconditional", "g": "guided"}


def one_step_numbers() -> dict:
    numbers = {}
    for ds, (models, kinds) in ONE_STEP_RUNS.items():
        for kind in kinds:
            numbers[f"fs.{ds}.teacher50.{KINDS[kind]}"] = lambda ds=ds, kind=kind: f2(teacher50(ds, KINDS[kind]))
        for model in models:
            if model != "meanflow":
                numbers[f"fs.{ds}.{model}.speedup"] = lambda ds=ds, model=model: speedup(ds, model)
            for kind in kinds:
                for n in (1, 2, 4):
                    numbers[f"fs.{ds}.{model}.{kind}{n}"] = lambda ds=ds, model=model, kind=kind, n=n: (
                        ratio_to_teacher(ds, model, n, KINDS[kind]))  # fmt: skip
    return numbers


READABLE = ("trajectory_consistency1_unconditional", "trajectory_consistency1_guided",
            "teacher_dpmpp2m-sde50_unconditional")  # fmt: skip

FEW_NUMBERS = {
    "fp32.steps": fp32_steps,
    "fp32.fid": lambda: f2(load_json(f"{FP32}/s3-eval.json")["fid"]),
    "fs.abl_teacher_u": lambda: f2(ablation_rows()["teacher_dpmpp2m-sde_50"]["u50"]),
    "fs.abl_teacher_g": lambda: f2(ablation_rows()["teacher_dpmpp2m-sde_50"]["g50"]),
    **{f"fs.mnist.readable.{grid}": (lambda grid=grid: readable("mnist", grid)) for grid in READABLE},
    **one_step_numbers(),
}
