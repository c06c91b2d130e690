"""Numbers of `experiment sampling-cost` (seed 003's 86M ViT at 256x256, measured) for docs/results.md and
benchmarks/results/experiments_cpu/README.md, from its committed results.json; render_docs.py merges them."""

from doc_sources import f2, load_json, thousands

COST = "experiments_cpu/mnist/sampling-cost/results.json"
JIT, DDPM, SMALL, MLP = "JiT-B/16", "U-Net ddpm-cifar10", "U-Net small", "MLP seed 003"
SWEEP = {"unet": "U-Net small", "vit": "vit-small", "ssm": "ssm-small"}


def results() -> dict:
    return load_json(COST)["results"]


def network(prefix: str) -> dict:
    """The row of `networks` whose model label starts with `prefix`."""
    return next(r for r in results()["networks"] if r["model"].startswith(prefix))


def step_s(prefix: str, precision: str = "library") -> float:
    return network(prefix)[precision]["median_s"]


def per_image(prefix: str, steps: int) -> float:
    """Seconds per image at `steps` steps, in the library's precision, as the experiment computed them."""
    label = network(prefix)["model"]
    return next(c["seconds"] for c in results()["costs"] if c["model"] == label and c["precision"] == "library"
                and c["steps"] == steps)  # fmt: skip


def slope(prefix: str, to: int) -> str:
    """The log-log slope of seconds per step against pixels into resolution `to` (from the one below)."""
    return f2(next(s["slope"] for s in results()["slopes"] if s["model"].startswith(prefix) and s["to"] == to))


def regime(steps: int) -> str:
    return results()["verdict"]["regimes"][str(steps)]


COST_NUMBERS = {
    "cost.jit_params": lambda: f"{network(JIT)['params'] / 1e6:.1f}M",
    "cost.jit_gflop": lambda: f"{network(JIT)['gflops']:.0f}",
    "cost.jit_step": lambda: f2(step_s(JIT)),
    "cost.jit_step_bf16": lambda: f2(step_s(JIT, "bf16")),
    "cost.jit_100": lambda: thousands(per_image(JIT, 100)),
    "cost.jit_1000": lambda: thousands(per_image(JIT, 1000)),
    "cost.jit_1000_min": lambda: f"{per_image(JIT, 1000) / 60:.0f}",
    "cost.regime_100": lambda: regime(100),
    "cost.regime_1000": lambda: regime(1000),
    "cost.verdict": lambda: "confirmed" if results()["verdict"]["holds"] else "refuted",
    "cost.ddpm_step": lambda: f"{step_s(DDPM):.1f}",
    "cost.ddpm_step_bf16": lambda: f"{step_s(DDPM, 'bf16'):.1f}",
    "cost.ddpm_100": lambda: thousands(per_image(DDPM, 100)),
    "cost.ddpm_1000_h": lambda: f"{per_image(DDPM, 1000) / 3600:.1f}",
    "cost.small_step": lambda: f2(step_s(SMALL)),
    **{f"cost.slope_{key}": (lambda prefix=prefix: slope(prefix, 256)) for key, prefix in SWEEP.items()},
    "cost.threads": lambda: str(results()["threads"]),
    "mlp.step_ms": lambda: f"{1000 * step_s(MLP):.2f}",
    "mlp.s100": lambda: f"{results()['seed_mlp']['median_s']:.3f}",
    "mlp.s100_from_step": lambda: f"{results()['seed_mlp']['steps_x_median_step_s']:.3f}",
    "exp.cost_minutes": lambda: f"{load_json(COST)['seconds'] / 60:.0f}",
}
