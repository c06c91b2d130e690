"""sampling-cost: seed 003's "seconds to minutes per generation" at 86M parameters and 256x256, measured.

Seed 003 times 100 DDPM steps of its 3M-parameter MLP on 16x16 (~0.8 s on an M2 CPU) and scales that to the
86M-parameter JiT-B/16 (Li & He 2025: a plain ViT on 16x16-pixel patches) at 256x256: "seconds to minutes per
generation". DDPM sampling (Ho et al. 2020, Algorithm 2) evaluates the network once per step, so

    seconds per image = steps x seconds per step                                                    (1)

where a step is one forward pass at batch 1; the sampler's elementwise update is left out (for the seed's MLP,
the smallest network, one real 100-step DDPM sampling is timed beside (1) to show what that leaves out). We
time real forward passes of untrained networks (the cost does not depend on the weights):

1. at the seed's size, 256x256x3: JiT-B/16 and the U-Nets `small` and `ddpm-cifar10` (Ho et al.'s 35.7M);
2. against resolution, 32 to 256, for three token mixers at one patch size, so that tokens grow with pixels: the
   U-Net `small` (convolutions), `vit-small` (self-attention, quadratic in tokens) and `ssm-small` (Mamba's
   selective scan, Gu & Dao 2023, linear in tokens).

Each point is a warm-up forward, then `steps` timed forwards (median and range), in the precision the library
samples in on this device (`fastpath.sampling_precision`: bf16 on CUDA and on a CPU with native bf16) and,
where that is fp32, again under bf16 autocast. FLOPs of one forward: `torch.utils.flop_counter.FlopCounterMode`
over one more, untimed forward with attention in PyTorch's math backend (its matmuls counted; the fused CPU
kernel is not), at 2 FLOPs per multiply-add of matmuls, convolutions and attention.
"""

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..fastpath import sampling_model, sampling_precision
from ..models import count_parameters
from ..models.mlp import MLPConfig, MLPDenoiser
from ..models.unet import unet_from_preset
from ..models.vit import vit_from_preset
from ..samplers import ddpm_sample, make_timesteps
from ..schedule import NoiseSchedule
from .common import Context, synchronize
from .report import Report, figure, fmt, save_figure

TITLE = "Sampling cost: seed 003's 86M ViT at 256x256, measured"
QUESTION = (
    "Seed 003: DDPM sampling of the 86M-parameter JiT ViT at 256x256 costs 'seconds to minutes per generation'. "
    "How long does one step take, measured, and how does a step's cost grow with resolution for a U-Net, a ViT "
    "(attention) and a linear-time scan?"
)


@dataclass(frozen=True)
class Net:
    label: str
    family: str  # mlp | unet | vit (the ViT family holds both mixers: vit-small and ssm-small)
    preset: str  # a U-Net or ViT preset; "" for the MLP
    options: dict = field(default_factory=dict)  # config overrides, e.g. the sweep's patch size
    size: int = 0  # H = W it is timed at (0: the experiment's resolution)


@dataclass(frozen=True)
class Config:
    resolution: int  # H = W of the seed's claim (256)
    channels: int  # C of every input (3: RGB)
    networks: tuple[Net, ...]  # timed at `resolution` (or their own size)
    sweep_resolutions: tuple[int, ...]  # cost against resolution: H = W of every point
    sweep: tuple[Net, ...]  # the backbones of the sweep, each at every resolution
    steps: int  # timed forwards per point
    min_steps: int  # timed forwards when the warm-up forward took longer than slow_s
    slow_s: float
    bf16: bool  # time again under bf16 autocast where the library samples in fp32
    flops: bool  # count FLOPs (FlopCounterMode's first use imports torch._dynamo: seconds)
    sampling_steps: tuple[int, ...] = (100, 1000)  # per-image costs stated for these step counts (Eq. 1)
    check_steps: int = 100  # steps of the real DDPM samplings of the seed's MLP (seed 003: 100)
    check_repeats: int = 3  # how many (median)


SEED_MLP = Net("MLP seed 003 (768-1024-1024-768)", "mlp", "", {"hidden_dim": 1024}, size=16)
JIT = "JiT-B/16 (jit-b16)"
_TINY_VIT = {"hidden": 32, "depth": 3, "heads": 2}  # quick: the presets' structure, a toy's width
_TINY_UNET = {"base_channels": 8, "norm_groups": 8}
QUICK = Config(
    resolution=32, channels=3,
    networks=(Net(JIT, "vit", "jit-b16", _TINY_VIT), Net("U-Net small", "unet", "small", _TINY_UNET),
              Net("U-Net ddpm-cifar10", "unet", "ddpm-cifar10", {**_TINY_UNET, "attention_resolutions": (4,)}),
              SEED_MLP),
    sweep_resolutions=(8, 16),
    sweep=(Net("U-Net small", "unet", "small", _TINY_UNET),
           Net("vit-small (attention)", "vit", "vit-small", {**_TINY_VIT, "patch_size": 2}),
           Net("ssm-small (scan)", "vit", "ssm-small", {**_TINY_VIT, "patch_size": 2})),
    steps=2, min_steps=2, slow_s=20.0, bf16=True, flops=False, check_steps=10, check_repeats=1,
)  # fmt: skip
CPU = Config(
    resolution=256, channels=3,
    networks=(Net(JIT, "vit", "jit-b16"), Net("U-Net small", "unet", "small"),
              # Ho et al.'s CIFAR-10 network, the same 35.7M weights, its attention moved from the second level
              # (16x16 at 32 px; 128x128, 16,384 positions, at 256 px) to the lowest, 32x32, as Ho et al.'s
              # 256-px networks keep attention at low resolution (16x16)
              Net("U-Net ddpm-cifar10 (Ho et al., 35.7M)", "unet", "ddpm-cifar10", {"attention_resolutions": (32,)}),
              SEED_MLP),
    sweep_resolutions=(32, 64, 128, 256),
    sweep=(Net("U-Net small", "unet", "small"),
           Net("vit-small (attention)", "vit", "vit-small", {"patch_size": 4}),
           Net("ssm-small (scan)", "vit", "ssm-small", {"patch_size": 4})),
    steps=7, min_steps=3, slow_s=20.0, bf16=True, flops=True,
)  # fmt: skip
CONFIGS = {"quick": QUICK, "cpu": CPU, "full": CPU}  # full: the same measurement on whatever device is asked for
RENDER_NEEDS = ("threads", "library_precision", "networks", "costs", "verdict", "seed_mlp", "sweep", "slopes")


# ---- one measured point: build, count, time -----------------------------------------------------------------
def build(net: Net, shape: tuple[int, int, int]) -> nn.Module:
    """The network `net` for inputs of `shape` (C, H, W), untrained."""
    if net.family == "mlp":
        return MLPDenoiser(MLPConfig(data_dim=math.prod(shape), **net.options))
    builder = unet_from_preset if net.family == "unet" else vit_from_preset
    return builder(net.preset, shape[0], shape[1], **net.options)


def tokens(model: nn.Module, size: int) -> int | None:
    """Tokens a ViT mixes at H = W = size: (size / patch)^2; None for convolutional and MLP networks."""
    patch = getattr(getattr(model, "config", None), "patch_size", None)
    return (size // patch) ** 2 if patch else None


@torch.no_grad()
def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward at x (FlopCounterMode: matmuls, convolutions, attention), from an untimed forward with
    attention in the math backend, whose matmuls FlopCounterMode counts (the fused CPU kernel it does not)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode  # imports torch._dynamo on first use: seconds

    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(x, torch.zeros(x.shape[0], dtype=torch.long, device=x.device))
    return counter.get_total_flops()


def precision_context(device: torch.device, precision: str):
    """'library': the precision the samplers use on this device (fastpath.sampling_precision); 'bf16': bf16."""
    if precision == "library":
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=sampling_precision(device) == "bf16")
    return torch.autocast(device.type, dtype=torch.bfloat16)


def clock(device: torch.device, fn) -> float:
    """Seconds of fn(), with the device synchronised around the clock."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


@torch.no_grad()
def time_steps(model: nn.Module, x: torch.Tensor, precision: str, c: Config) -> dict:
    """One warm-up forward, then c.steps timed ones (c.min_steps if the warm-up took over c.slow_s): seconds each."""
    device = x.device
    ts = torch.linspace(999, 0, c.steps + 1).long().to(device)  # a DDPM trajectory's timesteps; cost ignores t
    with precision_context(device, precision):
        first = clock(device, lambda: model(x, ts[:1]))
        n = c.steps if first <= c.slow_s else c.min_steps
        seconds = [clock(device, lambda i=i: model(x, ts[i + 1 : i + 2])) for i in range(n)]
    return {"first_call_s": first, "step_s": seconds, **spread(seconds)}


def spread(seconds: list[float]) -> dict:
    """Median, fastest and slowest of the timed steps."""
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds)}


def measure_point(ctx: Context, net: Net, size: int, c: Config, library_dtype: str) -> dict:
    """Parameters, tokens, FLOPs and per-step seconds of `net` at H = W = size, batch 1."""
    shape = (c.channels, size, size)
    torch.manual_seed(ctx.seed)
    model = build(net, shape).to(ctx.device).eval()
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(ctx.seed)).to(ctx.device)
    library = time_steps(model, x, "library", c)
    bf16 = time_steps(model, x, "bf16", c) if c.bf16 and library_dtype == "fp32" else None
    row = {"model": net.label, "family": net.family, "preset": net.preset, "options": net.options,
           "image_size": size, "pixels": size * size, "tokens": tokens(model, size),
           "params": count_parameters(model), "gflops": count_flops(model, x) / 1e9 if c.flops else None,
           "library": library, "bf16": bf16}  # fmt: skip
    print(f"sampling-cost: {net.label} at {size}x{size}: {1000 * row['library']['median_s']:.1f} ms/step", flush=True)
    return row


# ---- arithmetic on the measured points ---------------------------------------------------------------------
def per_image_seconds(step_seconds: float, steps: int) -> float:
    """Eq. (1): DDPM evaluates the network once per step (Ho et al. 2020, Algorithm 2)."""
    return steps * step_seconds


def costs(rows: list[dict], sampling_steps: tuple[int, ...]) -> list[dict]:
    """Per-image seconds of every network and precision at every step count, from the median step."""
    return [
        {"model": r["model"], "precision": precision, "steps": steps,
         "seconds": per_image_seconds(r[precision]["median_s"], steps)}
        for r in rows for precision in ("library", "bf16") if r[precision] for steps in sampling_steps
    ]  # fmt: skip


REGIMES = ((1.0, "under a second"), (60.0, "seconds"), (3600.0, "minutes"), (math.inf, "hours"))


def regime(seconds: float) -> str:
    """The seed's unit of a duration: under a second, seconds (< 1 min), minutes (< 1 h) or hours."""
    return next(name for limit, name in REGIMES if seconds < limit)


def verdict(cost_rows: list[dict], model: str) -> dict:
    """Seed 003's 'seconds to minutes per generation' against `model`'s measured per-image costs (library precision)."""
    mine = [r for r in cost_rows if r["model"] == model and r["precision"] == "library"]
    regimes = {r["steps"]: regime(r["seconds"]) for r in mine}
    holds = bool(mine) and all(name in ("seconds", "minutes") for name in regimes.values())
    parts = [f"{r['steps']} steps {fmt(r['seconds'])} s ({regimes[r['steps']]})" for r in mine]
    word = "holds" if holds else "does not hold"
    return {"holds": holds, "regimes": regimes, "text": f"{word}: {model}, " + ", ".join(parts) + " per image"}


def loglog_slopes(rows: list[dict]) -> list[dict]:
    """d log(seconds per step) / d log(pixels) between consecutive resolutions of each backbone (1: linear), and
    the same of the counted FLOPs where they were counted."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["pixels"])
        for a, b in zip(mine, mine[1:], strict=False):
            d_pixels = math.log(b["pixels"] / a["pixels"])
            slope = math.log(b["library"]["median_s"] / a["library"]["median_s"]) / d_pixels
            flops = math.log(b["gflops"] / a["gflops"]) / d_pixels if a.get("gflops") and b.get("gflops") else None
            out.append({"model": model, "from": a["image_size"], "to": b["image_size"], "slope": slope,
                        "flop_slope": flops})  # fmt: skip
    return out


def mlp_sampling_check(ctx: Context, c: Config) -> dict:
    """Seconds of real c.check_steps-step DDPM samplings (Algorithm 2) of the seed's MLP, median and range."""
    shape = (c.channels, SEED_MLP.size, SEED_MLP.size)
    torch.manual_seed(ctx.seed)
    model = build(SEED_MLP, shape).to(ctx.device).eval()
    schedule = NoiseSchedule.from_name("linear", 1000).to(ctx.device)
    x_T = torch.randn(1, *shape, generator=torch.Generator().manual_seed(ctx.seed)).to(ctx.device)
    timesteps, g = make_timesteps(schedule.T, c.check_steps), torch.Generator(device=ctx.device).manual_seed(ctx.seed)

    def sample():
        with torch.no_grad():
            ddpm_sample(sampling_model(model, ctx.device), schedule, x_T, timesteps, generator=g)

    sample()  # warm-up
    seconds = [clock(ctx.device, sample) for _ in range(c.check_repeats)]
    return {"steps": c.check_steps, "sampling_s": seconds, **spread(seconds)}


def measure(ctx: Context) -> dict:
    """Time every network at the seed's resolution and every sweep backbone at every resolution."""
    c = CONFIGS[ctx.size]
    library_dtype = sampling_precision(ctx.device)  # bf16 on CUDA and where a CPU has it natively
    networks = [measure_point(ctx, net, net.size or c.resolution, c, library_dtype) for net in c.networks]
    sweep = [measure_point(ctx, net, size, c, library_dtype) for net in c.sweep for size in c.sweep_resolutions]
    cost_rows = costs(networks, c.sampling_steps)
    jit = verdict(cost_rows, JIT)
    mlp_step = next(r for r in networks if r["model"] == SEED_MLP.label)["library"]["median_s"]
    results = {
        "threads": torch.get_num_threads(),
        "library_precision": library_dtype,
        "networks": networks,
        "costs": cost_rows,
        "verdict": jit,
        "seed_mlp": {**mlp_sampling_check(ctx, c), "steps_x_median_step_s": per_image_seconds(mlp_step, c.check_steps)},
        "sweep": sweep,
        "slopes": loglog_slopes(sweep),
    }
    return {"results": results, "config": asdict(c), "headline": f"seed 003's claim {jit['text']}"}


# ---- report ------------------------------------------------------------------------------------------------
def cost_figure(results: dict):
    """Seconds per step against pixels, log-log: measured points joined per backbone, slopes 1 and 2 for scale."""
    rows = results["results"]["sweep"]
    fig, (ax,) = figure(1, 6.5, 4.5)
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["pixels"])
        pixels = [r["pixels"] for r in mine]
        (line,) = ax.plot(pixels, [r["library"]["median_s"] for r in mine], marker="o", label=model)
        ax.vlines(pixels, [r["library"]["min_s"] for r in mine], [r["library"]["max_s"] for r in mine],
                  color=line.get_color(), linewidth=3, alpha=0.4)  # fmt: skip
    pixels = sorted({r["pixels"] for r in rows})
    anchor = math.exp(statistics.mean(math.log(r["library"]["median_s"]) for r in rows if r["pixels"] == pixels[0]))
    for slope, style in ((1, "--"), (2, ":")):
        ax.plot(pixels, [anchor * (p / pixels[0]) ** slope for p in pixels], style, color="grey",
                label=f"slope {slope} (time ~ pixels^{slope})")  # fmt: skip
    tokens = {r["pixels"]: r["tokens"] for r in rows if r["tokens"]}  # the ViTs' (one patch size for both)
    ax.set(xscale="log", yscale="log", xlabel="pixels per image (H x W)", ylabel="seconds per step (batch 1)",
           title=f"one forward pass, {results['results']['library_precision']}, {results['results']['threads']} "
           "thread(s)")  # fmt: skip
    ax.set_xticks(pixels, [f"{math.isqrt(p)}x{math.isqrt(p)}" + (f"\n{tokens[p]} tokens" if p in tokens else "")
                           for p in pixels])  # fmt: skip
    ax.minorticks_off()
    return fig


def ms(point: dict | None, key: str = "median_s") -> float | None:
    return None if point is None else 1000 * point[key]


def step_table(report: Report, rows: list[dict], first: tuple[str, ...], cells) -> None:
    """One row per measured point: `first` headers and cells, then parameters, FLOPs and per-step times."""
    report.table(
        [*first, "params", "GFLOP / forward", "timed steps", "ms / step (library)", "min-max",
         "ms / step (bf16)", "min-max", "GFLOP/s (library)"],
        [(*cells(r), r["params"], r["gflops"], len(r["library"]["step_s"]), ms(r["library"]),
          f"{fmt(ms(r['library'], 'min_s'))}-{fmt(ms(r['library'], 'max_s'))}", ms(r["bf16"]),
          f"{fmt(ms(r['bf16'], 'min_s'))}-{fmt(ms(r['bf16'], 'max_s'))}" if r["bf16"] else None,
          r["gflops"] / r["library"]["median_s"] if r["gflops"] else None) for r in rows],
    )  # fmt: skip


def render(results: dict, out: Path) -> Report:
    """The report and its plot from results.json."""
    r, c = results["results"], results["config"]
    report = Report(out, TITLE, QUESTION)
    report.heading("Verdict")
    report.text(f"Seed 003's 'seconds to minutes per generation' **{r['verdict']['text']}**, by Eq. (1) below.")
    report.heading(f"One step at {c['resolution']}x{c['resolution']}x{c['channels']}, batch 1")
    step_table(report, r["networks"], ("network", "input"),
               lambda p: (p["model"], f"{p['image_size']}x{p['image_size']}x{c['channels']}"))  # fmt: skip
    report.text(
        f"library: the precision `sample` uses on this device ({r['library_precision']}; "
        "`fastpath.sampling_precision`); bf16: the same forwards under bf16 autocast. Each time: the median of "
        f"{c['steps']} timed forwards after one warm-up forward ({c['min_steps']} where the warm-up took over "
        f"{fmt(c['slow_s'])} s), untrained weights, batch 1, {r['threads']} CPU thread(s). The seed's MLP is timed "
        "at its own 16x16x3. GFLOP: matmuls, convolutions and attention (FlopCounterMode); elementwise work "
        "(norms, activations, the scan's exponentials) is not counted. JiT-B/16's parameters include DiT's adaLN "
        "modulations, a Linear(D, 6D) per block applied to one vector per image (many parameters, little "
        "compute); ViT-B's 86M are the rest (models/vit.py)."
    )
    report.heading("Cost per image: steps x the measured step")
    report.table(
        ["network", "precision", "steps", "seconds per image", "regime"],
        [(x["model"], x["precision"], x["steps"], x["seconds"], regime(x["seconds"])) for x in r["costs"]],
    )
    m = r["seed_mlp"]
    report.text(
        "seconds per image = steps x median seconds per step (Eq. 1): DDPM evaluates the network once per step "
        "(Ho et al. 2020, Algorithm 2). These are products of a measured step, not timed samplings; they leave "
        "out the sampler's elementwise update, which for the seed's MLP, the smallest network here, is the gap "
        f"between {m['steps']} x its step, {fmt(m['steps_x_median_step_s'])} s, and a real {m['steps']}-step DDPM "
        f"sampling of it, {fmt(m['median_s'])} s (median of {len(m['sampling_s'])}; seed 003: ~0.8 s for 100 steps "
        "on an M2 CPU)."
    )
    report.heading("One step against resolution")
    report.image(plot(results, out), "seconds per step against pixels for three backbones")
    step_table(report, r["sweep"], ("backbone", "H = W", "tokens"),
               lambda p: (p["model"], p["image_size"], p["tokens"]))  # fmt: skip
    report.text(
        "The ViTs keep one patch size at every resolution (their `patch_size` option in the config below), so "
        "tokens grow with pixels; the U-Net has no tokens (convolutions over every pixel). Log-log slope of "
        "seconds per step against pixels between neighbouring resolutions (1: cost grows like pixels, 2: like "
        "pixels squared, attention's limit), beside the same slope of the counted FLOPs:"
    )
    report.table(
        ["backbone", "from", "to", "slope of time", "slope of FLOPs"],
        [(s["model"], s["from"], s["to"], s["slope"], s["flop_slope"]) for s in r["slopes"]],
    )
    report.text(
        "An earlier version of this experiment fitted sampling time against params x pixels x steps on networks "
        "up to 35.7M parameters at 32x32 and read the fit at 86M and 256x256; the measurement above replaces "
        "that extrapolation."
    )
    return report


def plot(results: dict, out: Path) -> Path:
    return save_figure(cost_figure(results), out / "images" / "sampling_cost.png")
