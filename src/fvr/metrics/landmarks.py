"""Pose/expression consistency from dlib's 68-point landmarks on aligned crops: LMD and TLME.

The 68-point predictor (iBUG 300-W layout: 0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes, 48-67 mouth) runs on
the fixed face box that dlib's HOG detector gives on FFHQ-aligned crops (:data:`fvr.metrics.identity.DLIB_BOX_512`),
the kind of box it was trained with; the same box for output and ground truth means that differences come from
the image content only.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from fvr.metrics.identity import _check_crop, _import_dlib, _model_path, dlib_rectangle

# outer eye corners of the 68-point layout (image-left eye's outer corner, image-right eye's outer corner)
OUTER_EYE_CORNERS = (36, 45)


class Landmarks68:
    """dlib ``shape_predictor_68_face_landmarks`` on an aligned crop; loaded on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sp = None

    def _load(self):
        if self._sp is None:
            with self._lock:
                if self._sp is None:
                    dlib = _import_dlib("68-point landmarks")
                    self._sp = dlib.shape_predictor(
                        _model_path("shape_predictor_68_face_landmarks.dat", "68-point landmarks")
                    )
        return self._sp

    def detect(self, crop: np.ndarray) -> np.ndarray:
        """(68, 2) float32 x, y in pixels of the aligned uint8 RGB crop (S, S, 3)."""
        c = _check_crop(crop)
        shape = self._load()(c, dlib_rectangle(c.shape[0]))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    __call__ = detect


def _check_landmarks(a: np.ndarray, b: np.ndarray, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != ndim or a.shape[-1] != 2:
        raise ValueError(f"landmark arrays must have equal shapes (..., K, 2) with {ndim} dims: {a.shape} vs {b.shape}")
    return a, b


def lmd(l_out: np.ndarray, l_gt: np.ndarray, *, normalise: bool = False) -> float:
    """Landmark distance LMD (↓): mean over the K points of ‖l_out_k − l_gt_k‖₂.

    l_out, l_gt: (K, 2) landmarks (68 for dlib) of the restored and ground-truth crop, in pixels. Units: pixels of
    the crop they were found in (the benchmark reports pixels of a 512 crop), or, with ``normalise=True``, a
    fraction of the ground truth's inter-ocular distance ‖l_gt[36] − l_gt[45]‖ (outer eye corners; needs K = 68).
    """
    a, b = _check_landmarks(l_out, l_gt, 2)
    d = float(np.linalg.norm(a - b, axis=1).mean())
    if normalise:
        if len(b) != 68:
            raise ValueError("normalised LMD needs the 68-point layout")
        iod = float(np.linalg.norm(b[OUTER_EYE_CORNERS[0]] - b[OUTER_EYE_CORNERS[1]]))
        return d / iod if iod > 0 else math.nan
    return d


def tlme(l_out_seq: np.ndarray, l_gt_seq: np.ndarray) -> float:
    """Temporal landmark error TLME (↓, pixels): mean over t = 1..T−1 and k of
    ‖(L̂ₜ,ₖ − L̂ₜ₋₁,ₖ) − (Lₜ,ₖ − Lₜ₋₁,ₖ)‖₂, L̂ the output's landmarks, L the ground truth's.

    l_out_seq, l_gt_seq: (T, K, 2) landmarks of consecutive frames of one face track. Only motion is compared, so
    a constant offset between output and ground truth costs nothing; jitter does. NaN when T < 2.
    """
    a, b = _check_landmarks(l_out_seq, l_gt_seq, 3)
    if len(a) < 2:
        return math.nan
    return float(np.linalg.norm(np.diff(a, axis=0) - np.diff(b, axis=0), axis=2).mean())
