"""A linear-time token mixer: Mamba's selective state-space scan (Gu & Dao 2023), bidirectional, in plain PyTorch.

The recurrence, per channel d of the sequence x_1..x_L (Gu & Dao 2023, Eqs. 2a-2b and Algorithm 2):

    h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t        h_t in R^N, h_0 = 0
    y_t = C_t . h_t + D x_t

with input-dependent ("selective") step Delta_t = softplus(W_Delta x_t) > 0 and input-dependent B_t, C_t in R^N,
a diagonal A < 0 (a decay) and a skip D. A has one rate per channel, shared by its N state entries: Mamba-2's
scalar-per-head A with heads of one channel (Dao & Gu 2024). Mamba-1's A varies over the N entries too, which
would make the chunked form below hold a (T, T, D, N) tensor per chunk instead of (T, T, D).

| code       | paper                                    |
|------------|------------------------------------------|
| `delta`    | Delta_t, (B, L, D)                       |
| `A`        | A = -exp(A_log), (D,)                    |
| `B`, `C`   | B_t, C_t, (B, L, N)                      |
| `log_a`    | Delta_t A = log of the decay exp(Delta_t A) |
| `S`        | cumulative sum of log_a inside a chunk   |

`chunked_scan` evaluates the recurrence in O(L) work: tokens are cut into chunks of T; inside a chunk the state
is the closed form h_t = exp(S_t) h_0 + sum_{s <= t} exp(S_t - S_s) Delta_s B_s x_s, with S the cumulative sum of
the log-decays (every exponent is <= 0: no product is divided by another, nothing overflows); a short loop
across the L / T chunks carries h_0 from one chunk to the next. Images are not sequences with a direction, so
`BidirectionalScan` runs one scan forward and one over the reversed tokens, as Vision Mamba does (Zhu et al.
2024).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def chunked_scan(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                 chunk: int) -> torch.Tensor:  # fmt: skip
    """y_t = C_t . h_t of the selective recurrence (module docstring) for x, delta (B, L, D), A (D,), B, C (B, L, N).

    Computed in float32 (float64 stays float64) whatever the autocast; returns x's dtype, (B, L, D).
    """
    dtype, work = x.dtype, torch.promote_types(x.dtype, torch.float32)
    batch, L, D = x.shape
    pad = (-L) % chunk  # zero input and zero log-decay at the end: no real token's output sees them (causality)
    log_a = F.pad((delta.to(work) * A.to(work)), (0, 0, 0, pad))  # (B, L', D): Delta_t A <= 0
    u = F.pad(delta.to(work) * x.to(work), (0, 0, 0, pad))  # (B, L', D): Delta_t x_t
    B, C = (F.pad(m.to(work), (0, 0, 0, pad)) for m in (B, C))  # (B, L', N)
    n = log_a.shape[1] // chunk
    log_a, u = log_a.reshape(batch, n, chunk, D), u.reshape(batch, n, chunk, D)
    B, C = B.reshape(batch, n, chunk, -1), C.reshape(batch, n, chunk, -1)
    S = log_a.cumsum(dim=2)  # (B, n, T, D): log prod_{r <= t} exp(Delta_r A) inside the chunk

    # 1. inside each chunk, from h_0 = 0: y_t = sum_{s <= t} (C_t . B_s) exp(S_t - S_s) Delta_s x_s
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=x.device).tril()[:, :, None]  # (T, T, 1): s <= t
    decay = torch.exp((S[:, :, :, None] - S[:, :, None]).masked_fill(~causal, -math.inf))  # (B, n, T, T, D)
    CB = torch.einsum("bctn,bcsn->bcts", C, B)  # (B, n, T, T)
    y = torch.einsum("bcts,bctsd,bcsd->bctd", CB, decay, u)  # (B, n, T, D)

    # 2. each chunk's own end state, then the short loop across chunks: h_end = exp(S_T) h_0 + that end state
    to_end = torch.exp(S[:, :, -1:] - S)  # (B, n, T, D): decay from token s to the chunk's last token
    ends = torch.einsum("bcsd,bcsn->bcdn", to_end * u, B)  # (B, n, D, N)
    whole = torch.exp(S[:, :, -1])[..., None]  # (B, n, D, 1): decay over a whole chunk
    h, h0 = torch.zeros_like(ends[:, 0]), []
    for c in range(n):
        h0.append(h)  # the state entering chunk c
        h = whole[:, c] * h + ends[:, c]
    h0 = torch.stack(h0, dim=1)  # (B, n, D, N)

    # 3. what the entering state adds: C_t . (exp(S_t) h_0)
    y = y + torch.exp(S) * torch.einsum("bctn,bcdn->bctd", C, h0)
    return y.reshape(batch, n * chunk, D)[:, :L].to(dtype)


class SelectiveScan(nn.Module):
    """One direction of Mamba's SSM branch: causal depthwise conv -> SiLU -> selective scan (+ D x)."""

    def __init__(self, dim: int, state_dim: int, chunk: int, conv_kernel: int = 4):
        super().__init__()
        self.state_dim, self.chunk = state_dim, chunk
        self.dt_rank = math.ceil(dim / 16)  # Mamba's low-rank Delta projection
        self.conv = nn.Conv1d(dim, dim, conv_kernel, groups=dim, padding=conv_kernel - 1)
        self.x_proj = nn.Linear(dim, self.dt_rank + 2 * state_dim, bias=False)  # -> (Delta low-rank, B, C)
        self.dt_proj = nn.Linear(self.dt_rank, dim)
        self.A_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, dim)))  # decay rates 1..16, as S4D-real 1..N
        self.D = nn.Parameter(torch.ones(dim))
        self.reset_delta()

    @torch.no_grad()
    def reset_delta(self) -> None:
        """Mamba's initialisation of Delta: softplus(bias) log-uniform in [0.001, 0.1]."""
        dt = torch.exp(torch.empty_like(self.dt_proj.bias).uniform_(math.log(1e-3), math.log(1e-1)))
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # the inverse of softplus
        nn.init.uniform_(self.dt_proj.weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        L = x.shape[1]  # x: (B, L, D)
        x = F.silu(self.conv(x.transpose(1, 2))[..., :L].transpose(1, 2))  # causal: token t sees t-3..t
        dt_low, B, C = self.x_proj(x).split([self.dt_rank, self.state_dim, self.state_dim], dim=-1)
        delta = F.softplus(self.dt_proj(dt_low))  # (B, L, D) > 0
        A = -torch.exp(self.A_log)  # (D,) < 0
        return chunked_scan(x, delta, A, B, C, self.chunk) + x * self.D


class BidirectionalScan(nn.Module):
    """The token mixer: in_proj -> (x, z); y = (scan(x) + flip(scan'(flip(x)))) / 2; out_proj(y * SiLU(z)).

    Mamba's gated block (Gu & Dao 2023, Fig. 3) with a second scan over the reversed tokens (Vision Mamba).
    """

    def __init__(self, dim: int, state_dim: int, chunk: int):
        super().__init__()
        self.in_proj = nn.Linear(dim, 2 * dim)
        self.forward_scan = SelectiveScan(dim, state_dim, chunk)
        self.backward_scan = SelectiveScan(dim, state_dim, chunk)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x, z = self.in_proj(h).chunk(2, dim=-1)  # (B, L, D) each
        y = (self.forward_scan(x) + self.backward_scan(x.flip(1)).flip(1)) / 2
        return self.out_proj(y * F.silu(z))


__all__ = ["BidirectionalScan", "SelectiveScan", "chunked_scan"]
