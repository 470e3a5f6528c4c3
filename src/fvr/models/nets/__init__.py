"""fvr's learned restorers along the survey's taxonomy (plain torch).

:func:`architectures` returns every :class:`~fvr.models.nets.core.ArchSpec` by name; each architecture module
exposes a tuple ``ARCHS``. See :mod:`fvr.models.nets.core` for the network contract and weight files.
"""

from __future__ import annotations

import importlib

from fvr.models.nets.core import (
    PRESETS,
    ArchSpec,
    LoadedModel,
    TorchRestorer,
    load_weights,
    read_metadata,
    registry_name,
    restorer_from_weights,
    save_weights,
)

# Modules defining architectures, in the order `fvr models` lists them.
ARCH_MODULES = ("unet", "window", "regional", "recurrent", "transformer", "basicvsr", "diffusion", "codebook",
                "stabiliser", "pretrained")


def architectures() -> dict[str, ArchSpec]:
    """A new name -> ArchSpec mapping of every architecture fvr has."""
    archs: dict[str, ArchSpec] = {}
    for module in ARCH_MODULES:
        for arch in importlib.import_module(f"fvr.models.nets.{module}").ARCHS:
            if arch.name in archs:
                raise ValueError(f"architecture {arch.name!r} is defined twice")
            archs[arch.name] = arch
    return archs


__all__ = [
    "ARCH_MODULES",
    "PRESETS",
    "ArchSpec",
    "LoadedModel",
    "TorchRestorer",
    "architectures",
    "load_weights",
    "read_metadata",
    "registry_name",
    "restorer_from_weights",
    "save_weights",
]
