"""The soft face mask, defined once in aligned (template) space.

Because every crop is aligned to the same template with the temporally smoothed landmarks, a mask fixed in crop
space and warped back with the same smoothed transform moves smoothly with the face: the blend boundary cannot
flicker on its own.
"""

from __future__ import annotations

import cv2
import numpy as np

# Ellipse covering brows to chin on the FFHQ 512 template (eyes at y~240, mouth at y~371): centre and semi-axes.
_CENTRE_512 = (256.0, 290.0)
_AXES_512 = (160.0, 190.0)


DEFAULT_COVERAGE = 1.6
"""The pasted region of ``fvr restore`` by default: nearly the whole aligned crop (GFPGAN-style paste). Measured on
the eval set: +0.54 dB face PSNR for fvr-quality against brows-to-chin (coverage 1), and better on every metric
but TLME (docs/bench/comparison-coverage16). The metrics' own face mask stays at coverage 1."""


def face_mask(size: int, *, feather: float = 0.06, coverage: float = 1.0) -> np.ndarray:
    """(size, size) float32 in [0, 1]: 1 on the face, a Gaussian-feathered edge, exactly 0 at the crop border.

    feather: edge softness as a fraction of the crop size (the "mask blur" users ask for).
    coverage: scales the ellipse (<1 restores a smaller central region).
    """
    s = size / 512.0
    sigma = max(feather * size, 0.5)
    # shrink the hard ellipse by ~1 sigma so the feathered edge stays inside the ellipse users expect
    axes = (max(1, int(round(_AXES_512[0] * s * coverage - sigma))),
            max(1, int(round(_AXES_512[1] * s * coverage - sigma))))
    centre = (int(round(_CENTRE_512[0] * s)), int(round(_CENTRE_512[1] * s)))
    hard = np.zeros((size, size), np.float32)
    cv2.ellipse(hard, centre, axes, 0.0, 0.0, 360.0, 1.0, thickness=-1, lineType=cv2.LINE_AA)
    soft = cv2.GaussianBlur(hard, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_CONSTANT)
    # taper to zero at the border so the warped-back crop never shows its square outline
    ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / max(2.0 * sigma, 1.0), 0.0, 1.0)
    soft *= np.minimum.outer(ramp, ramp).astype(np.float32)
    return np.clip(soft, 0.0, 1.0)
