"""The fuzz and fault suite, bounded: 240 mutated inputs through `fvr restore` (scripts/fuzz.py, where the longer
run is documented). A separate process, so that a crash inside a native library fails this test instead of
ending the test session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fuzz.py"


def test_mutated_inputs_never_trace_back_and_leave_nothing(tmp_path: Path) -> None:
    summary_path = tmp_path / "fuzz.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--cases", "240", "--seed", "0", "--json", str(summary_path)],
                          capture_output=True, text=True, timeout=1200)
    summary = json.loads(summary_path.read_text())
    assert summary["cases"] == 240
    assert summary["failures"] == [], proc.stderr[-3000:]
    assert proc.returncode == 0
    assert summary["tracebacks"] == 0 and summary["leftovers"] == 0
    # every kind of mutation ran, and both outcomes occurred (some inputs survive, others are refused)
    assert set(summary["by_mutation"]) == {"flip", "truncate", "zero", "header", "swap-boxes", "box-size"}
    assert summary["by_code"].get("0", 0) > 0 and summary["by_code"].get("2", 0) > 0


def test_a_shortened_output_without_a_warning_is_a_failure(tmp_path: Path) -> None:
    """The exit-0 check compares the output's frame count with the intact input's: fewer frames must come with a
    corrupt-input warning in the run's report, or the case fails (a silent partial restore)."""
    import importlib.util

    from media import face_clip, write_video

    spec = importlib.util.spec_from_file_location("fuzz_script", SCRIPT)
    fuzz = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["fuzz_script"] = fuzz  # dataclasses look their module up
    spec.loader.exec_module(fuzz)
    out = write_video(tmp_path / "out.mp4", face_clip(4, 64))
    assert "silent loss" in fuzz._check(0, "", [], out, tmp_path, [], intact_frames=6)
    assert fuzz._check(0, "", [], out, tmp_path, ["corrupt input: 2 decode error(s) ..."], intact_frames=6) == ""
    assert fuzz._check(0, "", [], out, tmp_path, [], intact_frames=4) == ""
