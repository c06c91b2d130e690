"""eps_theta(x_t, t, y): one configurable U-Net covering the seed's plain network and Ho et al. 2020's.

Two block families share one skeleton (encoder -> middle -> decoder, a stack of skips between them):

- ``block="plain"`` (seed 000, Yu 2025, "Understanding Diffusion Models via Code Execution"): each step is
  Conv3x3 -> GroupNorm -> act, the stride-2 downsamplings and nearest+conv upsamplings are steps too (one
  after *every* level), the middle is a two-conv residual block, and the decoder mirrors the encoder step by
  step, adding (not concatenating) the matching encoder output before each step. The last decoder step is
  the bare output conv.
- ``block="resnet"`` (Ho et al. 2020, Appendix B; the PixelCNN++ backbone): conv_in, residual blocks
  GN -> act -> conv -> (+ embedding) -> GN -> act -> dropout -> conv (zero-init) plus a shortcut, a
  downsampling after every level but the last, middle = res + attention + res, concatenated skips, and a
  GN -> act -> conv (zero-init) head.

The timestep embedding e(t) = sinusoid(t) [-> Linear -> act -> Linear] (+ E[y], the class embedding) is
shared; every block that takes it owns a projection to its width. ``time_embedding="middle"`` gives a
projection only to the middle block(s) (the seed), ``"every-block"`` to every conv/residual block (Ho et al.),
with any block family. ``time_inputs=2`` (MeanFlow, meanflow.py) takes t of shape (B, 2) and adds the
embedding of the second time (t - r) to e (embedding.TimestepEmbedding). ``code_classes=K`` (a one-step
student, consistency.py) adds a discrete choice inside the one forward: a head on the encoder's output gives K
logits, and the embedding of their argmax (or of a code forced by training) is added to e for the middle and the
decoder, so that the network's map can jump from one code to the next instead of blending.
"""

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .embedding import TimestepEmbedding, check_inputs
from .presets import preset_config

_CHOICES = {
    "block": ("plain", "resnet"),
    "time_embedding": ("middle", "every-block"),
    "activation": ("relu", "silu"),
}
_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU}


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 3  # C of x_t; the output eps has the same C
    image_size: int = 32  # H = W of the inputs; must be divisible by 2 ** num_downsamplings
    base_channels: int = 128  # width of the first level; level i has base_channels * channel_mults[i]
    channel_mults: tuple[int, ...] = (1, 2, 2, 2)  # one entry per resolution level
    num_res_blocks: int = 2  # conv/residual blocks per level in the encoder (decoder: same, +1 for resnet)
    attention_resolutions: tuple[int, ...] = (16,)  # feature-map sizes whose blocks get self-attention
    middle_attention: bool = True  # self-attention between the two middle residual blocks (Ho et al.)
    dropout: float = 0.1  # dropout probability inside blocks (Ho et al.: 0.1 on CIFAR-10)
    time_embedding: Literal["middle", "every-block"] = "every-block"  # which blocks receive e(t) (+ E[y])
    time_mlp: bool = True  # sinusoid -> Linear(C, 4C) -> act -> Linear(4C, 4C) (Ho); False: raw sinusoid
    norm_groups: int = 32  # GroupNorm groups; every level width must be divisible by it
    activation: Literal["relu", "silu"] = "silu"  # nonlinearity everywhere, including the embedding path
    num_classes: int = 0  # 0: unconditional; else nn.Embedding(num_classes + 1, ...), last row = null class
    block: Literal["plain", "resnet"] = "resnet"  # block family and wiring, see the module docstring
    time_inputs: int = 1  # 1: t (B,); 2: t (B, 2), MeanFlow's (t, t - r), each embedded and added (embedding.py)
    extra_middle_blocks: int = 0  # residual blocks after the middle, each the identity at init (grows a network)
    code_classes: int = 0  # K > 0: the middle and decoder see the embedding of a code picked from K (CodeHead)

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {', '.join(choices)}")
        object.__setattr__(self, "channel_mults", tuple(self.channel_mults))
        object.__setattr__(self, "attention_resolutions", tuple(self.attention_resolutions))
        for name in ("in_channels", "image_size", "base_channels", "num_res_blocks", "norm_groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"channel_mults must be non-empty positive integers, got {self.channel_mults}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.extra_middle_blocks < 0:
            raise ValueError(f"extra_middle_blocks must be >= 0, got {self.extra_middle_blocks}")
        if self.code_classes < 0 or self.code_classes == 1:
            raise ValueError(f"code_classes must be 0 (no code) or at least 2, got {self.code_classes}")
        if self.code_classes and self.image_size // 2**self.num_downsamplings < 2:
            raise ValueError("code_classes needs an encoder output of at least 2x2 for its head (CodeHead); this "
                             f"network's is {self.image_size // 2**self.num_downsamplings}x that")  # fmt: skip
        if self.time_inputs not in (1, 2):
            raise ValueError(f"time_inputs must be 1 (t) or 2 (MeanFlow's t and t - r), got {self.time_inputs}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0 = unconditional), got {self.num_classes}")
        widths = [self.base_channels * m for m in self.channel_mults]
        if any(w % self.norm_groups for w in widths):
            raise ValueError(
                f"level widths {widths} must be divisible by norm_groups={self.norm_groups}; "
                f"pick base_channels as a multiple of {self.norm_groups} or lower norm_groups"
            )
        n, factor, s = self.num_downsamplings, 2**self.num_downsamplings, self.image_size
        if s % factor:
            lower, upper = s // factor * factor, (s // factor + 1) * factor
            nearest = f"{lower} or {upper}" if lower else f"{upper}"
            raise ValueError(
                f"image_size={s} is not divisible by 2**{n}={factor} ({n} downsamplings for "
                f"channel_mults={self.channel_mults}, block={self.block!r}); use image size {nearest}, "
                f"e.g. zero-pad the images by {upper - s} pixels per axis to {upper}x{upper}"
            )
        sizes = [s // 2**i for i in range(len(self.channel_mults))]
        bad = [r for r in self.attention_resolutions if r not in sizes]
        if bad:
            raise ValueError(f"attention_resolutions {bad} are not feature-map sizes of this network: {sizes}")

    @property
    def num_downsamplings(self) -> int:
        """Stride-2 steps: after every level (plain, as the seed) or every level but the last (resnet)."""
        return len(self.channel_mults) if self.block == "plain" else len(self.channel_mults) - 1

    @property
    def null_label(self) -> int:
        """Index of the learned 'no label' class used by classifier-free guidance."""
        return self.num_classes


# ---- Blocks: every module below has forward(x, e), so a step is a list of them ----------------------------
class ConvBlock(nn.Module):
    """[nearest x2] -> Conv3x3 [stride 2] -> [GN -> act -> dropout] [+ act(W_e e)]: the seed's building block.

    With ``norm_groups=None`` it is a bare conv: Ho et al.'s conv_in and resamplers, the seed's output conv.
    """

    def __init__(self, c_in: int, c_out: int, *, resample: Literal["none", "down", "up"] = "none",
                 norm_groups: int | None = None, activation: str = "relu", dropout: float = 0.0,
                 emb_dim: int | None = None):  # fmt: skip
        super().__init__()
        self.upsample = resample == "up"
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=2 if resample == "down" else 1, padding=1)
        self.norm = nn.GroupNorm(norm_groups, c_out) if norm_groups else None
        self.act = _ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)
        self.emb_proj = nn.Linear(emb_dim, c_out) if emb_dim else None

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # (B, C, 2H, 2W)
        h = self.conv(x)
        if self.norm is not None:
            h = self.dropout(self.act(self.norm(h)))
        if self.emb_proj is not None:
            h = h + self.act(self.emb_proj(e))[:, :, None, None]  # seed: middle + relu(W_e e)
        return h


class PlainResidual(nn.Module):
    """The seed's middle block: x + ConvBlock(ConvBlock(x)), the embedding added after the second conv."""

    def __init__(self, channels: int, emb_dim: int, norm_groups: int, activation: str, dropout: float):
        super().__init__()
        self.first = ConvBlock(channels, channels, norm_groups=norm_groups, activation=activation, dropout=dropout)
        self.second = ConvBlock(channels, channels, norm_groups=norm_groups, activation=activation, emb_dim=emb_dim)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return x + self.second(self.first(x, e), e)


class ResBlock(nn.Module):
    """Ho et al. 2020's residual block: h = conv(drop(act(GN(conv(act(GN(x))) + W_e act(e))))); x + h."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int | None, norm_groups: int, activation: str,
                 dropout: float):  # fmt: skip
        super().__init__()
        self.act = _ACTIVATIONS[activation]()
        self.norm1 = nn.GroupNorm(norm_groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, c_out) if emb_dim else None
        self.norm2 = nn.GroupNorm(norm_groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))  # the block starts as the identity
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))  # (B, C_out, H, W)
        if self.emb_proj is not None:
            h = h + self.emb_proj(self.act(e))[:, :, None, None]
        h = self.conv2(self.dropout(self.act(self.norm2(h))))
        return self.shortcut(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the H*W positions, x + proj(softmax(q k^T / sqrt(C)) v)."""

    def __init__(self, channels: int, norm_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).permute(0, 2, 3, 1).reshape(B, 1, H * W, 3 * C)  # free if channels_last
        q, k, v = qkv.chunk(3, dim=-1)  # (B, 1, HW, C) each
        h = F.scaled_dot_product_attention(q, k, v)  # (B, 1, HW, C)
        return x + self.proj(h.reshape(B, H, W, C).permute(0, 3, 1, 2))


class Step(nn.ModuleList):
    """One encoder/decoder step: a block, optionally followed by self-attention; pushes/pops one skip."""

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        for module in self:
            h = module(h, e)
        return h


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class CodeHead(nn.Module):
    """Features (B, C, h, w) -> K logits (B, K), through a strided convolution and a linear layer over every
    position that remains (MNIST's 7 x 7 -> 3 x 3): the head that picks a U-Net's code (code_classes)."""

    def __init__(self, channels: int, size: tuple[int, int], groups: int, k: int):
        super().__init__()
        self.layers = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 4, 2, 1),
                                    nn.GroupNorm(groups, channels), nn.SiLU(), nn.Flatten())  # fmt: skip
        self.out = nn.Linear(channels * (size[0] // 2) * (size[1] // 2), k)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.layers(features))


# ---- The network ------------------------------------------------------------------------------------------
class UNet(nn.Module):
    """eps_theta(x_t, t, y) -> (B, C, H, W); see the module docstring and PRESETS for the structures."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = cfg = config or UNetConfig()
        self.embed = TimestepEmbedding(cfg, _ACTIVATIONS[cfg.activation])
        self.decoder_skips: list[bool] = []  # per decoder step: does it consume a skip?
        # range-check y on every call; reading the result is a host sync on a GPU, so hot loops whose labels
        # are already checked (training, guidance wrappers; see fastpath.trusted_inputs) switch it off
        self.validate_labels = True
        build = self._build_plain if cfg.block == "plain" else self._build_resnet
        self.encoder, self.middle, self.decoder, self.head = build(cfg, self.embed.dim)
        if cfg.code_classes:  # after every other module, so that their initial weights do not change
            size = cfg.image_size // 2**cfg.num_downsamplings
            channels = cfg.base_channels * cfg.channel_mults[-1]  # the encoder's output
            self.code_head = CodeHead(channels, (size, size), cfg.norm_groups, cfg.code_classes)
            self.code_embed = _zero(nn.Embedding(cfg.code_classes, self.embed.dim))  # no effect at the start
        # the code the next forward uses instead of the head's argmax ((B,) long, or None), and the head's logits
        # of the last forward (detached unless the code was forced): set, read and cleared by the trajectory
        # stage's loss (consistency.TrajectoryLoss)
        self.forced_code: torch.Tensor | None = None
        self.code_logits: torch.Tensor | None = None

    def _step(self, block: nn.Module, channels: int, size: int) -> Step:
        attend = size in self.config.attention_resolutions
        return Step([block, SelfAttention(channels, self.config.norm_groups)] if attend else [block])

    @staticmethod
    def _extra_middle(cfg: UNetConfig, channels: int, e_dim: int, kw: dict) -> list[nn.Module]:
        """extra_middle_blocks residual blocks after the middle's own, appended so that the other modules keep
        their names; each starts as the identity (zero last conv), so a trained network's weights load into the
        grown one unchanged in function (grow_into, below)."""
        return [ResBlock(channels, channels, e_dim, **kw) for _ in range(cfg.extra_middle_blocks)]

    def _build_plain(self, cfg: UNetConfig, e_dim: int) -> tuple[nn.Module, ...]:
        """Seed 000: levels of [ConvBlock] * num_res_blocks + stride-2 ConvBlock, mirrored, additive skips."""
        every = e_dim if cfg.time_embedding == "every-block" else None
        kw = dict(norm_groups=cfg.norm_groups, activation=cfg.activation, dropout=cfg.dropout)
        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        encoder, decoder, ch, size = [], [], cfg.in_channels, cfg.image_size
        for width in widths:
            for _ in range(cfg.num_res_blocks):
                encoder.append(self._step(ConvBlock(ch, width, emb_dim=every, **kw), width, size))
                ch = width
            encoder.append(Step([ConvBlock(ch, ch, resample="down", **kw)]))
            size //= 2
        middle = [PlainResidual(ch, e_dim, **kw)]
        middle += [SelfAttention(ch, cfg.norm_groups)] if cfg.middle_attention else []
        middle += self._extra_middle(cfg, ch, e_dim, kw)
        for level in reversed(range(len(widths))):  # each step undoes its encoder twin: out width = twin's in
            decoder.append(Step([ConvBlock(ch, ch, resample="up", **kw)]))
            size *= 2
            for j in reversed(range(cfg.num_res_blocks)):
                if level == 0 and j == 0:  # the output conv: no norm, no activation
                    decoder.append(Step([ConvBlock(ch, cfg.in_channels)]))
                    continue
                out = widths[level - 1] if j == 0 else ch
                decoder.append(self._step(ConvBlock(ch, out, emb_dim=every, **kw), out, size))
                ch = out
        self.decoder_skips = [True] * len(decoder)
        return nn.ModuleList(encoder), Step(middle), nn.ModuleList(decoder), nn.Identity()

    def _build_resnet(self, cfg: UNetConfig, e_dim: int) -> tuple[nn.Module, ...]:
        """Ho et al. 2020: conv_in, ResBlocks (+attention), downsample between levels, concatenated skips."""
        every = e_dim if cfg.time_embedding == "every-block" else None
        kw = dict(norm_groups=cfg.norm_groups, activation=cfg.activation, dropout=cfg.dropout)
        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        ch, size = widths[0], cfg.image_size
        encoder, skip_channels = [Step([ConvBlock(cfg.in_channels, ch)])], [ch]
        for level, width in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                encoder.append(self._step(ResBlock(ch, width, every, **kw), width, size))
                ch = width
                skip_channels.append(ch)
            if level != len(widths) - 1:
                encoder.append(Step([ConvBlock(ch, ch, resample="down")]))
                skip_channels.append(ch)
                size //= 2
        middle = [ResBlock(ch, ch, e_dim, **kw)]
        middle += [SelfAttention(ch, cfg.norm_groups)] if cfg.middle_attention else []
        middle += [ResBlock(ch, ch, e_dim, **kw)]
        middle += self._extra_middle(cfg, ch, e_dim, kw)
        decoder = []
        for level in reversed(range(len(widths))):
            for _ in range(cfg.num_res_blocks + 1):
                in_ch = ch + skip_channels.pop()
                decoder.append(self._step(ResBlock(in_ch, widths[level], every, **kw), widths[level], size))
                ch = widths[level]
                self.decoder_skips.append(True)
            if level != 0:
                decoder.append(Step([ConvBlock(ch, ch, resample="up")]))
                self.decoder_skips.append(False)
                size *= 2
        act, out = _ACTIVATIONS[cfg.activation](), _zero(nn.Conv2d(ch, cfg.in_channels, 3, padding=1))
        head = nn.Sequential(nn.GroupNorm(cfg.norm_groups, ch), act, out)
        return nn.ModuleList(encoder), Step(middle), nn.ModuleList(decoder), head

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def null_label(self) -> int:
        """Index of the learned 'no label' class used by classifier-free guidance."""
        return self.config.null_label

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(*self.encode(x, t, y))

    def encode(self, x: torch.Tensor, t: torch.Tensor,
               y: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:  # fmt: skip
        """The first half of forward: the encoder and the middle. Returns the middle's output h (B, C_mid,
        H / 2**n, W / 2**n), the encoder's skips and the embedding e (B, E; with code_classes, the code's
        embedding added), which `decode` finishes; h alone is what DMD2's discriminator reads
        (consistency.gan_features), without the decoder's cost."""
        y = check_inputs("UNet", self.config, x, t, y, self.validate_labels)
        e = self.embed(t, y)  # (B, E)
        skips, h = [], x  # h: (B, C, H, W)
        for step in self.encoder:
            h = step(h, e)
            skips.append(h)
        if self.config.code_classes:  # the code: forced, or the head's argmax (no gradient reaches the head then)
            logits = self.code_head(h)
            forced = self.forced_code is not None
            self.code_logits = logits if forced else logits.detach()  # the graph only where a loss will read it
            e = e + self.code_embed(self.forced_code if forced else logits.argmax(1)).to(e.dtype)
        return self.middle(h, e), skips, e

    def decode(self, h: torch.Tensor, skips: list[torch.Tensor], e: torch.Tensor) -> torch.Tensor:
        """The second half of forward: the decoder (consuming `skips`) and the head, -> (B, C, H, W)."""
        add = self.config.block == "plain"
        for step, takes_skip in zip(self.decoder, self.decoder_skips, strict=True):
            if takes_skip:
                s = skips.pop()
                h = h + s if add else torch.cat([h, s], dim=1)
            h = step(h, e)
        return self.head(h)  # (B, C, H, W)


# ---- Presets -----------------------------------------------------------------------------------------------
_SEED = dict(num_res_blocks=1, attention_resolutions=(), middle_attention=False, dropout=0.0,
             time_embedding="middle", time_mlp=False, activation="relu", block="plain")  # fmt: skip
PRESETS: dict[str, UNetConfig] = {
    # The CPU recipe (docs/quality.md): Ho et al.'s residual blocks with the capacity moved to low resolution,
    # 16 -> 32 -> 64 channels over 28 -> 14 -> 7 (or 32 -> 16 -> 8), one block per level, t in every block,
    # GroupNorm(8), no attention; 619,697 parameters at 1 channel, 138 MFLOP per 28x28 image (forward).
    # fmt: off
    "small": UNetConfig(
        in_channels=1,
        image_size=28,
        base_channels=16,
        channel_mults=(1, 2, 4),
        num_res_blocks=1,
        attention_resolutions=(),
        middle_attention=False,
        dropout=0.0,
        norm_groups=8,
    ),
    # fmt: on  # fmt: skip
    # Seed 000 (Yu 2025) for MNIST/Fashion-MNIST: 128 -> 256 channels, 28 -> 14 -> 7, 3,284,737 parameters at
    # 1 channel (3,281,153 in the seed, whose GroupNorms have no affine weights). Steps, skips added:
    #   x1 = CB(C->128)  x2 = CB_down(128)  x3 = CB(128->256)  x4 = CB_down(256)
    #   m = x4 + CB(CB(x4)) + relu(Linear(128->256) sinusoid(t))      <- the only place t enters
    #   x5 = CB_up(m + x4)  x6 = CB(x5 + x3 -> 128)  x7 = CB_up(x6 + x2)  eps = Conv(x7 + x1 -> C)
    # with CB = Conv3x3 -> GroupNorm(32) -> ReLU.
    "seed-minimal": UNetConfig(in_channels=1, image_size=28, channel_mults=(1, 2), **_SEED),
    # The seed's "deeper" CIFAR-10 model: one more level (512 channels, 32 -> 4), 13,946,115 parameters at
    # 3 channels (13,937,923 in the seed). The seed runs its middle block twice but discards the second
    # result (middle2 = middle1 + emb), so one middle block is the network it actually computes.
    "seed-cifar": UNetConfig(in_channels=3, image_size=32, channel_mults=(1, 2, 4), **_SEED),
    # Ho et al. 2020, CIFAR-10: 35,746,307 parameters unconditional at 3 channels, as in the paper's code.
    "ddpm-cifar10": UNetConfig(),
}


def unet_from_preset(name: str, in_channels: int, image_size: int, num_classes: int = 0, **overrides) -> UNet:
    """Build a preset U-Net for the given data; overrides replace any other UNetConfig field."""
    config = preset_config(PRESETS, name, "U-Net", in_channels=in_channels, image_size=image_size,
                           num_classes=num_classes, **overrides)  # fmt: skip
    return UNet(config)


def grow_into(model: UNet, weights: dict[str, torch.Tensor], new: int) -> list[nn.Parameter]:
    """Load `weights`, those of the same U-Net with `new` fewer extra middle blocks (and without its code, when
    `weights` have none), into `model`, whose last `new` middle blocks and new code keep their initial weights
    (each block the identity, the code's embedding zero, so the two compute the same function). Returns those
    modules' parameters; a ValueError when `weights` belong to another network."""
    first_new = len(model.middle) - new
    own = model.state_dict()
    fresh = {name for name in own if name.startswith("middle.") and int(name.split(".")[1]) >= first_new}
    coded = model.config.code_classes and "code_embed.weight" not in weights  # the code is new too
    fresh |= {name for name in own if name.startswith(("code_head.", "code_embed."))} if coded else set()
    if new < 0 or set(weights) != set(own) - fresh:
        raise ValueError(f"the weights are not those of this U-Net less its last {new} middle blocks")
    model.load_state_dict(weights, strict=False)  # a tensor of another shape still raises
    code = [*model.code_head.parameters(), *model.code_embed.parameters()] if coded else []
    return [p for block in list(model.middle)[first_new:] for p in block.parameters()] + code


__all__ = ["PRESETS", "CodeHead", "UNet", "UNetConfig", "grow_into", "unet_from_preset"]
