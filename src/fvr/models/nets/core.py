"""The learned-model contract: architectures, size presets, weight files, and the restorer that runs them.

Every learned face restorer in fvr is an ``nn.Module`` with one forward signature::

    forward(x, prior=None) -> y
    x:     (B, T, 3, S, S) float32 RGB in [0, 1]: a track clip of aligned crops, T consecutive frames
    prior: (B, T, K, S, S) float32 in [0, 1] or None: facial prior maps (landmark heat-maps and component masks,
           see :mod:`fvr.models.nets.prior`), only for architectures with ``uses_prior``
    y:     (B, T, 3, S, S) float32, the restored clip (not clamped: losses see the raw output; restorers clamp)

An :class:`ArchSpec` states, in one place, an architecture's taxonomy position (kind, temporal strategy, tags),
its temporal context (past/future frames it reads), its config dataclass, and its two size presets:
``fast`` (real time on 2 CPU cores at 128²) and ``quality`` (256² or 512²).

Weight files are safetensors whose metadata names the architecture, its config and the crop size, so a file is
enough to rebuild the network (:func:`load_weights`) — no pickle anywhere.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from fvr.errors import ConfigError
from fvr.models.base import FrameRestorer, Restorer, RestorerSpec
from fvr.models.formats.state import load_state_checked

PRESETS = ("fast", "quality", "tiny")  # tiny: a few thousand parameters at 32², for tests
WEIGHTS_FORMAT = "fvr-weights-1"
# A weight file may carry a second weight set for part of the network (the perceptual end of a fidelity control):
# tensors named PERCEPTUAL_PREFIX + key, each replacing the network's tensor ``key`` at fidelity 0.
PERCEPTUAL_PREFIX = "perceptual."


@runtime_checkable
class StateCarrier(Protocol):
    """A network that continues from the previous chunk's state (:meth:`fvr.models.nets.recurrent.RecurrentNet.
    forward_carried`): x (1, T, 3, S, S) -> (output (1, keep, 3, S, S), state after frame keep-1)."""

    def forward_carried(self, x: torch.Tensor, start: Any, keep: int) -> tuple[torch.Tensor, Any]: ...


@runtime_checkable
class DetailControl(Protocol):
    """A network with an input-detail pass-through (:meth:`fvr.models.nets.pretrained.PretrainedFaceNet.set_detail`,
    detail in [0, 1])."""

    def set_detail(self, detail: float) -> None: ...


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: how to build it and where it sits in the survey's taxonomy.

    name: registry base name (``fvr models`` lists ``name`` = quality preset and ``name-fast``).
    kind / temporal / tags: taxonomy, as in :class:`fvr.models.RestorerSpec`.
    config: the config dataclass type; ``build(config) -> nn.Module``.
    presets: preset name -> (crop size, config).
    past / future: frames of context read before / after each output frame (0/0 for per-frame models);
        a callable of the config when it depends on it (e.g. a window radius).
    uses_prior: the network takes facial prior maps (``prior`` argument).
    feed_forward: exportable to ONNX as one graph (``fvr export --onnx``).
    training_loss: None = train by reconstruction (the trainer's losses on ``net(x, prior)``); else a callable
        ``training_loss(net, batch) -> (loss tensor, {name: float})`` for models with their own objective
        (diffusion noise prediction, codebook stages); ``batch`` is a :class:`TrainBatch`.
    frame_model: runs on whole frames (generic video restoration, not face-aware), not on aligned face crops.
    pretrained: ``pretrained(net, config) -> source name`` copies packaged pretrained weights into a freshly built
        network (``[model] pretrained = true`` in a training config); None = the architecture has none.
    """

    name: str
    kind: str
    temporal: str
    description: str
    config: type
    build: Callable[[Any], nn.Module]
    presets: Mapping[str, tuple[int, Any]]
    past: int | Callable[[Any], int] = 0
    future: int | Callable[[Any], int] = 0
    tags: tuple[str, ...] = ()
    uses_prior: bool = False
    feed_forward: bool = True
    training_loss: Callable[..., tuple[torch.Tensor, dict[str, float]]] | None = None
    frame_model: bool = False
    pretrained: Callable[[nn.Module, Any], str] | None = None

    def context(self, config: Any) -> tuple[int, int]:
        past = self.past(config) if callable(self.past) else self.past
        future = self.future(config) if callable(self.future) else self.future
        return int(past), int(future)

    def restorer_spec(self, preset: str = "quality", *, name: str | None = None, crop_size: int | None = None,
                      config: Any = None) -> RestorerSpec:
        size, default = self.preset(preset)
        past, future = self.context(config if config is not None else default)
        return RestorerSpec(
            name=name or registry_name(self.name, preset), kind=self.kind, temporal=self.temporal,
            crop_size=crop_size or size, past=past, future=future, description=self.description,
            tags=tuple(dict.fromkeys((*self.tags, *(("prior-driven",) if self.uses_prior else ()),
                                      f"preset:{preset}"))),
            frame_model=self.frame_model,
        )

    def preset(self, preset: str) -> tuple[int, Any]:
        if preset not in self.presets:
            raise ConfigError(f"{self.name}: unknown size preset {preset!r}; choose {', '.join(self.presets)}")
        return self.presets[preset]


@dataclass
class TrainBatch:
    """What the trainer hands a model's own ``training_loss``.

    lq: (B, T, 3, S, S) degraded input (up-sampled back to S), hq: (B, T, 3, S, S) ground truth, both in [0, 1];
    prior: (B, T, K, S, S) or None; landmarks: (B, T, 5, 2) crop px; step: the optimisation step (schedules).
    """

    lq: torch.Tensor
    hq: torch.Tensor
    landmarks: torch.Tensor
    prior: torch.Tensor | None = None
    step: int = 0


def registry_name(arch: str, preset: str) -> str:
    return arch if preset == "quality" else f"{arch}-{preset}"


# ----------------------------------------------------------------------------------------------- configs


def config_to_dict(config: Any) -> dict[str, Any]:
    if not is_dataclass(config):
        raise TypeError(f"config must be a dataclass, got {type(config).__name__}")
    if isinstance(config, type):  # a dataclass class, not an instance: asdict refuses it with this TypeError
        raise TypeError("asdict() should be called on dataclass instances")
    return asdict(config)


def config_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Build config dataclass ``cls`` from a mapping; unknown keys give a one-line :class:`ConfigError`."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values)


# ----------------------------------------------------------------------------------------------- weights


@dataclass
class LoadedModel:
    arch: ArchSpec
    config: Any
    crop_size: int
    preset: str
    net: nn.Module
    metadata: dict[str, str] = field(default_factory=dict)
    fidelity_state: dict[str, torch.Tensor] = field(default_factory=dict)
    perceptual_state: dict[str, torch.Tensor] = field(default_factory=dict)

    def set_fidelity(self, fidelity: float) -> None:
        """Network interpolation (ESRGAN) between the file's two weight sets: 1 = the main (fidelity) weights,
        0 = the perceptual set, in between = fidelity * main + (1 - fidelity) * perceptual, tensor by tensor."""
        if not self.perceptual_state:
            raise ConfigError("--fidelity: this model has one weight set (no perceptual end to blend with); models "
                              "with a fidelity control say so in `fvr models`")
        blended = interpolate_states(self.fidelity_state, self.perceptual_state, float(fidelity))
        own = self.net.state_dict()
        with torch.no_grad():
            for key, value in blended.items():
                own[key].copy_(value)


def interpolate_states(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
                       alpha: float) -> dict[str, torch.Tensor]:
    """Network interpolation (ESRGAN): alpha * a + (1 - alpha) * b for every tensor; a and b share keys/shapes."""
    if set(a) != set(b) or any(a[k].shape != b[k].shape for k in a):
        raise ConfigError("network interpolation needs two weight sets of the same network")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"--fidelity must be in [0, 1], got {alpha}")
    return {k: (alpha * a[k].float() + (1.0 - alpha) * b[k].float()).to(a[k].dtype) for k in a}


def weights_metadata(arch: ArchSpec, config: Any, crop_size: int, preset: str,
                     extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    meta = {"format": WEIGHTS_FORMAT, "arch": arch.name, "config": json.dumps(config_to_dict(config)),
            "crop_size": str(crop_size), "preset": preset}
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    return meta


def save_weights(path: str | Path, arch: ArchSpec, config: Any, net: nn.Module, crop_size: int, preset: str,
                 extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``net``'s state dict as safetensors with the metadata that rebuilds it (atomic: temp + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    tmp = path.with_name(f".{path.name}.fvr-tmp")
    save_file(state, str(tmp), metadata=weights_metadata(arch, config, crop_size, preset, extra))
    tmp.replace(path)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file; one-line :class:`ConfigError` when it is not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except FileNotFoundError:
        raise ConfigError(f"weights file {path} does not exist") from None
    except Exception as exc:  # safetensors raises several types for a damaged header
        raise ConfigError(f"{path} is not a readable safetensors weights file ({type(exc).__name__})") from None


def load_weights(path: str | Path, archs: Mapping[str, ArchSpec], *, device: str = "cpu",
                 options: Mapping[str, Any] | None = None) -> LoadedModel:
    """Rebuild the network a weight file describes and load its tensors (strictly: every key, every shape).
    ``options`` update the file's config before the network is built (fine-tuning, a codebook's stage 2)."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta.get("format") != WEIGHTS_FORMAT or "arch" not in meta:
        raise ConfigError(f"{path} is not an fvr weights file (expected safetensors metadata format="
                          f"{WEIGHTS_FORMAT} with the architecture name)")
    if meta["arch"] not in archs:
        raise ConfigError(f"{path} is for architecture {meta['arch']!r}, which this fvr does not have; known: "
                          f"{', '.join(sorted(archs))}")
    arch = archs[meta["arch"]]
    config = config_from_dict(arch.config, {**json.loads(meta["config"]), **dict(options or {})})
    net = arch.build(config)
    state = load_file(str(path), device=device)
    perceptual = {k[len(PERCEPTUAL_PREFIX):]: v for k, v in state.items() if k.startswith(PERCEPTUAL_PREFIX)}
    state = {k: v for k, v in state.items() if not k.startswith(PERCEPTUAL_PREFIX)}
    load_state_checked(net, state, str(path))
    own = net.state_dict()
    odd = [k for k, v in perceptual.items() if k not in own or tuple(own[k].shape) != tuple(v.shape)]
    if odd:
        raise ConfigError(f"{path}: perceptual weight {odd[0]} does not match the network")
    net.to(device).eval()
    loaded = LoadedModel(arch, config, int(meta.get("crop_size", 0)) or arch.preset(meta.get("preset", "quality"))[0],
                         meta.get("preset", "quality"), net, meta,
                         {k: state[k] for k in perceptual}, perceptual)
    if perceptual:
        loaded.set_fidelity(float(meta.get("default_fidelity", "1")))
    return loaded


def _checked_crop(loaded: LoadedModel, crop: int, source: str) -> int:
    scale = int(getattr(loaded.config, "scale", 1))
    if loaded.arch.pretrained is None:
        raise ConfigError(f"{source}: crop_size can only change for pretrained-prior models (this one was trained "
                          f"at {loaded.crop_size}²)")
    if not 64 <= crop <= 1024 or crop % (scale * 4):
        raise ConfigError(f"{source}: crop_size must be 64..1024 and a multiple of {scale * 4}, got {crop}")
    return crop


# ----------------------------------------------------------------------------------------------- restorer

PRECISIONS = ("auto", "float32", "bfloat16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX512-BF16 or AMX): elsewhere oneDNN emulates them,
    slower than float32."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without the probes: stay on float32
        return False


def inference_dtype(precision: str, device: str | torch.device, *, pretrained: bool) -> torch.dtype:
    """The compute dtype for ``precision`` ("auto", "float32", "bfloat16") on ``device``.

    "auto" is bfloat16 only for the pretrained priors (plain conv stacks, measured ~1.7x faster on an AVX512-BF16
    CPU, their output within 0.002 of float32's, below one 8-bit level) on a CPU with native bfloat16;
    float32 everywhere else (bfloat16 was not measured on the from-scratch nets, recurrent ones among them).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dev = torch.device(device)
    if precision == "bfloat16":
        if dev.type != "cpu":
            raise ConfigError(f"precision bfloat16 is for CPUs (device {dev.type}: use the model's half option)")
        return torch.bfloat16
    if precision == "auto" and pretrained and dev.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


class TorchRestorer(Restorer, FrameRestorer):
    """Runs a learned network under the restorer contract (numpy in, numpy out, clamped to [0, 1]).

    Per-frame networks (past = future = 0) see frames in batches of ``batch``; temporal ones see the whole clip
    the pipeline hands over (it already includes the declared context). channels_last: keep the convolution
    weights in the channels-last layout (plain conv stacks such as the pretrained priors run ~1.5-2x faster so on
    a CPU; their forward makes its activations channels-last too). dtype: the compute dtype of the forward pass
    (bfloat16: CPU autocast, weights and inputs stay float32; see :func:`inference_dtype`).
    """

    def __init__(self, spec: RestorerSpec, net: nn.Module, *, uses_prior: bool = False, device: str = "cpu",
                 batch: int = 8, frame_model: bool = False, channels_last: bool = False,
                 dtype: torch.dtype = torch.float32):
        # frame_model: a whole-frame model (generic video restoration), run by fvr.run.framewise
        self.spec = replace(spec, frame_model=True) if frame_model and not spec.frame_model else spec
        self.dtype = dtype
        self.net = net.to(device).eval()
        if channels_last:
            # Module.to takes memory_format at run time; torch's overloads of Module.to leave it out
            self.net = self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.uses_prior = uses_prior
        self.device = torch.device(device)
        self.batch = max(1, batch)
        # recurrent networks continue from the previous chunk's state (fvr.models.nets.recurrent.forward_carried)
        self.carries_state = callable(getattr(net, "forward_carried", None)) and not uses_prior

    def bind_bases(self, resolve: Callable[[str, str, int], Restorer]) -> None:
        # a network that runs a base model by name (the learned stabiliser) says so with set_base_resolver
        bind = getattr(self.net, "set_base_resolver", None)
        if bind is not None:
            bind(resolve)

    def frame_network(self) -> nn.Module:
        """The network of a whole-frame model (``spec.frame_model``); see :class:`FrameRestorer`."""
        if not self.spec.frame_model:
            raise RuntimeError(f"{self.spec.name} restores face crops, not whole frames")
        return self.net

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @torch.inference_mode()
    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        with self._autocast():
            y = self._forward_clip(clip, landmarks)
        return y.float().clamp_(0.0, 1.0).cpu().numpy().astype(np.float32, copy=False)

    def _forward_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> torch.Tensor:
        from fvr.models.nets.prior import landmark_prior

        x = torch.from_numpy(np.ascontiguousarray(clip)).to(self.device)
        lm = torch.from_numpy(np.ascontiguousarray(landmarks)).to(self.device)
        if self.spec.past == 0 and self.spec.future == 0:  # per-frame: frames are independent samples
            outs = []
            for i in range(0, x.shape[0], self.batch):
                xb = x[i:i + self.batch].unsqueeze(1)  # (b, 1, 3, S, S)
                pb = landmark_prior(lm[i:i + self.batch].unsqueeze(1), x.shape[-1]) if self.uses_prior else None
                outs.append(self.net(xb, pb)[:, 0])
            y = torch.cat(outs, 0)
        else:
            prior = landmark_prior(lm.unsqueeze(0), x.shape[-1]) if self.uses_prior else None
            y = self.net(x.unsqueeze(0), prior)[0]
        return y

    @torch.inference_mode()
    def restore_carried(self, clip: np.ndarray, landmarks: np.ndarray, state: Any,
                        keep: int) -> tuple[np.ndarray, Any]:
        net = self.net
        if not isinstance(net, StateCarrier):  # carries_state is False for it: the caller broke the contract
            raise AttributeError(f"'{type(net).__name__}' object has no attribute 'forward_carried'")
        x = torch.from_numpy(np.ascontiguousarray(clip)).to(self.device)
        with self._autocast():
            y, state = net.forward_carried(x.unsqueeze(0), state, keep)
        return y[0].float().clamp_(0.0, 1.0).cpu().numpy().astype(np.float32, copy=False), state


def restorer_from_weights(path: str | Path, archs: Mapping[str, ArchSpec], *, device: str = "cpu",
                          name: str | None = None, fidelity: float | None = None,
                          crop_size: int | None = None, precision: str = "auto",
                          detail: float | None = None) -> TorchRestorer:
    """A ready restorer from an fvr weight file (``fvr restore --model FILE.safetensors``). fidelity: for files
    with a perceptual weight set, 1 = fidelity end ... 0 = perceptual end (None = the file's default).
    crop_size: the aligned crop to run at instead of the file's (pretrained-prior networks only: they restore the
    crop down-sampled by their scale, so a larger crop keeps more of a large face's detail at 4x the cost).
    precision: "auto", "float32" or "bfloat16" (:func:`inference_dtype`). detail: pretrained priors' input-detail
    pass-through, 0..1 (None = the file's ``default_detail``, else 0; :meth:`PretrainedFaceNet.set_detail`)."""
    loaded = load_weights(path, archs, device=device)
    if fidelity is not None:
        loaded.set_fidelity(fidelity)
    if detail is not None or "default_detail" in loaded.metadata:
        if loaded.arch.pretrained is None:
            raise ConfigError(f"{path}: detail is an option of the pretrained priors only")
        if not isinstance(loaded.net, DetailControl):  # every pretrained-prior network has it
            raise AttributeError(f"'{type(loaded.net).__name__}' object has no attribute 'set_detail'")
        loaded.net.set_detail(float(detail if detail is not None else loaded.metadata["default_detail"]))
    crop = loaded.crop_size
    if crop_size is not None:
        crop = _checked_crop(loaded, int(crop_size), str(path))
    spec = loaded.arch.restorer_spec(loaded.preset, name=name or Path(path).stem, crop_size=crop,
                                     config=loaded.config)
    pretrained = loaded.arch.pretrained is not None
    dtype = inference_dtype(precision, device, pretrained=pretrained)
    return TorchRestorer(spec, loaded.net, uses_prior=loaded.arch.uses_prior, device=device,
                         frame_model=loaded.arch.frame_model,
                         channels_last=pretrained and torch.device(device).type == "cpu", dtype=dtype)
