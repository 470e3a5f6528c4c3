"""Training fvr's learned restorers: ``fvr train --config FILE`` (see docs/train.md).

- :mod:`fvr.train.config`: the TOML/YAML config -> frozen dataclasses (:class:`TrainConfig`).
- :mod:`fvr.train.data`: face-track crop cache, packing to one .npz, the degrading sampler.
- :mod:`fvr.train.losses`: Charbonnier, L1, component-weighted L1, ST-LPIPS, temporal, PatchGAN.
- :mod:`fvr.train.loop`: :func:`train` (AdamW, warm-up + cosine, EMA, clipping, validation, logs, export).
- :mod:`fvr.train.checkpoint`: safetensors checkpoints that resume exactly.
- ``src/fvr/cli/train_standalone.py``: run the trainer on a machine without PyAV (GPU boxes), from a packed file.
"""

from fvr.train.config import (
    TrainConfig,
    config_from_mapping,
    config_to_toml,
    load_config,
    with_overrides,
)
from fvr.train.data import cache_to_arrays, load_packed, pack_config_data
from fvr.train.loop import TrainResult, resolve_crop_size, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "cache_to_arrays",
    "config_from_mapping",
    "config_to_toml",
    "load_config",
    "load_packed",
    "pack_config_data",
    "resolve_crop_size",
    "train",
    "with_overrides",
]
