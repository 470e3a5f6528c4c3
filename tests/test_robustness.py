"""Nothing lost, nothing silent: signals, corrupt input, output checks before any work, overwrite and permissions."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from fvr.cli import main
from fvr.errors import ConfigError, OutputError
from fvr.io import EncodeOptions, MediaSource, check_output_path, remove_stale_temps
from fvr.signals import Interrupted, signals_raise
from media import face_clip, read_frames, write_video


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".fvr-tmp-" in p.name)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("robust") / "in.mp4", face_clip(16, 160), audio=True)


@pytest.fixture(scope="module")
def corrupt(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``clip`` with 200 random bytes in the middle of its video data (the container stays readable)."""
    data = bytearray(clip.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 200] = np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes()
    path = tmp_path_factory.mktemp("corrupt") / "bad.mp4"
    path.write_bytes(bytes(data))
    return path


# ------------------------------------------------------------------------------------------------------ signals


@pytest.fixture
def hup_default() -> Iterator[None]:
    """SIGHUP and SIGINT at their defaults for the test: a test run under ``nohup`` or as a script's background
    job has them ignored, which fvr rightly keeps, and a signal test would see nothing."""
    previous = {signal.SIGHUP: signal.signal(signal.SIGHUP, signal.SIG_DFL),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_in_the_restore_pass_exits_with_its_code_and_leaves_nothing(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    signum: int, code: int, hup_default: None,
) -> None:
    from fvr.io.sink import VideoSink

    write = VideoSink.write

    def write_then_signal(self: VideoSink, rgb: np.ndarray, pts: int) -> None:
        write(self, rgb, pts)
        if self.frames_written == 3:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(VideoSink, "write", write_then_signal)
    out = tmp_path / "out.mp4"
    got, err = run(["restore", str(clip), "-o", str(out), "--model", "identity", "-q"], capsys)
    assert got == code
    assert "interrupted" in err and signal.Signals(signum).name in err and "Traceback" not in err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_sigint_in_the_analysis_pass_stops_it(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch, hup_default: None) -> None:
    import fvr.faces.track as track

    calls = []
    analyse = track.analyse_frames

    def interrupting(frames, *args, **kwargs):
        def counted():
            for i, rgb in enumerate(frames):
                calls.append(i)
                if i == 2:
                    os.kill(os.getpid(), signal.SIGINT)
                yield rgb
        return analyse(counted(), *args, **kwargs)

    monkeypatch.setattr("fvr.faces.analyse.analyse_frames", interrupting)
    out = tmp_path / "out.mp4"
    got, err = run(["restore", str(clip), "-o", str(out), "--model", "identity", "-q"], capsys)
    assert got == 130 and "interrupted (SIGINT)" in err
    assert len(calls) <= 4  # it stopped at once, not at the end of the pass
    assert not out.exists() and _leftovers(tmp_path) == []


def test_signals_raise_restores_handlers_and_respects_nohup() -> None:
    before = signal.getsignal(signal.SIGTERM)
    old_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a shell script's background job
    try:
        with signals_raise():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN  # nohup stays nohup
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # `fvr ... &` in a script: Ctrl-C is not for it
            with pytest.raises(Interrupted) as info:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
            assert info.value.exit_code == 143
        assert signal.getsignal(signal.SIGTERM) == before
    finally:
        signal.signal(signal.SIGHUP, old_hup)
        signal.signal(signal.SIGINT, old_int)


def test_sigterm_to_a_real_process_mid_write(clip: Path, tmp_path: Path) -> None:
    """The console script itself: SIGTERM while the output is being written -> 143, no temp file survives."""
    long = write_video(tmp_path / "long.mp4", face_clip(120, 256))
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "fvr.cli", "restore", str(long), "-o", str(out),
                             "--model", "identity", "-q"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before its output was being written"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_interrupted_segmented_job_keeps_finished_segments_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fvr.io.sink import VideoSink
    from fvr.run.jobs import job_dir

    src = write_video(tmp_path / "in.mp4", face_clip(24, 128))
    out = tmp_path / "out.mp4"
    commit = VideoSink.commit
    committed: list[Path] = []

    def commit_then_signal(self: VideoSink) -> Path:
        path = commit(self)
        committed.append(path)
        if path.name == "seg-00001.mp4":
            os.kill(os.getpid(), signal.SIGTERM)
        return path

    monkeypatch.setattr(VideoSink, "commit", commit_then_signal)
    argv = ["restore", str(src), "-o", str(out), "--model", "identity", "-q", "--segment-frames", "8",
            "--segments-per-process", "0"]
    got, err = run(argv, capsys)
    assert got == 143 and "--resume" in err
    folder = job_dir(out)
    assert sorted(p.name for p in folder.glob("seg-*.mp4")) == ["seg-00000.mp4", "seg-00001.mp4"]
    assert not out.exists() and _leftovers(tmp_path) == [] and _leftovers(folder) == []
    monkeypatch.setattr(VideoSink, "commit", commit)
    got, _ = run([*argv, "--resume"], capsys)
    assert got == 0 and read_frames(out)[0].shape[0] == 24 and not folder.exists()


def test_stale_temporary_files_of_killed_runs_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    dead = tmp_path / f".out.mp4.fvr-tmp-{socket.gethostname()}-{2**22 + 7}-abc.mp4"  # above pid_max
    alive = tmp_path / f".out.mp4.fvr-tmp-{socket.gethostname()}-{os.getpid()}-def.mp4"
    legacy_old = tmp_path / ".out.mp4.fvr-tmp-x1y2z3.mp4"  # written before names carried an owner
    legacy_new = tmp_path / ".out.mp4.fvr-tmp-q9w8e7.mp4"
    other = tmp_path / ".other.mp4.fvr-tmp-x-1-a.mp4"
    for p in (dead, alive, legacy_old, legacy_new, other):
        p.write_bytes(b"x")
    os.utime(legacy_old, (0, 0))
    removed = remove_stale_temps(out)
    assert sorted(removed) == sorted([dead, legacy_old])
    assert alive.exists() and legacy_new.exists() and other.exists()


# ------------------------------------------------------------------------------------------------ decode errors


def test_corrupt_input_is_counted_and_warned(corrupt: Path, clip: Path, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    from fvr.run.config import RestoreConfig
    from fvr.run.pipeline import restore_video

    with MediaSource(corrupt) as src:
        frames = list(src.frames())
        errors = src.decode_errors
    assert errors and errors.messages >= 1 and errors.first is not None
    with MediaSource(clip) as src:
        clean_pts = [f.pts for f in src.frames()]
        assert not src.decode_errors
    assert set(f.pts for f in frames) <= set(clean_pts)  # frames lost to corruption never shift timestamps
    report = restore_video(corrupt, tmp_path / "out.mp4", RestoreConfig(model="identity"))
    assert any("corrupt input" in w and "near frames" in w for w in report.warnings)
    assert "--strict" in caplog.text


def test_segmented_job_reports_corrupt_input(corrupt: Path, tmp_path: Path) -> None:
    """A video long enough for segments (or of unknown length) goes through the job path: its report must carry
    the corrupt-input warning of pass 1 like a single-pass run's, also when the job is resumed in a later run."""
    from fvr.run.config import RestoreConfig
    from fvr.run.jobs import job_dir, restore_job, restore_video_job

    out = tmp_path / "out.mp4"
    report = restore_video_job(corrupt, out, RestoreConfig(model="identity"), segment_frames=5,
                               segments_per_process=0)
    assert report.frames > 0 and any("corrupt input" in w for w in report.warnings)
    # stopped after one segment, then resumed: pass 1 is not run again, its warning comes from the job's metadata
    again = tmp_path / "again.mp4"
    config = RestoreConfig(model="identity")
    assert restore_job(corrupt, again, config, 5, False, None, None, max_segments=1) is None
    assert job_dir(again).is_dir()
    resumed = restore_video_job(corrupt, again, config, segment_frames=5, segments_per_process=0, resume=True)
    assert any("corrupt input" in w for w in resumed.warnings)


def test_strict_refuses_corrupt_input_and_writes_nothing(corrupt: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.mp4"
    code, err = run(["restore", str(corrupt), "-o", str(out), "--model", "identity", "-q", "--strict"], capsys)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "corrupt input refused (--strict)" in lines[0]
    assert not out.exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_truncated_matroska_is_reported_and_refused_by_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              suffix: str) -> None:
    """Matroska/WebM state no frame count, so a cut file cannot be caught by counting frames; the demuxer's own
    report ("File ended prematurely", made while the file is probed when it is short) must reach the warning."""
    codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
    whole = write_video(tmp_path / f"whole{suffix}", face_clip(12, 96), codec=codec)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    with MediaSource(whole) as src:
        assert sum(1 for _ in src.frames()) == 12 and not src.decode_errors
    with MediaSource(cut) as src:
        kept = sum(1 for _ in src.frames())
        assert 0 < kept < 12 and src.decode_errors and "ended prematurely" in src.decode_errors.summary()
    out = tmp_path / "out.mp4"
    code, err = run(["restore", str(cut), "-o", str(out), "--model", "identity", "-q", "--strict"], capsys)
    assert code == 2 and "corrupt input refused (--strict)" in err and not out.exists()
    code, err = run(["restore", str(cut), "-o", str(out), "--model", "identity"], capsys)
    assert code == 0 and "corrupt input" in err and out.exists()


def test_clean_input_passes_strict(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run(["restore", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "identity", "-q", "--strict"],
                  capsys)
    assert code == 0


# ------------------------------------------------------------------------------------------------- output checks


@pytest.mark.parametrize("name, codec, message", [
    ("out.xyz", None, "unknown output type '.xyz'"),
    ("out.avi", None, "does not write .avi"),
    ("out.webm", "libx264", "codecs for .webm: libvpx-vp9"),
    ("out.mp4", "no-such-codec", "unknown video codec"),
    ("out.mp4", "aac", "not a video encoder"),
])
def test_unwritable_output_kinds_fail_before_any_work(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch, name: str,
                                                      codec: str | None, message: str) -> None:
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the analysis pass ran")

    monkeypatch.setattr("fvr.faces.analyse.analyse_frames", no_work)
    argv = ["restore", str(clip), "-o", str(tmp_path / name), "--model", "identity", "-q"]
    code, err = run([*argv, "--codec", codec] if codec else argv, capsys)
    assert code in (3, 4)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert list(tmp_path.iterdir()) == []


def test_pixel_format_is_checked_against_the_codec(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot encode pixel format 'rgb48'.*yuv420p"):
        check_output_path(tmp_path / "o.mp4", encode=EncodeOptions(pix_fmt="rgb48"))
    check_output_path(tmp_path / "o.mp4", encode=EncodeOptions(pix_fmt="yuv444p"))


def test_folder_outputs_by_trailing_slash(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "frames.v2"
    code, _ = run(["restore", str(clip), "-o", f"{out}/", "--model", "identity", "-q"], capsys)
    assert code == 0 and len(list(out.glob("*.png"))) == 16


def test_webm_gets_vp9(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.webm"
    code, _ = run(["restore", str(clip), "-o", str(out), "--model", "identity", "-q", "--crf", "40"], capsys)
    assert code == 0
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"
    assert read_frames(out)[0].shape[0] == 16


def test_ten_bit_input_stays_ten_bit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from fvr.run.config import RestoreConfig
    from fvr.run.pipeline import restore_video

    src = write_video(tmp_path / "in10.mkv", face_clip(6, 96), codec="libx265", pix_fmt="yuv420p10le")
    restore_video(src, tmp_path / "out.mkv", RestoreConfig(model="identity", encode=EncodeOptions(codec="libx265")))
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    assert "8 bits per channel" in caplog.text  # honest about the precision in between
    restore_video(src, tmp_path / "out8.mkv", RestoreConfig(model="identity", encode=EncodeOptions(
        codec="libx265", pix_fmt="yuv420p")))
    with av.open(str(tmp_path / "out8.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"  # --pix-fmt overrides


# -------------------------------------------------------------------------------------- overwrite and permissions


def test_existing_output_is_refused_unless_overwrite(clip: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    argv = ["restore", str(clip), "-o", str(out), "--model", "identity", "-q"]
    code, err = run(argv, capsys)
    assert code == 3 and "exists; add --overwrite (-y)" in err
    assert out.read_bytes() == b"precious"
    code, _ = run([*argv, "-y"], capsys)
    assert code == 0 and read_frames(out)[0].shape[0] == 16


def test_overwrite_replaces_only_folders_of_png_frames(clip: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    frames = tmp_path / "frames"
    argv = ["restore", str(clip), "-o", str(frames), "--model", "identity", "-q"]
    assert run(argv, capsys)[0] == 0
    assert run(argv, capsys)[0] == 3  # not empty
    assert run([*argv, "--overwrite"], capsys)[0] == 0 and len(list(frames.iterdir())) == 16
    (frames / "notes.txt").write_text("mine")
    code, err = run([*argv, "--overwrite"], capsys)
    assert code == 3 and "other than PNG frames" in err and (frames / "notes.txt").exists()


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_outputs_follow_the_umask(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], mask: int) -> None:
    old = os.umask(mask)
    try:
        assert run(["restore", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "identity", "-q"], capsys)[0] == 0
        assert run(["restore", str(clip), "-o", str(tmp_path / "f"), "--model", "identity", "-q"], capsys)[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "o.mp4").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE((tmp_path / "f" / "000000.png").stat().st_mode) == 0o666 & ~mask


def test_output_equal_to_input_still_refused_with_overwrite(clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["restore", str(clip), "-o", str(clip), "-y", "-q"], capsys)
    assert code == 3 and "is the input file" in err


def test_check_output_path_library_default_allows_replacing(tmp_path: Path) -> None:
    (tmp_path / "o.mp4").write_bytes(b"x")
    assert check_output_path(tmp_path / "o.mp4") == tmp_path / "o.mp4"
    with pytest.raises(OutputError, match="exists"):
        check_output_path(tmp_path / "o.mp4", overwrite=False)


# ------------------------------------------------------------------------------------------------------- photos


@pytest.mark.parametrize("suffix_in, suffix_out", [(".jpg", ".png"), (".png", ".jpg")])
def test_a_photo_is_restored_into_a_photo(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          suffix_in: str, suffix_out: str) -> None:
    import cv2
    from skimage.data import astronaut

    rgb = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    photo = tmp_path / f"photo{suffix_in}"
    cv2.imwrite(str(photo), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / f"restored{suffix_out}"
    code = main(["restore", str(photo), "-o", str(out), "--model", "classical", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    import json

    report = json.loads(captured.out)
    assert report["frames"] == 1 and report["tracks"] == 1 and report["face_frames"] == 1
    restored = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert restored.shape == rgb.shape
    source = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    assert np.abs(restored.astype(int) - source.astype(int)).mean() > 0.3  # the face was changed


def test_a_png_named_mp4_is_restored_as_a_photo_with_a_warning(tmp_path: Path) -> None:
    import cv2
    from skimage.data import astronaut

    from fvr.run.config import RestoreConfig
    from fvr.run.pipeline import restore_video

    fake = tmp_path / "clip.mp4"
    ok, png = cv2.imencode(".png", cv2.cvtColor(cv2.resize(astronaut(), (256, 256)), cv2.COLOR_RGB2BGR))
    fake.write_bytes(png.tobytes())
    report = restore_video(fake, tmp_path / "out.mp4", RestoreConfig(model="classical"))
    assert any("single PNG image, not a video" in w for w in report.warnings)
    assert report.frames == 1 and report.tracks == 1


def test_signals_stop_turns_the_first_signal_into_a_request(hup_default: None) -> None:
    """`fvr live` stops between frames: the first signal only sets the request, a second one interrupts."""
    from fvr.signals import Interrupted, signals_stop

    with signals_stop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs at the next bytecode boundary
        assert stop.is_set() and stop.name == "SIGTERM"
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
