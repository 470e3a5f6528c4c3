"""The background of a run by name: ``--background lanczos|bicubic|bilinear`` (classical resampling,
:mod:`fvr.compose.background`), ``realesrgan`` (x4plus), ``compact`` (realesr-animevideov3) or a super-resolution
checkpoint file, up-sampling each frame by ``--upscale``; networks are built once, on the run's device, as
:class:`~fvr.models.upsample.TiledUpsampler` s, and :class:`FrameBackground` brings their native scale to the
factor asked for."""

from __future__ import annotations

import cv2
import numpy as np

from fvr.compose.background import BACKGROUNDS, Background, classical_background
from fvr.errors import ConfigError
from fvr.models.reference import ModelRef
from fvr.models.upsample import TiledUpsampler

DEFAULT_TILE = {"compact": 512}
"""Tile side (input pixels) when :func:`make_background` gets ``tile=None``; 256 for the other networks. The compact
network is cheap per pixel, so the pad's overlap is a larger share of its cost and bigger tiles pay off."""


class FrameBackground:
    """An up-sampler as the background of ``--upscale factor``: (H, W, 3) uint8 -> (H·factor, W·factor, 3) uint8.

    The network runs once at its native scale s; a smaller factor area-down-samples its result (more detail than
    classical resampling, at the network's cost), a larger one up-samples the rest with Lanczos (the network is
    not applied twice: s² times the work for detail the input does not hold).
    """

    def __init__(self, upsampler: TiledUpsampler, factor: int):
        self.upsampler = upsampler
        self.factor = factor

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        up = self.upsampler.upscale(rgb)
        scale = self.upsampler.scale
        if self.factor == scale:
            return up
        h, w = rgb.shape[:2]
        interpolation = cv2.INTER_AREA if self.factor < scale else cv2.INTER_LANCZOS4
        return cv2.resize(up, (w * self.factor, h * self.factor), interpolation=interpolation)


def check_background(method: str, factor: int) -> None:
    """One-line ConfigError for an unknown background or a factor below 1 (before any network is loaded)."""
    if method not in BACKGROUNDS and not ModelRef.parse(method).is_file:
        raise ConfigError(f"unknown background {method!r}; choose one of {', '.join(BACKGROUNDS)} or a "
                          f"super-resolution checkpoint file (.pth/.safetensors, with fvr[spandrel])")
    if factor < 1:
        raise ConfigError(f"upscale must be a positive integer, got {factor}")


def make_background(method: str = "lanczos", factor: int = 1, *, tile: int | None = None, tile_pad: int = 32,
                    device: str = "cpu", half: bool = False) -> Background:
    """The background up-sampler for ``method`` and integer ``factor``, built once per run (a network is loaded
    once; call the result per frame).

    factor 1 is a passthrough (the frame itself, no copy, no model loaded). Classical methods (lanczos, bicubic,
    bilinear) resample with OpenCV; ``realesrgan`` (x4plus), ``compact`` (realesr-animevideov3) and checkpoint
    files are networks on ``device`` (tile None = :data:`DEFAULT_TILE`, else 256; ``tile_pad``, ``half``: see
    :class:`UpsamplerSpec`). The built-in networks raise a one-line :class:`ConfigError` when their weights
    package is not installed.
    """
    check_background(method, factor)
    tile = DEFAULT_TILE.get(method, 256) if tile is None else tile
    if factor == 1 or BACKGROUNDS.get(method) is not None:
        return classical_background(method, factor)
    if method == "compact":
        from fvr.models.thirdparty.srvgg import net as srvgg

        scale = factor if factor in srvgg.ANIMEVIDEOV3_SCALES else max(srvgg.ANIMEVIDEOV3_SCALES)
        network = srvgg.load_animevideov3(scale)
        return FrameBackground(srvgg.CompactUpsampler(network, device, tile=tile, tile_pad=tile_pad, half=half),
                               factor)
    if method == "realesrgan":
        from fvr.models.thirdparty.realesrgan.model import RealESRGAN

        return FrameBackground(RealESRGAN(device, tile=tile, tile_pad=tile_pad, half=half), factor)
    from fvr.models.loaders.spandrel import spandrel_upsampler

    return FrameBackground(spandrel_upsampler(method, tile=tile, tile_pad=tile_pad, device=device), factor)


def upscale_frame(rgb: np.ndarray, factor: int, method: str = "lanczos") -> np.ndarray:
    """(H, W, 3) uint8 -> (H·factor, W·factor, 3) uint8. factor 1 returns the frame itself (no copy).

    For many frames use :func:`make_background` once instead: with a network this call loads it.
    """
    return make_background(method, factor)(rgb)
