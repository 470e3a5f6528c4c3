"""What a benchmark "method" is: a named way to run the real ``fvr restore`` pipeline on a low-quality clip.

Every method runs through :func:`fvr.run.pipeline.restore_video` with the same background up-sampling (bicubic), so
that differences between methods come from the faces. Built-in names:

* ``bicubic``    — the input up-sampled, faces untouched (the face pipeline is skipped entirely);
* ``classical``  — fvr's non-learned restorer (noise-adaptive bilateral + unsharp mask) on aligned face crops;
* ``realesrgan`` — Real-ESRGAN x4plus, the general image-restoration baseline, per frame on aligned face crops;
* ``realesrgan-frame`` — Real-ESRGAN x4plus on the whole frame (tiled); faces untouched. Slow on a CPU.

Any other name is looked up in the model registry (``fvr models``) and run on the faces with a bicubic background;
a model file (``.onnx``, a checkpoint, an fvr ``.safetensors``) runs that file; ``MODEL+STABILISER`` (e.g.
``image-baseline+flow``, ``gfpgan.onnx+flow``) runs the model wrapped with a temporal stabiliser.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from fvr.errors import ConfigError
from fvr.models import ModelRegistry
from fvr.models.reference import ModelRef
from fvr.run.config import RestoreConfig


@dataclass(frozen=True)
class BenchMethod:
    """name: the column/row label. model: registry name. background: up-sampling of the whole frame.
    skip_faces: run no face analysis or restorer (pure up-sampling). model_options: passed to the model factory."""

    name: str
    model: str = "identity"
    background: str = "bicubic"
    skip_faces: bool = False
    model_options: dict[str, object] = field(default_factory=dict)
    description: str = ""

    def restore_config(self, base: RestoreConfig, upscale: int) -> RestoreConfig:
        return replace(base, model=self.model, model_options=dict(self.model_options), upscale=upscale,
                       background=self.background)


BUILTIN_METHODS = {
    "bicubic": BenchMethod("bicubic", skip_faces=True, description="input up-sampled (bicubic)"),
    "classical": BenchMethod("classical", model="classical", description="fvr classical restorer on face crops"),
    "realesrgan": BenchMethod("realesrgan", model="realesrgan",
                              description="Real-ESRGAN x4plus per frame on aligned face crops"),
    "realesrgan-frame": BenchMethod("realesrgan-frame", background="realesrgan", skip_faces=True,
                                    description="Real-ESRGAN x4plus on the whole frame"),
}


def resolve_methods(names: list[str], registry: ModelRegistry) -> list[BenchMethod]:
    """Method names (comma-split already) -> methods; unknown names give a one-line :class:`ConfigError`."""
    if not names:
        raise ConfigError("give at least one method, e.g. --methods bicubic,classical")
    methods = []
    known = set(registry.names())
    for name in names:
        if name in BUILTIN_METHODS:
            methods.append(BUILTIN_METHODS[name])
        elif name in known:
            methods.append(BenchMethod(name, model=name, description=registry.spec(name).description))
        elif (ref := ModelRef.parse(name)).model in known or (ref.is_file and Path(ref.model).is_file()):
            what = (registry.spec(ref.model).description if ref.model in known
                    else f"model file `{Path(ref.model).name}`")
            if ref.stabiliser:
                what = f"{what}, with the temporal stabiliser `{ref.stabiliser}`"
            methods.append(BenchMethod(ref.label, model=name, description=what))
        else:
            choices = ", ".join(sorted(set(BUILTIN_METHODS) | known))
            raise ConfigError(f"unknown method {name!r}; choose from: {choices}")
    if len({m.name for m in methods}) != len(methods):
        raise ConfigError("a method is listed twice")
    return methods
