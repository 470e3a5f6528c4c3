"""Background handling: passthrough, or classical up-sampling for ``--upscale N``."""

from __future__ import annotations

import cv2
import numpy as np

from fvr.errors import ConfigError

BACKGROUNDS = {"lanczos": cv2.INTER_LANCZOS4, "bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}


def upscale_frame(rgb: np.ndarray, factor: int, method: str = "lanczos") -> np.ndarray:
    """(H, W, 3) uint8 -> (H*factor, W*factor, 3) uint8. factor 1 returns the frame itself (no copy)."""
    if method not in BACKGROUNDS:
        raise ConfigError(f"unknown background {method!r}; choose one of {', '.join(BACKGROUNDS)}")
    if factor < 1:
        raise ConfigError(f"upscale must be a positive integer, got {factor}")
    if factor == 1:
        return rgb
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (w * factor, h * factor), interpolation=BACKGROUNDS[method])
