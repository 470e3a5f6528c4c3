"""Synthetic moving-face clips from ``skimage.data.astronaut()`` (a public-domain photo), for the demo and tests.

A smooth virtual camera (pan, zoom, roll) moves over the photo; :func:`degrade_frame` applies blur, down-sampling,
fresh per-frame noise and JPEG, the kind of damage restorers face in real footage.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import cv2
import numpy as np

# Centre of the astronaut's face in the 512x512 photo (from MTCNN's box), and its width in pixels.
_FACE_CENTRE = (224.0, 118.0)


def _astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def camera_matrix(t: float, size: int, fov: float = 200.0) -> np.ndarray:
    """(2, 3) photo -> frame affine of a smooth virtual camera at phase t in [0, 1): pan, zoom and roll."""
    phase = 2.0 * math.pi * t
    cx = _FACE_CENTRE[0] + 22.0 * math.sin(phase)
    cy = _FACE_CENTRE[1] + 12.0 * math.sin(2.0 * phase) + 8.0
    zoom = size / (fov * (1.0 + 0.12 * math.sin(phase + 1.0)))
    angle = 7.0 * math.sin(1.3 * phase)
    m = cv2.getRotationMatrix2D((cx, cy), angle, zoom)
    m[:, 2] += np.array([size / 2.0 - cx, size / 2.0 - cy])
    return m


def moving_face_frames(n: int, size: int = 256, fov: float = 200.0) -> Iterator[np.ndarray]:
    """n clean frames, (size, size, 3) uint8 RGB, of the astronaut's face under a smooth camera motion."""
    photo = _astronaut()
    for i in range(n):
        m = camera_matrix(i / max(n, 1), size, fov)
        yield cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def degrade_frame(
    rgb: np.ndarray, rng: np.random.Generator, *, scale: int = 2, blur: float = 1.6, noise: float = 6.0,
    jpeg: int = 45,
) -> np.ndarray:
    """Blur (Gaussian sigma in HQ pixels), area down-sample by ``scale``, add fresh Gaussian noise (sigma in 0-255
    units, different every frame: the flicker restorers must not amplify) and JPEG-compress. uint8 in and out."""
    out = cv2.GaussianBlur(rgb, (0, 0), blur) if blur > 0 else rgb
    h, w = out.shape[:2]
    out = cv2.resize(out, (w // scale, h // scale), interpolation=cv2.INTER_AREA).astype(np.float32)
    out += rng.normal(0.0, noise, size=out.shape[:2])[..., None]
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg])
    if not ok:
        return out
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:  # cvtColor would refuse the empty image with the same exception type
        raise cv2.error("OpenCV could not decode the JPEG it had just encoded")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
