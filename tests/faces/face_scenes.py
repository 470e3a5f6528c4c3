"""Synthetic scenes for the fvr.faces tests: the astronaut's head (skimage.data.astronaut(), a public-domain
photo) pasted, moved and zoomed on a textured canvas, with ground-truth landmarks; and scripted fake detectors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fvr.faces import Detections, transform_points

# The astronaut's head and shoulders in the 512x512 photo (y0, y1, x0, x1); her face is at about x 180-268,
# y 60-174, and these are its five landmarks as MTCNN finds them (left eye, right eye, nose, mouth l, mouth r).
HEAD = (20, 220, 125, 325)
PHOTO_LANDMARKS = np.array(
    [[203.86, 101.30], [246.39, 103.18], [224.27, 128.90], [201.82, 139.77], [244.91, 141.99]], np.float32
)


@dataclass(frozen=True)
class Face:
    """Where a pasted head is: its centre on the canvas and its scale relative to the photo."""

    cx: float
    cy: float
    scale: float = 0.6


class Studio:
    """Renders (H, W, 3) uint8 RGB frames of pasted heads on a background, with ground-truth landmarks."""

    def __init__(self, width: int = 400, height: int = 300, seed: int = 0):
        from skimage import data

        self.width, self.height = width, height
        self.photo = np.ascontiguousarray(data.astronaut())
        self.background = textured_background(width, height, seed)
        y0, y1, x0, x1 = HEAD
        self.head = self.photo[y0:y1, x0:x1]
        self.head_origin = np.array([x0, y0], np.float64)

    def matrix(self, face: Face) -> np.ndarray:
        """(2, 3) head-patch -> canvas matrix."""
        h, w = self.head.shape[:2]
        s = face.scale
        return np.array([[s, 0.0, face.cx - s * w / 2], [0.0, s, face.cy - s * h / 2]])

    def frame(self, faces: Sequence[Face], background: np.ndarray | None = None) -> np.ndarray:
        out = (self.background if background is None else background).copy()
        for face in faces:
            m = self.matrix(face)
            size = (self.width, self.height)
            patch = cv2.warpAffine(self.head, m, size, flags=cv2.INTER_LINEAR)
            mask = cv2.warpAffine(np.ones(self.head.shape[:2], np.float32), m, size, flags=cv2.INTER_LINEAR)
            out = (out * (1 - mask[..., None]) + patch * mask[..., None] + 0.5).astype(np.uint8)
        return out

    def landmarks(self, face: Face) -> np.ndarray:
        """(5, 2) true landmark positions of ``face`` on the canvas."""
        return transform_points(self.matrix(face), PHOTO_LANDMARKS.astype(np.float64) - self.head_origin)


def textured_background(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth colour blobs plus fine grain: texture for optical flow, nothing face-like."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 215, size=(6, 8, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 6, size=(height, width, 1)).astype(np.float32)
    return np.clip(smooth + grain, 0, 255).astype(np.uint8)


class ScriptedDetector:
    """A fake detector that returns, for the n-th call, the Detections ``script(n)`` gives."""

    name = "scripted"

    def __init__(self, script: Callable[[int], Detections]):
        self.script = script
        self.calls = 0

    def detect(self, rgb: np.ndarray) -> Detections:
        out = self.script(self.calls)
        self.calls += 1
        return out


class DroppingDetector:
    """Wraps a detector and loses every detection on the given call numbers (simulated misses)."""

    name = "dropping"

    def __init__(self, inner, drop: set[int]):
        self.inner, self.drop, self.calls = inner, drop, 0

    def detect(self, rgb: np.ndarray) -> Detections:
        n, self.calls = self.calls, self.calls + 1
        return Detections.empty() if n in self.drop else self.inner.detect(rgb)


def detections_of(landmarks: Sequence[np.ndarray], score: float = 0.99) -> Detections:
    """Detections for faces given by their landmarks, with boxes derived from them."""
    if not landmarks:
        return Detections.empty()
    lms = np.stack([np.asarray(lm, np.float32) for lm in landmarks])
    boxes = []
    for lm in lms:
        c = lm.mean(axis=0)
        half = 1.1 * np.linalg.norm(lm[1] - lm[0])
        boxes.append([c[0] - half, c[1] - 1.2 * half, c[0] + half, c[1] + 0.9 * half])
    return Detections(np.array(boxes), np.full(len(lms), score), lms)
