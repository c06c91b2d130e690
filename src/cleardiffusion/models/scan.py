"""A linear-time token mixer: Mamba's selective state-space scan (Gu & Dao 2023), bidirectional, in plain PyTorch.

The recurrence, per channel d of the sequence x_1..x_L (Gu & Dao 2023, Eqs. 2a-2b and Algorithm 2):

    h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t        h_t in R^N, h_0 = 0
    y_t = C_t . h_t + D x_t

with input-dependent ("selective") step Delta_t = softplus(W x_t + b) > 0 and B_t, C_t in R^N, a diagonal A < 0
(a decay) and a skip D. As in Mamba-2 (Dao & Gu 2024), the channels come in heads of P that share one rate A
and one step Delta_t (P = 1: a rate per channel; Mamba-1's A also varies over the N state entries, which would
make the chunked form below hold a (T, T, D, N) tensor per chunk instead of (T, T, D / P)).

| code       | paper                                         |
|------------|-----------------------------------------------|
| `delta`    | Delta_t, (B, L, H): one step per head         |
| `A`        | A = -exp(A_log), (H,)                         |
| `B`, `C`   | B_t, C_t, (B, L, N)                           |
| `log_a`    | Delta_t A, the log of the decay exp(Delta_t A) |
| `S`        | cumulative sum of log_a inside a chunk        |

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
    """y_t = C_t . h_t of the selective recurrence (module docstring), heads of P = D / H channels sharing a decay.

    Args:
        x: (B, L, D) inputs; delta: (B, L, H) steps Delta_t > 0 and A: (H,) rates < 0, one per head of
            D / H consecutive channels; B, C: (B, L, N).
        chunk: T, tokens per chunk.
    Computed in float32 (float64 stays float64) whatever the autocast; returns x's dtype, (B, L, D).
    """
    with torch.autocast(x.device.type, enabled=False):  # bf16 would round the decays and the long sums
        return _chunked_scan(x, delta, A, B, C, chunk)


def _chunked_scan(x, delta, A, B, C, chunk):
    dtype, work = x.dtype, torch.promote_types(x.dtype, torch.float32)
    batch, L, D = x.shape
    H, pad = A.shape[0], (-L) % chunk  # zero input and zero log-decay at the end: no real token's output sees them
    n = (L + pad) // chunk
    log_a = F.pad(delta.to(work) * A.to(work), (0, 0, 0, pad))  # (B, L', H): Delta_t A <= 0
    u = F.pad(delta.to(work).repeat_interleave(D // H, dim=2) * x.to(work), (0, 0, 0, pad))  # (B, L', D): Delta_t x_t
    u = u.reshape(batch, n, chunk, H, D // H).transpose(2, 3)  # (B, n, H, T, P)
    B, C = (F.pad(m.to(work), (0, 0, 0, pad)).reshape(batch, n, 1, chunk, -1) for m in (B, C))  # (B, n, 1, T, N)
    S = log_a.reshape(batch, n, chunk, H).cumsum(dim=2).transpose(2, 3)[..., None]  # (B, n, H, T, 1): log prod a_r

    # 1. inside each chunk, from h_0 = 0: y_t = sum_{s <= t} (C_t . B_s) exp(S_t - S_s) Delta_s x_s
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=x.device).tril()  # (T, T): s <= t
    CB = (C @ B.transpose(-1, -2)).masked_fill(~causal, 0.0)  # (B, n, 1, T, T)
    decay = torch.exp((S - S.transpose(-1, -2)).clamp(max=0.0))  # (B, n, H, T, T); s > t: clamped, and CB = 0
    y = (decay * CB) @ u  # (B, n, H, T, P)

    # 2. each chunk's own end state, then the short loop across chunks: h_end = exp(S_T) h_0 + that end state
    to_end = torch.exp(S[..., -1:, :] - S)  # (B, n, H, T, 1): decay from token s to the chunk's last token
    ends = (to_end * u).transpose(-1, -2) @ B  # (B, n, H, P, N)
    whole = torch.exp(S[..., -1:, :])  # (B, n, H, 1, 1): decay over a whole chunk
    h, h0 = torch.zeros_like(ends[:, 0]), []
    for c in range(n):
        h0.append(h)  # the state entering chunk c
        h = whole[:, c] * h + ends[:, c]
    h0 = torch.stack(h0, dim=1)  # (B, n, H, P, N)

    # 3. what the entering state adds: C_t . (exp(S_t) h_0)
    y = y + torch.exp(S) * (C @ h0.transpose(-1, -2))  # (B, n, H, T, P)
    return y.transpose(2, 3).reshape(batch, n * chunk, D)[:, :L].to(dtype)


class SelectiveScan(nn.Module):
    """One direction of Mamba's SSM branch: causal depthwise conv -> SiLU -> selective scan (+ D x).

    Delta_t, B_t, C_t come from one projection of the token, Delta per head as in Mamba-2 (Dao & Gu 2024).
    """

    def __init__(self, dim: int, state_dim: int, head_dim: int, chunk: int, conv_kernel: int = 4):
        super().__init__()
        self.state_dim, self.heads, self.chunk = state_dim, dim // head_dim, chunk
        self.conv = nn.Conv1d(dim, dim, conv_kernel, groups=dim, padding=conv_kernel - 1)
        self.x_proj = nn.Linear(dim, self.heads + 2 * state_dim, bias=False)  # -> (Delta, B, C)
        self.dt_bias = nn.Parameter(torch.zeros(self.heads))
        self.A_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, self.heads)))  # rates 1..16 (Mamba-2)
        self.D = nn.Parameter(torch.ones(dim))
        self.reset_delta()

    @torch.no_grad()
    def reset_delta(self) -> None:
        """Mamba's initialisation of Delta: softplus(bias) log-uniform in [0.001, 0.1]."""
        dt = torch.exp(torch.empty_like(self.dt_bias).uniform_(math.log(1e-3), math.log(1e-1)))
        self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # the inverse of softplus

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        L = x.shape[1]  # x: (B, L, D)
        x = F.silu(self.conv(x.transpose(1, 2))[..., :L].transpose(1, 2))  # causal: token t sees t-3..t
        dt, B, C = self.x_proj(x).split([self.heads, self.state_dim, self.state_dim], dim=-1)
        delta = F.softplus(dt + self.dt_bias)  # (B, L, H) > 0
        A = -torch.exp(self.A_log)  # (H,) < 0
        return chunked_scan(x, delta, A, B, C, self.chunk) + x * self.D


class BidirectionalScan(nn.Module):
    """The token mixer: in_proj -> (x, z); y = (scan(x) + flip(scan'(flip(x)))) / 2; out_proj(y * SiLU(z)).

    Mamba's gated block (Gu & Dao 2023, Fig. 3) with a second scan over the reversed tokens (Vision Mamba).
    """

    def __init__(self, dim: int, state_dim: int, head_dim: int, chunk: int):
        super().__init__()
        self.in_proj = nn.Linear(dim, 2 * dim)
        self.forward_scan = SelectiveScan(dim, state_dim, head_dim, chunk)
        self.backward_scan = SelectiveScan(dim, state_dim, head_dim, chunk)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x, z = self.in_proj(h).chunk(2, dim=-1)  # (B, L, D) each
        y = (self.forward_scan(x) + self.backward_scan(x.flip(1)).flip(1)) / 2
        return self.out_proj(y * F.silu(z))


__all__ = ["BidirectionalScan", "SelectiveScan", "chunked_scan"]
