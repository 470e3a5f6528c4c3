"""Models given as a file path (``fvr restore --model PATH``, ``--background PATH``): one dispatch by file type.

* ``.onnx`` — any ONNX image restorer, run with onnxruntime (:mod:`fvr.models.onnx_model`);
* ``.safetensors`` written by ``fvr train`` (its metadata names an fvr architecture) — an fvr network;
* any other ``.safetensors``, ``.pth``, ``.pt``, ``.ckpt``, ``.bin`` — a third-party checkpoint (GFPGAN,
  RestoreFormer, CodeFormer, the ESRGAN family, ...) loaded with spandrel (:mod:`fvr.models.spandrel_model`;
  optional extra ``fvr[spandrel]``).

Every failure (missing file, unknown format, corrupt file, a checkpoint of the wrong kind) is a one-line
:class:`~fvr.errors.ConfigError` naming the file and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fvr.errors import ConfigError

if TYPE_CHECKING:
    from fvr.compose.background import Background
    from fvr.models.base import Restorer

ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def is_model_file(name: str) -> bool:
    """Whether ``name`` (a --model / --background value) names a file rather than a registry entry."""
    return Path(name).suffix.lower() in ONNX_SUFFIXES + CHECKPOINT_SUFFIXES


def _existing(name: str | Path) -> Path:
    path = Path(name)
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    return path


def is_fvr_weights(path: Path) -> bool:
    """A safetensors file written by ``fvr train`` / shipped by fvr (its metadata names an architecture)."""
    if path.suffix.lower() != ".safetensors":
        return False
    from fvr.models.nets.core import read_metadata

    return "arch" in read_metadata(path)


def restorer_from_file(name: str | Path, *, device: str = "cpu", **options: object) -> Restorer:
    """A face restorer from a model file, by type (see the module docstring). ``options`` go to the loader
    (ONNX: its I/O convention and extra inputs; spandrel: e.g. ``crop_size``, ``fidelity``; fvr weights:
    ``fidelity``, ``precision`` and, for pretrained priors, ``crop_size``)."""
    path = _existing(name)
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        from fvr.models.onnx_model import load_onnx_restorer

        return load_onnx_restorer(path, device=device, **options)
    if is_fvr_weights(path):
        from fvr.models.nets import architectures, restorer_from_weights

        fidelity, crop = options.pop("fidelity", None), options.pop("crop_size", None)
        precision = str(options.pop("precision", "auto"))
        detail = options.pop("detail", None)
        if options:
            raise ConfigError(f"{path}: options {', '.join(options)} cannot change a trained network")
        return restorer_from_weights(path, architectures(), device=device, fidelity=fidelity, crop_size=crop,
                                     precision=precision, detail=None if detail is None else float(detail))
    from fvr.models.spandrel_model import load_spandrel_restorer

    return load_spandrel_restorer(path, device=device, **options)


def background_from_file(name: str | Path, factor: int, *, tile: int = 256, tile_pad: int = 32,
                         device: str = "cpu") -> Background:
    """A whole-frame up-sampler ((H, W, 3) uint8 -> (H·factor, W·factor, 3) uint8) from a super-resolution
    checkpoint (spandrel: the ESRGAN family, SwinIR, ...), tiled."""
    path = _existing(name)
    from fvr.models.spandrel_model import spandrel_background

    return spandrel_background(path, factor, tile=tile, tile_pad=tile_pad, device=device)
