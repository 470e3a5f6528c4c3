"""Recurrent propagation over a face track clip: bidirectional, causal forward, and Kalman-style.

All three networks share one layout (tensor contract of :mod:`fvr.models.nets.core`):

    x (B, T, 3, S, S) float32 in [0, 1]  ->  y (B, T, 3, S, S) float32 = x + residual (not clamped)

1. **encode** every frame at reduced resolution: pixel-unshuffle ×``scale`` (lossless: S×S×3 -> S/r×S/r×3r²),
   a conv and a few ResBlocks; features (B·T, C, S/r, S/r). Working at S/r is what makes the fast preset real
   time on 2 CPU cores; no information is thrown away by the unshuffle.
2. **align**: a learned :class:`~fvr.models.nets.blocks.FlowEstimator` between neighbouring input frames (on the
   frames average-pooled to the feature resolution, flow in feature pixels) warps the hidden state of the previous
   step onto the current frame. The estimator starts at zero flow, i.e. without warping.
3. **propagate** the hidden state over time with ResBlock cells:
   ``recurrent-bi``  a backward pass (t = T-1 .. 0) then a forward pass (t = 0 .. T-1) that also sees the backward
                     state, as BasicVSR; offline (reads future frames).
   ``recurrent``     the forward pass only: causal, output t depends on frames <= t.
   ``kalman``        forward only, a Kalman-style update as KEEP: the prediction is the warped previous state
                     through a learned transition, the observation is the current frame's features, and a learned
                     gain map g = σ(conv([prediction, observation])) blends them:
                     state_t = g ⊙ obs_t + (1 − g) ⊙ pred_t.
4. **decode** each frame's state at S/r, pixel-shuffle back to S, add to the input. The last conv starts small, so an
   untrained network is close to the identity.

Temporal context: the networks loop over T in Python, so they accept any T >= 1. The pipeline hands each chunk
``past`` (and for ``recurrent-bi`` ``future``) frames of context around the frames it keeps; the hidden state is
**carried across calls** (:meth:`RecurrentNet.forward_carried`): the forward state and the last frame it saw go
from one chunk to the next, so a causal model restores a track in chunks exactly as in one call and never recomputes
context. The bidirectional model carries its forward state the same way; its backward state cannot be carried (it
comes from the future), so it is re-warmed over the ``future`` look-ahead frames of each chunk (K = ``context``
frames, 6 by default). ``past`` = K is still declared: where no state exists (a segment restored on its own, a
plain :meth:`forward` call) the state is re-warmed over K frames before the first frame that is kept. Under
``torch.onnx.export`` the loop unrolls at the traced T, so the ONNX graph is valid for that T only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from fvr.models.nets.blocks import (
    FlowEstimator,
    conv,
    from_frames,
    res_stack,
    to_frames,
)
from fvr.models.nets.core import ArchSpec
from fvr.models.nets.warp import flow_warp

MODES = ("bi", "forward", "kalman")


@dataclass(frozen=True)
class RecurrentConfig:
    """Size of a recurrent network.

    channels: feature / hidden-state channels at S/scale.
    scale: pixel-unshuffle factor (S must be a multiple of it); features live at S/scale.
    encode_blocks, cell_blocks, decode_blocks: ResBlocks in the per-frame encoder, in each propagation cell (for
        ``kalman``: the state-transition model), and in the per-frame decoder.
    flow_channels, flow_levels: size of the learned flow estimator (pyramid levels at the feature resolution).
    context: K, frames of context the pipeline gives each chunk (past, and future for the bidirectional model).
    """

    channels: int = 32
    scale: int = 2
    encode_blocks: int = 1
    cell_blocks: int = 2
    decode_blocks: int = 1
    flow_channels: int = 16
    flow_levels: int = 3
    context: int = 6


def small_init_(layer: nn.Conv2d, scale: float = 0.1) -> nn.Conv2d:
    """Shrink a conv's initial weights and zero its bias: the last layer of a residual branch starts near zero, so
    the network starts near the identity yet still passes gradients to every earlier layer from step one."""
    with torch.no_grad():
        layer.weight.mul_(scale)
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


def flow_at(flows: torch.Tensor | None, t: int) -> torch.Tensor:
    """flows[:, t] -> (B, 2, h, w) of neighbour flows (B, T-1, 2, h, w). A single-frame clip has no flows (None) and
    never reaches this; indexing None raises the same TypeError it always did."""
    if flows is None:
        raise TypeError("'NoneType' object is not subscriptable: no neighbour flows (a single-frame clip)")
    return flows[:, t]


class Encoder(nn.Module):
    """(N, 3, H, W) in [0, 1] -> (N, C, H/r, W/r) features: pixel-unshuffle, conv, LeakyReLU, ResBlocks."""

    def __init__(self, channels: int, scale: int, blocks: int):
        super().__init__()
        self.scale = scale
        self.head = conv(3 * scale * scale, channels)
        self.body = res_stack(channels, blocks)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.body(F.leaky_relu(self.head(F.pixel_unshuffle(frames, self.scale)), 0.1))


class Decoder(nn.Module):
    """(N, Cin, H/r, W/r) -> (N, 3, H, W) residual: conv, ResBlocks, small-init conv to 3r², pixel-shuffle."""

    def __init__(self, cin: int, channels: int, scale: int, blocks: int):
        super().__init__()
        self.head = conv(cin, channels)
        self.body = res_stack(channels, blocks)
        self.tail = small_init_(conv(channels, 3 * scale * scale))
        self.scale = scale

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = self.body(F.leaky_relu(self.head(feats), 0.1))
        return F.pixel_shuffle(self.tail(h), self.scale)


class PropagationCell(nn.Module):
    """One recurrent step: concat(inputs) -> conv -> LeakyReLU -> ResBlocks -> new hidden state (N, C, h, w)."""

    def __init__(self, cin: int, channels: int, blocks: int):
        super().__init__()
        self.head = conv(cin, channels)
        self.body = res_stack(channels, blocks)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.body(F.leaky_relu(self.head(torch.cat(inputs, dim=1)), 0.1))


class KalmanCell(nn.Module):
    """A learned Kalman-style update of the hidden state.

    predict:  pred = transition(warp(state_{t-1}))  (motion model = flow warp, then a learned ResBlock transition)
    gain:     g = σ(conv(LeakyReLU(conv([pred, obs]))))  in (0, 1) per pixel and channel
    update:   state_t = g ⊙ obs + (1 − g) ⊙ pred  (= pred + g ⊙ (obs − pred), the Kalman innovation form)
    """

    def __init__(self, channels: int, blocks: int):
        super().__init__()
        self.transition = res_stack(channels, blocks)
        self.gain = nn.Sequential(conv(2 * channels, channels), nn.LeakyReLU(0.1), conv(channels, channels))

    def forward(self, warped_state: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        pred = self.transition(warped_state)
        g = torch.sigmoid(self.gain(torch.cat([pred, obs], dim=1)))
        return g * obs + (1.0 - g) * pred


@dataclass(frozen=True)
class Carried:
    """What a recurrent network carries from one chunk of a sequence to the next.

    state: (B, C, h, w) forward hidden state after the last output frame.
    frame: (B, 3, h, w) that frame, average-pooled to the feature resolution (the flow to the next frame needs it).
    """

    state: torch.Tensor
    frame: torch.Tensor


class RecurrentNet(nn.Module):
    """Flow-aligned recurrent restorer; ``mode`` is "bi" (bidirectional), "forward" (causal) or "kalman" (causal).

    forward(x, prior=None): x (B, T, 3, S, S) float32 in [0, 1], S a multiple of ``config.scale``, any T >= 1;
    prior is ignored (not a prior-driven model). Returns (B, T, 3, S, S) float32 = x + residual, unclamped.
    """

    def __init__(self, config: RecurrentConfig, mode: str):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        c = config.channels
        self.config, self.mode = config, mode
        self.size_multiple = config.scale  # frame sides must be multiples of this (framewise runners pad to it)
        self.encoder = Encoder(c, config.scale, config.encode_blocks)
        self.flow = FlowEstimator(config.flow_levels, config.flow_channels)
        if mode == "kalman":
            self.kalman = KalmanCell(c, config.cell_blocks)
        else:
            # the forward cell of the bidirectional model also reads the backward state at the same frame
            self.forward_cell = PropagationCell((3 if mode == "bi" else 2) * c, c, config.cell_blocks)
        if mode == "bi":
            self.backward_cell = PropagationCell(2 * c, c, config.cell_blocks)
        self.decoder = Decoder((2 if mode == "bi" else 1) * c, c, config.scale, config.decode_blocks)

    # -- alignment --------------------------------------------------------------------------------------------

    def neighbour_flows(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Flows at the feature resolution, (B, T-1, 2, h, w) each, or None for T = 1.

        forward[:, t-1] aligns frame t-1 onto frame t (warps the state coming from the past);
        backward[:, t] aligns frame t+1 onto frame t (only for the bidirectional model).
        Each flow reads exactly the two frames it connects, so the forward flows keep the model causal.
        """
        b, t = x.shape[:2]
        if t < 2:
            return None, None
        small = F.avg_pool2d(x.reshape(b * t, *x.shape[2:]), self.config.scale).reshape(b, t, 3, *self._hw(x))
        cur, prev = small[:, 1:].reshape(-1, 3, *small.shape[-2:]), small[:, :-1].reshape(-1, 3, *small.shape[-2:])
        fwd = self.flow(cur, prev).reshape(b, t - 1, 2, *small.shape[-2:])
        bwd = self.flow(prev, cur).reshape(b, t - 1, 2, *small.shape[-2:]) if self.mode == "bi" else None
        return fwd, bwd

    def _hw(self, x: torch.Tensor) -> tuple[int, int]:
        return x.shape[-2] // self.config.scale, x.shape[-1] // self.config.scale

    # -- propagation ------------------------------------------------------------------------------------------

    def propagate_backward(self, feats: torch.Tensor, flows: torch.Tensor | None) -> list[torch.Tensor]:
        """Backward states, one (B, C, h, w) per frame, from t = T-1 down to 0 (returned in frame order)."""
        t_len = feats.shape[1]
        state = torch.zeros_like(feats[:, 0])
        states: list[torch.Tensor] = [state] * t_len
        for t in range(t_len - 1, -1, -1):
            warped = flow_warp(state, flow_at(flows, t)) if t < t_len - 1 else state
            state = self.backward_cell(feats[:, t], warped)
            states[t] = state
        return states

    def propagate_forward(self, feats: torch.Tensor, flows: torch.Tensor | None,
                          backward: list[torch.Tensor] | None = None,
                          start: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Forward states, one (B, C, h, w) per frame: state t reads frames <= t (plus backward[t] when given).
        ``start``: the state carried from the frame before this clip, already aligned onto frame 0; without it the
        propagation starts from zeros."""
        state = torch.zeros_like(feats[:, 0]) if start is None else start
        states = []
        for t in range(feats.shape[1]):
            warped = flow_warp(state, flow_at(flows, t - 1)) if t > 0 else state
            extra = (backward[t],) if backward is not None else ()
            state = self.forward_cell(feats[:, t], *extra, warped)
            states.append(state)
        return states

    def propagate_kalman(self, feats: torch.Tensor, flows: torch.Tensor | None,
                         start: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Kalman-filtered states: the first frame's state is its observation (no prediction yet: gain 1), unless
        a state is carried from the frame before (``start``, already aligned onto frame 0)."""
        state = feats[:, 0] if start is None else self.kalman(start, feats[:, 0])
        states = [state]
        for t in range(1, feats.shape[1]):
            state = self.kalman(flow_warp(state, flow_at(flows, t - 1)), feats[:, t])
            states.append(state)
        return states

    # -- whole network ----------------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        return self._run(x, None, x.shape[1])[0]

    def forward_carried(self, x: torch.Tensor, start: Carried | None, keep: int) -> tuple[torch.Tensor, Carried]:
        """Restore the next frames of a sequence, continuing from the state carried out of the previous call.

        x: (B, T, 3, S, S) float32 in [0, 1], the next T frames; the first ``keep`` (1 <= keep <= T) are output,
        the rest are look-ahead (read only by the bidirectional model's backward pass). start: what the previous
        call returned (None at the start of a sequence). Returns (B, keep, 3, S, S) = x + residual and the state
        after frame keep-1. For the causal modes, calls over consecutive pieces of a sequence give the output of
        one :meth:`forward` over the whole sequence (up to float rounding)."""
        if not 1 <= keep <= x.shape[1]:
            raise ValueError(f"keep must be in [1, {x.shape[1]}], got {keep}")
        out, state = self._run(x, start, keep)
        return out, Carried(state, F.avg_pool2d(x[:, keep - 1], self.config.scale))

    def _run(self, x: torch.Tensor, start: Carried | None, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, keep, 3, S, S) output and the forward hidden state after frame keep-1."""
        frames, b, t = to_frames(x)
        feats = from_frames(self.encoder(frames), b, t)  # (B, T, C, h, w), every frame in one batch
        fwd_flows, bwd_flows = self.neighbour_flows(x)
        aligned = None  # the carried state warped from the previous call's last frame onto frame 0
        if start is not None:
            aligned = flow_warp(start.state, self.flow(F.avg_pool2d(x[:, 0], self.config.scale), start.frame))
        if self.mode == "kalman":
            states = self.propagate_kalman(feats, fwd_flows, aligned)[:keep]
            carried = states[-1]
        elif self.mode == "forward":
            states = self.propagate_forward(feats, fwd_flows, None, aligned)[:keep]
            carried = states[-1]
        else:
            backward = self.propagate_backward(feats, bwd_flows)
            forward = self.propagate_forward(feats[:, :keep], fwd_flows, backward, aligned)
            states = [torch.cat([f, bk], dim=1) for f, bk in zip(forward, backward)]
            carried = forward[-1]
        hidden = torch.stack(states, dim=1).reshape(b * keep, -1, *feats.shape[-2:])
        return x[:, :keep] + from_frames(self.decoder(hidden), b, keep), carried


# ----------------------------------------------------------------------------------------------- specs


def build(config: RecurrentConfig, mode: str) -> RecurrentNet:
    return RecurrentNet(config, mode)


def _context(config: RecurrentConfig) -> int:
    return config.context


TINY = RecurrentConfig(channels=8, scale=2, encode_blocks=1, cell_blocks=1, decode_blocks=0, flow_channels=8,
                       flow_levels=2, context=2)
# fast: features at 64² for a 128² crop, ~1 GFLOP/frame or less (see the report of `fvr models`).
FAST = RecurrentConfig(channels=32, scale=2, encode_blocks=1, cell_blocks=2, decode_blocks=0, flow_channels=16,
                       flow_levels=3, context=6)
FAST_BI = RecurrentConfig(channels=24, scale=2, encode_blocks=1, cell_blocks=2, decode_blocks=0,
                          flow_channels=12, flow_levels=3, context=6)
QUALITY = RecurrentConfig(channels=48, scale=2, encode_blocks=2, cell_blocks=4, decode_blocks=2, flow_channels=24,
                          flow_levels=4, context=6)


ARCHS: tuple[ArchSpec, ...] = (
    ArchSpec(
        name="recurrent-bi", kind="cnn", temporal="recurrent",
        description="bidirectional flow-aligned recurrent propagation (BasicVSR-like) over face crops; offline",
        config=RecurrentConfig, build=partial(build, mode="bi"),
        presets={"fast": (128, FAST_BI), "quality": (256, QUALITY), "tiny": (32, TINY)},
        past=_context, future=_context, tags=("bidirectional", "flow-aligned"),
    ),
    ArchSpec(
        name="recurrent", kind="cnn", temporal="recurrent",
        description="causal forward flow-aligned recurrent propagation over face crops; real time",
        config=RecurrentConfig, build=partial(build, mode="forward"),
        presets={"fast": (128, FAST), "quality": (256, QUALITY), "tiny": (32, TINY)},
        past=_context, future=0, tags=("flow-aligned",),
    ),
    ArchSpec(
        name="kalman", kind="cnn", temporal="recurrent",
        description="causal Kalman-style propagation (KEEP-like): learned gain fuses warped state and observation",
        config=RecurrentConfig, build=partial(build, mode="kalman"),
        presets={"fast": (128, FAST), "quality": (256, QUALITY), "tiny": (32, TINY)},
        past=_context, future=0, tags=("kalman", "learned-gain"),
    ),
)
