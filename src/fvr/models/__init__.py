"""Restorers: the contract (:class:`Restorer`, :class:`RestorerSpec`) and the registry keyed by name."""

from fvr.models.base import KINDS, TEMPORAL_STRATEGIES, Restorer, RestorerSpec
from fvr.models.registry import ModelEntry, ModelRegistry, builtin_registry

__all__ = [
    "KINDS",
    "TEMPORAL_STRATEGIES",
    "ModelEntry",
    "ModelRegistry",
    "Restorer",
    "RestorerSpec",
    "builtin_registry",
]
