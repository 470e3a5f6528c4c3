"""The generic video restorer the survey compares face-specific models against: a BasicVSR-style network.

BasicVSR (Chan et al., CVPR 2021) = bidirectional recurrent propagation + optical-flow feature alignment +
pixel-shuffle up-sampling. It knows nothing about faces: it runs on **whole frames** (``frame_model=True``), see
:func:`fvr.run.framewise.restore_frames_video`.

Tensor contract: the same as every fvr network (:mod:`fvr.models.nets.core`), so the same trainer trains it:

    x (B, T, 3, H, W) float32 in [0, 1], the low-resolution frames already up-sampled ×``scale`` (bicubic)
    -> y (B, T, 3, H, W) float32 = x + residual, unclamped; H and W multiples of ``scale``.

Internally the network works at the input (low) resolution, as BasicVSR does: pixel-unshuffle ×``scale`` turns the
up-sampled frame back into H/s × W/s × 3s² without loss; the flow estimator sees the frames average-pooled ×s
(≈ the low-resolution input). Backward then forward propagation, each a conv + ResBlocks over
[frame features, warped state]; a 1×1 fusion of both directions; two pixel-shuffle ×2 stages (for s = 4) back to
H × W; the last conv is small-initialised so the untrained network is close to the identity (bicubic).

The presets' "crop" size is the square **whole-frame patch** used in training (random patches of whole frames,
not face crops); at inference the network runs on frames of any size (multiples of ``scale``).
Temporal context: past = future = K (``context``); the hidden states are re-warmed over that context in every
chunk (:func:`~fvr.run.framewise.restore_frames_video` gives each chunk K frames on both sides).
Differences from the published BasicVSR: a learned SpyNet-like :class:`FlowEstimator` trained from zero flow
instead of a pretrained SpyNet, fewer blocks in the presets (CPU training), and the residual is added to the
given (already up-sampled) input instead of an internal bilinear up-sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fvr.models.nets.blocks import FlowEstimator, conv, from_frames, to_frames
from fvr.models.nets.core import ArchSpec
from fvr.models.nets.recurrent import PropagationCell, flow_at, small_init_
from fvr.models.nets.warp import flow_warp


@dataclass(frozen=True)
class BasicVSRConfig:
    """Size of the BasicVSR-style network.

    channels: propagation feature channels (at H/scale).
    blocks: ResBlocks in each propagation branch (BasicVSR: 30 at 64 channels).
    scale: the up-sampling factor the input went through (1, 2, 4 or 8); features live at H/scale.
    up_channels: channels of the pixel-shuffle up-sampling stages.
    flow_channels, flow_levels: size of the learned flow estimator.
    context: K, frames of context on each side the runner gives each chunk (past = future = K).
    """

    channels: int = 64
    blocks: int = 10
    scale: int = 4
    up_channels: int = 64
    flow_channels: int = 16
    flow_levels: int = 3
    context: int = 6


class Upsampler(nn.Module):
    """(N, C, h, w) fused features -> (N, 3, h·s, w·s) residual: log2(s) conv + pixel-shuffle ×2 stages, a conv at
    full resolution and a small-initialised conv to RGB (BasicVSR's upconv1/upconv2/conv_hr/conv_last)."""

    def __init__(self, channels: int, up_channels: int, scale: int):
        super().__init__()
        stages = scale.bit_length() - 1
        if scale < 1 or 2 ** stages != scale:
            raise ValueError(f"scale must be a power of two, got {scale}")
        self.ups = nn.ModuleList()
        cin = channels
        for _ in range(stages):
            self.ups.append(conv(cin, 4 * up_channels))
            cin = up_channels
        self.hr = conv(cin, up_channels)
        self.last = small_init_(conv(up_channels, 3))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = feats
        for up in self.ups:
            h = F.leaky_relu(F.pixel_shuffle(up(h), 2), 0.1)
        return self.last(F.leaky_relu(self.hr(h), 0.1))


class BasicVSR(nn.Module):
    """forward(x, prior=None): x (B, T, 3, H, W) float32 in [0, 1], up-sampled ×scale, H and W multiples of scale,
    any T >= 1; prior ignored. Returns (B, T, 3, H, W) float32 = x + residual, unclamped."""

    def __init__(self, config: BasicVSRConfig):
        super().__init__()
        c, s = config.channels, config.scale
        self.config = config
        self.size_multiple = s
        self.flow = FlowEstimator(config.flow_levels, config.flow_channels)
        self.backward_branch = PropagationCell(3 * s * s + c, c, config.blocks)
        self.forward_branch = PropagationCell(3 * s * s + c, c, config.blocks)
        self.fusion = nn.Conv2d(2 * c, c, 1)
        self.upsampler = Upsampler(c, config.up_channels, s)

    def flows(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
        """lr (B, T, 3, h, w) -> (forward, backward) flows (B, T-1, 2, h, w): forward[:, t-1] aligns frame t-1 onto
        t, backward[:, t] aligns frame t+1 onto t; (None, None) for T = 1."""
        b, t = lr.shape[:2]
        if t < 2:
            return None, None
        cur, prev = lr[:, 1:].reshape(-1, *lr.shape[2:]), lr[:, :-1].reshape(-1, *lr.shape[2:])
        shape = (b, t - 1, 2, *lr.shape[-2:])
        return self.flow(cur, prev).reshape(shape), self.flow(prev, cur).reshape(shape)

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        s = self.config.scale
        frames, b, t = to_frames(x)
        lr_feats = from_frames(F.pixel_unshuffle(frames, s), b, t)  # (B, T, 3s², h, w), lossless
        lr = from_frames(F.avg_pool2d(frames, s), b, t)  # ≈ the low-resolution frames, for the flow
        fwd_flows, bwd_flows = self.flows(lr)

        state = lr_feats.new_zeros(b, self.config.channels, *lr_feats.shape[-2:])
        backward: list[torch.Tensor] = [state] * t
        for i in range(t - 1, -1, -1):
            warped = flow_warp(state, flow_at(bwd_flows, i)) if i < t - 1 else state
            state = self.backward_branch(lr_feats[:, i], warped)
            backward[i] = state

        state = torch.zeros_like(state)
        fused = []
        for i in range(t):
            warped = flow_warp(state, flow_at(fwd_flows, i - 1)) if i > 0 else state
            state = self.forward_branch(lr_feats[:, i], warped)
            fused.append(F.leaky_relu(self.fusion(torch.cat([backward[i], state], dim=1)), 0.1))

        residual = self.upsampler(torch.stack(fused, 1).reshape(b * t, -1, *lr_feats.shape[-2:]))
        return x + from_frames(residual, b, t)


def build(config: BasicVSRConfig) -> BasicVSR:
    return BasicVSR(config)


def _context(config: BasicVSRConfig) -> int:
    return config.context


TINY = BasicVSRConfig(channels=8, blocks=1, scale=4, up_channels=8, flow_channels=8, flow_levels=2, context=2)
FAST = BasicVSRConfig(channels=32, blocks=4, scale=4, up_channels=16, flow_channels=16, flow_levels=3, context=6)
QUALITY = BasicVSRConfig(channels=64, blocks=15, scale=4, up_channels=64, flow_channels=24, flow_levels=3,
                         context=6)

ARCHS: tuple[ArchSpec, ...] = (
    ArchSpec(
        name="basicvsr", kind="cnn", temporal="recurrent",
        description="generic BasicVSR-style bidirectional recurrent video restorer on whole frames (not face-aware)",
        config=BasicVSRConfig, build=build,
        presets={"fast": (128, FAST), "quality": (256, QUALITY), "tiny": (32, TINY)},
        past=_context, future=_context, tags=("baseline", "generic-video", "whole-frame"), frame_model=True,
    ),
)
