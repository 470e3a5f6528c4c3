"""One registry of restorers keyed by name.

A :class:`ModelRegistry` is an explicit object (no module-level mutable state): :func:`builtin_registry` returns a
new one holding fvr's own models plus any third-party models advertised under the ``fvr.models`` entry-point
group (each entry point is a callable that receives the registry and registers into it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from importlib.util import find_spec

from fvr.errors import ConfigError
from fvr.models.base import Restorer, RestorerSpec
from fvr.models.reference import ModelRef

RestorerFactory = Callable[..., Restorer]


DEVICES = ("cpu", "cuda")

NEEDS_TRAINING = "weights: train it with `fvr train` (docs/train.md), then --model FILE.safetensors"
"""What a registered learned architecture without shipped weights needs (:attr:`ModelEntry.needs`)."""


def resolve_device(device: str, option: str = "device") -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu"; "cuda" without a GPU is a one-line error naming
    ``option`` (the setting the user gave: "--device", "run.device")."""
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ConfigError(f"{option} = cuda: torch sees no CUDA GPU on this machine (use auto or cpu)")
    return "cpu"


@dataclass(frozen=True)
class ModelEntry:
    """spec and factory of one model. default: the fallback default. default_on: devices ("cpu", "cuda") on which
    this model is the default instead (the shipped fast model on CPU, the quality model on GPU). uses_device: the
    factory takes ``device=`` (learned models); the others always run on the CPU. default_with: the temporal
    stabiliser the model runs with when it is picked as a device default (no --model given), e.g. "flow".
    ready: the model runs as installed (False: a learned architecture with no weights shipped, which needs a file
    from ``fvr train``, or a model whose optional extra is not installed). needs: for a model that is not ready,
    what it needs, as a phrase for the user (default :data:`NEEDS_TRAINING`); "" for a ready one."""

    spec: RestorerSpec
    factory: RestorerFactory
    default: bool = False
    default_on: tuple[str, ...] = ()
    uses_device: bool = False
    default_with: str = ""
    ready: bool = True
    needs: str = ""

    @property
    def needs_training(self) -> bool:
        """Not ready because it has no weights (rather than for a missing extra)."""
        return not self.ready and self.needs == NEEDS_TRAINING


class ModelRegistry:
    """Name -> (spec, factory). ``create(name, **options)`` builds a restorer."""

    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}

    def register(self, spec: RestorerSpec, factory: RestorerFactory, *, default: bool = False,
                 default_on: tuple[str, ...] = (), uses_device: bool = False, default_with: str = "",
                 ready: bool = True, needs: str = "") -> None:
        if spec.name in self._entries:
            raise ValueError(f"model {spec.name!r} is already registered")
        if unknown := set(default_on) - set(DEVICES):
            raise ValueError(f"default_on: unknown device {min(unknown)!r}; choose from {DEVICES}")
        if default:
            self._entries = {k: replace(e, default=False) for k, e in self._entries.items()}
        if default_on:  # one default per device: the newest registration wins (plug-ins register last)
            self._entries = {k: replace(e, default_on=tuple(d for d in e.default_on if d not in default_on))
                             for k, e in self._entries.items()}
        self._entries[spec.name] = ModelEntry(spec, factory, default, tuple(default_on), uses_device, default_with,
                                              ready, "" if ready else (needs or NEEDS_TRAINING))

    def mark_not_ready(self, name: str, needs: str) -> None:
        """Model ``name`` does not run as installed; ``needs`` says what it needs (e.g. an extra to install)."""
        self._entries[name] = replace(self._entry(name), ready=False, needs=needs)

    def ready_names(self) -> list[str]:
        """The registered models that run as installed, sorted."""
        return sorted(name for name, entry in self._entries.items() if entry.ready)

    def require_ready(self, name: str | None, options: dict[str, object] | None = None) -> None:
        """A one-line :class:`ConfigError` naming the models that run, when ``name`` (a registry name, or
        ``MODEL+STABILISER``) is a registered model that cannot run as installed: checked before any work, so that
        ``fvr restore``/``batch``/``bench`` fail before the analysis pass. ``weights=FILE`` (or ``allow_random``)
        in ``options`` makes any model runnable. Anything else (None = the default, a model file, an unknown name)
        passes: :meth:`create` reports those."""
        options = options or {}
        if not name or options.get("weights") or options.get("allow_random"):
            return
        if name not in self._entries:
            name = ModelRef.parse(name).model
        entry = self._entries.get(name)
        if entry is None or entry.ready:
            return
        why = ("has no trained weights (train it with `fvr train`, see docs/train.md, and pass the file: --model "
               "FILE.safetensors)") if entry.needs_training else f"needs {entry.needs}"
        raise ConfigError(f"model {name!r} {why}; models that run: {', '.join(self.ready_names())}")

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    @property
    def default_name(self) -> str:
        """The fallback default (used when no model is the default for the device at hand)."""
        for name, entry in self._entries.items():
            if entry.default:
                return name
        raise ConfigError("no default model is registered")

    def default_for(self, device: str, *, with_stabiliser: bool = True) -> str:
        """The default model on ``device`` ("cpu" or "cuda"): the one registered with that device in
        ``default_on`` (fvr's shipped weights), else :attr:`default_name`; as ``NAME+STABILISER`` when the model
        runs with a stabiliser by default (``default_with``) and ``with_stabiliser``."""
        for name, entry in self._entries.items():
            if device in entry.default_on:
                return f"{name}+{entry.default_with}" if entry.default_with and with_stabiliser else name
        return self.default_name

    def spec(self, name: str) -> RestorerSpec:
        return self._entry(name).spec

    def create(self, name: str | None = None, *, device: str | None = None, **options: object) -> Restorer:
        """Build model ``name`` (None: the default for ``device``; a file path — an fvr ``.safetensors``, an
        ``.onnx`` graph or a third-party checkpoint — see :mod:`fvr.models.loaders.files`). ``device`` ("cpu", "cuda";
        None = CPU) reaches the models that run on one. ``MODEL+STABILISER`` (e.g. ``image-baseline+flow``) wraps
        any model with a temporal stabiliser (:mod:`fvr.models.temporal.stabilise`)."""
        name = name or self.default_for(device or "cpu")
        if name not in self._entries:
            ref = ModelRef.parse(name)
            if ref.stabiliser:  # MODEL+STABILISER: any restorer wrapped with a temporal stabiliser
                from fvr.models.temporal.stabilise import stabilised

                inner = self.create(ref.model, device=device, **options)
                return stabilised(inner, ref.stabiliser, device=device or "cpu")
            if ref.is_file:
                from fvr.models.loaders.files import restorer_from_file

                restorer = restorer_from_file(ref.model, device=device or "cpu", **options)
                restorer.bind_bases(self.base_restorer)
                return restorer
        entry = self._entry(name)
        self.require_ready(name, options)
        if entry.uses_device and device is not None:
            options = {"device": device, **options}
        try:
            restorer = entry.factory(**options)
        except TypeError as exc:
            raise ConfigError(f"model {entry.spec.name!r}: {exc}") from None
        restorer.bind_bases(self.base_restorer)
        return restorer

    def base_restorer(self, name: str, device: str, size: int) -> Restorer:
        """Model ``name`` on ``device`` for ``size``² crops, as the frozen base of another model (a learned
        stabiliser's): a model with a free crop size (classical, identity) is built at ``size``; another size is a
        one-line ConfigError."""
        base = self.create(name, device=device)
        if base.spec.crop_size != size:
            try:
                base = self.create(name, device=device, crop_size=size)
            except ConfigError:
                raise ConfigError(f"stabiliser base {name!r} works on {base.spec.crop_size}² crops, not {size}²: set "
                                  f"data.crop_size to {base.spec.crop_size}") from None
        return base

    def _entry(self, name: str) -> ModelEntry:
        if name not in self._entries:
            known = ", ".join(sorted(self._entries))
            raise ConfigError(f"unknown model {name!r}; registered models: {known}")
        return self._entries[name]


def builtin_registry(*, plugins: bool = True) -> ModelRegistry:
    """A new registry with fvr's built-in restorers (and installed plug-ins unless ``plugins=False``)."""
    from fvr.models import classical, identity, learned
    from fvr.models.thirdparty.realesrgan import model as realesrgan

    registry = ModelRegistry()
    identity.register(registry)
    classical.register(registry)
    realesrgan.register(registry)
    if find_spec(realesrgan.WEIGHTS_PACKAGE) is None:
        registry.mark_not_ready("realesrgan", f"the realesrgan extra ({realesrgan.INSTALL_HINT})")
    learned.register(registry)
    if plugins:
        for ep in entry_points(group="fvr.models"):
            ep.load()(registry)
    return registry
