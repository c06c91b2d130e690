"""Seed 003's denoiser: a 3-layer MLP, 768 -> 1024 -> 1024 -> 768, with an additive timestep embedding."""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .embedding import sinusoidal_embedding


@dataclass
class MLPConfig:
    data_dim: int = 768  # flattened data size: 16 x 16 x 3 for the red-square toy
    hidden_dim: int = 1024  # width of the two hidden layers
    time_dim: int = 128  # sinusoidal timestep embedding size, projected by Linear(time_dim, data_dim)
    activation: Literal["silu", "relu"] = "silu"  # the seed names none; SiLU as in Ho et al.'s network
    num_classes: int = 0  # 0: unconditional; else an embedding of num_classes + 1 rows (last = null class)


class MLPDenoiser(nn.Module):
    """eps_theta(x_t, t) for flat data: Linear -> act -> Linear -> act -> Linear (~2.7 M parameters).

    The seed adds Linear(128, 768)(embedding) "to the first-layer activation". The only 768-wide activation
    in a 768 -> 1024 -> 1024 -> 768 network is the first layer's input, x_t itself, so that is where we add
    it: h = W_1 (x_t + W_e emb(t)) + b_1. Adding to the 1024-wide hidden layer would need Linear(128, 1024),
    which contradicts the seed's table.
    """

    def __init__(self, config: MLPConfig | None = None):
        super().__init__()
        self.config = config = config or MLPConfig()
        if config.activation not in ("silu", "relu"):
            raise ValueError(f"unknown activation {config.activation!r}; choose 'silu' or 'relu'")
        act = nn.SiLU if config.activation == "silu" else nn.ReLU
        self.time_proj = nn.Linear(config.time_dim, config.data_dim)
        self.label_emb = nn.Embedding(config.num_classes + 1, config.data_dim) if config.num_classes > 0 else None
        self.net = nn.Sequential(
            nn.Linear(config.data_dim, config.hidden_dim),
            act(),
            nn.Linear(config.hidden_dim, config.hidden_dim),
            act(),
            nn.Linear(config.hidden_dim, config.data_dim),
        )

    @property
    def null_label(self) -> int:
        """Index of the learned 'no label' class used by classifier-free guidance."""
        return self.config.num_classes

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        shape = x_t.shape
        x = x_t.reshape(shape[0], -1)  # (B, D)
        if x.shape[1] != self.config.data_dim:
            raise ValueError(
                f"MLP expects {self.config.data_dim} values per sample, got {tuple(shape[1:])}; "
                f"build it with MLPConfig(data_dim={x.shape[1]})"
            )
        cond = self.time_proj(sinusoidal_embedding(t, self.config.time_dim))  # (B, D)
        if y is not None and self.label_emb is None:
            raise ValueError("this model is unconditional: sample it without class labels")
        if self.label_emb is not None:
            if y is None:
                y = torch.full((shape[0],), self.null_label, device=x.device, dtype=torch.long)
            if y.min() < 0 or y.max() > self.null_label:
                raise ValueError(f"class labels must lie in 0..{self.config.num_classes - 1}")
            cond = cond + self.label_emb(y)
        return self.net(x + cond).reshape(shape)  # (B, ...) like x_t
