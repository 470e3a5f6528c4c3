"""Registers every learned architecture under ``NAME`` (quality preset) and ``NAME-fast`` (fast preset).

A registered learned model needs weights: ``weights=FILE`` (an fvr safetensors file from ``fvr train``), else the
weights shipped inside the package for that name (``fvr/weights/NAME.safetensors``) when there are some, else a
one-line error. ``allow_random=True`` builds an untrained network (tests, speed measurements).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fvr.errors import ConfigError

if TYPE_CHECKING:
    from fvr.models.base import Restorer
    from fvr.models.nets.core import ArchSpec
    from fvr.models.registry import ModelRegistry


def shipped_weights(name: str) -> Path | None:
    """The weight file shipped in the package for registry name ``name``, if any."""
    path = Path(str(resources.files("fvr"))) / "weights" / f"{name}.safetensors"
    return path if path.is_file() else None


def _factory(arch: ArchSpec, preset: str, name: str):
    def create(weights: str | Path | None = None, device: str = "cpu", crop_size: int | None = None,
               allow_random: bool = False, **overrides: Any) -> Restorer:
        from fvr.models.nets import architectures
        from fvr.models.nets.core import TorchRestorer, config_from_dict, config_to_dict, restorer_from_weights

        path = Path(weights) if weights else shipped_weights(name)
        if path is not None:
            if overrides:
                raise ConfigError(f"{name}: options {', '.join(overrides)} cannot change a trained network")
            restorer = restorer_from_weights(path, architectures(), device=device, name=name)
            if restorer.spec.crop_size != (crop_size or restorer.spec.crop_size):
                raise ConfigError(f"{name}: its weights were trained at {restorer.spec.crop_size}², not {crop_size}²")
            return restorer
        if not allow_random:
            raise ConfigError(f"model {name!r} has no trained weights in this installation: train it with "
                              f"`fvr train` and pass the file (--model FILE.safetensors)")
        size, default = arch.preset(preset)
        config = config_from_dict(arch.config, {**config_to_dict(default), **overrides})
        spec = arch.restorer_spec(preset, name=name, crop_size=crop_size or size, config=config)
        return TorchRestorer(spec, arch.build(config), uses_prior=arch.uses_prior, device=device)

    return create


def register(registry: ModelRegistry) -> None:
    from fvr.models.nets import architectures
    from fvr.models.nets.core import registry_name

    for arch in architectures().values():
        for preset in ("quality", "fast"):
            name = registry_name(arch.name, preset)
            registry.register(arch.restorer_spec(preset, name=name), _factory(arch, preset, name))
