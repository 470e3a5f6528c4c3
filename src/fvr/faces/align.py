"""Alignment: the similarity transform that maps a face's five landmarks onto the FFHQ template, and warping.

Matrices are (2, 3) float64 affine maps acting on column vectors (x, y, 1), in OpenCV's convention: a frame -> crop
matrix ``m`` sends frame pixel p to crop pixel ``m[:, :2] @ p + m[:, 2]``.
"""

from __future__ import annotations

import cv2
import numpy as np

from fvr.errors import ConfigError

# The 5-point template of FFHQ-aligned 512x512 faces (left eye, right eye, nose, mouth left, mouth right), as used
# by the usual face restoration models; scaling it keeps their crop geometry at any crop size.
FFHQ_TEMPLATE_512: np.ndarray = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float32,
)
FFHQ_TEMPLATE_512.setflags(write=False)

BORDERS = {
    "reflect": cv2.BORDER_REFLECT_101,
    "replicate": cv2.BORDER_REPLICATE,
    "constant": cv2.BORDER_CONSTANT,
}

# Bilinear sampling aliases once it skips pixels; below this crop/frame scale the source region is first
# area-averaged down to about crop resolution.
_AREA_BELOW = 0.5


def face_template(size: int) -> np.ndarray:
    """The FFHQ template for a ``size`` x ``size`` crop: (5, 2) float32 crop pixels.

    Scaled by size / 512 as the restoration models' own pre-processing does (not about pixel centres), so crops
    match what those models were trained on.
    """
    if size <= 0:
        raise ConfigError(f"crop size must be positive, got {size}")
    return FFHQ_TEMPLATE_512 * np.float32(size / 512.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping ``src`` to ``dst``.

    src, dst: (N, 2) points, N >= 2. Returns (2, 3) float64. Umeyama's closed form: deterministic and a smooth
    function of the points, so smoothed landmarks give smoothly moving crops (unlike RANSAC-based estimators).
    Raises ValueError if ``src`` has all its points at one place.
    """
    s = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    d = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if len(s) != len(d) or len(s) < 2:
        raise ValueError(f"similarity_transform needs two equal sets of >= 2 points, got {len(s)} and {len(d)}")
    mu_s, mu_d = s.mean(axis=0), d.mean(axis=0)
    sc, dc = s - mu_s, d - mu_d
    var_s = float((sc**2).sum() / len(s))
    if var_s <= 1e-12:
        raise ValueError("similarity_transform: the source points coincide")
    cov = dc.T @ sc / len(s)
    u, sing, vt = np.linalg.svd(cov)
    # Force a proper rotation: a reflection would mirror the face.
    flip = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ np.diag(flip) @ vt
    scale = float((sing * flip).sum() / var_s)
    m = np.empty((2, 3), dtype=np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(2, 3) float64 frame -> crop matrix putting ``landmarks`` ((5, 2) frame pixels) on the size x size template."""
    return similarity_transform(landmarks, face_template(size))


def invert_affine(m: np.ndarray) -> np.ndarray:
    """The inverse of a (2, 3) affine matrix, (2, 3) float64 (e.g. crop -> frame from frame -> crop)."""
    m = np.asarray(m, dtype=np.float64)
    a_inv = np.linalg.inv(m[:, :2])
    out = np.empty((2, 3), dtype=np.float64)
    out[:, :2] = a_inv
    out[:, 2] = -a_inv @ m[:, 2]
    return out


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The (2, 3) matrix of ``outer`` after ``inner`` (apply inner first)."""
    o = np.asarray(outer, dtype=np.float64)
    i = np.asarray(inner, dtype=np.float64)
    out = np.empty((2, 3), dtype=np.float64)
    out[:, :2] = o[:, :2] @ i[:, :2]
    out[:, 2] = o[:, :2] @ i[:, 2] + o[:, 2]
    return out


def transform_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) matrix to points (..., 2). Same shape; the input's float dtype (float64 for integers)."""
    p = np.asarray(pts)
    out = p.astype(np.float64) @ np.asarray(m, dtype=np.float64)[:, :2].T + np.asarray(m, dtype=np.float64)[:, 2]
    return out.astype(p.dtype) if np.issubdtype(p.dtype, np.floating) else out


def affine_scale(m: np.ndarray) -> float:
    """The (geometric mean) scale factor of a (2, 3) matrix: crop pixels per frame pixel for an align matrix."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(m, dtype=np.float64)[:, :2]))))


def warp_to_crop(rgb: np.ndarray, m: np.ndarray, size: int, *, border: str = "reflect") -> np.ndarray:
    """Cut the aligned ``size`` x ``size`` crop that ``m`` (frame -> crop) defines.

    rgb: (H, W, C) uint8 or float32. Returns (size, size, C) of the same dtype. Bilinear sampling; when the crop
    is less than half the resolution of the frame's face (a big face into a small crop), the face region is
    area-averaged down to about crop resolution first, since bilinear alone would alias (shimmering crops).
    border: "reflect" (mirror, no repeated edge row), "replicate" or "constant" (black) outside the frame.
    """
    if border not in BORDERS:
        raise ConfigError(f"unknown border mode {border!r}; choose one of: {', '.join(BORDERS)}")
    m = np.asarray(m, dtype=np.float64)
    if affine_scale(m) < _AREA_BELOW:
        rgb, m = _area_prefilter(rgb, m, size)
    return cv2.warpAffine(
        rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=BORDERS[border], borderValue=(0, 0, 0, 0)
    )


def _area_prefilter(rgb: np.ndarray, m: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Shrink the part of ``rgb`` that the crop sees to about crop resolution (INTER_AREA) and return it with the
    matrix adjusted to it. Only the crop's footprint is resized, so the cost does not depend on the frame size.

    The region is clipped to the frame only, so border handling still happens at the frame's real edges.
    """
    h, w = rgb.shape[:2]
    inv = invert_affine(m)
    corners = transform_points(inv, np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64))
    margin = 2.0 / affine_scale(m)  # a couple of crop pixels, for the bilinear kernel at the crop edge
    x0 = int(np.clip(np.floor(corners[:, 0].min() - margin), 0, w - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min() - margin), 0, h - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max() + margin), x0 + 1, w))
    y1 = int(np.clip(np.ceil(corners[:, 1].max() + margin), y0 + 1, h))
    region = rgb[y0:y1, x0:x1]
    k = affine_scale(m)
    rw, rh = x1 - x0, y1 - y0
    nw, nh = max(1, int(round(rw * k))), max(1, int(round(rh * k)))
    small = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
    sx, sy = nw / rw, nh / rh
    # small pixel q -> frame pixel p: p = (q + 0.5) / s - 0.5 + origin (pixel-centre convention of cv2.resize)
    to_frame = np.array([[1.0 / sx, 0.0, 0.5 / sx - 0.5 + x0], [0.0, 1.0 / sy, 0.5 / sy - 0.5 + y0]])
    return small, compose_affine(m, to_frame)
