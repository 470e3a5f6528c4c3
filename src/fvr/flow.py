"""Dense optical flow helpers shared by the metrics (E*warp) and the temporal stabiliser.

Flow is OpenCV's DIS (Kroeger et al., ECCV 2016) on grey levels; ``flow`` maps pixels of the first image to the
second: ``src(x) ≈ dst(x + flow(x))``, (H, W, 2) float32 in pixels (x, y). Occlusion follows the
forward-backward check of Sundaram et al. (ECCV 2010).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

# occlusion test: |f + b(x + f)|² < OCC_ALPHA (|f|² + |b(x + f)|²) + OCC_BETA, with f, b in pixels
OCC_ALPHA = 0.01
OCC_BETA = 0.5

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 grey."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def dis_flow(src: np.ndarray, dst: np.ndarray, preset: str = "medium") -> np.ndarray:
    """Dense flow (H, W, 2) float32 from ``src`` to ``dst`` (uint8 RGB (H, W, 3) or grey (H, W)):
    src(x) ≈ dst(x + flow(x))."""
    dis = cv2.DISOpticalFlow.create(DIS_PRESETS[preset])
    a = src if src.ndim == 2 else gray(src)
    b = dst if dst.ndim == 2 else gray(dst)
    # cv2's stub requires the output flow array; OpenCV takes None for it and allocates the result
    return dis.calc(np.ascontiguousarray(a), np.ascontiguousarray(b), None)  # type: ignore[call-overload]


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y), each (H, W) float32; cached and read-only (callers never write into them)."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def channel_sq_sum(v: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W): the sum of squares over the last axis, channel by channel in order (numpy's reduce
    over a short last axis is several times slower at the crop sizes the stabiliser runs at)."""
    out = v[..., 0] * v[..., 0]
    for c in range(1, v.shape[-1]):
        out += v[..., c] * v[..., c]
    return out


def remap(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``img`` sampled at x + flow(x) (bilinear, border replicated): with flow from a to b and img = b, the result
    is b warped onto a. img (H, W) or (H, W, C), any float/uint8 dtype cv2.remap takes."""
    gx, gy = _grid(*flow.shape[:2])
    return cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def valid_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of a whose flow ``forward`` (a -> b) is confirmed by ``backward`` (b -> a) — not
    occluded — and lands inside the frame."""
    b_at = remap(backward, forward)  # b sampled at x + f(x)
    s = forward + b_at
    valid = channel_sq_sum(s) < OCC_ALPHA * (channel_sq_sum(forward) + channel_sq_sum(b_at)) + OCC_BETA
    h, w = forward.shape[:2]
    gx, gy = _grid(h, w)
    tx, ty = gx + forward[..., 0], gy + forward[..., 1]
    return valid & (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
