"""Images per second of the library's default sampler on a CPU: today's path, each fast-path option, diffusers.

The default sampler (`recipe.SamplingRecipe()` on a DDPM model: DPM-Solver++(2M) SDE, 50 steps, trailing
spacing, exact solver type) draws --n samples of the `small` U-Net (0.62M parameters, 28x28x1, conditional,
v-prediction on the linear schedule: the README's model; random weights, as speed does not depend on them, or
--checkpoint). Every row draws the same samples from the same seeds in the same run, one after another:

- today: the path before this benchmark's commit: the network in fp32, batches of 256, under no_grad;
- each option alone on top of it (bf16 autocast, inference_mode, channels-last, batch size), then combined;
- default: what `generate_images` does now with no options (fastpath.sampling_model, sampling_batch);
- torch.compile (inductor) of the default, its compile time apart, and whether it pays for 1,000 images;
- the network exported to ONNX (`export.export_network`) and run by ONNX Runtime (fp32), export time apart;
- today's path and the default each in a fresh child process of its own, with the system allocator and with
  freed memory kept for the next step (fastpath.keep_freed_memory, which `cleardiffusion sample` calls: the
  "sample command" rows), so that the allocator's share of the speed-up is a row of its own;
- guided rows (s = 3: one forward of 2B per step), today against default and the sample command;
- diffusers' pipeline (benchmarks/peers/diffusers_sample.py) on a UNet2DModel of the same layout with the same
  scheduler and steps, in fp32 and under bf16 autocast, run in the peer environment `.peers/` (made on first use,
  see cpu_quality.ensure_peers), a subprocess of this run.

Pin it to one core and give it one thread; ratios are meaningful within one run only:

    taskset -c 1 python benchmarks/sampler_speed.py --threads 1 --n 256 \\
        --out benchmarks/results/sampler_speed_cpu/speed.md

Writes OUT (markdown) and OUT with .json (every row). --variants picks rows (names as in the table).
"""

import argparse
import copy
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RECIPE_T, CLASSES, SHAPE = 1000, 10, (1, 28, 28)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    from cleardiffusion.experiments.report import cpu_model

    return f"{cpu_model()}, {torch.get_num_threads()} threads"


@dataclass(frozen=True)
class Variant:
    """One way to run the same sampler; None fields: the library's default."""

    name: str
    precision: str | None = "fp32"  # None: generate_images' default (auto)
    batch: int | None = 256  # None: generate_images' default (fastpath.SAMPLING_BATCH)
    inference_mode: bool = False
    channels_last: bool = False
    backend: str = "torch"  # torch | compile | compile-freezing | onnx | diffusers
    guidance: float = 1.0
    process: str = "this"  # this: this process | own: a fresh child | kept: a child that keeps freed memory


VARIANTS = [
    Variant("today"),
    Variant("bf16", precision="bf16"),
    Variant("inference_mode", inference_mode=True),
    Variant("channels_last", channels_last=True),
    Variant("channels_last bf16", precision="bf16", channels_last=True),
    Variant("batch 128", batch=128),
    Variant("bf16 batch 64", precision="bf16", batch=64),
    Variant("bf16 batch 1000", precision="bf16", batch=1000),
    Variant("default", precision=None, batch=None),
    Variant("default + inference_mode", precision=None, batch=None, inference_mode=True),
    Variant("default + compile", precision=None, batch=None, backend="compile"),
    Variant("default + compile (freezing)", precision=None, batch=None, backend="compile-freezing"),
    Variant("onnx runtime fp32", batch=None, backend="onnx"),
    Variant("today (own process)", process="own"),
    Variant("today (freed memory kept)", process="kept"),
    Variant("default (own process)", precision=None, batch=None, process="own"),
    Variant("sample command", precision=None, batch=None, process="kept"),
    Variant("today guided s=3", guidance=3.0),
    Variant("bf16 guided s=3", precision="bf16", guidance=3.0),
    Variant("default guided s=3", precision=None, batch=None, guidance=3.0),
    Variant("sample command guided s=3", precision=None, batch=None, guidance=3.0, process="kept"),
    Variant("diffusers fp32", batch=256, backend="diffusers"),
    Variant("diffusers bf16", precision="bf16", batch=None, backend="diffusers"),
]


def build(args):
    """(network, noise path, meta): the checkpoint's, or the README model's architecture with random weights."""
    from cleardiffusion.checkpoint import load_for_sampling
    from cleardiffusion.export import network_of
    from cleardiffusion.models.unet import unet_from_preset
    from cleardiffusion.schedule import NoiseSchedule

    if args.checkpoint:
        model, path, meta = load_for_sampling(args.checkpoint)
        return network_of(model), path, meta
    torch.manual_seed(0)
    net = unet_from_preset("small", in_channels=1, image_size=28, num_classes=CLASSES).eval()
    with torch.no_grad():
        for p in net.parameters():  # the zero-initialised output convs would make every sample equal
            if not p.any():
                p.normal_(0, 0.02)
    meta = {"objective": "ddpm", "prediction": "v", "config": {"schedule": "linear", "timesteps": RECIPE_T},
            "image_shape": SHAPE, "num_classes": CLASSES, "class_names": [str(k) for k in range(CLASSES)],
            "dataset": "random weights", "step": 0}  # fmt: skip
    return net, NoiseSchedule.from_name("linear", RECIPE_T), meta


def draw(model, path, variant: Variant, args, n: int, steps: int) -> None:
    """n samples of the default recipe (its steps replaced by `steps`), the way `variant` runs them."""
    from cleardiffusion.generate import generate_images
    from cleardiffusion.recipe import SamplingRecipe

    labels = torch.arange(n) % CLASSES
    recipe = SamplingRecipe(steps=steps, guidance=variant.guidance)
    options = {} if variant.precision is None else {"precision": variant.precision}
    with torch.inference_mode() if variant.inference_mode else nullcontext():
        for _ in generate_images(model, path, n=n, shape=SHAPE, recipe=recipe, seed=args.seed, labels=labels,
                                 batch_size=variant.batch, **options):  # fmt: skip
            pass


def prepare(net, path, meta, variant: Variant, work: Path):
    """(the model a sampler calls, seconds of setup: compile or export), for `variant`."""
    from cleardiffusion.denoiser import sampling_parts

    start = time.perf_counter()
    if variant.backend == "onnx":
        from cleardiffusion.export import export_network, load_onnx

        export_network(net, path, meta, work / "net.onnx")
        model, _, _ = load_onnx(work / "net.onnx")
        return model, time.perf_counter() - start
    if variant.channels_last:
        net = copy.deepcopy(net).to(memory_format=torch.channels_last)
    if variant.backend == "compile":
        net = torch.compile(net, dynamic=False)
    if variant.backend == "compile-freezing":  # weights folded in as constants: oneDNN prepacks the convolutions
        net = torch.compile(net, dynamic=False, options={"freezing": True})
    model, _ = sampling_parts(net, meta["objective"], meta["prediction"], path)
    return model, 0.0


def row_n(variant: Variant, args) -> int:
    """Samples a row draws: --n, or one full batch where the row's batch is larger."""
    from cleardiffusion.fastpath import sampling_batch

    return max(args.n, sampling_batch("cpu", variant.batch))


def time_ours(model, path, variant: Variant, args) -> dict:
    """images/s of `variant` over its samples after an untimed warm-up (compilation, oneDNN primitives)."""
    from cleardiffusion.fastpath import sampling_batch

    n = row_n(variant, args)
    start = time.perf_counter()
    draw(model, path, variant, args, sampling_batch("cpu", variant.batch), 1)  # warm-up: one step, a full batch
    warm = time.perf_counter() - start
    start = time.perf_counter()
    draw(model, path, variant, args, n, args.steps)
    seconds = time.perf_counter() - start
    return {"images_per_s": n / seconds, "seconds": seconds, "warm_up_seconds": warm, "n": n}


def time_in_child(variant: Variant, args) -> dict:
    """images/s of `variant` timed by this script in a fresh process (inheriting this one's cores)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", variant.name, "--threads", str(args.threads),
           "--n", str(args.n), "--steps", str(args.steps), "--seed", str(args.seed),
           *(["--checkpoint", args.checkpoint] if args.checkpoint else [])]  # fmt: skip
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        return {"skipped": f"child failed: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child(args, variant: Variant) -> None:
    """The --child side of `time_in_child`: time one row in this process and print it as one JSON line."""
    from cleardiffusion.fastpath import keep_freed_memory

    if variant.process == "kept" and not keep_freed_memory():
        print(json.dumps({"skipped": "this C library is not glibc: nothing to keep"}))
        return
    net, path, meta = build(args)
    model, _ = prepare(net, path, meta, variant, None)
    print(json.dumps(time_ours(model, path, variant, args)))


def time_diffusers(variant: Variant, args) -> dict:
    """images/s of diffusers' pipeline in the peer environment (a subprocess on this process's cores)."""
    from cpu_quality import ensure_peers  # benchmarks/ is on the path of a script run from it

    from cleardiffusion.fastpath import sampling_batch

    python = ensure_peers()
    if python is None:
        return {"skipped": "the peer environment could not be made"}
    cmd = [python, str(ROOT / "benchmarks" / "peers" / "diffusers_sample.py"), "--threads", str(args.threads),
           "--batch", str(sampling_batch("cpu", variant.batch)), "--steps", str(args.steps),
           "--n", str(row_n(variant, args)),
           "--precision", variant.precision or "fp32", "--seed", str(args.seed)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        return {"skipped": f"diffusers failed: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def describe(variant: Variant) -> tuple[str, str]:
    """(precision, batch) as the table shows them."""
    from cleardiffusion.fastpath import sampling_batch, sampling_precision

    precision = "fp32" if variant.backend == "onnx" else sampling_precision("cpu", variant.precision or "auto")
    return precision, str(sampling_batch("cpu", variant.batch))


TODAY = ("today", "today guided s=3")  # the rows every other row is divided by, one per guidance scale


def baselines(rows: list[dict]) -> dict[float, dict]:
    """{guidance: the measured `today` row of that guidance}: `vs today`'s denominators (not the other today
    rows, such as `today (own process)`)."""
    return {r["guidance"]: r for r in rows if r["name"] in TODAY and "images_per_s" in r}


def report(rows: list[dict], args, started: datetime.datetime) -> str:
    today = baselines(rows)
    from cleardiffusion.experiments.report import git_commit

    commit = git_commit()
    cores = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    lines = [
        "# Images per second of the default sampler on a CPU (dpm++2m-sde, exact, trailing)",
        "",
        f"- device: {device_name('cpu')}, on cores {cores} of {os.cpu_count()}; torch "
        f"{torch.__version__}; native bf16 (AVX512-BF16 or AMX): {args.native_bf16}",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; commit {commit}",
        f"- command: `taskset -c {cores} {shlex.join(['python', 'benchmarks/sampler_speed.py', *sys.argv[1:]])}`",
        f"- model: {args.model}; {args.n} samples per row (one full batch where a row's batch is larger), "
        f"{args.steps} steps, seed {args.seed}, class labels 0-9 in turn; rows run one after another, in this "
        f"process or (process `own`) in a fresh child process, or (`kept`) in a fresh child that keeps freed memory "
        f"for the next step as `cleardiffusion sample` does; {args.repeats} round(s) over every row, each row's best "
        "round shown; `vs today` divides by the `today` row of the same guidance",
        "",
        "| variant | precision | batch | inference_mode | channels_last | backend | process | images/s | vs today "
        "| setup s |",
        "| --- | --- | ---: | --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        base = today.get(r["guidance"])
        if "images_per_s" not in r:
            lines.append(f"| {r['name']} | {r['precision']} | {r['batch']} | - | - | {r['backend']} | "
                         f"{r.get('process', 'this')} | {r.get('skipped', 'not measured')} | - | - |")  # fmt: skip
            continue
        vs = f"{r['images_per_s'] / base['images_per_s']:.2f}x" if base else "-"
        setup = f"{r['setup_seconds']:.1f}" if r.get("setup_seconds") else "-"
        lines.append(f"| {r['name']} | {r['precision']} | {r['batch']} | {'yes' if r['inference_mode'] else 'no'} | "
                     f"{'yes' if r['channels_last'] else 'no'} | {r['backend']} | {r.get('process', 'this')} | "
                     f"{r['images_per_s']:.2f} | {vs} | "
                     f"{setup} |")  # fmt: skip
    peer = next((r["runs"][0] for r in rows if r["backend"] == "diffusers" and r.get("runs")), None)
    if peer:
        lines += ["", f"diffusers {peer['diffusers']} (torch {peer['torch']}): UNet2DModel of {peer['parameters']:,} "
                      "parameters, DDPMPipeline with DPMSolverMultistepScheduler (sde-dpmsolver++, heun, trailing, "
                      "v-prediction), benchmarks/peers/diffusers_sample.py"]  # fmt: skip
    compiled = next((r for r in rows if r["backend"] == "compile" and "images_per_s" in r), None)
    default = next((r for r in rows if r["name"] == "default" and "images_per_s" in r), None)
    if compiled and default:
        eager = 1000 / default["images_per_s"]
        with_compile = compiled["setup_seconds"] + 1000 / compiled["images_per_s"]
        verdict = "pays" if with_compile < eager else "does not pay"
        lines += ["", f"torch.compile for 1,000 images: {with_compile:.0f} s with its compilation against "
                      f"{eager:.0f} s eager (default): it {verdict} for itself."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch (and ONNX Runtime, diffusers) threads")
    p.add_argument("--batch", type=int, default=None, help="override every row's batch size (default: the row's)")
    p.add_argument("--steps", type=int, default=50, help="sampler steps (default: the recipe's 50)")
    p.add_argument("--n", type=int, default=256, help="samples per row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, help="a DDPM checkpoint (default: random weights, `small` preset)")
    p.add_argument("--repeats", type=int, default=1, help="rounds over every row; a row reports its best round")
    p.add_argument("--variants", default=None, help="comma-separated row names (default: every row)")
    p.add_argument("--out", default="benchmarks/results/sampler_speed_cpu/speed.md")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # time_in_child: one row, printed as JSON
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from cleardiffusion.fastpath import cpu_has_native_bf16
    from cleardiffusion.models import count_parameters

    args.native_bf16 = cpu_has_native_bf16()
    chosen = VARIANTS if args.variants is None else [v for v in VARIANTS if v.name in args.variants.split(",")]
    if args.batch:
        chosen = [Variant(**{**asdict(v), "batch": args.batch}) for v in chosen]
    if args.child:
        return child(args, next(v for v in chosen if v.name == args.child))
    net, path, meta = build(args)
    args.model = (f"`small` U-Net, {count_parameters(net):,} parameters, {meta['prediction']}-prediction, "
                  f"{meta['dataset'] if args.checkpoint else 'random weights'}")  # fmt: skip
    started = datetime.datetime.now(datetime.timezone.utc)
    rows = [{**asdict(v), **dict(zip(("precision", "batch"), describe(v), strict=True)), "runs": []} for v in chosen]
    prepared = {}  # name -> (the model a sampler calls, setup seconds), made in the first round
    with tempfile.TemporaryDirectory() as work:
        for round_ in range(args.repeats):  # rounds over every row: a slow spell of a shared CPU hits all rows
            for v, row in zip(chosen, rows, strict=True):
                if v.backend == "diffusers":
                    result = time_diffusers(v, args)
                elif v.process != "this":
                    result = time_in_child(v, args)
                else:
                    if v.name not in prepared:
                        prepared[v.name] = prepare(net, path, meta, v, Path(work))
                    result = time_ours(prepared[v.name][0], path, v, args)
                    # setup: export, or compile (the first warm-up call compiles)
                    compiled = v.backend.startswith("compile")
                    setup = prepared[v.name][1] + (result["warm_up_seconds"] if compiled else 0.0)
                    row.setdefault("setup_seconds", setup)
                if "images_per_s" not in result:
                    row |= result
                    continue
                row["runs"].append(result)
                row["images_per_s"] = max(r["images_per_s"] for r in row["runs"])  # the least disturbed run
                print(f"round {round_ + 1}, {v.name}: {result['images_per_s']:.2f} images/s", file=sys.stderr,
                      flush=True)  # fmt: skip
    text = report(rows, args, started)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    record = {
        "command": sys.argv,
        "rows": rows,
        "model": args.model,
        "date": f"{started:%Y-%m-%d %H:%M}",
        "native_bf16": args.native_bf16,
        "device": device_name("cpu"),
        "torch": torch.__version__,
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
