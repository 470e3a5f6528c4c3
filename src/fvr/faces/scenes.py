"""Scene-cut detection on a stream of frames: is this frame the first of a new shot?

Each frame is reduced to a 64x64 thumbnail; consecutive thumbnails are compared by colour distribution (a
hue-saturation histogram: robust to motion, blind to a cut between two shots of similar colours) and by pixels
(mean absolute grey-level difference: catches those cuts, but also rises with fast camera motion). A cut is
declared when the combined score is above a fixed threshold *and* well above the recent level of this shot, so
a steady fast pan, whose every frame differs from the last, does not fire.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

_THUMB = 64
_HIST_BINS = (16, 16)
# How far above the shot's recent scores a cut must be, and how many recent scores to remember.
_RISE = 2.5
_HISTORY = 8


@dataclass(frozen=True)
class _Signature:
    hist: np.ndarray  # (16, 16) float32 hue-saturation histogram
    grey: np.ndarray  # (64, 64) float32 in [0, 1]


def frame_signature(rgb: np.ndarray) -> _Signature:
    """The small summary of an (H, W, 3) uint8 RGB frame that cuts are judged on (a few KiB)."""
    # Sub-sample with a stride first (still >= 4 samples per thumbnail pixel and axis): area-resizing a whole
    # 1080p frame costs ~5 ms, as much as the rest of the tracker's per-frame work.
    step = max(1, min(rgb.shape[0], rgb.shape[1]) // (4 * _THUMB))
    thumb = cv2.resize(rgb[::step, ::step], (_THUMB, _THUMB), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, list(_HIST_BINS), [0, 180, 0, 256])
    grey = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).astype(np.float32) * (1.0 / 255.0)
    return _Signature(hist, grey)


def cut_score(a: _Signature, b: _Signature) -> float:
    """Dissimilarity of two frames, about 0 for the same shot and 0.2-1 across a cut.

    Half of (1 - histogram correlation), which is in [0, 1], plus the mean absolute grey difference in [0, 1].
    """
    corr = float(cv2.compareHist(a.hist, b.hist, cv2.HISTCMP_CORREL))
    d_hist = min(max(1.0 - corr, 0.0), 2.0) * 0.5
    d_pix = float(np.abs(a.grey - b.grey).mean())
    return d_hist + d_pix


class SceneCutDetector:
    """Streaming cut detector: call :meth:`update` once per frame, in order.

    threshold: minimum :func:`cut_score` for a cut (0.2 by default: fast pans of textured scenes reach about
    0.12, a cut to another scene 0.25-0.9); <= 0 disables detection. Holds only the previous frame's signature
    and the last few scores.
    """

    def __init__(self, threshold: float = 0.2):
        self.threshold = threshold
        self._prev: _Signature | None = None
        self._recent: deque[float] = deque(maxlen=_HISTORY)

    def reset(self) -> None:
        """Forget the past (the next frame is never a cut)."""
        self._prev = None
        self._recent.clear()

    def update(self, rgb: np.ndarray) -> bool:
        """True if ``rgb`` ((H, W, 3) uint8 RGB) starts a new shot. The first frame is not a cut."""
        if self.threshold <= 0:
            return False
        sig = frame_signature(rgb)
        prev, self._prev = self._prev, sig
        if prev is None:
            return False
        score = cut_score(prev, sig)
        level = float(np.mean(self._recent)) if self._recent else 0.0
        is_cut = score >= self.threshold and score >= _RISE * level
        if is_cut:
            self._recent.clear()  # a new shot: its motion level is unknown yet
        else:
            self._recent.append(score)
        return is_cut
