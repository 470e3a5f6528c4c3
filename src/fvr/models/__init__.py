"""Restorers: the contract (:class:`Restorer`, :class:`RestorerSpec`, :class:`FrameRestorer`), the model reference
grammar (:class:`ModelRef`) and the registry keyed by name.

Layout, by level: the contract and registry here (``base``, ``reference``, ``registry``); fvr's own restorers
(``identity``, ``classical``, ``learned``) and networks (``nets/``); ``loaders/`` for models given as files (ONNX,
spandrel checkpoints, ncnn weights, the strict state-dict loader and weight cache); ``thirdparty/`` for re-implemented
third-party architectures with their converters, one folder each; ``temporal/`` for the stabilisers that wrap any
restorer; ``upsample`` for whole-frame up-samplers (the background of ``--upscale``).
"""

from fvr.models.base import KINDS, TEMPORAL_STRATEGIES, FrameRestorer, Restorer, RestorerSpec, as_frame_restorer
from fvr.models.reference import ModelRef
from fvr.models.registry import ModelEntry, ModelRegistry, builtin_registry

__all__ = [
    "KINDS",
    "TEMPORAL_STRATEGIES",
    "FrameRestorer",
    "ModelEntry",
    "ModelRef",
    "ModelRegistry",
    "Restorer",
    "RestorerSpec",
    "as_frame_restorer",
    "builtin_registry",
]
