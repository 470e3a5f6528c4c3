"""No-reference image quality: BRISQUE (Mittal, Moorthy & Bovik, IEEE TIP 2012), via the ``brisque`` package.

The package's default model (LIVE-trained libsvm regressor ``models/svm.txt`` and feature ranges
``models/normalize.pickle``) ships inside the package and is read from disk; the scorer is built with
``url=False``, the only mode in which ``BRISQUE.score`` takes arrays, so scoring never touches the network (the
package imports ``requests`` but calls it only for ``url=True``).
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from fvr.metrics.deps import missing

_LOCK = threading.Lock()
_SCORER = None


def _scorer():
    global _SCORER
    if _SCORER is None:
        with _LOCK:
            if _SCORER is None:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # scipy.ndimage.filters deprecation inside the package
                        from brisque import BRISQUE
                except ImportError:
                    raise missing("brisque", "BRISQUE") from None
                _SCORER = BRISQUE(url=False)
    return _SCORER


def brisque(img: np.ndarray) -> float:
    """BRISQUE score (↓, unitless, about 0 (pristine) to 100 (heavily distorted); can leave that range).

    Natural-scene statistics of the mean-subtracted contrast-normalised luminance (MSCN) and of its pairwise
    products at two scales (36 features) fed to an RBF support-vector regressor trained on LIVE's DMOS.
    img: uint8 RGB (H, W, 3) (or grey (H, W)), at least about 32 x 32. The scorer is built once, on first use.
    """
    a = np.asarray(img)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise ValueError(f"expected a uint8 RGB (H, W, 3) or grey (H, W) image, got {a.dtype} {a.shape}")
    if min(a.shape[:2]) < 32:
        raise ValueError(f"BRISQUE needs at least 32 x 32 pixels, got {a.shape[:2]}")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    scorer = _scorer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _score(scorer, a)


def _score(scorer, rgb: np.ndarray) -> float:
    """``BRISQUE.score`` of brisque 0.2.0, step by step.

    The package's own ``score`` fails under numpy >= 2.4: some of its features come out as 1-element arrays and
    ``float()`` of those is an error there. This runs the same steps with the package's own methods (grey levels
    in [0, 1] by ``skimage.color.rgb2gray``, 18 features at full and at half scale (bicubic), the packaged scaling
    and SVR) and flattens the features first. It also skips a computation whose result ``score`` discards.
    """
    import cv2
    import skimage.color

    gray = skimage.color.rgb2gray(rgb)
    full = scorer.calculate_brisque_features(gray, kernel_size=7, sigma=7 / 6)
    half = cv2.resize(gray, None, fx=1 / 2, fy=1 / 2, interpolation=cv2.INTER_CUBIC)
    low = scorer.calculate_brisque_features(half, kernel_size=7, sigma=7 / 6)
    feats = np.array([float(np.asarray(f, dtype=np.float64).reshape(-1)[0]) for f in (*full, *low)])
    return float(scorer.calculate_image_quality_score(feats))
