"""`cleardiffusion sample`: a checkpoint -> a PNG grid or an .npz of uint8 images, in bounded memory."""

import argparse
import dataclasses
import time
from pathlib import Path

from ..errors import UsageError
from ..fastpath import SAMPLING_PRECISIONS
from ..recipe import (
    DEFAULT_SOLVER_TYPE,
    JUMP_SPACINGS,
    SAMPLER_NAMES,
    SOLVER_TYPES,
    SPACINGS,
    VARIANCES,
    SamplingRecipe,
)
from . import finite_float, positive_int, probability, seed, unit_interval

EPILOG = """\
examples:
  cleardiffusion sample --checkpoint runs/mnist/checkpoints/last.pt --sampler ddim --steps 50 --n 64 \\
      --out grid.png --trajectory trajectory.png
  cleardiffusion sample --checkpoint runs/mnist/checkpoints/last.pt --n 10000 --out samples.npz
  cleardiffusion sample --checkpoint runs/mnist/checkpoints/last.pt --steps 10 --n 64 \\
      --out dpm10.png                 # dpm++2m-sde, 10 network evaluations
  cleardiffusion sample --checkpoint runs/mnist/checkpoints/last.pt --sampler heun --nfe 19 \\
      --spacing karras --n 64 --out heun.png         # 10 steps: 2 evaluations each, 1 on the last
  cleardiffusion sample --checkpoint runs/mnist-flow/checkpoints/last.pt --sampler euler --steps 10 \\
      --n 64 --out flow.png                          # a `train --objective flow` checkpoint
  cleardiffusion sample --checkpoint runs/mnist-cfg/checkpoints/last.pt --class-label all --guidance 3 \\
      --n 100 --out guided.png          # one class per row
  cleardiffusion sample --checkpoint runs/mnist-cd/checkpoints/last.pt --steps 1 --n 100 \\
      --out one_step.png                # a `cleardiffusion distill` checkpoint: one network evaluation
  cleardiffusion sample --checkpoint runs/mnist/checkpoints/last.pt --precision fp32 --n 64 \\
      --out fp32.png                    # the network in float32 (default: bf16 where the CPU has it)
  cleardiffusion sample --checkpoint mnist.onnx --n 64 --out onnx.png   # `cleardiffusion export`'s file

Guidance scale s: eps = eps_uncond + s (eps_cond - eps_uncond); s = 1 is the plain conditional model,
s = 0 the unconditional one. Each sample is reproducible from --seed and its index, whatever --batch-size.

Samplers: ddpm (Ho et al. 2020), ddim, dpm++2m (DPM-Solver++(2M), Lu et al. 2022), dpm++2m-sde (its SDE
variant: fresh noise every step), heun (Karras et al. 2022, Algorithm 1) and euler run on every checkpoint,
DDPM or flow matching (samplers.py: each is written once for any noise path). The defaults come from the
library's sampling recipe (recipe.py), the same for `generate_images` in Python. NFE, the number of network
evaluations, is one per step except heun: 2 per step, and on a DDPM checkpoint 1 on its last (Euler) step,
so 2 * steps - 1; on a flow checkpoint 2 * steps. Spacings for DDPM checkpoints: uniform (from t = 0),
trailing (uniform from t = T-1, ending a stride above 0; the dpm++ solvers' default), quadratic, logsnr
(uniform in log-SNR) or karras (rho = 7; heun's default); for flow checkpoints: uniform or quadratic in t.
The dpm++ solvers integrate their second-order term exactly by default (--solver-type exact), which at 10
steps beats the paper's midpoint rule (--solver-type midpoint) and equals it at 50
(benchmarks/results/few_steps_cpu_n1000).
Few-step checkpoints take only their own sampler: consistency (Song et al. 2023, Algorithm 1: re-noise
and map back at each step) for a `distill` checkpoint, meanflow for a `train --objective meanflow` one;
each samples in 1 to 8 steps, and the other samplers refuse them (and they refuse DDPM and flow ones).
A `distill --chain` checkpoint holds two networks: its own samples one step, the chain's 2 or more.
The .npz also records objective, sampler, spacing, steps, nfe, precision and, where they apply, the dpm++
solver type, the noise scale, the guidance scale, the autoguide checkpoint and --autoguide-from.

Speed: by default the network runs under bf16 autocast on CUDA and on a CPU with native bf16 (AVX512-BF16 or
AMX), as training's --precision auto does; the sampler's own arithmetic stays float32. On a CPU a batch of
128 samples is the default (256 on CUDA): larger batches spill the cache (benchmarks/results/sampler_speed_cpu).
With glibc (Linux), this command keeps the memory each step frees for the next step instead of handing it
back to the kernel (fastpath.keep_freed_memory): the same numbers, without faulting the pages in again.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sample",
        help="draw samples from a checkpoint: DDPM, DDIM, DPM-Solver++, Heun, Euler or a few-step model's own",
        description="Generate images from a trained checkpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a .pt file written by `cleardiffusion train`, or a .onnx file written by `cleardiffusion export` "
        "(run by ONNX Runtime on the CPU, in fp32)",
    )
    p.add_argument("--out", required=True, help="FILE.png (a grid) or FILE.npz (key images: N x H x W x C uint8)")
    p.add_argument("--n", type=positive_int, default=64, help="number of samples (default: 64)")
    p.add_argument(
        "--sampler",
        choices=SAMPLER_NAMES,
        default=None,
        help="ddpm to euler on any DDPM or flow checkpoint, consistency / meanflow on the few-step models "
        "trained for them (default: the recipe's: dpm++2m-sde for DDPM checkpoints, euler for flow matching, "
        "consistency for distilled ones, meanflow for meanflow ones)",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="sampling steps, at most T (default, capped at T: T for ddpm (flow: 1000), 50 ddim, 20 dpm++2m, 50 "
        "dpm++2m-sde, 18 heun (flow: 25), 50 euler; few-step models 1 to 8: consistency 2, meanflow 1)",
    )
    budget.add_argument(
        "--nfe",
        type=positive_int,
        default=None,
        help="network evaluations instead of steps (heun on a DDPM checkpoint: odd; on a flow one: even)",
    )
    p.add_argument(
        "--spacing",
        choices=SPACINGS + JUMP_SPACINGS,
        default=None,
        help="which timesteps a shorter run visits: uniform, trailing, quadratic, logsnr, karras (default: "
        "trailing for dpm++2m and dpm++2m-sde, karras for heun, else uniform; flow: uniform or quadratic, "
        "default uniform); consistency models also jump (their default: one step from pure noise, the rest "
        "at low noise)",
    )
    p.add_argument(
        "--solver-type",
        choices=SOLVER_TYPES,
        default=None,
        help=f"dpm++2m and dpm++2m-sde: exact (the second-order term integrated exactly; default "
        f"{DEFAULT_SOLVER_TYPE}) or midpoint "
        "(Lu et al. 2022, Algorithm 2; as good at 50 steps, worse at 10)",
    )
    p.add_argument("--eta", type=unit_interval, default=0.0, help="DDIM noise in [0, 1]: 0 deterministic, 1 DDPM-like")
    p.add_argument(
        "--variance",
        choices=VARIANCES,
        default="beta",
        help="the ddpm sampler's reverse variance: beta_t (default) or the posterior beta_tilde_t",
    )
    p.add_argument(
        "--clip-x0",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="clamp predicted x_0 to [-1, 1] at each step (default: on)",
    )
    p.add_argument(
        "--class-label",
        default=None,
        metavar="K|all|none",
        help="conditional checkpoints: a class index, 'all' (classes in equal blocks, one row "
        "each in a grid) or 'none' (unconditional); default: all when conditional",
    )
    p.add_argument("--guidance", type=finite_float, default=1.0, help="classifier-free guidance scale s (default: 1)")
    p.add_argument(
        "--autoguide",
        metavar="CKPT",
        help="autoguidance (Karras et al. 2024): guide the unconditional samples by CKPT, a worse model of the same "
        "recipe (e.g. trained for a few minutes), at --guidance S: eps_bad + S (eps - eps_bad); twice the "
        "network evaluations per step",
    )
    p.add_argument(
        "--autoguide-from",
        type=probability,
        default=0.0,
        metavar="F",
        help="with --autoguide: guide only the noise levels t >= F T, the model alone below (guidance on a limited "
        "interval, Kynkaanniemi et al. 2024; docs/few_step.md measures 0.15); default: 0, every level",
    )
    p.add_argument(
        "--noise-scale",
        type=finite_float,
        default=1.0,
        metavar="S",
        help="start from x_T = S * noise; below 1 the truncation trick: fewer malformed samples, less variety "
        "(default: 1, the model's own distribution; docs/few_step.md measures 0.85 for one-step models)",
    )
    p.add_argument("--seed", type=seed, default=0, help="base seed; sample i uses (seed, i)")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="samples per forward pass (default: 128 on a CPU, 256 on CUDA; fastpath.SAMPLING_BATCH)",
    )
    p.add_argument(
        "--precision",
        choices=SAMPLING_PRECISIONS,
        default="auto",
        help="the network's: auto (bf16 autocast on CUDA and on CPUs with native bf16, AVX512-BF16 or AMX; "
        "else fp32), fp32 or bf16; the sampler's arithmetic is float32 either way (default: auto)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument(
        "--trajectory",
        default=None,
        metavar="FILE.png",
        help="also write the denoising trajectory of up to 8 samples: a PNG strip and a GIF",
    )
    p.set_defaults(func=run)


def resolve_labels(spec: str | None, n: int, num_classes: int):
    """--class-label -> a (n,) label tensor or None (unconditional)."""
    import torch

    if spec is None:
        spec = "all" if num_classes > 0 else "none"
    if spec == "none":
        return None
    if num_classes == 0:
        raise UsageError("this checkpoint is unconditional: drop --class-label (or use --class-label none)")
    if spec == "all":
        return torch.arange(n) * num_classes // n  # equal contiguous blocks: class k fills row k of a grid
    try:
        k = int(spec)
    except ValueError:
        raise UsageError(f"--class-label must be a class index, 'all' or 'none', got {spec!r}") from None
    if not 0 <= k < num_classes:
        raise UsageError(f"--class-label {k} is out of range: this model has classes 0..{num_classes - 1}")
    return torch.full((n,), k)


def load_model(args: argparse.Namespace, device):
    """(model, path, meta) of --checkpoint: a .pt checkpoint in PyTorch, an exported .onnx in ONNX Runtime."""
    if not str(args.checkpoint).endswith(".onnx"):
        from ..checkpoint import load_for_sampling

        return load_for_sampling(args.checkpoint, device=device, use_ema=not args.no_ema)
    import torch

    from ..export import load_onnx

    if torch.device(device).type != "cpu":
        raise UsageError(f"an ONNX model runs on the CPU (ONNX Runtime's CPU provider): drop --device {args.device}")
    if args.no_ema:
        raise UsageError("--no-ema: an ONNX file holds the weights it was exported with; export with --no-ema")
    return load_onnx(args.checkpoint)


def check_outputs(args: argparse.Namespace, image_shape: tuple[int, ...], device: str, model) -> Path:
    """--out and --trajectory writable and distinct, and n images fit in memory and on disk: before sampling."""
    from ..fastpath import sampling_batch
    from ..files import distinct_outputs, output_file
    from ..limits import activation_bytes, check_memory

    C, H, W = image_shape
    stored = args.n * C * H * W  # the uint8 samples held until they are written
    out = output_file(args.out, "--out", (".png", ".npz"), need_bytes=stored if args.out.endswith(".npz") else 0)
    if args.trajectory:
        output_file(args.trajectory, "--trajectory", (".png",))
        gif = Path(args.trajectory).with_suffix(".gif")
        output_file(gif, "--trajectory's .gif")
        distinct_outputs({"--out": args.out, "--trajectory": args.trajectory, "--trajectory's .gif": gif})
    grid = 0 if out.suffix == ".npz" else 2 * args.n * (H + 2) * (W + 2) * 4 * 3  # the PNG grid, 2x, RGB
    check_memory(stored + grid, f"--n {args.n} samples of {C}x{H}x{W}", "lower --n (or write an .npz)")
    batch = min(sampling_batch(device, args.batch_size), args.n)
    config = getattr(model, "config", None)
    activations = activation_bytes(config, batch, False)
    need = 4 * batch * C * H * W * 4 + activations  # x_t, eps, x0_pred, the next x_t, float32
    check_memory(need, f"a batch of {batch} samples", "lower --batch-size", device)
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from ..checkpoint import load_autoguide
    from ..export import onnx_precision
    from ..fastpath import keep_freed_memory, sampling_precision
    from ..files import atomic_write
    from ..generate import generate_images
    from ..guidance import check_guidance, interval_start
    from ..limits import resolve_device
    from ..samplers import make_timesteps, sampler_nfe, steps_for_nfe
    from ..viz import evenly_spaced, save_gif, save_grid, to_uint8

    device = resolve_device(args.device)
    model, path, meta = load_model(args, device)
    precision = args.precision if meta.get("backend") != "onnxruntime" else onnx_precision(args.precision)
    out = check_outputs(args, meta["image_shape"], device, model)  # before any sampling, so no work is lost
    num_classes = meta["num_classes"]  # 0 for a model trained without --conditional
    labels = resolve_labels(args.class_label, args.n, num_classes)
    autoguide = None
    if args.autoguide_from and not args.autoguide:
        raise UsageError("--autoguide-from limits autoguidance to the noisier levels: add --autoguide CKPT, or drop "
                         "--autoguide-from")  # fmt: skip
    if args.autoguide:  # Karras et al. 2024: guided by a worse model of the same recipe, not by labels
        if labels is not None:
            raise UsageError("--autoguide guides unconditional samples: add --class-label none, or drop --autoguide")
        autoguide = load_autoguide(args.autoguide, meta["objective"], meta["config"].get("schedule"),
                                   meta["image_shape"], path, device)  # fmt: skip
    else:
        check_guidance(labels, args.guidance)  # before any sampling starts
    recipe = SamplingRecipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SamplingRecipe)})
    if args.nfe:
        try:
            recipe = recipe.replace(steps=steps_for_nfe(recipe.resolve(path).sampler, args.nfe, path))
        except ValueError as e:
            raise UsageError(f"--nfe {args.nfe}: {e}") from None
    recipe = recipe.resolve(path)  # the objective's defaults; a UsageError names a setting that does not fit
    sampler, steps, spacing, solver_type = recipe.sampler, recipe.steps, recipe.spacing, recipe.solver_type
    timesteps = make_timesteps(path, steps, spacing)
    nfe = sampler_nfe(sampler, steps, path) * (2 if autoguide is not None else 1)  # autoguidance: two networks a step

    frames = []  # trajectory: (x_t of the first samples) at every step of the first batch
    keep = min(8, args.n)

    def record(i, t, x_t, x0_pred):
        if len(frames) < steps:
            frames.append(x_t[:keep].float().cpu())

    images = np.empty((args.n, *meta["image_shape"][1:], meta["image_shape"][0]), dtype=np.uint8)
    keep_freed_memory()  # this process only samples: reuse each step's buffers (fastpath.keep_freed_memory)
    start, done = time.perf_counter(), 0
    batches = generate_images(
        model, path, n=args.n, shape=tuple(meta["image_shape"]), recipe=recipe, timesteps=timesteps, seed=args.seed,
        labels=labels, batch_size=args.batch_size, device=device, precision=precision,
        callback=record if args.trajectory else None, autoguide=autoguide,
        autoguide_from=interval_start(path, args.autoguide_from),
    )  # fmt: skip
    with tqdm(total=args.n, unit="img", desc="sampling", disable=None) as bar:
        for batch in batches:
            images[done : done + len(batch)] = to_uint8(batch).permute(0, 2, 3, 1).cpu().numpy()
            done += len(batch)
            bar.update(len(batch))
    seconds = time.perf_counter() - start

    if out.suffix == ".npz":
        arrays = {"images": images} if labels is None else {"images": images, "labels": labels.numpy()}
        run_info = {"objective": meta["objective"], "sampler": sampler, "spacing": spacing, "steps": steps, "nfe": nfe,
                    "precision": sampling_precision(device, precision)}  # fmt: skip
        run_info.update({"solver_type": solver_type} if solver_type else {})
        run_info.update({"noise_scale": recipe.noise_scale} if recipe.noise_scale != 1 else {})
        run_info.update({"guidance": args.guidance} if args.guidance != 1 else {})  # classifier-free or autoguidance
        run_info.update({"autoguide": str(args.autoguide)} if args.autoguide else {})
        run_info.update({"autoguide_from": args.autoguide_from} if args.autoguide_from else {})
        arrays.update({k: np.array(v) for k, v in run_info.items()})  # 0-d arrays: no pickle needed to read
        with atomic_write(out) as f:
            np.savez(f, **arrays)
    else:
        per_row = args.n // num_classes if labels is not None and args.class_label in (None, "all") else None
        save_grid(torch.from_numpy(images).permute(0, 3, 1, 2), out, nrow=per_row or None, scale=2)
    if args.trajectory:
        final = torch.from_numpy(images[:keep]).permute(0, 3, 1, 2)
        picks = [to_uint8(frames[i]) for i in evenly_spaced(len(frames), 10)] + [final]
        columns = torch.stack(picks, dim=1).flatten(0, 1)  # rows = samples, columns = steps, then x_0
        save_grid(columns, args.trajectory, nrow=len(picks), scale=2)
        save_gif([to_uint8(f) for f in frames] + [final], Path(args.trajectory).with_suffix(".gif"), scale=3)
    print(
        f"wrote {args.n} samples to {out} ({sampler}{f' {solver_type}' if solver_type else ''}, {steps} steps, "
        f"{spacing} spacing, NFE {nfe}, {sampling_precision(device, precision)}"
        f"{' ONNX Runtime' if meta.get('backend') else ''}, "
        f"{args.n / seconds:.1f} images/s on {device})"
    )
    return 0
