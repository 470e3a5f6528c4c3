"""Full-reference fidelity: PSNR and SSIM, on RGB or on the BT.601 luma (Y) channel.

Conventions follow BasicSR (``calculate_psnr`` / ``calculate_ssim`` with ``test_y_channel``), which the VFHQ,
PGTFormer and KEEP evaluations use: Y is ITU-R BT.601 "studio swing" luma in [16, 235] computed in floating point
(no rounding), and SSIM uses an 11 x 11 Gaussian window with sigma 1.5, the population covariance and a data range
of 255, averaged over the image after dropping the 5-pixel border the window cannot cover (skimage's
``structural_similarity``, which matches BasicSR's ``_ssim`` up to float rounding).
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

# BT.601 RGB -> Y for RGB in [0, 1]: Y = 16 + 65.481 R + 128.553 G + 24.966 B (BasicSR's rgb2ycbcr, y_only=True)
_Y_COEFFS = np.array([65.481, 128.553, 24.966], dtype=np.float64)


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) RGB images, got shape {a.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {a.dtype} and {b.dtype}")
    return a, b


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 RGB image (H, W, 3) -> (H, W) float64 in [16, 235] (not rounded).

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 with R, G, B in [0, 255]: BasicSR's
    ``rgb2ycbcr(img / 255, y_only=True) * 255``, as used by ``calculate_psnr(..., test_y_channel=True)``.
    """
    return np.asarray(rgb, dtype=np.float64) @ (_Y_COEFFS / 255.0) + 16.0


def psnr(a: np.ndarray, b: np.ndarray, *, y_channel: bool = False, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB (higher is better, ↑).

    PSNR = 10 log10(255² / MSE), MSE = Σ w (a − b)² / (C Σ w) over pixels (and the C channels: 3 for RGB, 1 for Y),
    with w = ``mask`` (a soft (H, W) weight map in [0, 1]) or 1 everywhere.

    a, b: (H, W, 3) uint8 RGB images of the same shape. y_channel: compare the BT.601 luma only (see
    :func:`rgb_to_y`), the "PSNR-Y" of the super-resolution literature. Returns ``inf`` for identical images (a
    reporting layer may cap it) and ``nan`` if the mask is all zero.
    """
    a, b = _check_pair(a, b)
    if y_channel:
        diff2 = (rgb_to_y(a) - rgb_to_y(b))[..., None] ** 2
    else:
        diff2 = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if mask is None:
        mse = float(diff2.mean())
    else:
        w = np.asarray(mask, dtype=np.float64)
        if w.shape != a.shape[:2]:
            raise ValueError(f"mask shape {w.shape} does not match image shape {a.shape[:2]}")
        total = float(w.sum())
        if total <= 0:
            return math.nan
        mse = float((diff2 * w[..., None]).sum() / (total * diff2.shape[2]))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, *, y_channel: bool = False) -> float:
    """Structural similarity index, unitless in [-1, 1] (higher is better, ↑; 1 for identical images).

    SSIM = mean over windows of ((2 μa μb + C1)(2 σab + C2)) / ((μa² + μb² + C1)(σa² + σb² + C2)), C1 = (0.01 L)²,
    C2 = (0.03 L)², L = 255; Gaussian window σ = 1.5 (11 x 11), population (co)variances, the 5-pixel border
    dropped; for RGB the mean of the three per-channel SSIMs (as BasicSR).

    a, b: (H, W, 3) uint8 RGB images of the same shape, at least 11 x 11. y_channel: on BT.601 luma (float,
    [16, 235]) instead of RGB.
    """
    a, b = _check_pair(a, b)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11 x 11 pixels, got {a.shape[:2]}")
    kwargs = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255.0}
    if y_channel:
        return float(structural_similarity(rgb_to_y(a), rgb_to_y(b), **kwargs))
    return float(
        structural_similarity(a.astype(np.float64), b.astype(np.float64), channel_axis=2, **kwargs)
    )


def color_shift(out: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None, sigma: float = 0.0) -> float:
    """Mean CIEDE2000 colour difference ΔE00 between two uint8 RGB images (H, W, 3) of one shape, weighted by
    ``mask`` ((H, W) float in [0, 1], e.g. the soft face mask; None = every pixel).

    Both images are first blurred with a Gaussian of ``sigma`` px (0 = S / 32 for an S-pixel crop) so that the
    number measures the colour cast of a region — a restorer that tints skin — and not the detail it adds or
    removes. ΔE00 ≈ 1 is a just-noticeable difference; > 3 is visible side by side.
    """
    import cv2
    from skimage.color import deltaE_ciede2000, rgb2lab

    a, b = _check_pair(out, ref)
    s = sigma or max(a.shape[:2]) / 32.0

    def blur(x: np.ndarray) -> np.ndarray:
        """(H, W, 3) RGB in 0..255 -> (H, W, 3) float32 in [0, 1], blurred."""
        return cv2.GaussianBlur(x.astype(np.float32) / 255.0, (0, 0), s)

    d = deltaE_ciede2000(rgb2lab(blur(a)), rgb2lab(blur(b)))
    if mask is None:
        return float(d.mean())
    w = np.asarray(mask, dtype=np.float64)
    if w.shape != d.shape:
        raise ValueError(f"mask shape {w.shape} does not match the images {d.shape}")
    return float((d * w).sum() / max(w.sum(), 1e-9))
