"""Models given as a file path (``fvr restore --model PATH``, ``--background PATH``): one dispatch by file type.

* ``.onnx`` — any ONNX image restorer, run with onnxruntime (:mod:`fvr.models.loaders.onnx`);
* ``.safetensors`` written by ``fvr train`` (its metadata names an fvr architecture) — an fvr network;
* any other ``.safetensors``, ``.pth``, ``.pt``, ``.ckpt``, ``.bin`` — a third-party checkpoint (GFPGAN,
  RestoreFormer, CodeFormer, the ESRGAN family, ...) loaded with spandrel (:mod:`fvr.models.loaders.spandrel`;
  optional extra ``fvr[spandrel]``).

Every failure (missing file, unknown format, corrupt file, a checkpoint of the wrong kind) is a one-line
:class:`~fvr.errors.ConfigError` naming the file and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fvr.errors import ConfigError
from fvr.models.reference import ONNX_SUFFIXES

if TYPE_CHECKING:
    from fvr.models.base import Restorer

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


def _number(path: Path, options: dict[str, object], key: str) -> float | None:
    """Option ``key`` taken out of ``options`` as a number (None when absent); anything else is a one-line error."""
    value = options.pop(key, None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path}: {key} must be a number, got {value!r}")
    return float(value)


def restorer_from_file(name: str | Path, *, device: str = "cpu", **options: object) -> Restorer:
    """A face restorer from a model file, by type (see the module docstring). ``options`` go to the loader
    (ONNX: its I/O convention and extra inputs; spandrel: e.g. ``crop_size``, ``fidelity``; fvr weights:
    ``fidelity``, ``precision`` and, for pretrained priors, ``crop_size``)."""
    path = _existing(name)
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        from fvr.models.loaders.onnx import load_onnx_restorer

        return load_onnx_restorer(path, device=device, **options)
    if is_fvr_weights(path):
        from fvr.models.nets import architectures, restorer_from_weights

        fidelity, crop = _number(path, options, "fidelity"), _number(path, options, "crop_size")
        precision = str(options.pop("precision", "auto"))
        detail = _number(path, options, "detail")
        if options:
            raise ConfigError(f"{path}: options {', '.join(options)} cannot change a trained network")
        return restorer_from_weights(path, architectures(), device=device, fidelity=fidelity,
                                     crop_size=None if crop is None else int(crop), precision=precision,
                                     detail=detail)
    from fvr.models.loaders.spandrel import load_spandrel_restorer

    return load_spandrel_restorer(path, device=device, **options)
