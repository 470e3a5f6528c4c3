"""Frame up-samplers: one model kind for every network that enlarges a whole frame (``--background realesrgan``,
``compact`` or a super-resolution checkpoint), with one descriptor, one tiler and one uint8 <-> tensor conversion.

* :class:`UpsamplerSpec` states an up-sampler's contract in one place (as spandrel's ``ImageModelDescriptor``
  does): its native scale, the tile side and pad it runs with, whether it runs in float16.
* :func:`tiled` runs any (…, h, w) -> (…, h·s, w·s) call over spatial tiles with context; every tiled network in
  fvr (the up-samplers here, the whole-frame video models of :mod:`fvr.run.framewise`) goes through it.
* :class:`TiledUpsampler` is the runner: device, dtype and memory layout once, then (N, 3, h, w) tensors or
  (H, W, 3) uint8 frames in, x``scale`` out. The third-party networks subclass it
  (:class:`~fvr.models.thirdparty.realesrgan.model.RealESRGAN`,
  :class:`~fvr.models.thirdparty.srvgg.net.CompactUpsampler`, spandrel checkpoints).

:mod:`fvr.models.backgrounds` builds the background of a run from these by name.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fvr.errors import ConfigError

if TYPE_CHECKING:
    import torch

@dataclass(frozen=True)
class UpsamplerSpec:
    """A frame up-sampler's contract.

    name: for messages. scale: the network's native factor (output side / input side). tile: tile side in input
    pixels (0: the whole frame in one call). tile_pad: input pixels of context on each inner side of a tile, cut
    from its output. half: float16 weights and activations. Input and output: RGB in [0, 1].
    """

    name: str
    scale: int
    tile: int = 256
    tile_pad: int = 32
    half: bool = False

    def __post_init__(self) -> None:
        if self.tile < 0 or self.tile_pad < 0 or (0 < self.tile < 8):
            raise ConfigError(f"tile must be 0 or >= 8 and tile_pad >= 0, got tile={self.tile} "
                              f"tile_pad={self.tile_pad}")
        if self.scale < 1:
            raise ConfigError(f"{self.name}: scale must be >= 1, got {self.scale}")


# ------------------------------------------------------------------------------------------------------- tiling


def tile_splits(size: int, tile: int) -> list[tuple[int, int]]:
    """[start, stop) ranges covering ``size`` in ceil(size / tile) near-equal parts (no sliver at the end)."""
    n = max(1, math.ceil(size / tile))
    bounds = [round(i * size / n) for i in range(n + 1)]
    return list(itertools.pairwise(bounds))


def grid_splits(size: int, step: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of ``step`` pixels from 0 (the last one shorter): tiles on a fixed grid."""
    return [(a, min(a + step, size)) for a in range(0, size, step)]


def tiled(call: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, tile: int,
          tile_pad: int, *, grid: int = 0) -> torch.Tensor:
    """``call`` ((…, c, h, w) -> (…, c', h·scale, w·scale)) over spatial tiles of at most ``tile`` input pixels,
    each run with ``tile_pad`` pixels of context (clamped at the border) that are cut from its output. tile 0, or
    an image no larger than a tile, is one call.

    grid 0: near-equal tiles (:func:`tile_splits`); grid m > 0: tiles and pad on a grid of m pixels
    (:func:`grid_splits` with the tile rounded up to m), for networks that group pixels (pixel-unshuffle) and
    must see the same groups in a tile as on the whole frame. The result has the dtype and device of ``call``'s
    outputs."""
    import torch

    h, w = x.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        return call(x)
    s = scale
    if grid > 0:
        step, pad = -(-max(tile, grid) // grid) * grid, -(-max(tile_pad, 0) // grid) * grid
        rows, cols = grid_splits(h, step), grid_splits(w, step)
    else:
        pad = tile_pad
        rows, cols = tile_splits(h, tile), tile_splits(w, tile)
    out: torch.Tensor | None = None
    for y0, y1 in rows:
        for x0, x1 in cols:
            py0, py1, px0, px1 = max(y0 - pad, 0), min(y1 + pad, h), max(x0 - pad, 0), min(x1 + pad, w)
            part = call(x[..., py0:py1, px0:px1])
            if out is None:
                out = torch.empty((*part.shape[:-2], h * s, w * s), dtype=part.dtype, device=part.device)
            oy, ox = (y0 - py0) * s, (x0 - px0) * s
            out[..., y0 * s:y1 * s, x0 * s:x1 * s] = part[..., oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]
    assert out is not None  # at least one tile: h, w > tile > 0
    return out


# --------------------------------------------------------------------------------------------------- conversion


def rgb_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 in [0, 1] on the CPU (the frame itself is not copied twice)."""
    import torch

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().mul_(1.0 / 255.0)


def tensor_to_rgb(y: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] (clamped by the caller) -> (H, W, 3) uint8 RGB, rounded; ``y`` is scaled in
    place."""
    import torch

    return y.mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


# ------------------------------------------------------------------------------------------------------- runner


class TiledUpsampler:
    """A frame up-sampling network run tiled on a device. ``net``: (N, 3, h, w) -> (N, 3, h·s, w·s), s =
    ``spec.scale`` (subclasses with another native call override :meth:`forward` / :meth:`finish`).

    device: torch device (cuda without a GPU is a one-line ConfigError). channels_last: activation layout (None =
    channels_last on the CPU, where it is faster). move: put ``net`` on the device, dtype and layout (in place);
    False for a network that is already there (spandrel moves its own).
    """

    def __init__(self, net: Any, spec: UpsamplerSpec, device: str | torch.device = "cpu", *,
                 channels_last: bool | None = None, move: bool = True):
        import torch

        self.spec = spec
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device cuda was asked for but torch sees no CUDA device")
        self.dtype = torch.float16 if spec.half else torch.float32
        self.channels_last = (self.device.type == "cpu") if channels_last is None else bool(channels_last)
        if move:
            net = net.eval().to(self.device, self.dtype)
            if self.channels_last:
                net = net.to(memory_format=torch.channels_last)
            net.requires_grad_(False)
        else:
            self.channels_last = False
        self.net = net

    @property
    def scale(self) -> int:
        return self.spec.scale

    @property
    def tile(self) -> int:
        return self.spec.tile

    @property
    def tile_pad(self) -> int:
        return self.spec.tile_pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One network call on a tile already on the device: (N, 3, h, w) -> (N, 3, h·r, w·r)."""
        return self.net(x)

    def native_scale(self) -> int:
        """r, the factor of :meth:`forward` (the tiler's scale); :meth:`finish` brings it to ``spec.scale``."""
        return self.spec.scale

    def finish(self, y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The assembled tiles at the native scale -> the output at ``size`` (h·scale, w·scale)."""
        return y

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        x = x.to(self.device, self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.forward(x).float()

    def _upscale(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an (N, 3, h, w) tensor, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        y = tiled(self._run, x, self.native_scale(), self.spec.tile, self.spec.tile_pad)
        return self.finish(y, (h * self.spec.scale, w * self.spec.scale)).clamp_(0.0, 1.0).to(x.device)

    def upscale_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) float in [0, 1] -> (N, 3, s·h, s·w) float32 in [0, 1] (clamped), on ``x``'s device.

        Runs under ``torch.inference_mode``: the result is an inference tensor (clone it to modify it in place).
        """
        import torch

        with torch.inference_mode():
            return self._upscale(x)

    def upscale(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (s·H, s·W, 3) uint8 RGB."""
        import torch

        with torch.inference_mode():
            return tensor_to_rgb(self._upscale(rgb_to_tensor(rgb))[0])
