"""Sinusoidal timestep embedding (Vaswani et al. 2017, as used by Ho et al. 2020) and the U-Net's e(t, y)."""

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
