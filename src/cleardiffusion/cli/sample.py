"""`cleardiffusion sample`: a checkpoint -> a PNG grid or an .npz of uint8 images, in bounded memory."""

import argparse
import time
from pathlib import Path

from ..errors import UsageError
from . import finite_float, positive_int, seed, unit_interval

# literal copies (importing the library here would slow down every --help); tests check they match it
SAMPLER_CHOICES = ("ddpm", "ddim", "dpm++2m", "dpm++2m-sde", "heun", "euler")
SPACING_CHOICES = ("uniform", "trailing", "quadratic", "logsnr", "karras")
SOLVER_TYPE_CHOICES = ("midpoint", "exact")

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

Guidance scale s: eps = eps_uncond + s (eps_cond - eps_uncond); s = 1 is the plain conditional model,
s = 0 the unconditional one. Each sample is reproducible from --seed and its index, whatever --batch-size.

Samplers: a DDPM (eps) checkpoint takes ddpm, ddim, dpm++2m (DPM-Solver++(2M), Lu et al. 2022), dpm++2m-sde
(its SDE variant: fresh noise every step) or heun (Karras et al. 2022, Algorithm 1); a flow matching
checkpoint takes euler or heun on its ODE. NFE, the number of network evaluations, is one per step except
heun: 2 per step, and on a DDPM checkpoint 1 on its last (Euler) step, so 2 * steps - 1; flow heun is
2 * steps. Spacings for DDPM checkpoints: uniform (from t = 0), trailing (uniform from t = T-1, ending a stride
above 0; the dpm++ solvers' default), quadratic, logsnr (uniform in log-SNR) or karras (rho = 7; heun's
default); for flow checkpoints: uniform or quadratic in t. The dpm++ solvers integrate their second-order
term exactly by default (--solver-type exact), which at 10 steps beats the paper's midpoint rule
(--solver-type midpoint) and equals it at 50 (benchmarks/results/few_steps_cpu_n1000).
The .npz also records sampler, spacing, steps, nfe and, for the dpm++ solvers, the solver type.
"""

# (objective, sampler) -> steps when neither --steps nor --nfe is given; DDPM takes all T steps
DEFAULT_STEPS = {("ddpm", "ddim"): 50, ("ddpm", "dpm++2m"): 20, ("ddpm", "dpm++2m-sde"): 50, ("ddpm", "heun"): 18,
                 ("flow", "euler"): 50, ("flow", "heun"): 25}  # fmt: skip
# the default sampler of each objective: on MNIST (benchmarks/results/few_steps_cpu_n1000) dpm++2m-sde with
# trailing spacing beats DDPM over all 1000 steps in FID from 20 NFE on, where every deterministic sampler
# stays at least 30% short of DDPM
DEFAULT_SAMPLER = {"ddpm": "dpm++2m-sde", "flow": "euler"}
# unless --spacing: trailing for the dpm++ solvers (measured best at 10, 20 and 50 NFE in the same benchmark),
# Karras et al.'s own for heun (Eq. 5)
DEFAULT_SPACING = {("ddpm", "dpm++2m"): "trailing", ("ddpm", "dpm++2m-sde"): "trailing", ("ddpm", "heun"): "karras"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sample",
        help="draw samples from a checkpoint with DDPM, DDIM, DPM-Solver++, Heun or Euler (grid PNG or .npz)",
        description="Generate images from a trained checkpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="a .pt file written by `cleardiffusion train`")
    p.add_argument("--out", required=True, help="FILE.png (a grid) or FILE.npz (key images: N x H x W x C uint8)")
    p.add_argument("--n", type=positive_int, default=64, help="number of samples (default: 64)")
    p.add_argument(
        "--sampler",
        choices=SAMPLER_CHOICES,
        default=None,
        help="ddpm|ddim|dpm++2m|dpm++2m-sde|heun for DDPM checkpoints (default: dpm++2m-sde), euler|heun for "
        "flow (default: euler)",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="sampling steps, at most T (default, capped at T: T for ddpm, 50 ddim, 20 dpm++2m, 50 dpm++2m-sde, "
        "18 heun, 50 euler, 25 flow heun)",
    )
    budget.add_argument(
        "--nfe",
        type=positive_int,
        default=None,
        help="network evaluations instead of steps (heun on a DDPM checkpoint: odd; flow heun: even)",
    )
    p.add_argument(
        "--spacing",
        choices=SPACING_CHOICES,
        default=None,
        help="which timesteps a shorter run visits: uniform, trailing, quadratic, logsnr, karras (default: "
        "trailing for dpm++2m and dpm++2m-sde, karras for heun, else uniform; flow: uniform or quadratic, "
        "default uniform)",
    )
    p.add_argument(
        "--solver-type",
        choices=SOLVER_TYPE_CHOICES,
        default=None,
        help="dpm++2m and dpm++2m-sde: exact (the second-order term integrated exactly; default) or midpoint "
        "(Lu et al. 2022, Algorithm 2; as good at 50 steps, worse at 10)",
    )
    p.add_argument("--eta", type=unit_interval, default=0.0, help="DDIM noise in [0, 1]: 0 deterministic, 1 DDPM-like")
    p.add_argument(
        "--variance",
        choices=("beta", "posterior"),
        default="beta",
        help="DDPM reverse variance: beta_t or the posterior beta_tilde_t",
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
    p.add_argument("--seed", type=seed, default=0, help="base seed; sample i uses (seed, i)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="samples per forward pass")
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


def check_outputs(args: argparse.Namespace, image_shape: tuple[int, ...], device: str, model) -> Path:
    """--out and --trajectory writable and distinct, and n images fit in memory and on disk: before sampling."""
    from ..files import distinct_outputs, output_file
    from ..limits import check_memory, unet_activation_bytes

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
    batch = min(args.batch_size, args.n)
    config = getattr(model, "config", None)
    activations = unet_activation_bytes(config, batch, False) if hasattr(config, "channel_mults") else 0
    need = 4 * batch * C * H * W * 4 + activations  # x_t, eps, x0_pred, the next x_t, float32
    check_memory(need, f"a batch of {batch} samples", "lower --batch-size", device)
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from ..checkpoint import load_for_sampling
    from ..fastpath import sampling_autocast
    from ..files import atomic_write
    from ..flow import FLOW_SPACINGS, flow_timesteps
    from ..generate import SAMPLERS_FOR, checkpoint_objective, count_nfe, generate_images, steps_for_budget
    from ..guidance import check_guidance
    from ..limits import resolve_device
    from ..samplers import SOLVER_TYPED, make_timesteps
    from ..viz import evenly_spaced, save_gif, save_grid, to_uint8

    device = resolve_device(args.device)
    model, schedule, meta = load_for_sampling(args.checkpoint, device=device, use_ema=not args.no_ema)
    out = check_outputs(args, meta["image_shape"], device, model)  # before any sampling, so no work is lost
    num_classes = meta["num_classes"]  # 0 for a model trained without --conditional
    labels = resolve_labels(args.class_label, args.n, num_classes)
    check_guidance(labels, args.guidance)  # before any sampling starts
    objective = checkpoint_objective(meta)  # "ddpm" or "flow"
    sampler = args.sampler or DEFAULT_SAMPLER[objective]
    if sampler not in SAMPLERS_FOR[objective]:
        raise UsageError(
            f"this checkpoint was trained with the {objective} objective: --sampler {sampler} does not fit it; "
            f"use one of {', '.join(SAMPLERS_FOR[objective])}"
        )
    if args.eta != 0 and sampler != "ddim":
        raise UsageError(f"--eta is DDIM's noise level: drop it, or use --sampler ddim (got --sampler {sampler})")
    dpm = objective == "ddpm" and sampler in SOLVER_TYPED
    if args.solver_type and not dpm:
        raise UsageError(
            f"--solver-type is for dpm++2m and dpm++2m-sde: drop it, or pick one of them (got --sampler {sampler})"
        )
    solver_type = args.solver_type or "exact"  # measured better at 10 NFE, equal at 50 (few_steps_cpu_n1000)
    try:
        steps = steps_for_budget(objective, sampler, args.nfe) if args.nfe else args.steps
    except ValueError as e:
        raise UsageError(f"--nfe {args.nfe}: {e}") from None
    spacing = args.spacing or DEFAULT_SPACING.get((objective, sampler), "uniform")
    if objective == "flow":
        if spacing not in FLOW_SPACINGS:
            raise UsageError(
                f"--spacing {spacing} is for DDPM checkpoints; a flow checkpoint takes uniform or quadratic"
            )
        steps = steps or DEFAULT_STEPS[objective, sampler]
        timesteps = flow_timesteps(steps, spacing)
    else:
        steps = steps or min(DEFAULT_STEPS.get((objective, sampler), schedule.T), schedule.T)
        try:
            timesteps = make_timesteps(schedule, steps, spacing)  # validates steps <= T
        except ValueError as e:
            raise UsageError(f"--steps {steps}: {e}") from None
    nfe = count_nfe(objective, sampler, steps)

    frames = []  # trajectory: (x_t of the first samples) at every step of the first batch
    keep = min(8, args.n)

    def record(i, t, x_t, x0_pred):
        if len(frames) < steps:
            frames.append(x_t[:keep].float().cpu())

    images = np.empty((args.n, *meta["image_shape"][1:], meta["image_shape"][0]), dtype=np.uint8)
    start, done = time.perf_counter(), 0
    batches = generate_images(
        model, schedule, n=args.n, shape=tuple(meta["image_shape"]), sampler=sampler, objective=objective,
        timesteps=timesteps, eta=args.eta, solver_type=solver_type, variance=args.variance, clip_x0=args.clip_x0,
        seed=args.seed, labels=labels, guidance=args.guidance, batch_size=args.batch_size, device=device,
        callback=record if args.trajectory else None,
    )  # fmt: skip
    with sampling_autocast(device), tqdm(total=args.n, unit="img", desc="sampling", disable=None) as bar:
        for batch in batches:
            images[done : done + len(batch)] = to_uint8(batch).permute(0, 2, 3, 1).cpu().numpy()
            done += len(batch)
            bar.update(len(batch))
    seconds = time.perf_counter() - start

    if out.suffix == ".npz":
        arrays = {"images": images} if labels is None else {"images": images, "labels": labels.numpy()}
        run_info = {"objective": objective, "sampler": sampler, "spacing": spacing, "steps": steps, "nfe": nfe}
        run_info.update({"solver_type": solver_type} if dpm else {})
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
        f"wrote {args.n} samples to {out} ({sampler}{f' {solver_type}' if dpm else ''}, {steps} steps, "
        f"{spacing} spacing, NFE {nfe}, "
        f"{args.n / seconds:.1f} images/s on {device})"
    )
    return 0
