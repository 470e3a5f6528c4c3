"""``identity``: returns its input. Proves the plumbing (detect, track, align, paste, encode) end to end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fvr.models.base import Restorer, RestorerSpec

if TYPE_CHECKING:
    from fvr.models.registry import ModelRegistry  # annotations only: the registry imports this module


class IdentityRestorer(Restorer):
    def __init__(self, crop_size: int = 512):
        self.spec = RestorerSpec(
            name="identity", kind="non-learned", temporal="per-frame", crop_size=crop_size,
            description="returns the aligned crops unchanged (plumbing check)",
        )

    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return clip.copy()


def register(registry: ModelRegistry) -> None:
    registry.register(IdentityRestorer().spec, IdentityRestorer)
