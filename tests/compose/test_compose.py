"""Paste-back: residual blending, the feathered mask, colour matching, overlaps, background up-sampling."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fvr.compose import FacePaste, face_mask, match_color, paste_faces, upscale_frame
from fvr.errors import ConfigError


def _frame(h: int = 120, w: int = 160) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def test_mask_shape_range_and_zero_border() -> None:
    for size in (128, 256, 512):
        m = face_mask(size)
        assert m.shape == (size, size) and m.dtype == np.float32
        assert m.max() == pytest.approx(1.0, abs=1e-3) and m.min() >= 0.0
        border = np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]])
        assert border.max() < 1e-3
        # centred on the face of the FFHQ template: between the eyes / nose region is fully inside
        assert m[int(size * 0.55), size // 2] > 0.99


def test_mask_softness_grows_with_feather() -> None:
    hard, soft = face_mask(256, feather=0.02), face_mask(256, feather=0.12)
    partial = lambda m: int(((m > 0.05) & (m < 0.95)).sum())  # noqa: E731
    assert partial(soft) > 2 * partial(hard)


def test_unchanged_face_leaves_frame_bit_identical() -> None:
    frame = _frame()
    m = _similarity(1.7, 12.0, -40.0, 10.0)
    crop = cv2.warpAffine(frame, m, (128, 128)).astype(np.float32) / 255
    out = paste_faces(frame, [FacePaste(m, crop.copy(), crop)], face_mask(128))
    assert np.array_equal(out, frame)


def test_paste_lands_where_the_crop_came_from() -> None:
    frame = np.full((120, 160, 3), 100, np.uint8)
    m = _similarity(2.0, 0.0, -2 * 50, -2 * 30)  # crop covers x 50..114, y 30..94 of the frame
    crop = cv2.warpAffine(frame, m, (128, 128)).astype(np.float32) / 255
    brighter = np.clip(crop + 0.3, 0, 1)
    out = paste_faces(frame, [FacePaste(m, brighter, crop)], face_mask(128))
    diff = out.astype(int)[..., 0] - 100
    ys, xs = np.nonzero(diff > 30)
    assert 50 <= xs.min() and xs.max() <= 114 and 30 <= ys.min() and ys.max() <= 94
    # centre of the change is the template's face centre (x 0.5, y ~0.57 of the crop)
    assert xs.mean() == pytest.approx(50 + 32, abs=2) and ys.mean() == pytest.approx(30 + 0.57 * 64, abs=3)
    assert diff.max() == pytest.approx(round(0.3 * 255), abs=2)
    assert np.all(diff[:, :45] == 0) and np.all(diff[:, 120:] == 0)


def test_strength_scales_the_change() -> None:
    frame = np.full((120, 160, 3), 100, np.uint8)
    m = _similarity(2.0, 0.0, -100.0, -60.0)
    crop = cv2.warpAffine(frame, m, (128, 128)).astype(np.float32) / 255
    brighter = np.clip(crop + 0.4, 0, 1)
    full = paste_faces(frame, [FacePaste(m, brighter, crop)], face_mask(128), strength=1.0).astype(int) - 100
    half = paste_faces(frame, [FacePaste(m, brighter, crop)], face_mask(128), strength=0.5).astype(int) - 100
    none = paste_faces(frame, [FacePaste(m, brighter, crop)], face_mask(128), strength=0.0)
    assert np.array_equal(none, frame)
    assert half.max() == pytest.approx(full.max() / 2, abs=1.5)


def test_face_weight_multiplies_strength() -> None:
    """A face's own weight (its track fading in or out) scales its change as strength does; weight 1 is exactly the
    unweighted paste, and each face of a frame keeps its own weight."""
    frame = _frame()
    m = _similarity(2.0, 0.0, -100.0, -60.0)
    crop = cv2.warpAffine(frame, m, (128, 128)).astype(np.float32) / 255
    brighter = np.clip(crop + 0.4, 0, 1)
    mask = face_mask(128)
    plain = paste_faces(frame, [FacePaste(m, brighter, crop)], mask, strength=0.8)
    assert np.array_equal(paste_faces(frame, [FacePaste(m, brighter, crop, weight=1.0)], mask, strength=0.8), plain)
    assert np.array_equal(paste_faces(frame, [FacePaste(m, brighter, crop, weight=0.5)], mask, strength=0.8),
                          paste_faces(frame, [FacePaste(m, brighter, crop)], mask, strength=0.4))
    other = _similarity(2.0, 0.0, -20.0, -60.0)  # a second face, overlapping the first: at weight 0 it adds nothing
    crop2 = cv2.warpAffine(frame, other, (128, 128)).astype(np.float32) / 255
    both = paste_faces(frame, [FacePaste(m, brighter, crop), FacePaste(other, np.clip(crop2 + 0.4, 0, 1), crop2,
                                                                        weight=0.0)], mask)
    assert np.array_equal(both, paste_faces(frame, [FacePaste(m, brighter, crop)], mask))


def test_overlapping_faces_largest_on_top() -> None:
    frame = np.zeros((120, 160, 3), np.uint8)
    big = _similarity(1.0, 0.0, -16.0, -0.0)  # 1 crop px per frame px: the larger face
    small = _similarity(2.0, 0.0, -2 * 40, -2 * 20)
    crop_b = cv2.warpAffine(frame, big, (128, 128)).astype(np.float32) / 255
    crop_s = cv2.warpAffine(frame, small, (128, 128)).astype(np.float32) / 255
    red = crop_b.copy(); red[..., 0] = 1.0  # noqa: E702
    green = crop_s.copy(); green[..., 1] = 1.0  # noqa: E702
    mask = face_mask(128, feather=0.01)
    for order in ([FacePaste(big, red, crop_b), FacePaste(small, green, crop_s)],
                  [FacePaste(small, green, crop_s), FacePaste(big, red, crop_b)]):
        out = paste_faces(frame, order, mask)
        # at the small face's centre, both overlap: the big (nearer) face wins whatever the input order
        y, x = int(20 + 0.57 * 64), 40 + 32
        assert out[y, x, 0] == 255


def test_color_match_moves_colour_keeps_detail() -> None:
    rng = np.random.default_rng(1)
    ref = np.clip(0.5 + 0.1 * rng.standard_normal((64, 64, 3)), 0, 1).astype(np.float32)
    tinted = np.clip(ref * np.array([1.3, 0.8, 0.9], np.float32) + 0.05, 0, 1)
    mask = np.ones((64, 64), np.float32)
    out = match_color(tinted, ref, mask)
    assert np.abs(out.mean((0, 1)) - ref.mean((0, 1))).max() < 0.02
    assert np.abs(tinted.mean((0, 1)) - ref.mean((0, 1))).max() > 0.05


def test_upscale_background() -> None:
    frame = _frame(30, 40)
    assert upscale_frame(frame, 1) is frame
    up = upscale_frame(frame, 3, "bicubic")
    assert up.shape == (90, 120, 3) and up.dtype == np.uint8
    with pytest.raises(ConfigError):
        upscale_frame(frame, 2, "magic")
