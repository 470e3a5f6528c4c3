"""Temporal stabiliser around any restorer: takes the flicker out of per-frame face restoration.

A per-frame image restorer (fvr's ``image-baseline``, an ONNX GFPGAN/CodeFormer, a spandrel checkpoint) restores
each aligned crop on its own, so details it invents change from frame to frame (flicker, identity drift). The
stabiliser works on the crops the pipeline already aligned with *smoothed* landmarks, so the remaining motion
between neighbouring crops is small and non-rigid (expressions, residual pose), which dense flow captures well:

* :func:`stabilise_clip` (training-free, the kornia-style functional op; :class:`FlowStabiliser` is its thin
  object form): for every frame t, each restored neighbour k within ``window`` frames is warped onto t with DIS
  flow (computed on the restorer's *input* crops by default, which the restorer did not make flicker), pixels that
  fail a forward-backward occlusion check are dropped, and the rest are averaged with weights
  ``exp(-(k-t)²/2σₜ²) · exp(-d²/2σ_c²)`` (d: the locally averaged colour difference to frame t, so a wrong flow
  vector or a real change — a blink, a mouth opening — is not blended in). ``strength`` blends the per-frame result
  (0) with the fused one (1). Offline it reads ``window`` frames on both sides; ``causal=True`` reads past frames only.
* :class:`StabilisedRestorer` wraps any :class:`~fvr.models.base.Restorer` with a stabiliser and declares the
  extra context, so the pipeline feeds it the right frames (``fvr restore --stabilise flow``).
* The learned stabiliser (architecture ``stabiliser``, :mod:`fvr.models.nets.stabiliser`) feeds the fused crops,
  the per-frame crops and the input crops to a small network trained with ``fvr train``
  (``--stabilise FILE.safetensors``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from fvr.errors import ConfigError
from fvr.flow import DIS_PRESETS, channel_sq_sum, dis_flow, remap, valid_mask
from fvr.models.base import Restorer, clip_unit
from fvr.models.registry import parse_option_value

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
        if not isinstance(self.window, int) or not 0 <= self.window <= 8:
            raise ConfigError(f"stabiliser window must be an integer from 0 to 8, got {self.window!r}")
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"stabiliser strength must be in [0, 1], got {self.strength}")
        if self.sigma_time <= 0 or self.sigma_color <= 0:
            raise ConfigError("stabiliser sigma_time and sigma_color must be > 0")
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


class Stabiliser(Protocol):
    """What :class:`StabilisedRestorer` needs: a name, the context it reads, and the call."""

    name: str
    past: int
    future: int

    def __call__(self, restored: np.ndarray, guide: np.ndarray) -> np.ndarray: ...


FLOW_PRESETS: dict[str, dict[str, object]] = {
    "flow": {},
    "flow-causal": {"causal": True},
    # the real-time CPU default: flow on 256² frames, one neighbour each side (~1/5 of `flow`'s time on 512² crops)
    "flow-fast": {"flow_size": 256, "window": 1},
}
"""Named settings of the training-free stabiliser (``MODEL+NAME``, ``--stabilise NAME``); options on top win."""


def _preset_name(config: StabiliserConfig) -> str:
    """The name of the preset ``config`` equals, else "flow-causal" / "flow" (options shown by the config)."""
    for name, values in FLOW_PRESETS.items():
        if config == StabiliserConfig(**values):  # type: ignore[arg-type]
            return name
    return "flow-causal" if config.causal else "flow"


class FlowStabiliser:
    """:func:`stabilise_clip` with a fixed config (the object form used by :class:`StabilisedRestorer`)."""

    def __init__(self, config: StabiliserConfig = StabiliserConfig()):
        self.config = config
        self.name = _preset_name(config)
        self.past, self.future = config.past, config.future

    def __call__(self, restored: np.ndarray, guide: np.ndarray) -> np.ndarray:
        return stabilise_clip(restored, guide, self.config)


class StabilisedRestorer(Restorer):
    """Any restorer followed by a stabiliser. The spec is the inner one's, renamed ``INNER+STABILISER``, with the
    stabiliser's context added (so the pipeline hands over enough neighbours) and the tag ``stabilised``."""

    def __init__(self, inner: Restorer, stabiliser: Stabiliser):
        self.inner = inner
        self.stabiliser = stabiliser
        s = inner.spec
        temporal = "window" if s.temporal == "per-frame" else s.temporal
        self.spec = replace(s, name=f"{s.name}+{stabiliser.name}", temporal=temporal, past=s.past + stabiliser.past,
                            future=s.future + stabiliser.future, tags=(*s.tags, "stabilised"),
                            description=f"{s.description} + temporal stabiliser ({stabiliser.name})")

    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.stabiliser(self.inner(clip, landmarks), clip)


STABILISER_OPTIONS = {f for f in StabiliserConfig.__dataclass_fields__}


def _split_options(kind: str, options: dict[str, object]) -> tuple[str, dict[str, object]]:
    """"flow:window=4:strength=0.8" -> ("flow", {"window": 4, "strength": 0.8}) (explicit ``options`` win)."""
    head, *pairs = kind.split(":") if not kind.endswith(".safetensors") else (kind,)
    parsed: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"stabiliser option {pair!r}: write KEY=VALUE, e.g. flow:window=3")
        parsed[key] = parse_option_value(value)
    return head, {**parsed, **options}


def make_stabiliser(kind: str, options: dict[str, object] | None = None, *, device: str = "cpu") -> Stabiliser:
    """``kind``: "flow" (training-free, offline), "flow-causal" (past frames only), "flow-fast" (real time: flow
    at 256², one neighbour each side; :data:`FLOW_PRESETS`), "learned" (the trained
    stabiliser shipped with fvr), or a ``.safetensors`` file of the learned ``stabiliser`` architecture (trained
    with ``fvr train``). ``options``: fields of
    :class:`StabiliserConfig` (window, strength, ...), also accepted inline as ``flow:window=3:strength=0.8``;
    unknown ones are a one-line :class:`ConfigError`."""
    kind, options = _split_options(kind, dict(options or {}))
    if unknown := sorted(set(options) - STABILISER_OPTIONS):
        raise ConfigError(f"unknown stabiliser option(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(STABILISER_OPTIONS))}")
    if kind in FLOW_PRESETS:
        return FlowStabiliser(StabiliserConfig(**{**FLOW_PRESETS[kind], **options}))  # type: ignore[arg-type]
    if kind == "learned":  # the stabiliser shipped in the package (trained around image-baseline)
        from fvr.models.learned import shipped_weights

        path = shipped_weights("stabiliser")
        if path is None:
            raise ConfigError("this installation ships no trained stabiliser: train one (configs/stabiliser.toml) "
                              "and pass its file (--stabilise FILE.safetensors)")
        from fvr.models.nets.stabiliser import LearnedStabiliser

        return LearnedStabiliser.from_file(path, options, device=device, name="learned")
    if kind.endswith(".safetensors"):
        from fvr.models.nets.stabiliser import LearnedStabiliser

        return LearnedStabiliser.from_file(Path(kind), options, device=device)
    raise ConfigError(f"unknown stabiliser {kind!r}; choose {', '.join(FLOW_PRESETS)}, learned or a .safetensors file "
                      "of a trained stabiliser")


def stabilised(restorer: Restorer, kind: str, options: dict[str, object] | None = None, *,
               device: str = "cpu") -> StabilisedRestorer:
    """``restorer`` wrapped with the stabiliser ``kind`` (see :func:`make_stabiliser`)."""
    return StabilisedRestorer(restorer, make_stabiliser(kind, options, device=device))


def parse_method(name: str) -> tuple[str, str | None]:
    """"MODEL+STABILISER" (as ``fvr bench --methods`` and ``fvr restore --model`` accept) -> (model, stabiliser);
    a name without "+" -> (name, None)."""
    model, sep, stab = name.partition("+")
    if sep and (not model or not stab):
        raise ConfigError(f"{name!r}: write MODEL+STABILISER, e.g. image-baseline+flow")
    return model, (stab or None)

