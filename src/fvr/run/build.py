"""The models a :class:`~fvr.run.config.RestoreConfig` asks for, built once per run on its device: the face
restorer (model reference, options, temporal stabiliser) and the background up-sampler."""

from __future__ import annotations

from fvr.compose.background import Background
from fvr.models import ModelRegistry, Restorer
from fvr.models.reference import ModelRef
from fvr.models.registry import resolve_device
from fvr.run.config import RestoreConfig


def build_restorer(config: RestoreConfig, registry: ModelRegistry) -> Restorer:
    """The restorer ``config`` asks for: ``model`` (with ``model_options``) on ``device``, wrapped with the
    temporal stabiliser when ``stabilise`` is set."""
    # onnxruntime picks its own provider for "auto": a CUDA torch does not imply a CUDA onnxruntime
    onnx = config.model is not None and ModelRef.parse(config.model).is_onnx
    model_device = config.device if onnx else resolve_device(config.device, "--device")
    restorer = registry.create(model_reference(config, registry), device=model_device, **dict(config.model_options))
    if config.stabilise:
        from fvr.models.temporal.stabilise import stabilised

        device = resolve_device(config.device, "--device") if onnx else model_device
        restorer = stabilised(restorer, config.stabilise, dict(config.stabilise_options), device=device)
    return restorer


def model_reference(config: RestoreConfig, registry: ModelRegistry) -> str:
    """The model reference ``config`` builds: its ``model``, else the default for its device, with that default's
    own stabiliser unless ``stabilise`` names one (--stabilise replaces it)."""
    if config.model:
        return config.model
    return registry.default_for(resolve_device(config.device, "--device"), with_stabiliser=not config.stabilise)


def build_background(config: RestoreConfig) -> Background:
    """The up-sampler of ``config.background`` by ``config.upscale``, a network on the device the learned models
    use (``--device``); a classical resampling or factor 1 loads nothing."""
    from fvr.models.backgrounds import make_background

    return make_background(config.background, config.upscale, device=resolve_device(config.device, "--device"))
