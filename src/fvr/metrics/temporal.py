"""Temporal consistency: the flow-warping error E*warp and flicker, with and without a ground truth.

E*warp follows Lai et al., "Learning Blind Video Temporal Consistency" (ECCV 2018): warp the previous output frame
onto the current one with optical flow computed on the reference (here OpenCV DIS, preset MEDIUM, on grey
frames instead of FlowNet2), ignore occluded pixels (forward-backward check of Sundaram et al.), and take the MSE.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from fvr.flow import dis_flow, remap, valid_mask


def _check_frames(*frames: np.ndarray) -> tuple[np.ndarray, ...]:
    arrs = tuple(np.asarray(f) for f in frames)
    shape = arrs[0].shape
    for f in arrs:
        if f.shape != shape or f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"expected uint8 RGB frames (H, W, 3) of one shape, got {f.dtype} {f.shape} and {shape}")
    return arrs


def _weights(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=np.float64)
    w = np.asarray(mask, dtype=np.float64)
    if w.shape != shape:
        raise ValueError(f"mask shape {w.shape} does not match the frames' {shape}")
    return w


def warp_previous(prev: np.ndarray, ref_prev: np.ndarray, ref_cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``prev`` warped onto the current frame with flow from the reference pair, and the validity mask.

    Returns (warped (H, W, 3) float32 in [0, 1], valid (H, W) bool): valid where the forward (t -> t−1) and
    backward (t−1 -> t) flows of ``ref_cur``/``ref_prev`` agree (not occluded) and x + f(x) lies in the frame.
    """
    f = dis_flow(ref_cur, ref_prev)  # t -> t-1
    valid = valid_mask(f, dis_flow(ref_prev, ref_cur))
    warped = remap(prev.astype(np.float32) / 255.0, f)
    return warped, valid


def warp_error(
    out_prev: np.ndarray,
    out_cur: np.ndarray,
    gt_prev: np.ndarray,
    gt_cur: np.ndarray,
    *,
    mask: np.ndarray | None = None,
) -> float:
    """Flow-warping error E*warp (↓), reported ×10⁻³: 1000 · MSE between outₜ and outₜ₋₁ warped to t.

    E = 1000 · Σₓ wₓ Mₓ ‖outₜ(x) − outₜ₋₁(x + f(x))‖² / (3 Σₓ wₓ Mₓ), on RGB in [0, 1] (the squared error is
    averaged over the three channels), where f is the flow from gtₜ to gtₜ₋₁ (DIS, preset MEDIUM, grey levels),
    M the non-occlusion mask (forward-backward check |f + b(x+f)|² < 0.01 (|f|² + |b(x+f)|²) + 0.5, b the flow
    from gtₜ₋₁ to gtₜ, and x + f inside the frame) and w the optional soft ``mask`` (H, W) in [0, 1].
    The warp uses bilinear ``cv2.remap``.

    All frames: uint8 RGB (H, W, 3) of one shape. A value of 1.0 means an MSE of 10⁻³ (about 30 dB). A perfect
    restoration scores the ground truth's own warping error, ≈ 0 only where the flow explains the motion.
    NaN if no pixel is valid.
    """
    out_prev, out_cur, gt_prev, gt_cur = _check_frames(out_prev, out_cur, gt_prev, gt_cur)
    w = _weights(mask, out_cur.shape[:2])
    warped, valid = warp_previous(out_prev, gt_prev, gt_cur)
    w = w * valid
    total = float(w.sum())
    if total <= 0:
        return math.nan
    err = ((out_cur.astype(np.float32) / 255.0 - warped) ** 2).mean(axis=2)
    return 1000.0 * float((err * w).sum() / total)


def warp_error_nr(
    out_prev: np.ndarray,
    out_cur: np.ndarray,
    in_prev: np.ndarray,
    in_cur: np.ndarray,
    *,
    mask: np.ndarray | None = None,
) -> float:
    """No-reference E*warp (↓, ×10⁻³) for real footage: :func:`warp_error` with the flow (and occlusion check)
    computed on the restorer's *input* frames instead of a ground truth. Same inputs and units.

    Caveat: flow on a low-quality input is less accurate (noise, blur), which raises the floor for every method
    alike; compare methods on the same input only.
    """
    return warp_error(out_prev, out_cur, in_prev, in_cur, mask=mask)


def flicker(
    out_prev: np.ndarray,
    out_cur: np.ndarray,
    gt_prev: np.ndarray,
    gt_cur: np.ndarray,
    mask: np.ndarray | None = None,
) -> float:
    """Flicker (↓, grey levels on [0, 255]): the temporal change of the output that the ground truth does not have.

    F = Σₓ wₓ |(outₜ − outₜ₋₁) − (gtₜ − gtₜ₋₁)|(x) / (3 Σₓ wₓ), absolute values averaged over RGB channels, with
    w the soft face mask (H, W) in [0, 1] (``fvr.compose.face_mask`` on aligned crops, as the evaluators pass) or
    1 everywhere if ``mask`` is None. No flow: on aligned crops the face barely moves between frames, and any
    brightness or texture change of the output beyond the reference's own counts. All frames: uint8 RGB (H, W, 3)
    of one shape. 0 for an output that changes exactly as the ground truth does. NaN if the mask is all zero.
    """
    out_prev, out_cur, gt_prev, gt_cur = _check_frames(out_prev, out_cur, gt_prev, gt_cur)
    w = _weights(mask, out_cur.shape[:2])
    total = float(w.sum())
    if total <= 0:
        return math.nan
    d = (out_cur.astype(np.float32) - out_prev.astype(np.float32)) - (
        gt_cur.astype(np.float32) - gt_prev.astype(np.float32)
    )
    return float((np.abs(d).mean(axis=2) * w).sum() / total)


def flicker_nr(
    out_prev: np.ndarray,
    out_cur: np.ndarray,
    in_prev: np.ndarray,
    in_cur: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    sigma: float | None = None,
) -> float:
    """No-reference flicker (↓, grey levels on [0, 255]) for real footage: :func:`flicker` against the *input*'s
    temporal change, on low-passed frames.

    F_nr = Σ w |G(outₜ − outₜ₋₁) − G(inₜ − inₜ₋₁)| / (3 Σ w), G a Gaussian blur of standard deviation ``sigma``
    pixels (default: size / 128, one low-quality pixel of a ×4 restoration at 512). The input's fresh per-frame
    noise and compression artefacts are high-frequency and a good restorer removes them, so only the low-frequency
    part of the change (brightness, colour, shading flicker) is compared. ``in_*`` are the input crops, resized
    to the output's size. Same units as :func:`flicker`; not comparable with it.
    """
    out_prev, out_cur, in_prev, in_cur = _check_frames(out_prev, out_cur, in_prev, in_cur)
    w = _weights(mask, out_cur.shape[:2])
    total = float(w.sum())
    if total <= 0:
        return math.nan
    s = float(sigma) if sigma is not None else max(out_cur.shape[:2]) / 128.0
    # (H, W, 3) float32 change of the output minus the change of the input
    d: np.ndarray = (out_cur.astype(np.float32) - out_prev.astype(np.float32)) - (
        in_cur.astype(np.float32) - in_prev.astype(np.float32)
    )
    if s > 0:
        d = cv2.GaussianBlur(d, (0, 0), sigmaX=s, borderType=cv2.BORDER_REFLECT_101)
    return float((np.abs(d).mean(axis=2) * w).sum() / total)
