"""`fvr live`: the causal one-pass engine, its real-time policy, its sources, sinks and errors (no camera needed:
a file played at its own rate stands in for one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fvr.cli import main
from fvr.errors import ConfigError, InputError, OutputError
from fvr.faces import SmoothingConfig
from fvr.io.live import FileSource, MemorySink, open_live_sink, open_live_source
from fvr.models import Restorer, RestorerSpec, builtin_registry
from fvr.run.build import build_restorer
from fvr.run.config import RestoreConfig
from fvr.run.live import LiveAssembler, check_causal, run_live
from fvr.run.pipeline import restore_video
from media import face_clip, fvr_command, read_frames, write_video

CAUSAL = RestoreConfig(model="fvr-fast", smoothing=SmoothingConfig(method="one-euro"), fade_frames=0, chunk=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("live") / "face.mp4", face_clip(16, 192))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


class _Slow(Restorer):
    """Returns its input after ``delay`` seconds: a restorer slower than the source's frame rate."""

    def __init__(self, delay: float):
        self.delay = delay
        self.spec = RestorerSpec("slow", "non-learned", "per-frame", 128)

    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        return clip.copy()


def test_live_gives_the_offline_frames_under_the_same_causal_settings(clip: Path, tmp_path: Path) -> None:
    """One-euro smoothing, a causal model carrying its state, one frame per call, no fade, no drop: every frame
    of the live pass equals the offline pipeline's (written losslessly as PNG frames)."""
    restorer = build_restorer(CAUSAL, builtin_registry(plugins=False))
    offline = restore_video(clip, f"{tmp_path / 'offline'}{os.sep}", CAUSAL, restorer=restorer)
    sink = MemorySink()
    live_restorer = build_restorer(CAUSAL, builtin_registry(plugins=False))
    stats = run_live(FileSource(clip), sink, LiveAssembler(live_restorer, CAUSAL, 25.0))
    expected, _ = read_frames(tmp_path / "offline")
    assert offline.tracks == 1 and offline.face_frames == 16
    assert stats.frames_in == stats.frames_out == 16 and stats.dropped == 0 and sink.closed
    assert len(sink.frames) == len(expected)
    for (rgb, _), want in zip(sink.frames, expected, strict=True):
        assert np.array_equal(rgb, want)
    assert not np.array_equal(sink.frames[8][0], read_frames(clip)[0][8])  # the face was restored


def test_a_slow_restorer_drops_the_oldest_frames_and_never_queues(clip: Path) -> None:
    """A paced 25 fps source and a restorer taking 0.1 s a frame: frames are dropped (latest wins), every frame is
    either written or dropped, and the latency stays that of one frame's work, not of a growing queue."""
    config = RestoreConfig(model="identity", smoothing=SmoothingConfig(method="one-euro"))
    sink = MemorySink()
    stats = run_live(FileSource(clip, realtime=True), sink, LiveAssembler(_Slow(0.1), config, 25.0), adapt=False)
    assert stats.frames_in == 16 and stats.dropped > 0
    assert stats.frames_out + stats.dropped == stats.frames_in == len(sink.frames) + stats.dropped
    assert stats.latency_ms_max < 400  # one frame waiting at most: ~0.1 s of work + up to 0.1 s in the slot
    pts = [p for _, p in sink.frames]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)  # written in order, none twice


def test_a_file_read_as_fast_as_possible_drops_nothing(clip: Path) -> None:
    config = RestoreConfig(model="identity", smoothing=SmoothingConfig(method="one-euro"))
    stats = run_live(FileSource(clip), MemorySink(), LiveAssembler(_Slow(0.02), config, 25.0))
    assert stats.frames_in == stats.frames_out == 16 and stats.dropped == 0


def test_cli_session_writes_a_file_and_stats(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, stats = tmp_path / "live.mp4", tmp_path / "stats.json"
    code, err = run(["live", str(clip), "-o", str(out), "--stats", str(stats), "--realtime", "-q"], capsys)
    assert code == 0, err
    data = json.loads(stats.read_text())
    assert {"frames_in", "frames_out", "latency_ms_p50", "latency_ms_p95"} <= set(data)
    assert data["frames_in"] == 16 and data["frames_out"] + data["dropped"] == 16
    frames, times = read_frames(out)
    assert len(frames) == data["frames_out"] and times == sorted(times)


def test_sigint_ends_the_session_cleanly(tmp_path: Path) -> None:
    """Ctrl-C is how a live session ends: exit 0, the file holds every frame written, the stats say so."""
    src = write_video(tmp_path / "long.mp4", face_clip(150, 128))
    out, stats = tmp_path / "out.mp4", tmp_path / "s.json"
    proc = subprocess.Popen(fvr_command("live", str(src), "-o", str(out), "--realtime", "--stats", str(stats),
                                        "--model", "identity", "-q"), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / f".{out.name}.fvr-tmp").exists() and not any(tmp_path.glob(".out.mp4*")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    data = json.loads(stats.read_text())
    assert data["stopped_by"] == "SIGINT" and 0 < data["frames_out"] < 150
    assert len(read_frames(out)[0]) == data["frames_out"]
    assert not list(tmp_path.glob(".*fvr-tmp*"))


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["live", "7"], 2, "no camera at 7"),
    (["live", "/dev/video99"], 2, "no camera at /dev/video99"),
    (["live", "missing.mp4"], 2, "missing.mp4"),
    (["live", "CLIP", "-o", "x.xyz"], 3, "unknown output type"),
    (["live", "CLIP", "-o", "mjpeg:port"], 4, "mjpeg:PORT"),
    (["live", "CLIP", "-o", "virtualcam"], 3, "pyvirtualcam"),
    (["live", "CLIP", "--model", "fvr-fast+flow"], 4, "causal"),
    (["live", "CLIP", "--smoothing", "gaussian"], 4, "one-euro or none"),
])
def test_errors_are_one_line(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch:
                             pytest.MonkeyPatch, argv: list[str], code: int, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # not installed here either way: make it certain
    got, err = run([str(clip) if a == "CLIP" else a for a in argv] + ["-q"], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert got == code and len(lines) == 1 and message in lines[0], err
    assert not list(tmp_path.iterdir())


def test_window_without_a_display_is_one_line(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    source = open_live_source(str(clip))
    with pytest.raises(OutputError, match="needs a display"):
        open_live_sink("window", source.info, (192, 192))
    source.close()


def test_a_failing_source_keeps_the_frames_written(clip: Path, tmp_path: Path) -> None:
    """The source breaks off after 6 frames: the error comes out (one line), the file holds those 6 frames."""

    class Breaking(FileSource):
        def frames(self):  # type: ignore[override]
            for frame in super().frames():
                if frame.index == 6:
                    raise InputError("the stream broke off")
                yield frame

    source = Breaking(clip)
    sink = open_live_sink(str(tmp_path / "part.mp4"), source.info, (192, 192))
    config = RestoreConfig(model="identity", smoothing=SmoothingConfig(method="one-euro"))
    with pytest.raises(InputError, match="broke off"):
        run_live(source, sink, LiveAssembler(_Slow(0.0), config, 25.0))
    assert len(read_frames(tmp_path / "part.mp4")[0]) == 6


def test_a_failing_sink_stops_the_session_and_the_source(clip: Path) -> None:
    class Full(MemorySink):
        def write(self, rgb: np.ndarray, pts: int) -> None:
            if len(self.frames) == 3:
                raise OutputError("disk full")
            super().write(rgb, pts)

    source, sink = FileSource(clip), Full()
    config = RestoreConfig(model="identity", smoothing=SmoothingConfig(method="one-euro"))
    with pytest.raises(OutputError, match="disk full"):
        run_live(source, sink, LiveAssembler(_Slow(0.0), config, 25.0))
    assert sink.closed and len(sink.frames) == 3


def test_mjpeg_preview_serves_the_frames(clip: Path) -> None:
    import urllib.request

    source = open_live_source(str(clip))
    sink = open_live_sink("mjpeg:0", source.info, (192, 192))  # port 0: any free port
    sink.write(np.full((192, 192, 3), 200, np.uint8), 0)
    with urllib.request.urlopen(sink.url, timeout=10) as response:  # type: ignore[attr-defined]
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        head = response.read(200)
    assert b"Content-Type: image/jpeg" in head and b"\xff\xd8" in head  # a JPEG follows its part header
    sink.close()
    source.close()


def test_a_non_causal_model_is_refused() -> None:
    restorer = build_restorer(RestoreConfig(model="classical", stabilise="flow"), builtin_registry(plugins=False))
    with pytest.raises(ConfigError, match="causal"):
        LiveAssembler(restorer, RestoreConfig(smoothing=SmoothingConfig(method="one-euro")), 25.0)


def test_live_refuses_face_choices_it_cannot_honour() -> None:
    config = RestoreConfig(model="fvr-fast", smoothing=SmoothingConfig(method="one-euro"))
    restorer = build_restorer(config, builtin_registry())
    check_causal(restorer, config)
    for bad in (replace(config, faces="largest"), replace(config, faces="0"), replace(config, face_strength={0: 0.5})):
        with pytest.raises(ConfigError, match="live session restores every face"):
            check_causal(restorer, bad)
