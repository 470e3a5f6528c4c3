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
