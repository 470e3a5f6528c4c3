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

from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np

from fvr.errors import ConfigError
from fvr.models.base import Restorer
from fvr.models.fusion import FLOW_SOURCES, StabiliserConfig, stabilise_clip
from fvr.models.reference import parse_option_value

__all__ = ["FLOW_PRESETS", "FLOW_SOURCES", "FlowStabiliser", "StabilisedRestorer", "Stabiliser", "StabiliserConfig",
           "make_stabiliser", "stabilise_clip", "stabilised"]

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
