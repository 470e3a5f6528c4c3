from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/media.py helpers

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


@pytest.fixture(autouse=True)
def _restore_root_logger():
    """`fvr.cli.main` configures the root logger as a program does (`-q` sets it to ERROR); tests call it in-process,
    so each test gets the root logger's level and handlers back as they were."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


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


@pytest.fixture(scope="module")
def private_fvr_cache(tmp_path_factory: pytest.TempPathFactory):
    """Converted weights go to a temporary cache, never to the user's ~/.cache (use per module with
    ``pytestmark = pytest.mark.usefixtures("private_fvr_cache")``)."""
    old = os.environ.get("FVR_CACHE")
    os.environ["FVR_CACHE"] = str(tmp_path_factory.mktemp("fvr-cache"))
    yield
    if old is None:
        os.environ.pop("FVR_CACHE", None)
    else:
        os.environ["FVR_CACHE"] = old
