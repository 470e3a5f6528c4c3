"""Synthetic degradation of clean clips into low-quality inputs, for benchmarks and training.

``sample_params(preset, seed)`` draws one clip's parameters (``vfhq`` follows the VFHQ-Test protocol);
``degrade_frames`` degrades frames in memory (including the real libx264 pass); ``degrade_video`` degrades a file
and writes a JSON record beside it. See docs/degrade.md.
"""

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
from fvr.degrade.video import (
    CodecPass,
    degrade_frame,
    degrade_frames,
    degrade_video,
    frame_rng,
    sidecar_path,
)

__all__ = [
    "PRESETS",
    "BlurParams",
    "CodecPass",
    "DegradeParams",
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
