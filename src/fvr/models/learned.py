"""Registers every learned architecture under ``NAME`` (quality preset) and ``NAME-fast`` (fast preset), and every
weight file shipped in the package (``fvr/weights/*.safetensors``) under its file name.

A registered architecture needs weights: ``weights=FILE`` (an fvr safetensors file from ``fvr train``), else the
weights shipped inside the package for that name (``fvr/weights/NAME.safetensors``) when there are some, else a
one-line error. ``allow_random=True`` builds an untrained network (tests, speed measurements).

A shipped file with any other name (``fvr-prior``, ``fvr-fast``, the baselines) is a model of its own: its spec
comes from the file (architecture, size, crop). :data:`SHIPPED_DEFAULTS` makes ``fvr-prior-rt`` the default on CPU and
``fvr-prior`` the default on CUDA when their files are present. Model cards: docs/model-cards/
"""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fvr.errors import ConfigError

if TYPE_CHECKING:
    from fvr.models.base import Restorer
    from fvr.models.nets.core import ArchSpec
    from fvr.models.registry import ModelRegistry


SHIPPED_DEFAULTS = {"fvr-prior-rt": ("cpu",), "fvr-prior": ("cuda",)}
"""Shipped model -> the devices on which ``fvr restore`` uses it when no --model is given (with the temporal
stabiliser its file names in ``default_stabiliser``, if any)."""


def weights_dir() -> Path:
    """The package folder of shipped weight files."""
    return Path(str(resources.files("fvr"))) / "weights"


def shipped_weights(name: str, folder: Path | None = None) -> Path | None:
    """The weight file shipped in the package for registry name ``name``, if any."""
    path = (folder or weights_dir()) / f"{name}.safetensors"
    return path if path.is_file() else None


def _shipped_factory(path: Path, name: str):
    def create(device: str = "cpu", fidelity: float | None = None, crop_size: int | None = None,
               precision: str = "auto", detail: float | None = None) -> Restorer:
        from fvr.models.nets import architectures
        from fvr.models.nets.core import restorer_from_weights

        return restorer_from_weights(path, architectures(), device=device, name=name, fidelity=fidelity,
                                     crop_size=crop_size, precision=precision, detail=detail)

    return create


def register_shipped(registry: ModelRegistry, folder: Path | None = None) -> list[str]:
    """Register each weight file in ``folder`` (default: the package's) whose name is not an architecture's
    registry name; returns the names registered. The spec is read from the file's metadata (no tensors loaded)."""
    import json

    from fvr.models.nets import architectures
    from fvr.models.nets.core import config_from_dict, read_metadata

    archs = architectures()
    folder = folder or weights_dir()
    names = []
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        name = path.stem
        if name in registry.names():
            continue  # NAME / NAME-fast: the architecture's own factory loads it
        meta = read_metadata(path)
        arch = archs.get(meta.get("arch", ""))
        if arch is None:
            raise ConfigError(f"shipped weights {path.name}: unknown architecture {meta.get('arch')!r}")
        preset = meta.get("preset", "fast")
        config = config_from_dict(arch.config, json.loads(meta.get("config", "{}")))
        spec = arch.restorer_spec(preset, name=name, crop_size=int(meta.get("crop_size", 0)) or None,
                                  config=config)
        description = meta.get("description") or f"{arch.description} (shipped weights)"
        spec = replace(spec, description=description, tags=(*spec.tags, "shipped"))
        registry.register(spec, _shipped_factory(path, name), default_on=SHIPPED_DEFAULTS.get(name, ()),
                          uses_device=True, default_with=meta.get("default_stabiliser", ""))
        names.append(name)
    return names


def _factory(arch: ArchSpec, preset: str, name: str):
    def create(weights: str | Path | None = None, device: str = "cpu", crop_size: int | None = None,
               allow_random: bool = False, precision: str = "auto", **overrides: Any) -> Restorer:
        from fvr.models.nets import architectures
        from fvr.models.nets.core import (
            TorchRestorer,
            config_from_dict,
            config_to_dict,
            inference_dtype,
            restorer_from_weights,
        )

        path = Path(weights) if weights else shipped_weights(name)
        if path is not None:
            if overrides:
                raise ConfigError(f"{name}: options {', '.join(overrides)} cannot change a trained network")
            restorer = restorer_from_weights(path, architectures(), device=device, name=name, precision=precision)
            if restorer.spec.crop_size != (crop_size or restorer.spec.crop_size):
                raise ConfigError(f"{name}: its weights were trained at {restorer.spec.crop_size}², not {crop_size}²")
            return restorer
        if not allow_random:
            raise ConfigError(f"model {name!r} has no trained weights in this installation: train it with "
                              f"`fvr train` and pass the file (--model FILE.safetensors)")
        size, default = arch.preset(preset)
        config = config_from_dict(arch.config, {**config_to_dict(default), **overrides})
        spec = arch.restorer_spec(preset, name=name, crop_size=crop_size or size, config=config)
        return TorchRestorer(spec, arch.build(config), uses_prior=arch.uses_prior, device=device,
                             frame_model=arch.frame_model,
                             dtype=inference_dtype(precision, device, pretrained=arch.pretrained is not None))

    return create


def register(registry: ModelRegistry) -> None:
    from fvr.models.nets import architectures
    from fvr.models.nets.core import registry_name

    for arch in architectures().values():
        for preset in ("quality", "fast"):
            name = registry_name(arch.name, preset)
            registry.register(arch.restorer_spec(preset, name=name), _factory(arch, preset, name), uses_device=True,
                              ready=shipped_weights(name) is not None)
    register_shipped(registry)
