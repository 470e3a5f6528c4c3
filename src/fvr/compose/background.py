"""Background handling: passthrough, classical up-sampling, or Real-ESRGAN for ``--upscale N``.

A *background* is a callable ``(H, W, 3) uint8 -> (H*N, W*N, 3) uint8``. :func:`make_background` builds one per
run (for ``realesrgan`` it loads the network once, so build it once and call it per frame); there is no global
state. :func:`upscale_frame` is the one-shot form.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import cv2
import numpy as np

from fvr.errors import ConfigError

Background = Callable[[np.ndarray], np.ndarray]
"""(H, W, 3) uint8 RGB -> (H*factor, W*factor, 3) uint8 RGB."""

# name -> OpenCV interpolation flag; None for the learned up-sampler (realesrgan)
BACKGROUNDS: dict[str, int | None] = {
    "lanczos": cv2.INTER_LANCZOS4, "bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR, "realesrgan": None,
}


def _check(factor: int, method: str) -> None:
    if method not in BACKGROUNDS:
        raise ConfigError(f"unknown background {method!r}; choose one of {', '.join(BACKGROUNDS)}")
    if factor < 1:
        raise ConfigError(f"upscale must be a positive integer, got {factor}")


def _resize(rgb: np.ndarray, factor: int, interpolation: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (w * factor, h * factor), interpolation=interpolation)


def _passthrough(rgb: np.ndarray) -> np.ndarray:
    return rgb


class RealESRGANBackground:
    """Real-ESRGAN x4plus on the whole frame (tiled), then resized to the asked factor.

    The network is x4 only: factor 4 runs it once; a smaller factor (2, 3) runs it and area-down-samples the x4
    result (more detail than classical x2, at the x4 network's cost); a larger factor (5..8) runs it and up-samples
    the rest with Lanczos (the network is not applied twice: x16 work for detail the input does not hold).
    """

    def __init__(self, factor: int, *, tile: int = 256, tile_pad: int = 32, device: str = "cpu",
                 half: bool = False):
        from fvr.models.realesrgan import RealESRGAN

        self.factor = factor
        self.upsampler = RealESRGAN(device, tile=tile, tile_pad=tile_pad, half=half)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        up = self.upsampler.upscale(rgb)
        if self.factor == self.upsampler.scale:
            return up
        h, w = rgb.shape[:2]
        interpolation = cv2.INTER_AREA if self.factor < self.upsampler.scale else cv2.INTER_LANCZOS4
        return cv2.resize(up, (w * self.factor, h * self.factor), interpolation=interpolation)


def make_background(method: str = "lanczos", factor: int = 1, *, tile: int = 256, tile_pad: int = 32,
                    device: str = "cpu", half: bool = False) -> Background:
    """The background up-sampler for ``method`` and integer ``factor``.

    factor 1 is a passthrough (the frame itself, no copy, no model loaded). ``tile``/``tile_pad``/``device``/``half``
    only matter for ``realesrgan`` (see :class:`fvr.models.realesrgan.RealESRGAN`), which raises a one-line
    :class:`ConfigError` when its weights package is not installed.
    """
    _check(factor, method)
    if factor == 1:
        return _passthrough
    interpolation = BACKGROUNDS[method]
    if interpolation is None:
        return RealESRGANBackground(factor, tile=tile, tile_pad=tile_pad, device=device, half=half)
    return partial(_resize, factor=factor, interpolation=interpolation)


def upscale_frame(rgb: np.ndarray, factor: int, method: str = "lanczos") -> np.ndarray:
    """(H, W, 3) uint8 -> (H*factor, W*factor, 3) uint8. factor 1 returns the frame itself (no copy).

    For many frames use :func:`make_background` once instead: with ``realesrgan`` this call loads the network.
    """
    return make_background(method, factor)(rgb)
