"""Third-party checkpoints (GFPGAN, RestoreFormer, CodeFormer, the ESRGAN family, SwinIR, ...) loaded with spandrel.

``fvr restore --model FILE.pth`` and ``--background FILE.pth`` (also ``.safetensors``, ``.pt``, ``.ckpt``,
``.bin``) reach this module through :mod:`fvr.models.loaders.files`. It needs the optional extra ``fvr[spandrel]``
(spandrel and spandrel_extra_arches; spandrel needs torchvision, which must match the installed torch).

Safety: the file is read here, before spandrel sees it, and only as data — ``safetensors.torch.load_file`` for
``.safetensors`` and ``torch.load(..., weights_only=True)`` for the pickle formats — so a checkpoint that holds
pickled Python objects other than tensors and plain containers is refused, never unpickled. spandrel then only
detects the architecture from the tensor names/shapes and builds the network.

What a checkpoint becomes, by spandrel's ``purpose``:

* ``FaceSR`` (GFPGAN, RestoreFormer, CodeFormer): a per-frame :class:`SpandrelRestorer` on the aligned crops at
  the model's size (512). These networks are trained on [-1, 1] images; spandrel 0.4's descriptor call passes
  its [0, 1] input to GFPGAN and CodeFormer unchanged (only its RestoreFormer wrapper normalises), so fvr calls
  the network itself with the [-1, 1] convention of the original projects (see :data:`FACE_FORWARDS`).
* ``SR`` / ``Restoration`` (ESRGAN family, SwinIR, ..., scale s >= 1): as ``--model``, a per-frame restorer on
  the crops: the S x S crop is area-down-sampled by s (the crop is cut from a frame already up-sampled by
  ``--upscale``, so it holds about an (S/s)^2 image's detail) and the network brings it back to S x S. As
  ``--background``, a tiled whole-frame up-sampler (:class:`SpandrelBackground`).
* anything else (inpainting models, grey-scale models): a one-line :class:`~fvr.errors.ConfigError`.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

from fvr.errors import ConfigError, reason
from fvr.models.base import Restorer, RestorerSpec
from fvr.models.upsample import TiledUpsampler, UpsamplerSpec

if TYPE_CHECKING:
    import torch

INSTALL_HINT = 'pip install "fvr[spandrel]" (spandrel needs torchvision; see docs/external-models.md)'
FACE_PURPOSES = ("FaceSR",)
IMAGE_PURPOSES = ("SR", "Restoration")
OPTION_NAMES = ("crop_size", "fidelity", "half", "batch")
DEFAULT_CROP = 512
DEFAULT_FIDELITY = 0.5  # CodeFormer's own default w

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------- reading


def read_state_dict(path: Path) -> dict[str, Any]:
    """The checkpoint's contents as data: a dict of tensors (possibly nested, e.g. ``{"params_ema": {...}}``).

    Never runs pickled code: ``.safetensors`` holds tensors only; the pickle formats are read with
    ``weights_only=True``. Every failure is a one-line ConfigError naming ``path``. Needs no spandrel.
    """
    state = _read_safetensors(path) if path.suffix.lower() == ".safetensors" else _read_pickle(path)
    if not isinstance(state, Mapping):
        raise ConfigError(f"{path}: holds a {type(state).__name__}, not a state dict (parameter names -> tensors)")
    if not state:
        raise ConfigError(f"{path}: the state dict is empty")
    return dict(state)


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable safetensors file ({reason(exc)})") from None


def _read_pickle(path: Path) -> object:
    import pickle

    import torch

    try:
        with warnings.catch_warnings():
            # torch warns before it refuses a TorchScript archive; the refusal below says it in one line
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused, detail = _weights_only_detail(exc)
        if refused:
            raise ConfigError(f"{path}: refused: it holds pickled Python objects, not only tensors ({detail}); fvr "
                              f"reads checkpoints with weights_only=True and never runs pickled code") from None
        raise ConfigError(f"{path}: not a readable PyTorch checkpoint ({detail})") from None
    except Exception as exc:
        if "TorchScript" in str(exc):
            raise ConfigError(f"{path}: a TorchScript archive, not a state dict; fvr loads state dicts (weights) "
                              f"only") from None
        # the first sentence: torch's advice that follows (e.g. weights_only=False) is not for fvr's users
        raise ConfigError(f"{path}: not a readable PyTorch checkpoint ({reason(exc).split('. ')[0]})") from None


def _weights_only_detail(exc: BaseException) -> tuple[bool, str]:
    """(whether the weights-only unpickler refused a Python global, the sentence of its message that says what).

    torch's message is many lines of advice around one line of substance: ``Unsupported operand 124`` for bytes
    that are no pickle at all, ``... GLOBAL posix.system ...`` for a pickled callable or class."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # torch emphasises part of its advice with ANSI codes
    _, marker, tail = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (tail if marker else text).splitlines() if line.strip()]
    globals_ = [line for line in lines if "GLOBAL" in line]
    detail = (globals_ or lines or [type(exc).__name__])[0]
    # the first sentence: what follows is torch's advice to allow-list the global, which fvr does not take
    return "GLOBAL" in text, detail.split(". ")[0].rstrip(".")[:200]


# ---------------------------------------------------------------------------------------------------- spandrel


@contextmanager
def _quiet_imports() -> Iterator[None]:
    """Silence the FutureWarning of architectures that call torch.jit.script at import (CodeFormer): newer torch
    prints it on every run, and it says nothing the user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


_PINNED_TORCH = re.compile(r"^torch\s*\(?\s*==\s*([0-9][^\s,;)]*)\s*\)?\s*(;.*)?$")


def torchvision_mismatch() -> str | None:
    """Why the installed torchvision cannot work with the installed torch, or None (no torchvision, or a match).

    Each torchvision wheel requires exactly the torch release it was built for (``torch==X`` in its metadata);
    with any other torch, importing it fails (``operator torchvision::nms does not exist``) or worse. Read from
    the packages' metadata, so the mismatched torchvision is never imported. Local versions (``+cpu``,
    ``+cu124``) are not compared: pip pins the release only."""
    try:
        vision, torch_version = metadata.version("torchvision"), metadata.version("torch")
        requirements = metadata.requires("torchvision") or []
    except metadata.PackageNotFoundError:
        return None
    for requirement in requirements:
        match = _PINNED_TORCH.match(requirement.strip())
        if match and "extra" not in (match.group(2) or ""):
            wanted = match.group(1)
            if wanted.split("+")[0] != torch_version.split("+")[0]:
                return (f"torchvision {vision} is built for torch {wanted}, but torch {torch_version} is installed; "
                        f"spandrel needs the matching pair: install both in one command (pip install "
                        f"torch=={wanted} torchvision=={vision}), or keep spandrel in an environment of its own "
                        f"(make test-spandrel builds .venv-spandrel); see docs/external-models.md")
    return None


def _import_spandrel(path: Path) -> Any:
    """spandrel with spandrel_extra_arches' architectures (CodeFormer, ...) installed, or a one-line ConfigError."""
    missing = ConfigError(f"{path}: loading a third-party checkpoint needs the optional extra: {INSTALL_HINT}")
    if (mismatch := torchvision_mismatch()) is not None:  # checked first: spandrel imports torchvision
        raise ConfigError(f"{path}: {mismatch}")
    try:
        with _quiet_imports():
            import spandrel
    except ModuleNotFoundError as exc:
        if exc.name in ("spandrel", "torchvision"):
            raise missing from None
        raise ConfigError(f"{path}: spandrel does not import ({reason(exc)}): {INSTALL_HINT}") from None
    except Exception as exc:
        raise ConfigError(f"{path}: spandrel does not import ({reason(exc)}); torchvision must match the installed "
                          f"torch, see docs/external-models.md") from None
    if not hasattr(spandrel, "ModelLoader"):
        # a bare folder named "spandrel" on sys.path (e.g. tests/spandrel_env) imports as an empty namespace package
        raise missing
    try:
        with _quiet_imports():
            import spandrel_extra_arches
    except ImportError:  # optional: without it CodeFormer & co. are "not a model spandrel recognises"
        return spandrel
    except Exception as exc:
        log.warning("spandrel_extra_arches does not import (%s): CodeFormer and its other architectures are "
                    "unavailable", reason(exc))
        return spandrel
    spandrel_extra_arches.install(ignore_duplicates=True)  # ignore_duplicates: this runs once per loaded file
    return spandrel


def _load_descriptor(path: Path, state: dict[str, Any]) -> Any:
    """spandrel's model descriptor for ``state`` (on the CPU, eval mode), or a one-line ConfigError."""
    spandrel = _import_spandrel(path)
    state = spandrel.canonicalize_state_dict(state)  # unwraps {"params_ema": ...}, strips "module." prefixes
    try:
        descriptor = spandrel.ModelLoader("cpu").load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise ConfigError(f"{path}: not a model spandrel recognises (spandrel {spandrel.__version__} knows GFPGAN, "
                          f"RestoreFormer, CodeFormer, the ESRGAN family, SwinIR, ...; see "
                          f"docs/external-models.md)") from None
    except Exception as exc:
        raise ConfigError(f"{path}: spandrel could not build a network from it ({reason(exc)})") from None
    descriptor.model.requires_grad_(False)
    return descriptor.eval()


def _describe(descriptor: Any) -> str:
    return f"{descriptor.architecture.name} ({descriptor.purpose}, x{descriptor.scale})"


def _check_rgb(path: Path, descriptor: Any) -> None:
    if not hasattr(descriptor, "purpose") or descriptor.purpose not in FACE_PURPOSES + IMAGE_PURPOSES:
        raise ConfigError(f"{path}: {descriptor.architecture.name} is a {descriptor.purpose} model; fvr needs a face "
                          f"restoration (FaceSR), super-resolution (SR) or restoration model")
    if (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        raise ConfigError(f"{path}: {_describe(descriptor)} maps {descriptor.input_channels} to "
                          f"{descriptor.output_channels} channels; fvr needs an RGB (3 -> 3 channel) model")


def _resolve_device(path: Path, device: str | torch.device, half: bool) -> torch.device:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"{path}: invalid device {device!r} ({reason(exc)})") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"{path}: device must be cpu or cuda, got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{path}: device cuda was asked for but torch sees no CUDA device")
    if half and dev.type != "cuda":
        raise ConfigError(f"{path}: half precision needs device cuda (got {dev.type})")
    return dev


def _to_device(path: Path, descriptor: Any, device: torch.device, half: bool) -> torch.dtype:
    """Move the network to ``device`` (float16 when ``half``); the dtype its inputs must have."""
    import torch

    dtype = torch.float16 if half else torch.float32
    if half and not descriptor.supports_half:
        raise ConfigError(f"{path}: {_describe(descriptor)} does not support half precision; drop the half option")
    descriptor.to(device, dtype)
    return dtype


# ---------------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class SpandrelOptions:
    """The loader options of a spandrel checkpoint used as ``--model`` (``--model-opt KEY=VALUE``).

    crop_size: aligned crop side S (None = 512: the size the face networks are trained at; an SR model of scale s
        then runs on the (512/s)^2 down-sampled crop). GFPGAN and CodeFormer take 512 only; an SR model needs a
        multiple of its scale.
    fidelity: CodeFormer's w in [0, 1] (0 = most restoration, 1 = most faithful to the input); CodeFormer only.
    half: float16 on CUDA, for models spandrel marks as supporting it.
    batch: crops per network call.
    """

    crop_size: int | None = None
    fidelity: float | None = None
    half: bool = False
    batch: int = 4


def parse_options(path: Path, options: Mapping[str, object]) -> SpandrelOptions:
    """Validated :class:`SpandrelOptions` from keyword options; unknown or ill-typed ones are a ConfigError."""
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise ConfigError(f"{path}: unknown option(s) {', '.join(unknown)} for a spandrel checkpoint "
                          f"(known: {', '.join(OPTION_NAMES)})")
    crop = options.get("crop_size")
    fidelity = options.get("fidelity")
    half = options.get("half", False)
    batch = options.get("batch", 4)
    if crop is not None and (not _is_int(crop) or int(crop) < 16):
        raise ConfigError(f"{path}: crop_size must be an integer >= 16, got {crop!r}")
    if fidelity is not None and (isinstance(fidelity, bool) or not isinstance(fidelity, (int, float))
                                 or not 0.0 <= float(fidelity) <= 1.0):
        raise ConfigError(f"{path}: fidelity must be a number in [0, 1], got {fidelity!r}")
    if not isinstance(half, bool):
        raise ConfigError(f"{path}: half must be true or false, got {half!r}")
    if not _is_int(batch) or int(batch) < 1:
        raise ConfigError(f"{path}: batch must be an integer >= 1, got {batch!r}")
    return SpandrelOptions(crop_size=None if crop is None else int(crop),
                           fidelity=None if fidelity is None else float(fidelity), half=half, batch=int(batch))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------------- restorer

FaceForward = Callable[[Any, "torch.Tensor", float], "torch.Tensor"]
"""(network, x (N,3,S,S) in [-1, 1], fidelity) -> (N,3,S,S) in about [-1, 1]."""

FACE_FORWARDS: dict[str, FaceForward] = {
    # randomize_noise=False: the StyleGAN decoder uses the checkpoint's stored noise maps instead of fresh noise
    # per call, so a still face stays still (fresh noise flickers frame to frame); return_rgb=False skips the
    # intermediate images nobody reads.
    "GFPGAN": lambda net, x, w: net(x, return_rgb=False, randomize_noise=False)[0],
    "RestoreFormer": lambda net, x, w: net(x)[0],
    "CodeFormer": lambda net, x, w: net(x, weight=w)[0],
}
"""How to call each known face network, all on [-1, 1] images as their original projects do."""

FIXED_SIZE_FACES = ("GFPGAN", "CodeFormer")
"""Face networks whose input must be exactly 512 x 512 (a style MLP / a 16 x 16 code grid fixes the size)."""


def _face_crop(path: Path, descriptor: Any, crop: int | None) -> int:
    arch = descriptor.architecture.id
    size = DEFAULT_CROP if crop is None else crop
    if arch in FIXED_SIZE_FACES and size != DEFAULT_CROP:
        raise ConfigError(f"{path}: {arch} takes {DEFAULT_CROP} x {DEFAULT_CROP} crops only, got crop_size {size}")
    if not descriptor.size_requirements.check(size, size):
        raise ConfigError(f"{path}: crop_size {size} does not fit {arch} ({descriptor.size_requirements})")
    return size


def _image_crop(path: Path, descriptor: Any, crop: int | None) -> int:
    size = DEFAULT_CROP if crop is None else crop
    if size % descriptor.scale:
        raise ConfigError(f"{path}: crop_size {size} is not a multiple of the model's scale {descriptor.scale}")
    return size


class SpandrelRestorer(Restorer):
    """A spandrel network run per frame on the aligned face crops (see the module docstring for the conversions).

    descriptor: spandrel's model descriptor, already on ``device`` with ``dtype``. spec: its fvr spec (crop size S).
    fidelity: CodeFormer's w (ignored by the other networks). batch: crops per network call.
    """

    def __init__(self, descriptor: Any, spec: RestorerSpec, *, device: torch.device, dtype: torch.dtype,
                 fidelity: float = DEFAULT_FIDELITY, batch: int = 4):
        self.descriptor = descriptor
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.fidelity = fidelity
        self.batch = batch
        self.face = descriptor.purpose in FACE_PURPOSES

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,S,S) float in [0, 1] on the model's device/dtype -> (N,3,S,S) float in [0, 1], same device/dtype."""
        import torch
        from torch.nn import functional as F

        with torch.inference_mode():
            if not self.face:
                s = self.descriptor.scale
                # exact area down-sampling by an integer factor (what cv2.INTER_AREA does for it)
                lq = F.avg_pool2d(x, s) if s > 1 else x
                return self.descriptor(lq)  # spandrel's call: [0, 1] in and out, pads to size requirements
            forward = FACE_FORWARDS.get(self.descriptor.architecture.id)
            if forward is None:  # a face network fvr has no convention for: trust spandrel's call
                return self.descriptor(x)
            y = forward(self.descriptor.model, x * 2.0 - 1.0, self.fidelity)
            return ((y + 1.0) * 0.5).clamp_(0.0, 1.0)

    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """clip (T,3,S,S) float32 RGB [0, 1] -> (T,3,S,S) float32 [0, 1]; frames go through in batches."""
        import torch

        out = np.empty_like(clip)
        for start in range(0, clip.shape[0], self.batch):
            x = torch.from_numpy(clip[start:start + self.batch]).to(self.device, self.dtype)
            out[start:start + self.batch] = self.run(x).float().cpu().numpy()
        return out


def _restorer_spec(path: Path, descriptor: Any, crop: int) -> RestorerSpec:
    face = descriptor.purpose in FACE_PURPOSES
    how = "on the aligned crop" if face else f"on the crop area-down-sampled x{descriptor.scale}"
    return RestorerSpec(
        name=path.stem, kind="external", temporal="per-frame", crop_size=crop,
        description=f"{_describe(descriptor)} checkpoint {path.name}, loaded with spandrel, per frame {how}",
        tags=("spandrel", descriptor.architecture.id, "face" if face else "general-sr"),
    )


def load_spandrel_restorer(path: Path, *, device: str = "cpu", **options: object) -> Restorer:
    """A per-frame fvr restorer from a third-party checkpoint (``--model FILE.pth``). Options: see
    :class:`SpandrelOptions`. Every failure is a one-line ConfigError naming ``path``."""
    path = Path(path)
    opts = parse_options(path, options)
    dev = _resolve_device(path, device, opts.half)
    descriptor = _load_descriptor(path, read_state_dict(path))  # read first: a bad file fails without spandrel
    _check_rgb(path, descriptor)
    face = descriptor.purpose in FACE_PURPOSES
    if opts.fidelity is not None and descriptor.architecture.id != "CodeFormer":
        raise ConfigError(f"{path}: fidelity applies to CodeFormer only, this is {_describe(descriptor)}")
    crop = _face_crop(path, descriptor, opts.crop_size) if face else _image_crop(path, descriptor, opts.crop_size)
    dtype = _to_device(path, descriptor, dev, opts.half)
    fidelity = DEFAULT_FIDELITY if opts.fidelity is None else opts.fidelity
    return SpandrelRestorer(descriptor, _restorer_spec(path, descriptor, crop), device=dev, dtype=dtype,
                            fidelity=fidelity, batch=opts.batch)


# ---------------------------------------------------------------------------------------------------- background


class SpandrelUpsampler(TiledUpsampler):
    """A super-resolution checkpoint as a frame up-sampler (a :class:`~fvr.models.upsample.TiledUpsampler` at the
    checkpoint's own scale, its network already on the device). Models spandrel marks as tiling internally run
    untiled."""

    def __init__(self, descriptor: Any, *, tile: int, tile_pad: int, device: torch.device):
        from spandrel import ModelTiling

        tile = 0 if descriptor.tiling == ModelTiling.INTERNAL else tile
        spec = UpsamplerSpec(f"spandrel {_describe(descriptor)}", int(descriptor.scale), tile, tile_pad)
        super().__init__(descriptor, spec, device, move=False)


def spandrel_upsampler(path: str | Path, *, tile: int = 256, tile_pad: int = 32,
                       device: str = "cpu") -> SpandrelUpsampler:
    """A whole-frame up-sampler from an SR (or scale-1 restoration) checkpoint, at its own scale (use it with
    :class:`~fvr.models.upsample.FrameBackground` for another factor); a face model, an inpainting model or a
    non-RGB model is a one-line ConfigError naming ``path``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    UpsamplerSpec("spandrel", 1, tile, tile_pad)  # checks tile and pad before the checkpoint is read
    dev = _resolve_device(path, device, half=False)
    descriptor = _load_descriptor(path, read_state_dict(path))
    _check_rgb(path, descriptor)
    if descriptor.purpose not in IMAGE_PURPOSES:
        raise ConfigError(f"{path}: {_describe(descriptor)} is a face model, not a whole-frame super-resolution "
                          f"model; use it as --model, and an SR checkpoint (ESRGAN family, SwinIR, ...) as "
                          f"--background")
    _to_device(path, descriptor, dev, half=False)
    return SpandrelUpsampler(descriptor, tile=tile, tile_pad=tile_pad, device=dev)
