"""A global spatio-temporal transformer: every output frame attends to every frame of the clip.

Tensor contract (:mod:`fvr.models.nets.core`): x (B, T, 3, S, S) float32 in [0, 1] -> y (B, T, 3, S, S) float32
= x + residual (unclamped). H and W need not be equal; both must be multiples of ``config.patch``.

Layout:
1. **stem**: a 3×3 conv at full resolution (C channels) — kept as a skip for the refinement.
2. **tokens**: pixel-unshuffle the stem features by ``patch`` (×8: a 128² crop gives 16×16 = 256 tokens per frame)
   and project to ``dim`` with a 1×1 conv, then one ResBlock at token resolution for local context.
   Low-resolution tokens are what make attention over all frames affordable on a CPU.
3. **position**: fixed sinusoidal encodings, 2-D over the token grid and 1-D over time (centred on the clip's middle
   frame), computed for the actual grid and T, so any clip length works (no learned table, no max T).
4. **transformer blocks** (pre-norm): ``divided`` attention = temporal attention (each token position across all T
   frames) then spatial attention (all tokens of a frame), as TimeSformer; or ``joint`` attention over all T·N
   tokens (cost (T·N)², only for small grids). Every block also has an MLP.
5. **decode**: 1×1 conv to C·patch² channels, pixel-shuffle back to full resolution, concatenate the stem skip,
   two 3×3 convs (the last small-initialised, so the network starts near the identity), added to the input.

Attention is ``F.scaled_dot_product_attention``, which ``torch.onnx.export(opset_version=17, dynamo=False)`` exports
as MatMul/Softmax; the position encodings are constants of the traced shape, so the ONNX graph is valid for the
exported T and S.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fvr.models.nets.blocks import ResBlock, conv, from_frames, to_frames
from fvr.models.nets.core import ArchSpec
from fvr.models.nets.recurrent import small_init_

ATTENTION = ("divided", "joint")


@dataclass(frozen=True)
class GlobalConfig:
    """Size of the global transformer.

    channels: full-resolution stem / refinement channels.
    dim, depth, heads, mlp_ratio: token width, number of transformer blocks, attention heads, MLP expansion.
    patch: down-sampling to tokens (pixel-unshuffle factor; S must be a multiple of it).
    attention: "divided" (temporal then spatial) or "joint" (all frames' tokens together).
    context: K, frames of context on each side the pipeline gives each chunk (past = future = K).
    """

    channels: int = 16
    dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    patch: int = 8
    attention: str = "divided"
    context: int = 8


# ----------------------------------------------------------------------------------------------- positions


def sinusoid(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(L,) float positions -> (L, dim) [sin | cos] encodings at geometric frequencies (dim even)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10000.0) / max(half, 1)))
    angles = positions.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def spatial_encoding(h: int, w: int, dim: int) -> torch.Tensor:
    """(h·w, dim): half the channels encode the row, half the column (dim a multiple of 4)."""
    rows = sinusoid(torch.arange(h), dim // 2)  # (h, dim/2)
    cols = sinusoid(torch.arange(w), dim // 2)  # (w, dim/2)
    grid = torch.cat([rows[:, None, :].expand(h, w, -1), cols[None, :, :].expand(h, w, -1)], dim=-1)
    return grid.reshape(h * w, dim)


def temporal_encoding(t: int, dim: int) -> torch.Tensor:
    """(t, dim), positions relative to the middle frame: the clip's centre has the same code whatever T is."""
    return sinusoid(torch.arange(t, dtype=torch.float32) - (t - 1) / 2.0, dim)


# ----------------------------------------------------------------------------------------------- blocks


class Attention(nn.Module):
    """Multi-head self-attention over the second axis: (N, L, D) -> (N, L, D)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, d = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (N, heads, L, d/heads)
        return self.proj(out.transpose(1, 2).reshape(n, length, d))


class Block(nn.Module):
    """A pre-norm transformer block on (B, T, N, D) tokens; attention divided (time, then space) or joint."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, attention: str):
        super().__init__()
        if attention not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {attention!r}")
        self.attention = attention
        self.norm_s, self.attn_s = nn.LayerNorm(dim), Attention(dim, heads)
        if attention == "divided":
            self.norm_t, self.attn_t = nn.LayerNorm(dim), Attention(dim, heads)
        hidden = int(dim * mlp_ratio)
        self.norm_m = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, t, n, d = z.shape
        if self.attention == "joint":
            flat = z.reshape(b, t * n, d)
            z = (flat + self.attn_s(self.norm_s(flat))).reshape(b, t, n, d)
        else:
            zt = z.transpose(1, 2).reshape(b * n, t, d)  # each token position across all frames
            zt = zt + self.attn_t(self.norm_t(zt))
            zs = zt.reshape(b, n, t, d).transpose(1, 2).reshape(b * t, n, d)  # each frame's tokens
            z = (zs + self.attn_s(self.norm_s(zs))).reshape(b, t, n, d)
        return z + self.mlp(self.norm_m(z))


class GlobalTransformer(nn.Module):
    """forward(x, prior=None): x (B, T, 3, H, W) float32 in [0, 1], H and W multiples of ``config.patch``, any T;
    prior ignored. Returns (B, T, 3, H, W) float32 = x + residual, unclamped."""

    def __init__(self, config: GlobalConfig):
        super().__init__()
        c, d, p = config.channels, config.dim, config.patch
        if d % 4:
            raise ValueError(f"dim must be a multiple of 4 (2-D sinusoidal encoding), got {d}")
        self.config = config
        self.size_multiple = p
        self.stem = conv(3, c)
        self.embed = nn.Conv2d(c * p * p, d, 1)
        self.local = ResBlock(d)
        self.blocks = nn.ModuleList(Block(d, config.heads, config.mlp_ratio, config.attention)
                                    for _ in range(config.depth))
        self.norm = nn.LayerNorm(d)
        self.unembed = nn.Conv2d(d, c * p * p, 1)
        self.refine = conv(2 * c, c)
        self.tail = small_init_(conv(c, 3))

    def tokens(self, skip: torch.Tensor, b: int, t: int) -> tuple[torch.Tensor, int, int]:
        """(B·T, C, H, W) stem features -> (B, T, N, D) tokens with positions added, and the token grid h, w."""
        grid = self.local(self.embed(F.pixel_unshuffle(skip, self.config.patch)))  # (B·T, D, h, w)
        h, w = grid.shape[-2:]
        z = grid.flatten(2).transpose(1, 2).reshape(b, t, h * w, -1)
        d = z.shape[-1]
        pos = spatial_encoding(h, w, d).to(z)[None, None] + temporal_encoding(t, d).to(z)[None, :, None]
        return z + pos, h, w

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        frames, b, t = to_frames(x)
        skip = F.leaky_relu(self.stem(frames), 0.1)
        z, h, w = self.tokens(skip, b, t)
        for block in self.blocks:
            z = block(z)
        grid = self.norm(z).reshape(b * t, h, w, -1).permute(0, 3, 1, 2)
        up = F.pixel_shuffle(self.unembed(grid), self.config.patch)  # (B·T, C, H, W)
        residual = self.tail(F.leaky_relu(self.refine(torch.cat([up, skip], dim=1)), 0.1))
        return x + from_frames(residual, b, t)


def build(config: GlobalConfig) -> GlobalTransformer:
    return GlobalTransformer(config)


def _context(config: GlobalConfig) -> int:
    return config.context


TINY = GlobalConfig(channels=8, dim=16, depth=1, heads=2, mlp_ratio=2.0, patch=4, attention="divided", context=2)
FAST = GlobalConfig(channels=16, dim=64, depth=2, heads=4, mlp_ratio=2.0, patch=8, attention="divided", context=8)
QUALITY = GlobalConfig(channels=32, dim=128, depth=4, heads=4, mlp_ratio=2.0, patch=8, attention="divided",
                       context=8)

ARCHS: tuple[ArchSpec, ...] = (
    ArchSpec(
        name="global", kind="transformer", temporal="global",
        description="spatio-temporal transformer: low-resolution tokens attend across all frames of the clip",
        config=GlobalConfig, build=build,
        presets={"fast": (128, FAST), "quality": (256, QUALITY), "tiny": (32, TINY)},
        past=_context, future=_context, tags=("space-time-attention",),
    ),
)
