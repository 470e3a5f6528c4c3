"""``classical``: non-learned per-frame enhancement — noise-adaptive edge-preserving denoise, then unsharp mask.

Noise is estimated per crop (Immerkaer's fast Laplacian estimator), so clean faces are only sharpened and noisy
ones are smoothed first; the unsharp mask has a threshold so that residual noise is not amplified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from fvr.models.base import Restorer, RestorerSpec

if TYPE_CHECKING:
    from fvr.models.registry import ModelRegistry  # annotations only: the registry imports this module

# Immerkaer (1996): this 3x3 kernel cancels image structure up to second order, leaving mostly noise.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def estimate_noise_sigma(gray: np.ndarray) -> float:
    """Gaussian noise sigma of a (H, W) float32 image in [0, 1] (same units)."""
    h, w = gray.shape
    if h < 3 or w < 3:
        return 0.0
    response = cv2.filter2D(gray, -1, _NOISE_KERNEL, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(response).sum() / (6.0 * (w - 2) * (h - 2)))


def enhance_image(
    rgb: np.ndarray, *, sharpen: float = 0.8, radius: float = 1.2, threshold: float = 0.01, denoise: float = 1.0
) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] -> same. ``denoise`` scales the bilateral range sigma (x noise estimate)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    sigma_n = estimate_noise_sigma(gray)
    out = rgb
    if denoise > 0 and sigma_n > 0.004:
        size = rgb.shape[0]
        d = max(3, int(round(size / 36)) | 1)
        # the estimate is taken on gray (averaging channels lowers independent noise), hence the generous factor
        out = cv2.bilateralFilter(rgb, d, sigmaColor=float(4.0 * sigma_n * denoise), sigmaSpace=d / 2.0)
    if sharpen > 0:
        scale = rgb.shape[0] / 256.0
        blurred = cv2.GaussianBlur(out, (0, 0), sigmaX=radius * scale)
        detail = out - blurred
        # soft threshold: small differences (noise) are not boosted, edges are
        cut = max(threshold, 1.5 * sigma_n)
        detail = np.sign(detail) * np.maximum(np.abs(detail) - cut, 0.0)
        out = out + sharpen * detail
    return np.clip(out, 0.0, 1.0)


class ClassicalRestorer(Restorer):
    def __init__(self, crop_size: int = 256, sharpen: float = 0.8, denoise: float = 1.0):
        self.sharpen = sharpen
        self.denoise = denoise
        self.spec = RestorerSpec(
            name="classical", kind="non-learned", temporal="per-frame", crop_size=crop_size,
            description="edge-preserving denoise (noise-adaptive bilateral) + thresholded unsharp mask",
        )

    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        out = np.empty_like(clip)
        for t in range(clip.shape[0]):
            hwc = np.ascontiguousarray(clip[t].transpose(1, 2, 0))
            out[t] = enhance_image(hwc, sharpen=self.sharpen, denoise=self.denoise).transpose(2, 0, 1)
        return out


def register(registry: ModelRegistry) -> None:
    registry.register(ClassicalRestorer().spec, ClassicalRestorer, default=True)
