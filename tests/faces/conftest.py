"""Fixtures for the fvr.faces tests (helpers live in face_scenes.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # face_scenes.py, whatever pytest's import mode

from face_scenes import Studio

from fvr.faces import DetectorConfig, FaceDetector, make_detector

YUNET = Path(__file__).resolve().parents[3] / "shared" / "models" / "face_detection_yunet_2023mar.onnx"


@pytest.fixture(scope="session")
def studio() -> Studio:
    return Studio()


@pytest.fixture(scope="session")
def mtcnn() -> FaceDetector:
    return make_detector(DetectorConfig())


@pytest.fixture(scope="session")
def yunet_path() -> Path:
    if not YUNET.is_file():
        pytest.skip(f"YuNet model file not available at {YUNET} (only on the development machines)")
    return YUNET
