"""Classical background resampling for ``--upscale N``: the frame enlarged with OpenCV (lanczos, bicubic,
bilinear), or passed through at factor 1.

A *background* is a callable ``(H, W, 3) uint8 -> (H*N, W*N, 3) uint8``. Networks that up-sample whole frames
(``realesrgan``, ``compact``, super-resolution checkpoints) are models, built with the run's device by
:func:`fvr.models.backgrounds.make_background`; :data:`BACKGROUNDS` lists every built-in name (None: a network), so
that option parsers can offer them all. compose holds no networks.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import cv2
import numpy as np

from fvr.errors import ConfigError

Background = Callable[[np.ndarray], np.ndarray]
"""(H, W, 3) uint8 RGB -> (H*factor, W*factor, 3) uint8 RGB."""

# name -> OpenCV interpolation flag; None for the learned up-samplers (realesrgan, compact: fvr.models.backgrounds)
BACKGROUNDS: dict[str, int | None] = {
    "lanczos": cv2.INTER_LANCZOS4, "bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR, "realesrgan": None,
    "compact": None,
}


def _resize(rgb: np.ndarray, factor: int, interpolation: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (w * factor, h * factor), interpolation=interpolation)


def _passthrough(rgb: np.ndarray) -> np.ndarray:
    return rgb


def classical_background(method: str, factor: int) -> Background:
    """The OpenCV resampling ``method`` (lanczos | bicubic | bilinear) by integer ``factor``; factor 1 is a
    passthrough for any method (the frame itself, no copy)."""
    if factor < 1:
        raise ConfigError(f"upscale must be a positive integer, got {factor}")
    if factor == 1:
        return _passthrough
    interpolation = BACKGROUNDS.get(method)
    if interpolation is None:
        classical = ", ".join(k for k, v in BACKGROUNDS.items() if v is not None)
        raise ConfigError(f"{method!r} is not a classical resampling ({classical}); networks are built by "
                          f"fvr.models.backgrounds.make_background")
    return partial(_resize, factor=factor, interpolation=interpolation)


def upscale_frame(rgb: np.ndarray, factor: int, method: str = "lanczos") -> np.ndarray:
    """(H, W, 3) uint8 -> (H*factor, W*factor, 3) uint8 with classical resampling. factor 1 returns the frame
    itself (no copy). For a network, see :func:`fvr.models.backgrounds.upscale_frame`."""
    if method not in BACKGROUNDS:
        raise ConfigError(f"unknown background {method!r}; choose one of {', '.join(BACKGROUNDS)}")
    return classical_background(method, factor)(rgb)
