"""The sampling recipe: which sampler, how many steps, which grid, and its options, decided once.

`SamplingRecipe()` is the library's default; `cleardiffusion sample`, the training run's grids and
`--eval-every`, `generate.generate_images` and the benchmarks all start from it, so a Python user gets what
the command line gives. A field left None takes the default of the model's objective (`resolve`):

| objective | sampler        | steps | spacing  | solver type | why                                                   |
|-----------|----------------|-------|----------|-------------|-------------------------------------------------------|
| ddpm      | dpm++2m-sde    | 50    | trailing | exact       | the lowest FID at 10, 20 and 50 NFE on MNIST (1)      |
| flow      | euler          | 50    | uniform  |             | the straight path's own integrator                    |
| consistency | consistency  | 2     | jump     |             | a distilled few-step model's own sampler (few_step.md) |
| meanflow  | meanflow       | 1     | uniform  |             | one jump of the average velocity (Geng et al. 2025)   |

(1) benchmarks/results/few_steps_cpu_n1000: below DDPM over all 1000 steps from 20 NFE on.

Other samplers' default steps are in `DEFAULT_STEPS`: DDPM takes every step of its schedule (1000 on the
flow path), Heun 18 on the DDPM path and 25 on the flow path (Karras et al.'s budget of 35 and 50 NFE).
Every table is keyed by objective: the recipe never asks which objective it serves beyond a lookup. A
few-step model (consistency, meanflow) takes only its own sampler, and a diffusion or flow model never takes
a few-step sampler (`SAMPLERS_OF`): asked for another, `resolve` refuses in one line.
This module imports nothing heavy, so the command line's --help reads its tables without loading torch.
"""

import dataclasses
import math
from dataclasses import dataclass

from .errors import UsageError

MULTISTEP: tuple[str, ...] = ("ddpm", "ddim", "dpm++2m", "dpm++2m-sde", "heun", "euler")  # any diffusion/flow model
FEW_STEP: tuple[str, ...] = ("consistency", "meanflow")  # each only for the models trained for it
SAMPLER_NAMES: tuple[str, ...] = MULTISTEP + FEW_STEP  # samplers.SAMPLERS
SAMPLERS_OF: dict[str, tuple[str, ...]] = {
    "ddpm": MULTISTEP, "flow": MULTISTEP, "consistency": ("consistency",), "meanflow": ("meanflow",)
}  # fmt: skip
SOLVER_TYPED: tuple[str, ...] = ("dpm++2m", "dpm++2m-sde")  # the samplers that take a solver type
SOLVER_TYPES: tuple[str, ...] = ("midpoint", "exact")
VARIANCES: tuple[str, ...] = ("beta", "posterior")
SPACINGS: tuple[str, ...] = ("uniform", "trailing", "quadratic", "logsnr", "karras")  # the DDPM path's grids
FLOW_SPACINGS: tuple[str, ...] = ("uniform", "quadratic")  # the flow path's grids
JUMP_SPACINGS: tuple[str, ...] = ("jump",)  # a consistency model's own grid on the DDPM path (denoiser.jump_grid)
DEFAULT_SAMPLER = {"ddpm": "dpm++2m-sde", "flow": "euler", "consistency": "consistency", "meanflow": "meanflow"}
# steps when none are given, per objective and sampler (capped at the path's max_steps); DDPM: every step of
# the schedule (None), 1000 on the flow path
DEFAULT_STEPS: dict[str, dict[str, int | None]] = {
    "ddpm": {"ddpm": None, "ddim": 50, "dpm++2m": 20, "dpm++2m-sde": 50, "heun": 18, "euler": 50},
    "flow": {"ddpm": 1000, "ddim": 50, "dpm++2m": 20, "dpm++2m-sde": 50, "heun": 25, "euler": 50},
    "consistency": {"consistency": 2},
    "meanflow": {"meanflow": 1},
}
# spacing when none is given (else uniform): trailing for the dpm++ solvers on the DDPM path (measured best at
# 10, 20 and 50 NFE), Karras et al.'s own for heun (Eq. 5); the flow path takes uniform or quadratic only
DEFAULT_SPACING: dict[str, dict[str, str]] = {
    "ddpm": {"dpm++2m": "trailing", "dpm++2m-sde": "trailing", "heun": "karras"},
    "flow": {},
    "consistency": {"consistency": "jump"},
    "meanflow": {},
}
DEFAULT_SOLVER_TYPE = "exact"  # better at 10 NFE, equal at 50 (benchmarks/results/few_steps_cpu_n1000)


@dataclass(frozen=True)
class SamplingRecipe:
    """How to sample a model; None fields take the defaults of its objective (module docstring)."""

    sampler: str | None = None  # ddpm | ddim | dpm++2m | dpm++2m-sde | heun | euler | consistency | meanflow
    steps: int | None = None  # grid points; see DEFAULT_STEPS
    spacing: str | None = None  # which grid: uniform | trailing | quadratic | logsnr | karras (flow: uniform|quadratic)
    solver_type: str | None = None  # dpm++ solvers: exact | midpoint
    eta: float = 0.0  # ddim: noise level in [0, 1]
    variance: str = "beta"  # ddpm: beta | posterior
    clip_x0: bool = True  # clamp the predicted x_0 to [-1, 1] at each step
    guidance: float = 1.0  # classifier-free guidance scale s (1: the conditional model; needs labels)
    # the starting noise x_T = noise_scale * eps; 1: the model's own distribution. Below 1, the truncation trick of
    # one-step generators (Brock et al. 2019, BigGAN, Sec. 3.1): the samples drawn from the noise's tails, where a
    # distilled one-step map draws most of its malformed digits, move towards the middle, for less variety
    noise_scale: float = 1.0

    def replace(self, **changes) -> "SamplingRecipe":
        return dataclasses.replace(self, **changes)

    def resolve(self, path) -> "SamplingRecipe":
        """Every field set, for a model on `path` (a NoiseSchedule or FlowPath); a UsageError names a setting
        the sampler or path cannot take."""
        objective = path.objective
        sampler = self.sampler or DEFAULT_SAMPLER[objective]
        if sampler not in SAMPLER_NAMES:
            raise UsageError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLER_NAMES)}")
        if sampler not in SAMPLERS_OF[objective]:
            kind = "a few-step" if objective in FEW_STEP else "a diffusion or flow"
            raise UsageError(f"the {sampler} sampler does not fit this {objective} model ({kind} model): use "
                             f"{' or '.join(SAMPLERS_OF[objective])}, or drop --sampler for its default")  # fmt: skip
        if self.eta != 0 and sampler != "ddim":
            raise UsageError(f"eta (--eta) is DDIM's noise level: drop it, or use the ddim sampler (got {sampler})")
        if not 0 <= self.eta <= 1:
            raise UsageError(f"eta (--eta) must lie in [0, 1], got {self.eta}")
        if self.variance != "beta" and sampler != "ddpm":
            raise UsageError(f"variance (--variance) is for the ddpm sampler: drop it (got {sampler})")
        if self.variance not in VARIANCES:
            raise UsageError(f"variance must be one of {', '.join(VARIANCES)}, got {self.variance!r}")
        if self.solver_type is not None and sampler not in SOLVER_TYPED:
            raise UsageError(f"solver type (--solver-type) is for {' and '.join(SOLVER_TYPED)}: drop it, or pick "
                             f"one of them (got {sampler})")  # fmt: skip
        if self.solver_type not in (None, *SOLVER_TYPES):
            raise UsageError(f"solver type must be one of {', '.join(SOLVER_TYPES)}, got {self.solver_type!r}")
        if not (math.isfinite(self.noise_scale) and self.noise_scale > 0):
            raise UsageError(f"noise scale (--noise-scale) must be a positive number, got {self.noise_scale}")
        if not math.isfinite(self.guidance):
            raise UsageError(f"guidance must be a finite number, got {self.guidance}")
        steps = self.steps
        if steps is None:
            steps = min(DEFAULT_STEPS[objective][sampler] or path.max_steps, path.max_steps)
        if not 1 <= steps <= path.max_steps:
            raise UsageError(f"steps must be between 1 and {path.max_steps} ({path.max_steps_meaning}), got {steps}")
        spacing = self.spacing or DEFAULT_SPACING[objective].get(sampler, "uniform")
        if spacing not in path.spacings:
            raise UsageError(f"spacing {spacing!r} does not fit a {objective} model; choose one of "
                             f"{', '.join(path.spacings)}")  # fmt: skip
        solver_type = (self.solver_type or DEFAULT_SOLVER_TYPE) if sampler in SOLVER_TYPED else None
        return self.replace(sampler=sampler, steps=steps, spacing=spacing, solver_type=solver_type)

    def options(self) -> dict:
        """The keyword arguments of a resolved recipe's sampler function beyond the shared signature."""
        return {"ddim": {"eta": self.eta}, "ddpm": {"variance": self.variance}}.get(
            self.sampler, {"solver_type": self.solver_type} if self.sampler in SOLVER_TYPED else {}
        )
