"""`cleardiffusion` (or a benchmark script) with the one-step map's starting noise drawn from a mixture of K Gaussians
instead of one: x_T = S eps + m_c, c uniform over K, each m_c a fixed low-frequency pattern (a 7x7 Gaussian draw
upsampled to the image, norm A).

A screening aid for docs/few_step.md ("A deeper student"): the one-step students' unreadable digits are mostly
blends of two digits. A continuous map from one Gaussian onto separate digits must pass through blends somewhere
in its noise; with a mixture of well-separated Gaussians (DeLiGAN, Gurumurthy et al. 2017; Ben-Yosef & Weinshall
2018) the map can put those transitions in the gaps between the components, where no noise is drawn. `dmd` draws
its students' samples from the mixture (DistributionMatchingLoss.sample); the consistency sampler adds m_c to x_T,
c drawn from each sample's own generator, so scoring is reproducible. The trajectory stage is unchanged. Every
process of such a run, scoring included, must go through this wrapper with the same K and A:

    python benchmarks/few_step_ablation/mixture_prior.py 10 4 distill --distill-method dmd ...
    python benchmarks/few_step_ablation/mixture_prior.py 10 4 benchmarks/few_step_ablation/readability_proxy.py ...
"""

import functools
import sys

import torch
import torch.nn.functional as F

import cleardiffusion.consistency as consistency
import cleardiffusion.generate as generate

PATTERN_SEED = 1234  # the K patterns are the same in every process


@functools.cache  # the same k, shape and norm on every call: drawn once per process
def patterns(k: int, shape: tuple[int, ...], norm: float) -> torch.Tensor:
    """(k, C, H, W): k low-frequency patterns of norm `norm` (Gaussian at a quarter of the size, upsampled)."""
    c, h, w = shape
    m = torch.randn(k, c, h // 4, w // 4, generator=torch.Generator().manual_seed(PATTERN_SEED))
    m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    return norm * m / m.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)


def centres(k: int, norm: float, like: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """The pattern of each sample's component `chosen` (B,), shaped like `like`."""
    return patterns(k, tuple(like.shape[1:]), norm).to(like.device, like.dtype)[chosen]


def mixture_sample(k: int, norm: float):
    """DistributionMatchingLoss.sample with the chain's start x_T = eps + m_c."""

    def sample(self, student, like, y):
        def x0(x, j):  # the student's x_0 at the chain's point j
            time = self.schedule.network_time(self.grid[j], x)
            return consistency.full(consistency.consistency_x0(student, self.schedule, x, time, y))

        step = int(torch.randint(0, len(self.grid), ()))
        chosen = torch.randint(0, k, (like.shape[0],), device=like.device)
        self.codes = chosen  # each sample's component (mixture_info.py reads it)
        x = torch.randn_like(like) + centres(k, norm, like, chosen)
        for j in range(step):
            with torch.no_grad():
                renoised_to = self.schedule.network_time(self.grid[j + 1], x)
                x = self.schedule.q_sample(x0(x, j), renoised_to, torch.randn_like(x))
        return x0(x, step)

    return sample


def mixture_sampler(sampler, k: int, norm: float):
    """The consistency sampler from x_T + m_c, c drawn from each sample's generator."""

    def sample(model, path, x_T, timesteps=None, *, generator=None, **options):
        chosen = torch.stack([torch.randint(0, k, (), generator=g) for g in generator])
        return sampler(model, path, x_T + centres(k, norm, x_T, chosen.to(x_T.device)), timesteps,
                       generator=generator, **options)  # fmt: skip

    return sample


def install(k: int, norm: float) -> None:
    consistency.DistributionMatchingLoss.sample = mixture_sample(k, norm)
    generate.SAMPLERS["consistency"] = mixture_sampler(generate.SAMPLERS["consistency"], k, norm)


if __name__ == "__main__":
    install(int(sys.argv.pop(1)), float(sys.argv.pop(1)))
    from run_rest import run_rest  # this folder is on sys.path when the wrapper runs as a script

    run_rest()
