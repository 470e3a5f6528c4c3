from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/media.py helpers

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "eval").is_dir():
        pytest.skip(f"real clips not available: {DATA}/eval is absent (only on the development machines)")
    return DATA


@pytest.fixture(scope="session")
def yunet_model() -> Path:
    path = MODELS / "face_detection_yunet_2023mar.onnx"
    if not path.is_file():
        pytest.skip(f"YuNet model file not available at {path}")
    return path
