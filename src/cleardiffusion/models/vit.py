"""A transformer denoiser on pixel patches: DiT's adaLN-Zero blocks (Peebles & Xie 2023), U-ViT's long skips
(Bao et al. 2023) as an option, JiT's plain patches on pixels (Li & He 2025), and a linear-time token mixer.

    tokens = Conv_{p x p, stride p}(x_t) + E_pos          (B, L, D), L = (H / p)^2; E_pos: fixed 2-D sin-cos
    c      = e(t) [+ E[y]]                                 (B, D): the U-Net's embedding (embedding.py), width D
    block:   (beta_1, gamma_1, alpha_1, beta_2, gamma_2, alpha_2) = Linear(SiLU(c))     <- zero at init
             h = h + alpha_1 * Mixer(LN(h) * (1 + gamma_1) + beta_1)
             h = h + alpha_2 * MLP(LN(h) * (1 + gamma_2) + beta_2)
    out    = Linear(LN(h) * (1 + gamma) + beta) -> unpatchify -> (B, C, H, W)          <- zero at init

adaLN-Zero (DiT, Sec. 3.2): every alpha (gate) and the output layer start at zero, so each block starts as the
identity and the fresh network predicts exactly 0. The mixer is multi-head self-attention (quadratic in L) or
`scan.BidirectionalScan` (Mamba's selective scan, linear in L). With `long_skips`, the outputs of the first
(depth - 1) // 2 blocks are concatenated onto the inputs of their mirror blocks at the end and mapped back by
Linear(2D -> D) (U-ViT, Sec. 3.1); the blocks in between are the middle. Any prediction type works: the
objective reads the output as eps, v or x0 (JiT predicts x0).
"""

import math
import typing
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import forward_ad

from .embedding import TimestepEmbedding, check_inputs
from .presets import preset_config
from .scan import BidirectionalScan, SelectiveScan

Mixer = Literal["attention", "scan"]
MIXERS: tuple[str, ...] = typing.get_args(Mixer)
POSITIVE_FIELDS = ("in_channels", "image_size", "patch_size", "hidden", "depth", "heads", "state_dim", "scan_head_dim",
                   "scan_chunk")  # fmt: skip


@dataclass(frozen=True)
class ViTConfig:
    in_channels: int = 3  # C of x_t; the output has the same C
    image_size: int = 32  # H = W of the inputs; must be divisible by patch_size
    patch_size: int = 4  # p: each token is a p x p patch of pixels (JiT: 16 at 256x256)
    hidden: int = 128  # D: token width, also the width of e(t); a multiple of 8 (the sin-cos embeddings)
    depth: int = 8  # transformer blocks
    heads: int = 4  # attention heads; hidden must be divisible by it
    mlp_ratio: float = 4.0  # the MLP's hidden width is mlp_ratio * D
    mixer: Mixer = "attention"  # attention (quadratic in tokens) or scan (selective state space, linear)
    long_skips: bool = False  # U-ViT's long skips between mirrored blocks (Bao et al. 2023)
    state_dim: int = 16  # scan: N, the state size per channel (Mamba: 16)
    scan_head_dim: int = 16  # scan: P, channels that share one decay rate A and step Delta (Mamba-2's heads)
    scan_chunk: int = 16  # scan: T, tokens per chunk; memory B * L * T * D / P, a loop of L / T steps
    dropout: float = 0.0  # dropout on the MLP's hidden layer
    num_classes: int = 0  # 0: unconditional; else nn.Embedding(num_classes + 1, D), last row = null class
    time_inputs: int = 1  # 1: t (B,); 2: t (B, 2), MeanFlow's (t, t - r), each embedded and added (embedding.py)

    def __post_init__(self) -> None:
        if self.mixer not in MIXERS:
            raise ValueError(f"mixer={self.mixer!r} is not one of {', '.join(MIXERS)}")
        for name in POSITIVE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        s, p = self.image_size, self.patch_size
        if s % p:
            fits = ", ".join(str(q) for q in range(1, s + 1) if s % q == 0)
            raise ValueError(f"image_size={s} is not divisible by patch_size={p}; use a patch size of {fits}, "
                             f"or pad the images to {(s // p + 1) * p}x{(s // p + 1) * p}")  # fmt: skip
        if self.hidden % 8:
            raise ValueError(f"hidden={self.hidden} must be a multiple of 8 (the sin-cos position and time "
                             f"embeddings split it in quarters of even width); use {self.hidden // 8 * 8 or 8} "
                             f"or {self.hidden // 8 * 8 + 8}")  # fmt: skip
        if self.hidden % self.heads:
            fits = ", ".join(str(h) for h in range(1, self.hidden + 1) if self.hidden % h == 0 and h <= 64)
            raise ValueError(f"hidden={self.hidden} is not divisible by heads={self.heads}; use heads in {fits}")
        if self.hidden % self.scan_head_dim:
            raise ValueError(f"hidden={self.hidden} is not divisible by scan_head_dim={self.scan_head_dim}; use a "
                             f"divisor of {self.hidden} (1: one decay rate per channel)")  # fmt: skip
        if not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.time_inputs not in (1, 2):
            raise ValueError(f"time_inputs must be 1 (t) or 2 (MeanFlow's t and t - r), got {self.time_inputs}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0 = unconditional), got {self.num_classes}")
        if self.long_skips and self.depth < 3:
            raise ValueError(f"long_skips pairs block i with block depth-1-i around a middle; depth={self.depth} "
                             "has no pair: use depth >= 3 or long_skips=False")  # fmt: skip

    @property
    def tokens(self) -> int:
        """L = (H / p)^2."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def null_label(self) -> int:
        """Index of the learned 'no label' class used by classifier-free guidance."""
        return self.num_classes


def sincos_position_embedding(dim: int, grid: int) -> torch.Tensor:
    """(grid * grid, dim) fixed 2-D embedding (MAE, DiT): half the channels sin/cos of the row, half of the column."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))  # (dim/4,)
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                                indexing="ij")  # fmt: skip
    parts = [f(pos.reshape(-1, 1) * omega) for pos in (rows, cols) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1).float()  # (L, dim)


def modulate(h: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: h * (1 + gamma) + beta, per image (DiT, Sec. 3.2)."""
    return h * (1 + scale[:, None]) + shift[:, None]


# ---- The token mixers ----------------------------------------------------------------------------------------
class Attention(nn.Module):
    """Multi-head self-attention, softmax(q k^T / sqrt(d)) v over all L tokens: O(L^2) per head."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).reshape(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # (B, h, L, d)
        if forward_ad.unpack_dual(q).tangent is None:
            h = F.scaled_dot_product_attention(q, k, v)
        else:  # MeanFlow's jvp: the fused CPU kernel has no forward-mode derivative, the plain formula has
            h = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D // self.heads), dim=-1) @ v
        return self.proj(h.transpose(1, 2).reshape(B, L, D))


class Block(nn.Module):
    """DiT's block with adaLN-Zero: a gated, modulated mixer and MLP, each on a parameter-free LayerNorm."""

    def __init__(self, cfg: ViTConfig, long_skip: bool):
        super().__init__()
        D = cfg.hidden
        self.skip = nn.Linear(2 * D, D) if long_skip else None  # U-ViT: Linear(cat(h, h_skip))
        self.norm1 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        if cfg.mixer == "attention":
            self.mixer = Attention(D, cfg.heads)
        else:
            self.mixer = BidirectionalScan(D, cfg.state_dim, cfg.scan_head_dim, cfg.scan_chunk)
        self.norm2 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        width = int(D * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(D, width), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(width, D))  # fmt: skip
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))  # zero-initialised by ViT

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=1)  # (B, D) each
        h = h + gate1[:, None] * self.mixer(modulate(self.norm1(h), shift1, scale1))
        return h + gate2[:, None] * self.mlp(modulate(self.norm2(h), shift2, scale2))


class FinalLayer(nn.Module):
    """adaLN (shift, scale) -> Linear(D -> p * p * C): one patch of the prediction per token."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        D = cfg.hidden
        self.norm = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * D))
        self.linear = nn.Linear(D, cfg.patch_size**2 * cfg.in_channels)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(h), shift, scale))  # (B, L, p * p * C)


# ---- The network ---------------------------------------------------------------------------------------------
class ViT(nn.Module):
    """f_theta(x_t, t, y) -> (B, C, H, W); see the module docstring and PRESETS."""

    def __init__(self, config: ViTConfig | None = None):
        super().__init__()
        self.config = cfg = config or ViTConfig()
        D, p, grid = cfg.hidden, cfg.patch_size, cfg.image_size // cfg.patch_size
        # e(t) [+ E[y]]: sinusoid of width D / 4 -> Linear -> SiLU -> Linear(D), as the U-Net's with time_mlp
        shape = SimpleNamespace(base_channels=D // 4, time_mlp=True, num_classes=cfg.num_classes,
                                time_inputs=cfg.time_inputs)  # fmt: skip
        self.embed = TimestepEmbedding(shape, nn.SiLU)
        self.validate_labels = True  # as the U-Net's: hot loops with checked labels switch it off
        self.patchify = nn.Conv2d(cfg.in_channels, D, p, stride=p)
        self.register_buffer("pos_embed", sincos_position_embedding(D, grid)[None], persistent=False)  # (1, L, D)
        self.pairs = (cfg.depth - 1) // 2 if cfg.long_skips else 0  # blocks i and depth-1-i, i < pairs
        self.blocks = nn.ModuleList(Block(cfg, long_skip=i >= cfg.depth - self.pairs) for i in range(cfg.depth))
        self.final = FinalLayer(cfg)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """DiT's initialisation: Xavier linears, N(0, 0.02) embeddings, zero adaLN modulations and output."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patchify.weight.view(self.config.hidden, -1))
        nn.init.zeros_(self.patchify.bias)
        for m in self.modules():
            if isinstance(m, SelectiveScan):
                m.reset_delta()  # Mamba's Delta initialisation, not Xavier
        for linear in (self.embed.mlp[0], self.embed.mlp[2]):
            nn.init.normal_(linear.weight, std=0.02)
        if self.config.time_inputs == 2:  # the gap MLP's last layer stays zero: starts as the one-time network
            nn.init.normal_(self.embed.gap_mlp[0].weight, std=0.02)
            nn.init.zeros_(self.embed.gap_mlp[-1].weight)
        if self.embed.label_emb is not None:
            nn.init.normal_(self.embed.label_emb.weight, std=0.02)
        for layer in [block.modulation[1] for block in self.blocks] + [self.final.modulation[1], self.final.linear]:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def null_label(self) -> int:
        """Index of the learned 'no label' class used by classifier-free guidance."""
        return self.config.null_label

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        y = check_inputs("ViT", cfg, x, t, y, self.validate_labels)
        c = self.embed(t, y)  # (B, D)
        h = self.patchify(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, L, D)
        skips = []
        for i, block in enumerate(self.blocks):
            if block.skip is not None:  # U-ViT: the mirror block's output joins the input
                h = block.skip(torch.cat([h, skips.pop()], dim=-1))
            h = block(h, c)
            if i < self.pairs:
                skips.append(h)
        return self.unpatchify(self.final(h, c))  # (B, C, H, W)

    def unpatchify(self, h: torch.Tensor) -> torch.Tensor:
        """(B, L, p * p * C) -> (B, C, H, W): token (i, j) becomes the patch at rows i*p.., columns j*p.."""
        cfg, B = self.config, h.shape[0]
        p, grid = cfg.patch_size, cfg.image_size // cfg.patch_size
        h = h.reshape(B, grid, grid, p, p, cfg.in_channels)
        return torch.einsum("bijpqc->bcipjq", h).reshape(B, cfg.in_channels, cfg.image_size, cfg.image_size)


# ---- Presets -------------------------------------------------------------------------------------------------
PRESETS: dict[str, ViTConfig] = {
    # JiT-B/16 (Li & He 2025): ViT-B (D 768, 12 blocks, 12 heads, MLP 4x) on 16x16 pixel patches of 256x256x3.
    # 130,641,408 parameters unconditional (JiT reports 131M); 86,198,784 of them outside the adaLN modulations
    # and e(t) (ViT-B's 86M): each block's Linear(D, 6D) adds 3.5M. JiT's bottleneck patch embedding, RoPE,
    # qk-norm, SwiGLU and in-context class tokens are left out.
    "jit-b16": ViTConfig(in_channels=3, image_size=256, patch_size=16, hidden=768, depth=12, heads=12),
    # The CPU preset for 28x28 / 32x32: 49 / 64 tokens of width 128, 8 blocks; 2,432,656 parameters at 1x28x28.
    # In 3-minute MNIST runs, patch 2 (width 64) took over twice the time per step, and long skips did not lower
    # the loss (docs/backbones.md, benchmarks/results/vit_small_choice_cpu/).
    "vit-small": ViTConfig(in_channels=1, image_size=28, patch_size=4, hidden=128, depth=8, heads=4),
}
PRESETS["ssm-small"] = replace(PRESETS["vit-small"], mixer="scan")  # the same network, tokens mixed by the scan


def vit_from_preset(name: str, in_channels: int, image_size: int, num_classes: int = 0, **overrides) -> ViT:
    """Build a preset ViT for the given data; overrides replace any other ViTConfig field."""
    config = preset_config(PRESETS, name, "ViT", in_channels=in_channels, image_size=image_size,
                           num_classes=num_classes, **overrides)  # fmt: skip
    return ViT(config)


__all__ = ["PRESETS", "ViT", "ViTConfig", "vit_from_preset"]
