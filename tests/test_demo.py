"""`fvr demo`: the files it writes, and a fair comparison (the bicubic input pays the restored video's codec loss)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import pytest

from fvr.cli import main
from fvr.demo import run_demo
from fvr.io import MediaSource
from fvr.run.config import RestoreConfig


def _frames(path: Path) -> int:
    with MediaSource(path) as source:
        return sum(1 for _ in source.frames())


def test_identity_on_a_bicubic_background_scores_exactly_like_bicubic(tmp_path: Path) -> None:
    # identity pastes nothing, so over a bicubic background the restored video is the bicubic input: with both
    # encoded alike, any difference in the printed figures would be a bias of the comparison itself
    result = run_demo(tmp_path, frames=8, config=RestoreConfig(model="identity", background="bicubic"))
    for path in (result.input_video, result.restored_video, result.bicubic_video, result.comparison_video):
        assert _frames(path) == 8, path
    png = cv2.imread(str(result.comparison_png))
    assert png.shape == (384, 3 * 384, 3)
    assert result.report.tracks == 1
    assert math.isfinite(result.psnr_face_bicubic)
    assert result.psnr_restored == pytest.approx(result.psnr_bicubic, abs=1e-9)
    assert result.psnr_face_restored == pytest.approx(result.psnr_face_bicubic, abs=1e-9)
    # the face box is a part of the frame, measured separately
    assert result.psnr_face_bicubic != pytest.approx(result.psnr_bicubic, abs=1e-3)


def test_a_restorer_changes_the_face_figures(tmp_path: Path) -> None:
    result = run_demo(tmp_path, frames=8, config=RestoreConfig(model="classical", background="bicubic"))
    assert abs(result.psnr_face_restored - result.psnr_face_bicubic) > 1e-3


def test_cli_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "-o", str(tmp_path / "d"), "--frames", "8", "-m", "classical", "-q"])
    out = capsys.readouterr().out
    assert code == 0
    assert "face bicubic" in out and "restored" in out
    assert (tmp_path / "d" / "demo_comparison.png").is_file()
    record = json.loads((tmp_path / "d" / "demo_restored.mp4.fvr.json").read_text())  # its provenance record
    assert record["output"]["name"] == "demo_restored.mp4" and record["settings"]["model"] == "classical"
