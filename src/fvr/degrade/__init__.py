"""Synthetic degradation of clean clips into low-quality inputs, for benchmarks and training.

``sample_params(preset, seed)`` draws one clip's parameters (``vfhq`` follows the VFHQ-Test protocol);
``degrade_frames`` degrades frames in memory (including the real libx264 pass); ``degrade_video`` degrades a file
and writes a JSON record beside it. See docs/degrade.md.
"""

from typing import TYPE_CHECKING

from fvr.degrade.ops import (
    add_gaussian_noise,
    apply_kernel,
    blur_kernel,
    crop_for_scale,
    gaussian_kernel,
    gt_crop,
    jpeg_roundtrip,
    lq_size,
    motion_kernel,
    old_film,
    resize_down,
)
from fvr.degrade.params import (
    PRESETS,
    BlurParams,
    DegradeParams,
    FilmParams,
    NoiseParams,
    PresetSpec,
    Resolved,
    describe,
    load_params,
    resolve_params,
    sample_params,
)

# fvr.degrade.video runs the real libx264 pass through PyAV: import it on first use, so the in-memory ops and
# parameter sampling work where PyAV is not installed.
_VIDEO = {"CodecPass", "DegradeRecord", "degrade_frame", "degrade_frames", "degrade_video", "frame_rng", "sidecar_path"}

if TYPE_CHECKING:  # their real types for the type checker (__getattr__ can only promise an object)
    from fvr.degrade.video import (
        CodecPass,
        DegradeRecord,
        degrade_frame,
        degrade_frames,
        degrade_video,
        frame_rng,
        sidecar_path,
    )


def __getattr__(name: str) -> object:
    if name in _VIDEO:
        from fvr.degrade import video

        return getattr(video, name)
    raise AttributeError(f"module 'fvr.degrade' has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "BlurParams",
    "CodecPass",
    "DegradeParams",
    "DegradeRecord",
    "FilmParams",
    "NoiseParams",
    "PresetSpec",
    "Resolved",
    "add_gaussian_noise",
    "apply_kernel",
    "blur_kernel",
    "crop_for_scale",
    "degrade_frame",
    "degrade_frames",
    "degrade_video",
    "describe",
    "frame_rng",
    "gaussian_kernel",
    "gt_crop",
    "jpeg_roundtrip",
    "load_params",
    "lq_size",
    "motion_kernel",
    "old_film",
    "resize_down",
    "resolve_params",
    "sample_params",
    "sidecar_path",
]
