"""End to end on synthetic clips: restore_video keeps timing, audio and untouched pixels, and pastes faces where
they are."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from media import face_clip, read_frames, read_packets, write_video

from fvr.errors import ConfigError
from fvr.io import EncodeOptions
from fvr.models import Restorer, RestorerSpec
from fvr.pipeline import RestoreConfig, restore_video


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-12))


class Painter(Restorer):
    """Paints the crop a flat colour: shows exactly where (and for which frames) faces are pasted."""

    def __init__(self, crop_size: int = 128):
        self.spec = RestorerSpec(name="painter", kind="non-learned", temporal="per-frame", crop_size=crop_size)

    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        out = np.zeros_like(clip)
        out[:, 1] = 1.0  # pure green
        return out


class WindowIdentity(Restorer):
    """Returns its input, but declares 2 past / 2 future frames and records the clips it is given."""

    def __init__(self, crop_size: int = 256, past: int = 2, future: int = 2):
        self.spec = RestorerSpec(name="window-identity", kind="non-learned", temporal="window",
                                 crop_size=crop_size, past=past, future=future)
        self.calls: list[int] = []

    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        self.calls.append(clip.shape[0])
        return clip.copy()


@pytest.fixture(scope="module")
def talking_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 frames of the moving astronaut face, 256x256, variable frame rate, with an AAC track."""
    pts = [int(i * 40 + (7 if i % 5 == 3 else 0)) for i in range(24)]
    return write_video(tmp_path_factory.mktemp("clip") / "talk.mp4", face_clip(24, 256), pts=pts, audio=True)


def test_identity_keeps_timing_audio_and_face(talking_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    # CRF 10: near-lossless, so that what is measured is the plumbing, not the codec
    report = restore_video(talking_clip, out, RestoreConfig(model="identity", encode=EncodeOptions(crf=10)))
    assert report.tracks == 1 and report.face_frames == 24 and report.frames == 24
    a, ta = read_frames(talking_clip)
    b, tb = read_frames(out)
    assert len(b) == len(a) and tb == pytest.approx(ta, abs=1e-6)
    assert read_packets(out, "audio") == read_packets(talking_clip, "audio")
    centre = (slice(64, 192), slice(64, 192))  # the face region of these frames
    assert _psnr(a[:, centre[0], centre[1]], b[:, centre[0], centre[1]]) > 38


def test_paste_lands_on_the_face(talking_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "painted.mp4"
    # coverage 1 (brows to chin): this clip's face fills the frame, so the default whole-crop paste reaches its border
    restore_video(talking_clip, out, RestoreConfig(feather=0.02, mask_coverage=1.0), restorer=Painter())
    a, _ = read_frames(talking_clip)
    b, _ = read_frames(out)
    green = (b[..., 1].astype(int) - b[..., 0] > 150) & (b[..., 1] > 200)
    for t in range(len(b)):
        ys, xs = np.nonzero(green[t])
        assert len(ys) > 2000  # a face-sized area is painted on every frame
        # painted area is centred on the face: the camera keeps the face near the frame centre
        assert abs(xs.mean() - 128) < 30 and abs(ys.mean() - 140) < 35
        assert not green[t, :10].any() and not green[t, :, :10].any()  # no square edge, frame border untouched


def test_window_model_gets_context_and_outputs_align(talking_clip: Path, tmp_path: Path) -> None:
    ref, win = tmp_path / "ref.mp4", tmp_path / "win.mp4"
    cfg = RestoreConfig(chunk=5)
    restore_video(talking_clip, ref, cfg, restorer=WindowIdentity(past=0, future=0))
    model = WindowIdentity(past=2, future=2)
    restore_video(talking_clip, win, cfg, restorer=model)
    # chunks of 5 plus up to 2+2 context frames; every call but the last has the full context
    assert max(model.calls) == 9 and min(model.calls[1:-1] or [9]) == 9
    a, _ = read_frames(ref)
    b, _ = read_frames(win)
    assert np.array_equal(a, b)  # each output frame came from its own input frame


@pytest.mark.parametrize("name, min_psnr", [("fvr-fast", 80.0), ("fvr-quality", 65.0)])
def test_recurrent_state_is_carried_across_chunks(talking_clip: Path, tmp_path: Path, name: str,
                                                  min_psnr: float) -> None:
    """The shipped recurrent models restore a track in chunks of 5 frames as in one call over the whole track:
    the causal fvr-fast carries its state (equal up to float rounding), the bidirectional fvr-quality carries its
    forward state and re-warms its backward state over 6 look-ahead frames. No chunk recomputes past context.
    Lossless encoding, so the comparison sees the restoration only."""
    from fvr.models.registry import builtin_registry

    model = builtin_registry().create(name, device="cpu")
    assert model.carries_state
    calls: list[int] = []
    step = model.step

    def counting(clip, landmarks, state, keep):
        calls.append(clip.shape[0])
        return step(clip, landmarks, state, keep)

    model.step = counting  # type: ignore[method-assign]
    out = {}
    for chunk in (5, 1000):
        path = tmp_path / f"chunk{chunk}.mp4"
        restore_video(talking_clip, path, RestoreConfig(chunk=chunk, encode=EncodeOptions(crf=0), mask_coverage=1.0),
                      restorer=model)
        out[chunk] = read_frames(path)[0]
    assert calls[0] == 5 + model.spec.future and calls[-1] == 24  # new frames and look-ahead only
    assert _psnr(out[5], out[1000]) > min_psnr


def test_automatic_chunk_size() -> None:
    """chunk None: 4 frames for a causal model that carries its state (fewer frames wait), 16 otherwise; an explicit
    chunk always wins."""
    from fvr.models.registry import builtin_registry
    from fvr.pipeline import chunk_frames

    registry = builtin_registry()
    auto, fixed = RestoreConfig(), RestoreConfig(chunk=9)
    causal = registry.create("recurrent-fast", allow_random=True)
    bidirectional = registry.create("recurrent-bi-fast", allow_random=True)
    assert chunk_frames(auto, causal) == 4 and chunk_frames(auto, bidirectional) == 16
    assert chunk_frames(auto, WindowIdentity()) == 16 and chunk_frames(fixed, causal) == 9


def test_upscale_and_strength(talking_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "up.mp4"
    report = restore_video(talking_clip, out, RestoreConfig(upscale=2, strength=0.5, background="bicubic"),
                           restorer=Painter())
    import cv2

    a, _ = read_frames(talking_clip)
    b, _ = read_frames(out)
    assert b.shape[1:3] == (512, 512) and (report.width, report.height) == (512, 512)
    up = np.stack([cv2.resize(f, (512, 512), interpolation=cv2.INTER_CUBIC) for f in a]).astype(float)
    centre = (slice(None), slice(240, 272), slice(240, 272))
    # the painter sets red to 0: at strength 0.5 the face keeps half of its input red
    ratio = b[centre][..., 0].mean() / up[centre][..., 0].mean()
    assert ratio == pytest.approx(0.5, abs=0.08)


def test_two_people_and_face_selection(tmp_path: Path) -> None:
    left, right = face_clip(16, 256), face_clip(16, 256, fov=260.0)
    src = write_video(tmp_path / "two.mp4", np.concatenate([left, right], axis=2))
    all_out, one_out = tmp_path / "all.mp4", tmp_path / "one.mp4"
    report = restore_video(src, all_out, RestoreConfig(feather=0.02), restorer=Painter())
    assert report.tracks == 2
    restore_video(src, one_out, RestoreConfig(faces="largest", feather=0.02), restorer=Painter())
    b = read_frames(all_out)[0]
    c = read_frames(one_out)[0]
    green = lambda x: (x[..., 1].astype(int) - x[..., 0] > 150)  # noqa: E731
    assert green(b)[:, :, :256].sum() > 1000 and green(b)[:, :, 256:].sum() > 1000
    # the left face is larger (narrower field of view): only it is restored
    assert green(c)[:, :, :256].sum() > 1000 and green(c)[:, :, 256:].sum() == 0
    with pytest.raises(ConfigError):
        restore_video(src, tmp_path / "bad.mp4", RestoreConfig(faces="7"), restorer=Painter())


def test_no_faces_reencodes_with_warning(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, (10, 1, 1, 3), dtype=np.uint8), 96, 1).repeat(128, 2)
    src = write_video(tmp_path / "flat.mp4", frames, audio=True)
    out = tmp_path / "out.mp4"
    report = restore_video(src, out, RestoreConfig())
    assert report.tracks == 0 and report.warnings and "no faces" in report.warnings[0]
    a, _ = read_frames(src)
    b, _ = read_frames(out)
    assert a.shape == b.shape and _psnr(a, b) > 40
    assert read_packets(out, "audio") == read_packets(src, "audio")


def test_causal_smoothing_and_detect_every(talking_clip: Path, tmp_path: Path) -> None:
    from fvr.faces import SmoothingConfig, TrackerConfig

    cfg = RestoreConfig(smoothing=SmoothingConfig(method="one-euro"), tracker=TrackerConfig(detect_every=3))
    report = restore_video(talking_clip, tmp_path / "c.mp4", replace(cfg, model="identity"))
    assert report.tracks == 1 and report.face_frames == 24


def test_invalid_config(talking_clip: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        restore_video(talking_clip, tmp_path / "x.mp4", RestoreConfig(strength=2.0))
    with pytest.raises(ConfigError):
        restore_video(talking_clip, tmp_path / "x.mp4", RestoreConfig(model="nope"))
    assert not (tmp_path / "x.mp4").exists()
