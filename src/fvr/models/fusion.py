"""The training-free temporal fusion of restored face crops (:func:`stabilise_clip`, a functional op with no model
behind it): for every frame t, each restored neighbour within ``window`` frames is warped onto t with DIS flow
(computed on the restorer's *input* crops by default, which the restorer did not make flicker), pixels failing a
forward-backward occlusion check are dropped, and the rest are averaged with weights
``exp(-(k-t)²/2σₜ²) · exp(-d²/2σ_c²)`` (d: the locally averaged colour difference to frame t, so a wrong flow vector
or a real change — a blink, a mouth opening — is not blended in). The stabiliser wrappers around restorers
(:mod:`fvr.models.temporal.stabilise`) and the learned stabiliser network (:mod:`fvr.models.nets.stabiliser`)
both build on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fvr.errors import ConfigError, check_range
from fvr.flow import DIS_PRESETS, channel_sq_sum, dis_flow, remap, valid_mask
from fvr.models.base import clip_unit

FLOW_SOURCES = ("input", "restored")


@dataclass(frozen=True)
class StabiliserConfig:
    """Options of the training-free stabiliser.

    window: neighbours on each side (past only when ``causal``) fused into every frame; 0 disables it.
    strength: 0 = the per-frame restorer's output, 1 = the fused output.
    causal: read past frames only (streaming, real time).
    sigma_time: temporal Gaussian of the neighbour weights, in frames.
    sigma_color: colour-difference scale (on [0, 1]) beyond which a warped neighbour stops counting.
    flow_on: compute flow on the restorer's "input" crops (default: unaffected by its flicker) or its "restored"
        crops (sharper, for inputs too degraded for flow).
    flow_preset: DIS preset: ultrafast, fast, medium.
    flow_size: compute flow (and the occlusion check) on the crops shrunk to at most this side, then scale it up
        to the crop (0 = at the crop's own size). Aligned crops move little and smoothly, so 256 loses little on
        512² crops and costs a quarter of the flow time (the real-time setting).
    """

    window: int = 2
    strength: float = 1.0
    causal: bool = False
    sigma_time: float = 2.0
    sigma_color: float = 0.1
    flow_on: str = "input"
    flow_preset: str = "fast"
    flow_size: int = 0

    def __post_init__(self) -> None:
        check_range("stabiliser window", self.window, 0, 8, integer=True)
        check_range("stabiliser strength", self.strength, 0.0, 1.0)
        check_range("stabiliser sigma_time", self.sigma_time, 0.0, None, open_low=True)
        check_range("stabiliser sigma_color", self.sigma_color, 0.0, None, open_low=True)
        if self.flow_on not in FLOW_SOURCES:
            raise ConfigError(f"stabiliser flow_on must be one of {', '.join(FLOW_SOURCES)}, got {self.flow_on!r}")
        if self.flow_preset not in DIS_PRESETS:
            raise ConfigError(f"stabiliser flow_preset must be one of {', '.join(DIS_PRESETS)}, "
                              f"got {self.flow_preset!r}")
        if not isinstance(self.flow_size, int) or not (self.flow_size == 0 or self.flow_size >= 32):
            raise ConfigError(f"stabiliser flow_size must be 0 (the crop's size) or an integer >= 32, "
                              f"got {self.flow_size!r}")

    @property
    def past(self) -> int:
        return self.window

    @property
    def future(self) -> int:
        return 0 if self.causal else self.window


def _grey_u8(frame: np.ndarray, size: int) -> np.ndarray:
    """(3, S, S) float [0, 1] -> (s, s) uint8 grey for flow (BT.601 weights, as OpenCV's RGB2GRAY), area-shrunk to
    ``size`` first when 0 < size < S. Works on the contiguous colour planes: clamping a strided HWC view of a 512² crop
    cost 4 ms, a quarter of the stabiliser's time a frame."""
    r, g, b = (np.asarray(p, dtype=np.float32) for p in frame)
    grey = r * np.float32(0.299 * 255) + g * np.float32(0.587 * 255) + b * np.float32(0.114 * 255)
    if 0 < size < grey.shape[-1]:
        grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(grey + np.float32(0.5), np.float32(0), np.float32(255)).astype(np.uint8)


class _Flows:
    """Lazily computed, memoised flows between frames of one clip and their occlusion masks, at the analysis size
    (the grey frames' size), and flows scaled up to the crop's size ``full`` for warping the restored crops."""

    def __init__(self, frames: list[np.ndarray], preset: str, full: int):
        self.frames = frames
        self.preset = preset
        self.full = full
        self.size = frames[0].shape[0]
        self.cache: dict[tuple[int, int], np.ndarray] = {}

    def small(self, a: int, b: int) -> np.ndarray:
        """Flow (s, s, 2) at the analysis size from frame a to frame b: frame_a(x) ≈ frame_b(x + flow(x))."""
        if (a, b) not in self.cache:
            self.cache[(a, b)] = dis_flow(self.frames[a], self.frames[b], self.preset)
        return self.cache[(a, b)]

    def __call__(self, a: int, b: int) -> np.ndarray:
        """The same flow at the crop's size (S, S, 2), vectors scaled with the image."""
        small = self.small(a, b)
        if self.size == self.full:
            return small
        up = cv2.resize(small, (self.full, self.full), interpolation=cv2.INTER_LINEAR)
        return up * np.float32(self.full / self.size)

    def valid(self, a: int, b: int) -> np.ndarray:
        """(s, s) float32 1/0: pixels of frame a whose flow to b passes the forward-backward check."""
        return valid_mask(self.small(a, b), self.small(b, a)).astype(np.float32)


def neighbours(t: int, length: int, config: StabiliserConfig) -> list[int]:
    """Frame indices fused into frame t of a clip of ``length`` frames (t itself excluded)."""
    hi = t if config.causal else min(length - 1, t + config.window)
    return [k for k in range(max(0, t - config.window), hi + 1) if k != t]


def fuse_frame(t: int, restored: list[np.ndarray], flows: _Flows, config: StabiliserConfig,
               analysis: list[np.ndarray] | None = None) -> np.ndarray:
    """The flow-fused estimate of frame t: (S, S, 3) float32, from HWC float32 restored frames.

    analysis: the restored frames at the flow's size (default: ``restored`` itself). The per-pixel weights
    (colour agreement, occlusion) are computed there and scaled up; only the warp of each neighbour runs at S.
    """
    analysis = restored if analysis is None else analysis
    ref, ref_a = restored[t], analysis[t]
    full, size = ref.shape[0], ref_a.shape[0]
    acc = ref.copy()
    total = np.ones(ref.shape[:2], np.float32)
    blur = max(1.0, full / 128.0) * size / full  # colour difference averaged over ~1 % of the crop
    for k in neighbours(t, len(restored), config):
        warped_a = remap(analysis[k], flows.small(t, k))
        diff = cv2.GaussianBlur(channel_sq_sum(warped_a - ref_a) / ref.shape[2], (0, 0), blur)
        weight = np.exp(-((k - t) ** 2) / (2 * config.sigma_time**2) - diff / (2 * config.sigma_color**2))
        weight = (weight * flows.valid(t, k)).astype(np.float32)
        if size == full:
            warped = warped_a
        else:
            warped = remap(restored[k], flows(t, k))
            weight = cv2.resize(weight, (full, full), interpolation=cv2.INTER_LINEAR)
        acc += weight[..., None] * warped
        total += weight
    return acc / total[..., None]


def stabilise_clip(restored: np.ndarray, guide: np.ndarray, config: StabiliserConfig = StabiliserConfig()
                   ) -> np.ndarray:
    """Training-free temporal stabilisation of a restored track clip (see the module docstring).

    restored: (T, 3, S, S) float32 RGB in [0, 1], a per-frame restorer's output on aligned crops.
    guide: (T, 3, S, S) float32 RGB in [0, 1], the restorer's input crops (flow is computed on them when
        ``config.flow_on == "input"``).
    Returns (T, 3, S, S) float32 in [0, 1]. A clip of one frame, ``window == 0`` or ``strength == 0`` comes back
    unchanged; still content (identical frames) too, since every neighbour then equals the frame.
    """
    if restored.shape != guide.shape or restored.ndim != 4 or restored.shape[1] != 3:
        raise ValueError(f"expected two (T, 3, S, S) clips of one shape, got {restored.shape} and {guide.shape}")
    if len(restored) < 2 or config.window == 0 or config.strength == 0.0:
        return restored.astype(np.float32, copy=True)
    frames = [np.ascontiguousarray(f.transpose(1, 2, 0), dtype=np.float32) for f in restored]
    flow_clip = guide if config.flow_on == "input" else restored
    flows = _Flows([_grey_u8(f, config.flow_size) for f in flow_clip], config.flow_preset, restored.shape[-1])
    analysis = frames if flows.size == flows.full else [
        cv2.resize(f, (flows.size, flows.size), interpolation=cv2.INTER_AREA) for f in frames]
    out = np.empty_like(restored, dtype=np.float32)
    for t in range(len(frames)):
        fused = fuse_frame(t, frames, flows, config, analysis)
        out[t] = (frames[t] + config.strength * (fused - frames[t])).transpose(2, 0, 1)
    return clip_unit(out, inplace=True)
