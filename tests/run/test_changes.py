"""The figures a run records and the forensic guard, on hand-made faces (the end-to-end runs are in
tests/provenance)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fvr.compose import FacePaste
from fvr.errors import ConfigError
from fvr.run.changes import (
    ChangeLog,
    ForensicGuard,
    RecordOptions,
    blended_face,
    check_forensic,
    is_generative,
)


def _paste(track: int = 0, strength: float | None = None) -> FacePaste:
    matrix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return FacePaste(matrix, np.ones((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32), track=track,
                     strength=strength)


class FadingProbe:
    """An identity probe whose similarity falls with the amount of restored face pasted: 1 - amount / 2."""

    def embed(self, face: np.ndarray) -> np.ndarray:
        return np.array([float(face.mean()) / 255.0])

    def similarity(self, paste: FacePaste, amount: float, reference: np.ndarray | None = None) -> float:
        return 1.0 - amount / 2


def test_guard_lowers_strength_in_steps_until_identity_holds() -> None:
    guard = ForensicGuard(FadingProbe(), min_identity=0.8, strength=1.0)  # type: ignore[arg-type]
    (lowered, kept), identity = guard.apply([_paste(0), _paste(1, strength=0.3)])
    assert lowered.strength == 0.25 and identity[0] == 0.875  # 1 -> 0.75 -> 0.5 -> 0.25: the first to hold
    assert kept.strength == 0.3 and identity[1] == 0.85  # its own strength already kept identity
    assert guard.lowered == 1
    strict = ForensicGuard(FadingProbe(), min_identity=0.99, strength=1.0)  # type: ignore[arg-type]
    (none,), identity = strict.apply([_paste()])
    assert none.strength == 0.0 and identity[0] == 1.0  # no step holds: the input face stays


def test_blend_is_the_face_as_pasted() -> None:
    assert blended_face(_paste(), 0.0).max() == 0 and blended_face(_paste(), 1.0).min() == 255
    assert int(blended_face(_paste(), 0.5)[0, 0, 0]) == 128


def test_log_keeps_rows_per_track_and_round_trips(tmp_path: Path) -> None:
    log = ChangeLog()
    log.add(1, 5, (10, 20, 30, 40), 2.5, 40, math.nan, 1.0)
    log.add(0, 3, (0, 0, 8, 8), 1.0, 9, 0.95, 0.5)
    log.add(1, 4, (12, 18, 32, 38), 3.5, 50, 0.9, 1.0)
    log.save(tmp_path / "c.npz")
    merged = ChangeLog.merge([ChangeLog.load(tmp_path / "c.npz"), ChangeLog()])
    tracks = merged.per_track()
    assert [t["id"] for t in tracks] == [0, 1]
    one = tracks[1]
    assert one["per_frame"]["frame"] == [4, 5] and one["region"] == [10, 18, 32, 40]
    assert one["change_mean"] == 3.0 and one["change_max"] == 50
    assert one["per_frame"]["identity"] == [0.9, None] and one["identity_measured"] == 1
    assert tracks[0]["amount_min"] == 0.5


def test_forensic_refuses_what_invents_detail() -> None:
    assert is_generative("gan", ()) and is_generative("cnn", ("generative-prior",))
    assert not is_generative("cnn", ("flow-aligned",))
    check_forensic("fvr-fast", "cnn", ("flow-aligned",), "lanczos", 2)
    for kind, tags, background, upscale in (("gan", (), "lanczos", 1), ("cnn", ("codebook",), "lanczos", 1),
                                            ("cnn", (), "realesrgan", 2)):
        try:
            check_forensic("m", kind, tags, background, upscale)
        except ConfigError:
            continue
        raise AssertionError(f"{kind} {tags} {background} was accepted")
    check_forensic("m", "cnn", (), "realesrgan", 1)  # at 1x no background network runs


def test_record_options_are_checked() -> None:
    for bad in ({"identity_every": -1}, {"change_map_full": 0}):
        try:
            RecordOptions(**bad)  # type: ignore[arg-type]
        except ConfigError:
            continue
        raise AssertionError(f"{bad} was accepted")
