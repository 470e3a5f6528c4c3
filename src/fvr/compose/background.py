"""Background handling: passthrough, classical up-sampling, Real-ESRGAN or a compact network for ``--upscale N``.

A *background* is a callable ``(H, W, 3) uint8 -> (H*N, W*N, 3) uint8``. :func:`make_background` builds one per
run (for ``realesrgan`` and ``compact`` it loads the network once, so build it once and call it per frame); there
is no global state. :func:`upscale_frame` is the one-shot form.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import cv2
import numpy as np

from fvr.errors import ConfigError

Background = Callable[[np.ndarray], np.ndarray]
"""(H, W, 3) uint8 RGB -> (H*factor, W*factor, 3) uint8 RGB."""

# name -> OpenCV interpolation flag; None for the learned up-samplers (realesrgan, compact)
BACKGROUNDS: dict[str, int | None] = {
    "lanczos": cv2.INTER_LANCZOS4, "bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR, "realesrgan": None,
    "compact": None,
}
DEFAULT_TILE = {"compact": 512}
"""Tile side (input pixels) when ``make_background`` gets ``tile=None``; 256 for the other networks. The compact
network is cheap per pixel, so the pad's overlap is a larger share of its cost and bigger tiles pay off."""


def _check(factor: int, method: str) -> None:
    from fvr.models.files import is_model_file

    if method not in BACKGROUNDS and not is_model_file(method):
        raise ConfigError(f"unknown background {method!r}; choose one of {', '.join(BACKGROUNDS)} or a super-resolution "
                          f"checkpoint file (.pth/.safetensors, with fvr[spandrel])")
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


class CompactBackground:
    """realesr-animevideov3 (SRVGGNetCompact, Real-ESRGAN's fast anime-video model) on the whole frame, tiled.

    A fast learned alternative to Lanczos for real time, trained on animation: not a face model, and not as
    faithful to photographs as x4plus. Factor 2, 3 and 4 use the weights package's UP2X/UP3X/UP4X graph (one x4
    network; the x2/x3 graphs bicubic-resize its x4 output, see :mod:`fvr.models.srvgg`), so every factor costs
    about the same; a larger factor runs x4 and up-samples the rest with Lanczos. tile / tile_pad / device / half: see
    :class:`fvr.models.srvgg.CompactUpsampler` (a pad >= the receptive radius, 18, gives the untiled result).
    """

    def __init__(self, factor: int, *, tile: int = 512, tile_pad: int | None = None, device: str = "cpu",
                 half: bool = False):
        from fvr.models import srvgg

        self.factor = factor
        scale = factor if factor in srvgg.ANIMEVIDEOV3_SCALES else max(srvgg.ANIMEVIDEOV3_SCALES)
        net = srvgg.load_animevideov3(scale)
        self.upsampler = srvgg.CompactUpsampler(net, device, tile=tile, tile_pad=tile_pad, half=half)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        up = self.upsampler.upscale(rgb)
        if self.factor == self.upsampler.scale:
            return up
        h, w = rgb.shape[:2]
        return cv2.resize(up, (w * self.factor, h * self.factor), interpolation=cv2.INTER_LANCZOS4)


def make_background(method: str = "lanczos", factor: int = 1, *, tile: int | None = None, tile_pad: int = 32,
                    device: str = "cpu", half: bool = False) -> Background:
    """The background up-sampler for ``method`` and integer ``factor``.

    factor 1 is a passthrough (the frame itself, no copy, no model loaded). ``tile``/``tile_pad``/``device``/``half``
    only matter for the networks: ``realesrgan`` (see :class:`fvr.models.realesrgan.RealESRGAN`), ``compact`` (see
    :class:`CompactBackground`) and checkpoint files; tile None = the method's default (:data:`DEFAULT_TILE`, else
    256). Both built-in networks raise a one-line :class:`ConfigError` when their weights package is not installed.
    """
    _check(factor, method)
    tile = DEFAULT_TILE.get(method, 256) if tile is None else tile
    if factor == 1:
        return _passthrough
    if method not in BACKGROUNDS:  # a checkpoint file (checked by _check)
        from fvr.models.files import background_from_file

        return background_from_file(method, factor, tile=tile, tile_pad=tile_pad, device=device)
    if method == "compact":
        return CompactBackground(factor, tile=tile, tile_pad=tile_pad, device=device, half=half)
    interpolation = BACKGROUNDS[method]
    if interpolation is None:
        return RealESRGANBackground(factor, tile=tile, tile_pad=tile_pad, device=device, half=half)
    return partial(_resize, factor=factor, interpolation=interpolation)


def upscale_frame(rgb: np.ndarray, factor: int, method: str = "lanczos") -> np.ndarray:
    """(H, W, 3) uint8 -> (H*factor, W*factor, 3) uint8. factor 1 returns the frame itself (no copy).

    For many frames use :func:`make_background` once instead: with ``realesrgan`` this call loads the network.
    """
    return make_background(method, factor)(rgb)
