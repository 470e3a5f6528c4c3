"""The web app's work without the web: upload checks, the face list, previews equal to the full run's frames."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from fvr.errors import ConfigError, InputError
from fvr.models import builtin_registry
from fvr.provenance.record import load_record, record_path
from fvr.ui.session import UiLimits, UiSession, UiSettings, Workspace, accept_upload, safe_name
from media import face_clip, read_frames, read_packets, write_video


@pytest.fixture()
def workspace():
    ws = Workspace()
    yield ws
    ws.close()


def _upload(workspace: Workspace, name: str = "clip.mp4", n: int = 12, audio: bool = True) -> Path:
    """A synthetic clip written where the server would have stored an upload (inside the workspace)."""
    return write_video(workspace.path / f"incoming-{name}", face_clip(n, 256), audio=audio)


def test_workspace_is_private_and_removed(workspace: Workspace) -> None:
    assert (workspace.path.stat().st_mode & 0o777) == 0o700
    job = workspace.job_folder()
    assert workspace.contains(job) and not workspace.contains(workspace.path.parent / "other")
    other = Workspace()
    other.close()
    assert not other.path.exists()


@pytest.mark.parametrize("name", ["../../etc/passwd.mp4", "a/b.mp4", "..mp4", "x.mp4;rm -rf", ".hidden.mp4",
                                  "clip.exe", "C:\\clip.mp4", "clip\n.mp4"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(InputError):
        safe_name(name)


def test_accept_upload_checks_place_size_media_and_limits(workspace: Workspace, tmp_path: Path) -> None:
    outside = write_video(tmp_path / "outside.mp4", face_clip(4, 128))
    with pytest.raises(InputError, match="not an uploaded file"):
        accept_upload(outside, "outside.mp4", workspace, UiLimits())
    assert outside.exists()  # never touched: it is not the app's
    link = workspace.path / "link.mp4"
    link.symlink_to(outside)
    with pytest.raises(InputError, match="not an uploaded file"):
        accept_upload(link, "link.mp4", workspace, UiLimits())
    junk = workspace.path / "junk.mp4"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(InputError):
        accept_upload(junk, "junk.mp4", workspace, UiLimits())
    assert not junk.exists() and not any(workspace.path.rglob("junk.mp4"))  # a refused file is deleted
    big = _upload(workspace, n=12)
    with pytest.raises(InputError, match="upload limit"):
        accept_upload(big, "big.mp4", workspace, UiLimits(max_upload_mb=0.001))
    with pytest.raises(InputError, match="s limit"):
        accept_upload(_upload(workspace, n=12), "long.mp4", workspace, UiLimits(max_seconds=0.2))
    with pytest.raises(InputError, match="px limit"):
        accept_upload(_upload(workspace, n=4), "wide.mp4", workspace, UiLimits(max_side=128))
    ok = accept_upload(_upload(workspace), "my clip.mp4", workspace, UiLimits())
    assert ok.path.name == "my clip.mp4" and workspace.contains(ok.path) and ok.info.num_frames == 12
    assert not ok.photo and ok.seconds == pytest.approx(12 / 25)


def test_preview_is_the_full_runs_frame_and_selection_holds(workspace: Workspace) -> None:
    upload = accept_upload(_upload(workspace), "clip.mp4", workspace, UiLimits())
    session = UiSession(upload, builtin_registry())
    thumbs = session.analyse()
    assert [t.id for t in thumbs] == [0] and thumbs[0].crop.shape == (128, 128, 3)
    settings = UiSettings(model="fvr-fast", upscale=2, faces=(0,))
    out, report = session.restore(settings)
    assert report.frames == 12 and report.tracks == 1 and out.parent == upload.path.parent
    record = load_record(record_path(out))  # the web app's outputs carry their provenance record too
    assert record["output"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert record["settings"]["upscale"] == 2 and record["tracks"][0]["frames"] == 12
    assert len(read_packets(out, "audio")) > 0  # the audio is kept, as fvr restore keeps it
    frames = read_frames(out)[0]
    preview = session.preview(7, settings)
    assert preview.after.shape == preview.before.shape == (512, 512, 3)
    # the full run went through the encoder (lossy): the preview is that frame up to compression (x264 at CRF 18
    # without macroblock-tree, which fvr turns off for repeatable bytes: 2.04 levels on this frame)
    assert np.abs(preview.after.astype(int) - frames[7].astype(int)).mean() < 2.5
    assert np.abs(preview.after.astype(int) - preview.before.astype(int)).mean() > 2.0  # and it did change
    data, plot, summaries = session.quality(out, settings)
    (summary,) = summaries
    import json

    curves = json.loads(data.read_text())[0]
    assert summary["track"] == 0 and summary["frames_measured"] == 12 and curves["frames"] == list(range(12))
    assert curves["flicker"][0] is None and all(f >= 0 for f in curves["flicker"][1:])  # none before a 1st frame
    if curves["identity"][0] is not None:  # FaceNet (the metrics extra) present
        assert 0.5 < summary["identity_min"] <= summary["identity_mean"] <= 1.0
    assert plot is None or plot.stat().st_size > 1000
    (track, before, after), = preview.faces
    assert track == 0 and before.shape == after.shape == (256, 256, 3)
    clip = read_frames(session.preview_clip(3, 0.2, settings))[0]  # 0.2 s at 25 fps: frames 3-7
    assert clip.shape == (5, 512, 1024, 3)
    assert np.abs(clip[4, :, 512:].astype(int) - frames[7].astype(int)).mean() < 2.0  # the full run's frame 7
    untouched = session.preview(7, UiSettings(model="fvr-fast", face_strength={0: 0.0}))
    assert np.array_equal(untouched.after, untouched.before)  # this face's own strength 0: left as it was
    with pytest.raises(ConfigError, match="face track 4"):
        session.preview(7, UiSettings(face_strength={4: 0.5}))
    with pytest.raises(ConfigError, match="no face selected"):
        session.preview(3, UiSettings(faces=()))
    with pytest.raises(ConfigError):
        session.preview(3, UiSettings(faces=(5,)))
    with pytest.raises(InputError, match="outside the video"):
        session.preview(12, settings)


def test_a_photo_is_restored_as_a_photo(workspace: Workspace) -> None:
    import cv2

    frame = face_clip(1, 256)[0]
    path = workspace.path / "in.png"
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    upload = accept_upload(path, "portrait.png", workspace, UiLimits())
    assert upload.photo
    session = UiSession(upload, builtin_registry())
    assert len(session.analyse()) == 1
    out, report = session.restore(UiSettings(model="fvr-fast"))
    assert out.suffix == ".png" and report.frames == 1 and cv2.imread(str(out)).shape == (256, 256, 3)


def test_cancel_stops_the_run_and_writes_nothing(workspace: Workspace) -> None:
    from fvr.ui.session import Cancelled

    upload = accept_upload(_upload(workspace, n=12), "clip.mp4", workspace, UiLimits())
    session = UiSession(upload, builtin_registry())
    session.analyse()
    seen: list[int] = []

    def progress(stage: str, done: int, total: int) -> None:
        seen.append(done)
        if done == 3:
            session.cancel()  # what the page's Cancel button does, from another thread

    with pytest.raises(Cancelled):
        session.restore(UiSettings(model="fvr-fast"), progress)
    assert 3 in seen and max(seen) < 12
    assert sorted(p.name for p in upload.path.parent.iterdir()) == ["clip.mp4"]  # no output, no temporary file
    out, report = session.restore(UiSettings(model="fvr-fast"))  # a new run is not cancelled
    assert report.frames == 12 and out.is_file()
    session.close()
    assert not upload.path.parent.exists() and workspace.path.exists()  # its own folder only


def test_per_face_strength_table() -> None:
    from fvr.ui.app import face_strengths

    assert face_strengths(None) == {} and face_strengths([["face 0", ""], ["face 2", "0.25"]]) == {2: 0.25}
    assert face_strengths({"data": [["face 1", "1"]], "headers": ["face", "strength"]}) == {1: 1.0}
    with pytest.raises(ConfigError, match="per-face strength"):
        face_strengths([["face 0", "strong"]])


def test_live_view_is_the_live_engine_frame_by_frame() -> None:
    from fvr.io import Frame
    from fvr.run.build import build_restorer
    from fvr.run.live import LiveAssembler
    from fvr.ui.session import LiveView, live_config

    frames = face_clip(8, 256)
    view = LiveView(builtin_registry())
    config = live_config()
    engine = LiveAssembler(build_restorer(config, builtin_registry()), config, 25.0)
    for i, rgb in enumerate(frames):
        out = view.push(rgb)
        assert np.array_equal(out, engine.push(Frame(i, rgb, i)))  # the engine of fvr live, unchanged
    assert np.abs(out.astype(int) - frames[-1].astype(int)).mean() > 1.0  # the face was restored
    assert view.push(face_clip(1, 128)[0]).shape == (128, 128, 3)  # another camera size: a new session


def test_fidelity_choice() -> None:
    from fvr.ui.app import MODEL_FIDELITY, fidelity_value

    assert fidelity_value(MODEL_FIDELITY) is None and fidelity_value(None) is None and fidelity_value("0.25") == 0.25
    with pytest.raises(ConfigError, match="fidelity"):
        fidelity_value("high")


def test_without_gradio_the_app_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys
    import tempfile

    from fvr.ui.app import UiConfig, launch

    monkeypatch.setitem(sys.modules, "gradio", None)  # as if the ui extra were not installed
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the app's workspace would be made
    with pytest.raises(ConfigError, match=r"pip install 'fvr\[ui\]'"):
        launch(UiConfig(port=7999), block=False)
    assert list(tmp_path.iterdir()) == []  # and it leaves no folder behind
