"""Training and sampling throughput of cleardiffusion's U-Nets vs diffusers and denoising-diffusion-pytorch.

Measures, per (network, variant): training images/s at batch 128 and 512 (forward, eps-MSE loss L_simple,
backward, grad clipping, AdamW step, EMA update: cleardiffusion.train.train_step, the same math for every
network) and denoiser-forward images/s at batch 1024 (the cost of one sampler step); FLOPs per image from
torch.utils.flop_counter.FlopCounterMode and MFU against a bf16 8192^3 matmul measured in the same run.
Variants toggle one speed option at a time (see VARIANTS and docs/performance.md), one table row each.

On a lent GPU (the device tool runs in the repository root; peers travel as wheels in .whl/):

    bash benchmarks/fetch_peer_wheels.sh        # here, once: diffusers, denoising-diffusion-pytorch -> .whl/
    # device tool, carry [".whl"], one call per plan (each ends inside the 10-minute call limit):
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .whl/*.whl && export PYTHONPATH=/tmp/site || exit; \
      PYTHONUNBUFFERED=1 python3 benchmarks/gpu_throughput.py --plan headline --out $OUT/headline.md
    # then the same with --plan variants (our speed options one by one) and --plan extra (seed-minimal,
    # CUDA graphs and max-autotune, fp32 peers); copy $OUT's tables into benchmarks/results/.

On this CPU (a smoke test of every code path with tiny networks, < 60 s):

    python benchmarks/gpu_throughput.py --device cpu --quick

Timing: warm-up steps (compilation included) are not timed; each repeat times `--steps` steps with CUDA events
(perf_counter on the CPU) and nothing in the loop reads a value back to the host; the median repeat counts.
"""

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing the package

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_fastpath as fastpath  # noqa: E402  (the library's FastOptions plus compile modes)

from cleardiffusion.denoiser import training_parts  # noqa: E402
from cleardiffusion.models import count_parameters  # noqa: E402
from cleardiffusion.models.unet import unet_from_preset  # noqa: E402
from cleardiffusion.schedule import NoiseSchedule  # noqa: E402
from cleardiffusion.train import make_optimizer, train_step  # noqa: E402

BF16_CL = fastpath.BenchOptions()  # bf16 autocast, channels_last, fused AdamW, foreach EMA, eager
VARIANTS: dict[str, fastpath.BenchOptions] = {
    "eager-fp32": fastpath.PLAIN,  # the reference: fp32, NCHW, AdamW(foreach), EMA as a Python loop
    "eager-bf16": replace(BF16_CL, channels_last=False),
    "eager-bf16-cl": BF16_CL,
    "eager-bf16-cl-unfused": replace(BF16_CL, fused_adam=False, foreach_ema=False),  # what fusing buys
    "eager-bf16-cl+sync": replace(BF16_CL, sync_every_step=True),  # what a loss.item() per step costs
    "compile-bf16": replace(BF16_CL, channels_last=False, compile_mode="default"),
    "compile-bf16-cl": replace(BF16_CL, compile_mode="default"),
    "cudagraphs-bf16-cl": replace(BF16_CL, compile_mode="reduce-overhead"),
    "autotune-bf16-cl": replace(BF16_CL, compile_mode="max-autotune-no-cudagraphs"),
}
PLANS: dict[str, list[tuple[str, str]]] = {  # (network, variant) in the order they run
    "headline": [("ddpm-cifar10", "compile-bf16-cl"), ("diffusers", "compile-bf16-cl"),
                 ("ddpm-pytorch", "eager-fp32"), ("ddpm-cifar10", "eager-bf16-cl"),
                 ("diffusers", "eager-bf16-cl"), ("ddpm-pytorch", "eager-bf16-cl")],
    "variants": [("ddpm-cifar10", v) for v in ("eager-fp32", "eager-bf16", "eager-bf16-cl",
                                               "eager-bf16-cl-unfused", "eager-bf16-cl+sync",
                                               "compile-bf16", "compile-bf16-cl")],
    "extra": [("seed-minimal", "eager-bf16-cl"), ("seed-minimal", "compile-bf16-cl"),
              ("ddpm-cifar10", "cudagraphs-bf16-cl"), ("diffusers", "eager-fp32"),
              ("ddpm-pytorch", "compile-bf16-cl"), ("ddpm-cifar10", "autotune-bf16-cl")],
    "quick": [(n, v) for n in ("ddpm-cifar10", "diffusers", "ddpm-pytorch")
              for v in ("eager-fp32", "eager-bf16-cl")] + [("seed-minimal", "eager-bf16-cl")],
}  # fmt: skip
PEERS = ("diffusers", "ddpm-pytorch")
CASES = {"train-128": ("train", 128), "train-512": ("train", 512), "forward-1024": ("forward", 1024)}
QUICK_BATCH = {"train-128": 2, "train-512": 4, "forward-1024": 8}


# ---- networks: ours and the peers, each behind the eps_theta(x_t, t, y=None) interface --------------------
class DiffusersEps(nn.Module):
    """diffusers' UNet2DModel as eps_theta(x_t, t)."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.unet(x, t, return_dict=False)[0]


class LucidrainsEps(nn.Module):
    """denoising-diffusion-pytorch's Unet as eps_theta(x_t, t)."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.unet(x, t)


def build_network(name: str, quick: bool) -> tuple[nn.Module, tuple[int, int, int], str]:
    """(eps model, image shape (C, H, W), library version); quick: the same structure, 1/8 of the width."""
    width = 16 if quick else 128
    tiny = dict(base_channels=16, norm_groups=8) if quick else {}
    if name == "ddpm-cifar10":
        return unet_from_preset("ddpm-cifar10", in_channels=3, image_size=32, **tiny), (3, 32, 32), "ours"
    if name == "seed-minimal":
        return unet_from_preset("seed-minimal", in_channels=1, image_size=28, **tiny), (1, 28, 28), "ours"
    if name == "diffusers":
        import diffusers

        # google/ddpm-cifar10-32's config.json (Ho et al.'s network, 35,746,307 parameters like ours), with
        # dropout 0.1 as Ho et al. trained it (the Hub config is for inference, dropout 0)
        unet = diffusers.UNet2DModel(
            sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
            block_out_channels=tuple(width * m for m in (1, 2, 2, 2)),
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
            downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6,
            norm_num_groups=8 if quick else 32, attention_head_dim=None, act_fn="silu", dropout=0.1,
        )  # fmt: skip
        return DiffusersEps(unet), (3, 32, 32), f"diffusers {diffusers.__version__}"
    if name == "ddpm-pytorch":
        import denoising_diffusion_pytorch as ddp

        version = getattr(ddp, "__version__", "?")
        return (
            LucidrainsEps(ddp.Unet(dim=width, dim_mults=(1, 2, 2, 2))),
            (3, 32, 32),
            f"ddpm-pytorch {version}",
        )
    raise ValueError(f"unknown network {name!r}; choose one of ddpm-cifar10, seed-minimal, {', '.join(PEERS)}")


# ---- measurement ------------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn, device: torch.device, steps: int, repeats: int, warmup: int) -> float:
    """Median over `repeats` of the mean time of `steps` back-to-back calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(steps):
                fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000 / steps)
        else:
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


def matmul_peak(device: torch.device, n: int, repeats: int) -> float:
    """bf16 FLOP/s of an n x n x n matmul on random data (median of `repeats` timed products)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    seconds = seconds_per_call(lambda: a @ b, device, steps=1, repeats=repeats, warmup=3)
    return 2 * n**3 / seconds


@dataclass
class Job:
    """One measurement: a network, a variant, a case, and what came of it."""

    network: str
    variant: str
    case: str
    batch: int
    images_per_sec: float | None = None
    ms_per_step: float | None = None
    flops_per_image: float | None = None
    peak_mem_gib: float | None = None
    params: int | None = None
    status: str = "ok"


FLOPS_PER_IMAGE: dict[tuple, float] = {}  # (network, pass, shape, images counted) -> FLOPs per image


def count_flops(step_fn) -> int:
    """Matmul/conv/attention FLOPs of one call (forward, and backward when the call runs it).

    Counted in fp32 with attention as plain bmm: the same count as bf16 with any attention kernel, and
    FlopCounterMode under autocast trips over some peers' ops.
    """
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):  # attention as bmm: counted
        step_fn()
    return counter.get_total_flops()


def run_job(job: Job, model: nn.Module, shape: tuple[int, ...], device: torch.device, args) -> None:
    """Measure one (network, variant, case) into `job`; the model is a fresh copy owned by this job."""
    options, kind, B = VARIANTS[job.variant], CASES[job.case][0], job.batch
    schedule = NoiseSchedule.from_name("linear", 1000).to(device)
    g = torch.Generator(device=device).manual_seed(0)
    pool = torch.rand((max(B, 1024 if not args.quick else B), *shape), generator=g, device=device) * 2 - 1
    model = model.to(device)
    plain_model = model  # uncompiled, for counting FLOPs
    if kind == "train":
        model.train()
        ema = copy.deepcopy(model).eval().requires_grad_(False)
        net = fastpath.prepare_denoiser(model, options)
        if options.channels_last:
            ema.to(memory_format=torch.channels_last)
        optimizer = make_optimizer(model, options)
        loss_fn, _ = training_parts("ddpm", "eps", "none", schedule)  # L_simple
        params, ema_params = list(model.parameters()), list(ema.parameters())

        def draw():  # the batch's randomness, drawn on the device as train.draw_batch does
            index = torch.randint(0, len(pool), (B,), generator=g, device=device)
            t = torch.randint(0, schedule.T, (B,), generator=g, device=device)
            eps = torch.randn((B, *shape), generator=g, device=device)
            return pool[index], t, eps

        def step(net=net):
            x0, t, eps = draw()
            fastpath.step_begin(options)
            loss = train_step(net, loss_fn, optimizer, params, ema_params, x0, t, eps, decay=0.9999, options=options)
            if options.sync_every_step:
                loss.item()  # what a host sync per step costs

        def flops_step():
            n = min(B, 8)
            x0, t, eps = pool[:n], torch.zeros(n, dtype=torch.long, device=device), pool[:n]
            loss = nn.functional.mse_loss(plain_model(schedule.q_sample(x0, t, eps), t), eps)
            loss.backward()
            plain_model.zero_grad(set_to_none=True)
            return n
    else:
        model.eval()
        net = fastpath.prepare_denoiser(model, options)
        x_t, t = pool[:B], torch.randint(0, schedule.T, (B,), generator=g, device=device)

        def step(net=net):
            fastpath.sampling_forward(net, x_t, t, options=options)

        def flops_step():
            n = min(B, 8)
            fastpath.sampling_forward(plain_model, x_t[:n], t[:n], options=fastpath.PLAIN)
            return n

    job.params = count_parameters(plain_model)
    key = (job.network, kind, shape, min(B, 8))  # every variant and batch >= 8 of a pass counts the same
    if key not in FLOPS_PER_IMAGE:
        FLOPS_PER_IMAGE[key] = count_flops(flops_step) / min(B, 8)
    job.flops_per_image = FLOPS_PER_IMAGE[key]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = seconds_per_call(step, device, args.steps, args.repeats, args.warmup)
    job.ms_per_step, job.images_per_sec = seconds * 1e3, B / seconds
    if device.type == "cuda":
        job.peak_mem_gib = torch.cuda.max_memory_allocated(device) / 2**30


# ---- report -----------------------------------------------------------------------------------------------
def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(jobs: list[Job], header: dict, peak: float) -> str:
    """The markdown: a header, one row per measurement, ours/peer ratios, the issue's targets."""
    lines = ["# GPU throughput: cleardiffusion vs diffusers vs denoising-diffusion-pytorch", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()] + [""]
    columns = "network variant case batch img/s ms/step GFLOP/img TFLOP/s MFU peak-GiB status".split()
    lines += ["| " + " | ".join(columns) + " |", "|---|---|---|" + "---:|" * 7 + "---|"]
    for j in jobs:
        tflops = j.images_per_sec * j.flops_per_image / 1e12 if j.images_per_sec and j.flops_per_image else None
        mfu = tflops * 1e12 / peak if tflops else None
        lines.append(
            f"| {j.network} | {j.variant} | {j.case} | {j.batch} | {fmt(j.images_per_sec, ',.0f')} | "
            f"{fmt(j.ms_per_step, '.2f')} | {fmt(j.flops_per_image and j.flops_per_image / 1e9, '.2f')} | "
            f"{fmt(tflops, '.1f')} | {fmt(mfu and 100 * mfu, '.1f')}{'%' if mfu else ''} | "
            f"{fmt(j.peak_mem_gib, '.1f')} | {j.status} |"
        )
    done = {(j.network, j.variant, j.case): j.images_per_sec for j in jobs if j.images_per_sec}
    lines += ["", "## Ratios ours (ddpm-cifar10) / peer, images/s", "",
              "| case | ours | peer | ours/peer |", "|---|---|---|---:|"]  # fmt: skip
    for case in CASES:
        ours = {v: s for (n, v, c), s in done.items() if n == "ddpm-cifar10" and c == case}
        for peer in PEERS:
            theirs = {v: s for (n, v, c), s in done.items() if n == peer and c == case}
            for v in sorted(set(ours) & set(theirs)):  # like for like
                lines.append(f"| {case} | {v} | {peer} {v} | {ours[v] / theirs[v]:.2f} |")
            if ours and theirs:  # best against best
                vo, vp = max(ours, key=ours.get), max(theirs, key=theirs.get)
                lines.append(f"| {case} | best: {vo} | best {peer}: {vp} | {ours[vo] / theirs[vp]:.2f} |")
    target = (
        done.get(("diffusers", "compile-bf16-cl", "train-128")),
        done.get(("diffusers", "compile-bf16-cl", "forward-1024")),
    )
    lines += ["", "## The issue's targets (ours best / diffusers compile-bf16-cl >= 1.5)", ""]
    for case, ref in zip(("train-128", "forward-1024"), target, strict=True):
        best = max((s for (n, _, c), s in done.items() if n == "ddpm-cifar10" and c == case), default=None)
        if best and ref:
            verdict = "met" if best / ref >= 1.5 else "NOT met"
            lines.append(f"- {case}: {best:,.0f} / {ref:,.0f} = {best / ref:.2f}x -> {verdict}")
        else:
            lines.append(f"- {case}: not measured in this run")
    return "\n".join(lines) + "\n"


def device_slug(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cuda | cpu")
    parser.add_argument("--quick", action="store_true", help="tiny networks and batches: a CPU smoke test")
    parser.add_argument("--plan", default=None, choices=sorted(PLANS), help="which (network, variant) pairs")
    parser.add_argument("--networks", default=None, help="with --variants: comma list of networks")
    parser.add_argument("--variants", default=None, help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    parser.add_argument("--skip-peers", action="store_true", help="measure only cleardiffusion's networks")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (the median counts)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (compilation included)")
    parser.add_argument("--budget-s", type=float, default=None, help="skip jobs once this many seconds passed")
    parser.add_argument("--out", default=None, help="markdown path (default benchmarks/results/...)")
    args = parser.parse_args(argv)

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    cuda = device.type == "cuda"
    if not cuda and args.quick:
        torch.set_num_threads(1)  # tiny ops: OpenMP threads only wait on each other, badly on a busy machine
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # fp32 rows: TF32
        torch.backends.cudnn.benchmark = True
    args.steps = args.steps or (10 if cuda else 1)
    args.repeats = args.repeats or (5 if cuda else 2)
    args.warmup = args.warmup or (5 if cuda else 1)
    budget = args.budget_s if args.budget_s is not None else (420 if cuda else 0)
    cases = [c.strip() for c in args.cases.split(",")]
    for c in cases:
        if c not in CASES:
            parser.error(f"unknown case {c!r}; choose from {', '.join(CASES)}")
    if args.variants:
        networks = (args.networks or "ddpm-cifar10,diffusers,ddpm-pytorch").split(",")
        plan = [(n, v) for n in networks for v in args.variants.split(",")]
    else:
        plan = PLANS[args.plan or ("quick" if args.quick else "headline")]
    bad = sorted({v for _, v in plan} - set(VARIANTS))
    if bad:
        parser.error(f"unknown variants {bad}; choose from {', '.join(VARIANTS)}")
    if args.skip_peers:
        plan = [(n, v) for n, v in plan if n not in PEERS]

    began = time.perf_counter()
    peak_n = 8192 if cuda and not args.quick else 512
    peak = matmul_peak(device, peak_n, repeats=10 if cuda else 3)
    cudnn = torch.backends.cudnn.version()
    versions, jobs = {}, []
    out = Path(args.out) if args.out else None
    if out is None and not args.quick:
        out = ROOT / "benchmarks" / "results" / f"gpu_throughput_{device_slug(device)}.md"
    header = {
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({platform.processor() or '?'})",
        "torch": torch.__version__ + (f", CUDA {torch.version.cuda}, cuDNN {cudnn}" if cuda else ""),
        "command": "python benchmarks/gpu_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "bf16 matmul peak (measured)": f"{peak / 1e12:.3g} TFLOP/s ({peak_n}^3, median of timed products)",
        "timing": f"{args.warmup} warm-up steps, median of {args.repeats} x {args.steps} steps",
        "quick (1/8-width networks, tiny batches: a smoke test, not a measurement)": args.quick,
    }  # fmt: skip

    def write() -> str:
        header["libraries"] = ", ".join(sorted(set(versions.values()))) or "-"
        text = report(jobs, header, peak)
        for path in [out] + ([Path(os.environ["OUT"]) / out.name] if out and os.environ.get("OUT") else []):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                path.with_suffix(".json").write_text(json.dumps([j.__dict__ for j in jobs], indent=1))
        return text

    for network, variant in plan:
        for case in cases:
            B = QUICK_BATCH[case] if args.quick else CASES[case][1]
            job = Job(network, variant, case, B)
            jobs.append(job)
            if budget and time.perf_counter() - began > budget:
                job.status = f"skipped: past --budget-s {budget:.0f}"
                continue
            try:
                torch.manual_seed(0)
                model, shape, versions[network] = build_network(network, args.quick)
            except ImportError as e:
                job.status = f"not importable ({e.name}): run benchmarks/fetch_peer_wheels.sh"
                continue
            t0 = time.perf_counter()
            try:
                run_job(job, model, shape, device, args)
            except Exception as e:  # a peer failing (compiled backward, OOM) is a result, not a crash
                first_line = (str(e).strip().splitlines() or [""])[0][:120]
                job.status = f"failed: {type(e).__name__}: {first_line}"
            finally:
                del model
                torch._dynamo.reset()
                if cuda:
                    torch.cuda.empty_cache()
            took, rate = time.perf_counter() - t0, fmt(job.images_per_sec, ",.0f")
            print(f"[{time.perf_counter() - began:5.0f}s] {network} {variant} {case} b{B}: {rate} img/s "
                  f"({took:.0f}s) {job.status}", flush=True)  # fmt: skip
            write()
    text = write()
    print(text)
    if out:
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
