from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from fvr.errors import ConfigError
from fvr.faces import (
    FFHQ_TEMPLATE_512,
    align_matrix,
    face_sizes,
    face_template,
    invert_affine,
    similarity_transform,
    transform_points,
    warp_to_crop,
)


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    return np.array([[c, -s, tx], [s, c, ty]])


def test_template_scaling() -> None:
    assert FFHQ_TEMPLATE_512.shape == (5, 2) and FFHQ_TEMPLATE_512.dtype == np.float32
    assert np.allclose(face_template(512), FFHQ_TEMPLATE_512)
    assert np.allclose(face_template(256), FFHQ_TEMPLATE_512 / 2)
    assert np.allclose(face_template(128), FFHQ_TEMPLATE_512 / 4)
    with pytest.raises(ConfigError):
        face_template(0)


def test_similarity_transform_recovers_known_similarity() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 300, size=(5, 2))
    for params in [(0, 1, 0, 0), (17, 0.37, 12.5, -40), (-160, 2.5, 300, 7), (90, 1.0, -3, 3)]:
        m_true = _similarity(*params)
        m = similarity_transform(src, transform_points(m_true, src))
        assert m.shape == (2, 3) and m.dtype == np.float64
        assert np.allclose(m, m_true, atol=1e-9)


def test_similarity_transform_never_mirrors() -> None:
    src = FFHQ_TEMPLATE_512.astype(np.float64)
    mirrored = src * [-1, 1]
    m = similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0
    with pytest.raises(ValueError):
        similarity_transform(np.ones((5, 2)), src)


def test_align_matrix_of_template_is_identity() -> None:
    for size in (128, 256, 512):
        m = align_matrix(face_template(size), size)
        assert np.allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-5)
    # The template at 512 aligned into a 256 crop: a pure halving.
    assert np.allclose(align_matrix(FFHQ_TEMPLATE_512, 256), [[0.5, 0, 0], [0, 0.5, 0]], atol=1e-5)


def test_invert_and_transform_points_round_trip() -> None:
    m = _similarity(23, 1.7, 40, -12)
    inv = invert_affine(m)
    pts = np.random.default_rng(2).uniform(-50, 500, size=(3, 5, 2)).astype(np.float32)
    back = transform_points(inv, transform_points(m, pts))
    assert back.shape == pts.shape and back.dtype == np.float32
    assert np.allclose(back, pts, atol=1e-3)
    assert np.allclose(invert_affine(inv), m)
    assert np.allclose(cv2.invertAffineTransform(m), inv)
    assert transform_points(m, np.array([[1, 2]])).dtype == np.float64


def test_face_sizes_match_align_scale() -> None:
    lm = np.random.default_rng(3).normal(0, 2, size=(4, 5, 2)) + FFHQ_TEMPLATE_512 * 0.3 + 40
    for one in lm:
        m = align_matrix(one, 100)
        side = 100 / math.sqrt(abs(np.linalg.det(m[:, :2])))
        assert face_sizes(one) == pytest.approx(side, rel=1e-6)
    assert face_sizes(lm).shape == (4,)


def test_warp_lands_landmarks_on_template(studio, mtcnn) -> None:
    lm = mtcnn.detect(studio.photo).landmarks[0]
    for size in (128, 256, 512):
        m = align_matrix(lm, size)
        crop = warp_to_crop(studio.photo, m, size)
        assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
        mapped = transform_points(m, lm)
        # The least-squares fit leaves the face's own shape difference from the template: a few % of the crop.
        assert np.abs(mapped - face_template(size)).max() < 0.04 * size
        # Re-detected in the crop, the landmarks are where transform_points put them.
        if size >= 256:
            found = mtcnn.detect(crop)
            assert len(found) == 1
            assert np.abs(found.landmarks[0] - mapped).max() < 2.0 * size / 256


def test_warp_keeps_float_dtype_and_borders(studio) -> None:
    img = studio.photo.astype(np.float32) / 255.0
    m = _similarity(10, 0.8, 100, 100)  # the crop's top-left corner lies outside the photo
    out = warp_to_crop(img, m, 128)
    assert out.dtype == np.float32 and out.shape == (128, 128, 3)
    black = warp_to_crop(studio.photo, m, 128, border="constant")
    assert black[:5, :5].max() == 0
    reflect = warp_to_crop(studio.photo, m, 128)
    assert reflect[:5, :5].max() > 0
    with pytest.raises(ConfigError):
        warp_to_crop(studio.photo, m, 128, border="wrap")


def test_strong_downscale_is_area_filtered() -> None:
    # 1-pixel stripes: bilinear sampling at 1/8 scale would alias into a pattern; area averaging gives grey.
    stripes = np.zeros((1024, 1024, 3), np.uint8)
    stripes[:, ::2] = 255
    m = _similarity(7, 1 / 8, 0, 0)
    crop = warp_to_crop(stripes, m, 100)
    centre = crop[20:80, 20:80].astype(np.float32)
    assert abs(centre.mean() - 127.5) < 6 and centre.std() < 8
    plain = cv2.warpAffine(stripes, m, (100, 100), flags=cv2.INTER_LINEAR)[20:80, 20:80].astype(np.float32)
    assert plain.std() > 4 * centre.std()


def test_strong_downscale_keeps_geometry(studio, mtcnn) -> None:
    big = cv2.resize(studio.photo, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    lm = mtcnn.detect(studio.photo).landmarks[0] * 4 + 1.5  # pixel centres of the 4x photo
    m = align_matrix(lm, 256)
    assert math.sqrt(abs(np.linalg.det(m[:, :2]))) < 0.5  # the area path
    crop = warp_to_crop(big, m, 256)
    reference = warp_to_crop(studio.photo, align_matrix(mtcnn.detect(studio.photo).landmarks[0], 256), 256)
    assert np.abs(crop.astype(np.float32) - reference).mean() < 4.0
