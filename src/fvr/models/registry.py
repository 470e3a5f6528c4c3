"""One registry of restorers keyed by name.

A :class:`ModelRegistry` is an explicit object (no module-level mutable state): :func:`builtin_registry` returns a
new one holding fvr's own models plus any third-party models advertised under the ``fvr.models`` entry-point
group (each entry point is a callable that receives the registry and registers into it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from fvr.errors import ConfigError
from fvr.models.base import Restorer, RestorerSpec

RestorerFactory = Callable[..., Restorer]


@dataclass(frozen=True)
class ModelEntry:
    spec: RestorerSpec
    factory: RestorerFactory
    default: bool = False


class ModelRegistry:
    """Name -> (spec, factory). ``create(name, **options)`` builds a restorer."""

    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}

    def register(self, spec: RestorerSpec, factory: RestorerFactory, *, default: bool = False) -> None:
        if spec.name in self._entries:
            raise ValueError(f"model {spec.name!r} is already registered")
        if default:
            self._entries = {k: ModelEntry(e.spec, e.factory, False) for k, e in self._entries.items()}
        self._entries[spec.name] = ModelEntry(spec, factory, default)

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    @property
    def default_name(self) -> str:
        for name, entry in self._entries.items():
            if entry.default:
                return name
        raise ConfigError("no default model is registered")

    def spec(self, name: str) -> RestorerSpec:
        return self._entry(name).spec

    def create(self, name: str | None = None, **options: object) -> Restorer:
        if name is not None and name.endswith(".safetensors"):  # a weight file from `fvr train`
            return _from_file(name, **options)
        entry = self._entry(name or self.default_name)
        try:
            return entry.factory(**options)
        except TypeError as exc:
            raise ConfigError(f"model {entry.spec.name!r}: {exc}") from None

    def _entry(self, name: str) -> ModelEntry:
        if name not in self._entries:
            known = ", ".join(sorted(self._entries))
            raise ConfigError(f"unknown model {name!r}; registered models: {known}")
        return self._entries[name]


def _from_file(path: str, device: str = "cpu", **options: object) -> Restorer:
    from fvr.models.nets import architectures, restorer_from_weights

    if options:
        raise ConfigError(f"{path}: options {', '.join(options)} cannot change a trained network")
    return restorer_from_weights(path, architectures(), device=device)


def builtin_registry(*, plugins: bool = True) -> ModelRegistry:
    """A new registry with fvr's built-in restorers (and installed plug-ins unless ``plugins=False``)."""
    from fvr.models import classical, identity, learned, realesrgan

    registry = ModelRegistry()
    identity.register(registry)
    classical.register(registry)
    realesrgan.register(registry)
    learned.register(registry)
    if plugins:
        for ep in entry_points(group="fvr.models"):
            ep.load()(registry)
    return registry
