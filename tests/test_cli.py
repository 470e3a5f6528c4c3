"""The command line, including the bad-input matrix: one-line errors, non-zero exits, nothing half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from media import face_clip, read_frames, write_video

from fvr.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("cli") / "in.mp4", face_clip(12, 192), audio=True)


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["models", "--json"], capsys)
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    from fvr.models import builtin_registry

    reg = builtin_registry()
    for device in ("cpu", "cuda"):  # exactly one default per device, the registry's
        assert [n for n, r in rows.items() if device in r["default"]] == [reg.default_for(device, with_stabiliser=False)]
    assert rows["identity"]["default"] == []
    for key in ("kind", "temporal", "causal", "crop_size", "weights", "default_with"):
        assert key in rows["identity"]
    assert rows["identity"]["weights"] and not rows["unet"]["weights"]  # unet has no shipped weights


def test_models_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["models"], capsys)
    assert code == 0 and "name" in out and "kind" in out


def test_info_json_and_contact_sheet(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sheet = tmp_path / "sheet.png"
    code, out, _ = run(["info", str(clip), "--json", "--contact-sheet", str(sheet)], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["frames"] == 12 and data["fps"] == 25.0
    assert [s["type"] for s in data["streams"]] == ["video", "audio"]
    assert len(data["tracks"]) == 1 and data["tracks"][0]["frames"] == 12
    import cv2

    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[0] >= 100 and img[:, 200:].std() > 10  # crops were drawn


def test_restore_cli(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.mkv"
    code, stdout, _ = run(["restore", str(clip), "-o", str(out), "--json", "--upscale", "2", "--crf", "20"], capsys)
    assert code == 0, stdout
    report = json.loads(stdout)
    from fvr.models import builtin_registry

    default = builtin_registry().default_for("cpu")  # fvr-fast when its weights are installed, else classical
    assert report["frames"] == 12 and report["tracks"] == 1 and report["model"] == default
    assert read_frames(out)[0].shape == (12, 384, 384, 3)


def test_restore_cli_segments_in_worker_processes(clip: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A video longer than --segment-frames is restored segment by segment in fresh worker processes (the
    default): same frames as one process; a worker's error reaches the user as the same one line and exit code."""
    outs = {}
    for per_process in ("1", "0"):
        out = tmp_path / f"out{per_process}.mp4"
        code, stdout, err = run(["restore", str(clip), "-o", str(out), "--json", "--segment-frames", "5",
                                 "--segments-per-process", per_process, "--crf", "0", "--model", "classical"],
                                capsys)
        assert code == 0, err
        assert json.loads(stdout)["frames"] == 12
        outs[per_process] = read_frames(out)[0]
    assert np.array_equal(outs["1"], outs["0"])
    code, _, err = run(["restore", str(clip), "-o", str(tmp_path / "bad.mp4"), "--segment-frames", "5",
                        "--model", "no-such-model"], capsys)
    assert code == 4 and "no-such-model" in _one_error_line(err)


def _bad_inputs(tmp: Path) -> dict[str, Path]:
    good = write_video(tmp / "good.mp4", face_clip(10, 128))
    data = good.read_bytes()
    (tmp / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (tmp / "text.mp4").write_text("not a video at all\n" * 100)
    (tmp / "empty.mp4").write_bytes(b"")
    import av

    with av.open(str(tmp / "zero.mkv"), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()  # header only, no frame
    (tmp / "audio_only.m4a").write_bytes(b"")
    with av.open(str(tmp / "audio_only.m4a"), "w", format="mp4") as c:
        a = c.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        c.mux(a.encode(frame))
        c.mux(a.encode(None))
    return {p.stem: p for p in tmp.iterdir()}


@pytest.mark.parametrize("name, fragment", [
    ("truncated", "truncated.mp4"),
    ("text", "cannot open"),
    ("empty", "cannot open"),
    ("zero", "zero.mkv"),
    ("audio_only", "no video stream"),
    ("missing", "not found"),
])
def test_bad_input_one_line_error(name: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = _bad_inputs(tmp_path)
    path = inputs.get(name, tmp_path / "missing.mp4")
    out = tmp_path / "out.mp4"
    code, _, err = run(["restore", str(path), "-o", str(out), "-q"], capsys)
    assert code != 0
    assert fragment in _one_error_line(err)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "fvr-tmp" in p.name]


def test_output_equal_to_input(clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = clip.read_bytes()
    code, _, err = run(["restore", str(clip), "-o", str(clip), "-q"], capsys)
    assert code != 0 and "is the input" in _one_error_line(err)
    assert clip.read_bytes() == before


def test_unwritable_output(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["restore", str(clip), "-o", str(tmp_path / "nope" / "out.mp4"), "-q"], capsys)
    assert code != 0 and "does not exist" in _one_error_line(err)
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        code, _, err = run(["restore", str(clip), "-o", str(ro / "out.mp4"), "-q"], capsys)
        assert code != 0 and "not writable" in _one_error_line(err)


def test_disk_full_simulated(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from fvr.io import sink as sink_module

    original = sink_module.VideoSink.write

    def write(self, rgb, pts):  # type: ignore[no-untyped-def]
        if self.frames_written == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, rgb, pts)

    monkeypatch.setattr(sink_module.VideoSink, "write", write)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"older result")
    code, _, err = run(["restore", str(clip), "-o", str(out), "-q"], capsys)
    assert code != 0 and "No space left" in _one_error_line(err)
    assert out.read_bytes() == b"older result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_disk_full_real_tmpfs(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root) to fill a disk for real")
    try:
        code, _, err = run(["restore", str(clip), "-o", str(mnt / "out.mp4"), "-q", "--upscale", "3"], capsys)
        assert code != 0
        _one_error_line(err)
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_unknown_model_and_bad_option(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["restore", str(clip), "-o", str(tmp_path / "o.mp4"), "-m", "nope", "-q"], capsys)
    assert code != 0 and "unknown model" in _one_error_line(err)
    code, _, err = run(["restore", str(clip), "-o", str(tmp_path / "o.mp4"), "--strength", "3"], capsys)
    assert code != 0 and "Traceback" not in err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("kind", ["odd", "vfr", "rotated", "grayscale"])
def test_odd_inputs_give_correct_output(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = face_clip(10, 160)
    kwargs: dict = {}
    name = "in.mp4"
    if kind == "odd":
        frames = frames[:, :155, :151]
        kwargs = {"pix_fmt": "yuv444p"}
        name = "in.mkv"
    elif kind == "vfr":
        kwargs = {"pts": [0, 33, 80, 120, 167, 200, 260, 300, 333, 400]}
    elif kind == "rotated":
        frames = np.rot90(frames, k=-1, axes=(1, 2))  # stored sideways, displayed upright via metadata
        kwargs = {"rotation": 90}
    elif kind == "grayscale":
        frames = np.repeat(frames.mean(-1, keepdims=True).astype(np.uint8), 3, -1)
        kwargs = {"codec": "ffv1", "pix_fmt": "gray"}
        name = "in.mkv"
    src = write_video(tmp_path / name, frames, **kwargs)
    out = tmp_path / "out.mp4"
    code, stdout, err = run(["restore", str(src), "-o", str(out), "--json", "-m", "identity"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["tracks"] == 1, f"{kind}: the face was not found"
    a, ta = read_frames(src)
    b, tb = read_frames(out)
    assert a.shape == b.shape and tb == pytest.approx(ta, abs=1e-6)
