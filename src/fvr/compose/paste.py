"""Paste restored face crops back into the frame.

Each face is blended as a *residual*: frame + strength · weight · mask · warp⁻¹(restored − crop), where ``crop`` is
the aligned crop the restorer received and ``weight`` the face's own paste weight (1, or less where its track fades
in or out: :class:`fvr.run.pipeline.TrackFade`). Where the restorer changes nothing the frame is untouched bit for bit
(no resampling loss from the crop round trip, whatever the crop size), and only the ROI around each face is warped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FacePaste:
    """One restored face to paste.

    matrix: (2, 3) float64 affine mapping frame pixels -> crop pixels (the alignment used to cut ``original``).
    restored, original: (S, S, 3) float32 RGB in [0, 1].
    weight: this face's paste weight in [0, 1], multiplying ``strength`` (below 1 on the frames where its track
        fades in or out); 1 pastes it exactly as before weights existed.
    strength: this face's own strength in [0, 1], replacing the one :func:`paste_faces` is given; None: that one.
    track: the face track it belongs to (for the figures a run records; -1: not known).
    """

    matrix: np.ndarray
    restored: np.ndarray
    original: np.ndarray
    weight: float = 1.0
    strength: float | None = None
    track: int = -1

    def amount(self, strength: float) -> float:
        """The fraction of the restored face pasted: its own strength (or the run's ``strength``) times its
        weight."""
        return (strength if self.strength is None else self.strength) * self.weight

    @property
    def scale(self) -> float:
        """Crop pixels per frame pixel (large = small face in the frame)."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))


def match_color(restored: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift/scale each Lab channel of ``restored`` to the masked mean/std of ``reference``.

    (S, S, 3) float32 [0, 1] RGB inputs, (S, S) float32 weights -> (S, S, 3) float32 [0, 1]. Restorers that shift
    skin tone or white balance are pulled back to the input's colours without touching their detail.
    """
    w = mask[..., None] / max(float(mask.sum()), 1e-6)
    src = cv2.cvtColor(restored, cv2.COLOR_RGB2LAB)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB)
    mu_s, mu_r = (src * w).sum((0, 1)), (ref * w).sum((0, 1))
    sd_s = np.sqrt(((src - mu_s) ** 2 * w).sum((0, 1))) + 1e-3
    sd_r = np.sqrt(((ref - mu_r) ** 2 * w).sum((0, 1)))
    gain = sd_r / sd_s
    gain[0] = 1.0  # keep the restorer's luminance contrast (its detail); match lightness level and chroma only
    out = (src - mu_s) * gain + mu_r
    return np.clip(cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB), 0.0, 1.0)


def _roi(inv: np.ndarray, size: int, height: int, width: int) -> tuple[int, int, int, int] | None:
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def paste_box(face: FacePaste, height: int, width: int) -> tuple[int, int, int, int] | None:
    """The frame region (x0, y0, x1, y1), clipped to a ``height`` x ``width`` frame, that pasting ``face`` can
    change: the bounding box of its crop mapped back into the frame (None when it lies outside)."""
    return _roi(cv2.invertAffineTransform(face.matrix), face.restored.shape[0], height, width)


def paste_faces(
    frame: np.ndarray, faces: Sequence[FacePaste], mask: np.ndarray, *, strength: float = 1.0,
    color_match: bool = False,
) -> np.ndarray:
    """Blend restored faces into ``frame`` ((H, W, 3) uint8 RGB) and return a new uint8 frame.

    mask: (S, S) float32 in [0, 1], in crop space. Each face is pasted at ``strength * face.weight``. Overlapping
    faces are pasted smallest first, so the nearest (largest) face ends on top.
    """
    out = frame.copy()
    h, w = frame.shape[:2]
    for face in sorted(faces, key=lambda f: -f.scale):
        size = face.restored.shape[0]
        inv = cv2.invertAffineTransform(face.matrix)
        box = _roi(inv, size, h, w)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        restored = match_color(face.restored, face.original, mask) if color_match else face.restored
        # The residual is weighted by the mask in crop space, before the warp (premultiplied alpha): the warp then
        # moves 3 channels instead of 4 and the frame-sized ROI needs no separate alpha pass.
        payload = np.subtract(restored, face.original, dtype=np.float32)
        payload *= (mask * np.float32(255.0 * float(face.amount(strength))))[..., None]  # in place: 4x faster
        m = face.matrix.astype(np.float64).copy()
        m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)  # frame->crop for ROI-local pixel coordinates
        warped = cv2.warpAffine(
            payload, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
        roi = out[y0:y1, x0:x1]
        warped += roi
        warped += 0.5
        np.clip(warped, 0, 255, out=warped)
        roi[...] = warped  # the cast truncates: with the + 0.5, rounding to nearest
    return out
