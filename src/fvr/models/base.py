"""The restorer contract: what every face restoration model in fvr takes, returns and declares.

A restorer works on one face **track clip**: consecutive aligned face crops of one person,

    clip:      (T, 3, S, S) float32 RGB in [0, 1], S = ``spec.crop_size``
    landmarks: (T, 5, 2) float32, the 5 points (left eye, right eye, nose, mouth left, mouth right) in crop pixels

and returns restored crops of the same shape, dtype and range. T is at least 1 and may be shorter than
``past + 1 + future`` at the ends of a track. The pipeline feeds a track in chunks: the frames it keeps from a
call are those with at least ``past`` frames before and ``future`` frames after them inside the clip (or the
track's first/last frames), so a model may read exactly that much context. A causal model (``future == 0``) must
never let frame t+1 change output t.

A recurrent model may instead carry its state along the track (``carries_state``, :meth:`Restorer.restore_carried`):
the pipeline then hands each chunk only its new frames (plus ``future`` look-ahead) and the state from the chunk
before, so the chunk borders do not change the output; ``past`` is still the context it needs where no state
exists (the start of a segment restored on its own).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def clip_unit(x: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """``x`` (any float dtype) clamped to [0, 1], dtype kept; into ``x`` itself when ``inplace``. The bounds are of
    ``x``'s own dtype (numpy's clip with Python-float bounds ran up to 8x slower on float32 arrays), and in place
    skips a fresh 50 MB array for a 16 x 3 x 512² clip (2 ms instead of 16-28 ms, mostly page faults)."""
    lo, hi = x.dtype.type(0), x.dtype.type(1)
    return np.clip(x, lo, hi, out=x) if inplace else np.clip(x, lo, hi)


def chw_clip(crops: Sequence[np.ndarray]) -> np.ndarray:
    """T crops, each (S, S, 3) float in [0, 1] -> one C-contiguous (T, 3, S, S) float32 clip (the restorer contract's
    input) in a single copy: ``np.stack`` of transposed views keeps their strided layout, and then every consumer
    (torch, the stabiliser's planes) copies the whole clip again (25 ms for 18 crops of 512²)."""
    first = crops[0]
    out = np.empty((len(crops), first.shape[2], *first.shape[:2]), np.float32)
    for i, crop in enumerate(crops):
        out[i] = crop.transpose(2, 0, 1)
    return out


KINDS = ("non-learned", "cnn", "gan", "transformer", "diffusion", "external")
TEMPORAL_STRATEGIES = ("per-frame", "window", "recurrent", "global", "diffusion")


@dataclass(frozen=True)
class RestorerSpec:
    """A model's tensor contract and its place in the survey's taxonomy, stated in one place.

    name: registry key (``--model NAME``).
    kind: architecture family, one of :data:`KINDS`.
    temporal: temporal strategy, one of :data:`TEMPORAL_STRATEGIES`.
    crop_size: S, the aligned crop side in pixels the model expects.
    past / future: frames of context the model reads before / after each output frame.
    description: one line for ``fvr models``.
    tags: further taxonomy tags (e.g. "prior-driven", "codebook").
    frame_model: a whole-frame model (generic video restoration, e.g. ``basicvsr``): it restores whole frames,
        not aligned face crops, and implements :class:`FrameRestorer`; the run skips the face analysis.
    """

    name: str
    kind: str
    temporal: str
    crop_size: int
    past: int = 0
    future: int = 0
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    frame_model: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.temporal not in TEMPORAL_STRATEGIES:
            raise ValueError(f"temporal must be one of {TEMPORAL_STRATEGIES}, got {self.temporal!r}")
        if self.crop_size < 16 or self.past < 0 or self.future < 0:
            raise ValueError("crop_size must be >= 16 and past/future >= 0")

    @property
    def causal(self) -> bool:
        return self.future == 0

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["causal"] = self.causal
        d["tags"] = list(self.tags)
        return d


class Restorer(ABC):
    """Base class of all restorers. Subclasses set ``spec`` and implement :meth:`restore_clip`."""

    spec: RestorerSpec

    @abstractmethod
    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Restore a track clip. clip (T,3,S,S) float32 [0,1]; landmarks (T,5,2) float32 crop px -> (T,3,S,S)."""

    #: True when the model implements :meth:`restore_carried` (a recurrent model carrying its state along a track).
    carries_state: bool = False

    def restore_carried(self, clip: np.ndarray, landmarks: np.ndarray, state: Any,
                        keep: int) -> tuple[np.ndarray, Any]:
        """Restore the next frames of a track, continuing from ``state`` (None at the track's start, else what the
        previous call returned). clip (T,3,S,S) float32 [0,1] and landmarks (T,5,2): the next T frames, of which
        the first ``keep`` are restored and the rest are look-ahead (``future`` frames). Returns (keep,3,S,S) and
        the state after frame keep-1. Only for models with ``carries_state``: the pipeline then hands each chunk
        its new frames only, and a chunked run equals a single call over the whole track."""
        raise NotImplementedError(f"{self.spec.name} does not carry state across calls")

    def bind_bases(self, resolve: Callable[[str, str, int], Restorer]) -> None:
        """A model that runs another model named in its weights (a learned stabiliser's frozen base) is handed how
        to build one: ``resolve(name, device, crop size)``, by the registry that built it. Others ignore it."""
        return None

    def _check(self, clip: np.ndarray, landmarks: np.ndarray) -> None:
        s = self.spec.crop_size
        if clip.ndim != 4 or clip.shape[1:] != (3, s, s) or clip.dtype != np.float32:
            raise ValueError(f"{self.spec.name}: expected a (T,3,{s},{s}) float32 clip, got {clip.shape} {clip.dtype}")
        if landmarks.shape != (clip.shape[0], 5, 2):
            raise ValueError(f"{self.spec.name}: expected ({clip.shape[0]},5,2) landmarks, got {landmarks.shape}")

    def __call__(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Validate the contract around :meth:`restore_clip`."""
        self._check(clip, landmarks)
        out = self.restore_clip(clip, landmarks.astype(np.float32, copy=False))
        if out.shape != clip.shape:
            raise RuntimeError(f"{self.spec.name} returned shape {out.shape} for input {clip.shape}")
        return _clipped_output(out, clip)

    def step(self, clip: np.ndarray, landmarks: np.ndarray, state: Any, keep: int) -> tuple[np.ndarray, Any]:
        """Validate the contract around :meth:`restore_carried`."""
        self._check(clip, landmarks)
        if not 1 <= keep <= clip.shape[0]:
            raise ValueError(f"{self.spec.name}: keep must be in [1, {clip.shape[0]}], got {keep}")
        out, state = self.restore_carried(clip, landmarks.astype(np.float32, copy=False), state, keep)
        if out.shape != (keep, *clip.shape[1:]):
            raise RuntimeError(f"{self.spec.name} returned shape {out.shape} for {keep} kept frames")
        return _clipped_output(out, clip), state


class FrameRestorer(ABC):
    """The contract of whole-frame models (``spec.frame_model``): the run hands them whole frames, up-sampled by
    ``--upscale``, in overlapping chunks of ``past``/``future`` context and spatial tiles
    (:mod:`fvr.run.framewise`), instead of face crops."""

    spec: RestorerSpec

    @abstractmethod
    def frame_network(self) -> Any:
        """The torch module: (1, T, 3, H, W) float32 RGB in [0, 1] -> the same shape, on the model's device
        (a ``size_multiple`` attribute, when it has one, is the side its input must be padded to a multiple of)."""


def as_frame_restorer(restorer: Restorer) -> FrameRestorer | None:
    """``restorer`` as a whole-frame model when its spec says it is one, else None; a spec that claims it without
    the contract is a RuntimeError (a model bug, not a user error)."""
    if not restorer.spec.frame_model:
        return None
    if not isinstance(restorer, FrameRestorer):
        raise RuntimeError(f"{restorer.spec.name}: declares frame_model but does not implement FrameRestorer")
    return restorer


def _clipped_output(out: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """A restorer's output as float32 in [0, 1], clamped in place when it is the restorer's own fresh array (never
    when it is, or views, the caller's input clip)."""
    out = out.astype(np.float32, copy=False)
    return clip_unit(out, inplace=out.flags.writeable and not np.may_share_memory(out, clip))
