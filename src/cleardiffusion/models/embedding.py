"""Sinusoidal timestep embedding (Vaswani et al. 2017, as used by Ho et al. 2020), e(t, y), and the input checks."""

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Embed integer (or real) timesteps `t` of shape (B,) as (B, dim): [cos(t * w_i), sin(t * w_i)].

    Frequencies w_i = max_period^(-i / (dim/2)) span from 1 to 1/max_period, so nearby timesteps get
    nearby embeddings and every timestep a distinct one.
    """
    if dim % 2 != 0:
        raise ValueError(f"embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)  # (B, dim)


# ---- e = MLP(sinusoid(t)) + E[y] (Ho et al. 2020 Appendix B; classes as in Ho & Salimans 2022)
class TimestepEmbedding(nn.Module):
    """e(t, y): sinusoidal features of width base_channels, an optional MLP, plus a learned class vector.

    A network of two times (`cfg.time_inputs == 2`, MeanFlow: t of shape (B, 2) holding the paper's (t, t - r),
    Geng et al. 2025, Sec. 4.3) embeds the second with the same sinusoid and its own projection, `gap_mlp`, and
    adds it: e = MLP(sin(t)) + MLP_gap(sin(t - r)) + E[y]. `gap_mlp`'s last layer starts at zero, so a new
    two-time network starts as the one-time network; a one-time network has no `gap_mlp` (its weights and
    outputs are those of the network before two times existed).
    """

    def __init__(self, cfg, act: type[nn.Module]):
        super().__init__()
        self.sin_dim, self.time_inputs = cfg.base_channels, cfg.time_inputs
        self.dim = 4 * cfg.base_channels if cfg.time_mlp else cfg.base_channels
        self.mlp = (nn.Sequential(nn.Linear(self.sin_dim, self.dim), act(), nn.Linear(self.dim, self.dim))
                    if cfg.time_mlp else nn.Identity())  # fmt: skip
        self.label_emb = nn.Embedding(cfg.num_classes + 1, self.dim) if cfg.num_classes > 0 else None
        if self.time_inputs == 2:  # a raw-sinusoid network (time_mlp False) gets one linear map for the gap
            last = nn.Linear(self.dim, self.dim) if cfg.time_mlp else nn.Linear(self.sin_dim, self.dim)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            first = [nn.Linear(self.sin_dim, self.dim), act()] if cfg.time_mlp else []
            self.gap_mlp = nn.Sequential(*first, last)

    def forward(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.time_inputs == 1:
            e = self.mlp(sinusoidal_embedding(t, self.sin_dim))  # (B, dim)
        else:  # t: (B, 2), the network times of t and t - r
            e = self.mlp(sinusoidal_embedding(t[:, 0], self.sin_dim))
            e = e + self.gap_mlp(sinusoidal_embedding(t[:, 1], self.sin_dim))  # (B, dim)
        if self.label_emb is not None:
            e = e + self.label_emb(y)  # (B, dim)
        return e


# ---- The inputs every image denoiser checks: x (B, C, H, W), t (B,) or (B, 2), y (B,) or None ------------------
def check_inputs(name: str, cfg, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None,
                 validate_labels: bool = True) -> torch.Tensor | None:  # fmt: skip
    """Shape and label checks of `name`'s inputs; returns y with the null label filled in for a conditional model.

    `cfg` has in_channels, image_size, time_inputs and num_classes (null label = num_classes). The label range
    check reads y on the host (a sync on a GPU), so hot loops whose labels are already checked switch it off.
    """
    B = x.shape[0]
    expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"{name} expects x of shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}; "
            f"build it with in_channels={x.shape[1] if x.ndim == 4 else '?'} and the matching image_size"
        )
    shape = (B,) if cfg.time_inputs == 1 else (B, cfg.time_inputs)
    if t.shape != shape:
        what = "one timestep per image" if cfg.time_inputs == 1 else "two times per image: t and t - r"
        raise ValueError(f"t must have shape {shape} ({what}), got {tuple(t.shape)}")
    if cfg.num_classes == 0:
        if y is not None:
            raise ValueError("this model is unconditional; call it without y or build it with num_classes > 0")
        return None
    null_label = cfg.num_classes
    if y is None:  # unconditional prediction of a conditional model: the learned null class
        return torch.full((B,), null_label, device=x.device, dtype=torch.long)
    if y.shape != (B,) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"y must be an integer tensor of shape ({B},), got {y.dtype} {tuple(y.shape)}")
    if validate_labels and not torch.compiler.is_compiling() and bool(((y < 0) | (y > null_label)).any()):
        raise ValueError(
            f"class labels must lie in 0..{cfg.num_classes - 1} (or {null_label} = null class), "
            f"got values in [{int(y.min())}, {int(y.max())}]"
        )
    return y
