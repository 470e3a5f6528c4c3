"""End to end on synthetic clips: restore_video keeps timing, audio and untouched pixels, and pastes faces where
they are."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fvr.errors import ConfigError
from fvr.io import EncodeOptions
from fvr.models import Restorer, RestorerSpec
from fvr.run.config import RestoreConfig
from fvr.run.pipeline import restore_video
from media import face_clip, read_frames, read_packets, write_video


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
    from fvr.run.assemble import chunk_frames

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


# --- track fades and gaps (paste weights), faces in clips of any length


def _track(start: int, length: int, span: tuple[int, int] | None = None):
    from fvr.faces import Track

    z = np.zeros((length, 5, 2), np.float32)
    return Track(0, np.arange(start, start + length), z, z, np.zeros((length, 4)), np.ones(length),
                 np.ones(length, bool), span=span)


def test_track_fade_weights() -> None:
    from fvr.faces import FaceTracks
    from fvr.run.assemble import TrackFade

    def weights(start: int, length: int, num_frames: int = 30, cuts: tuple[int, ...] = (), frames: int = 4):
        t = _track(start, length)
        fade = TrackFade.of(t, FaceTracks([t], num_frames, list(cuts)), frames)
        return [round(fade.weight(i), 6) for i in range(start, start + length)]

    assert weights(10, 10) == [0.2, 0.4, 0.6, 0.8, 1, 1, 0.8, 0.6, 0.4, 0.2]  # mid-clip: in and out
    assert weights(0, 10) == [1] * 6 + [0.8, 0.6, 0.4, 0.2]  # starts with the video: no fade in
    assert weights(20, 10) == [0.2, 0.4, 0.6, 0.8] + [1] * 6  # ends with the video: no fade out
    assert weights(10, 10, cuts=(10, 20)) == [1] * 10  # a shot's face: appears and leaves with the picture
    assert weights(10, 10, frames=0) == [1] * 10  # fade_frames=0: the old behaviour
    # too short for two full ramps: shortened, so that at least one frame is pasted at full weight
    assert weights(10, 3) == [0.5, 1, 0.5] and weights(10, 6) == [0.333333, 0.666667, 1, 1, 0.666667, 0.333333]
    assert weights(10, 1) == [1] and weights(10, 2) == [1, 1] and weights(28, 2) == [0.5, 1]
    # a segment's cut of a track fades as the whole track does (its span), wherever the cut starts
    whole, cut = _track(10, 10), _track(14, 4, span=(10, 20))
    tracks = FaceTracks([whole], 30)
    assert [TrackFade.of(cut, tracks, 4).weight(i) for i in range(14, 18)] == \
        [TrackFade.of(whole, tracks, 4).weight(i) for i in range(14, 18)]


class _Grey(Painter):
    """Paints the crop mid-grey: a large change that never clips, so a weighted paste is exactly proportional."""

    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return np.full_like(clip, 0.5)


def _sequence(folder: Path) -> np.ndarray:
    import cv2

    return np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.glob("*.png"))])


def test_track_ending_mid_clip_fades_out(talking_clip: Path, tmp_path: Path) -> None:
    """A track that ends while the clip goes on (the detector lost the face at frame 14): its last 4 pastes are
    weighted 0.8 ... 0.2 instead of switching off in one frame; every other frame is bit-identical to
    fade_frames=0."""
    from fvr.faces import FaceTracks, Track
    from fvr.faces.track import TRACK_ARRAYS
    from fvr.io import MediaSource
    from fvr.run.pipeline import analyse_source

    with MediaSource(talking_clip) as source:
        full = analyse_source(source)
    t = full.tracks[0]
    assert (t.start, t.end) == (0, 24)
    ends = FaceTracks([Track(t.id, *(getattr(t, n)[:14] for n in TRACK_ARRAYS))], full.num_frames)
    outs = {}
    for fade in (0, 4):
        outs[fade] = tmp_path / f"fade{fade}"
        restore_video(talking_clip, outs[fade], RestoreConfig(fade_frames=fade, feather=0.02), restorer=_Grey(),
                      tracks=ends)
    src = read_frames(talking_clip)[0].astype(int)  # what the sequence sink got (the decoded input)
    hard, soft = _sequence(outs[0]).astype(int), _sequence(outs[4]).astype(int)
    assert np.array_equal(hard[:10], soft[:10]) and np.array_equal(hard[14:], soft[14:])
    assert np.array_equal(hard[14:], src[14:])  # no face pasted after the track
    for i, w in zip(range(10, 14), (0.8, 0.6, 0.4, 0.2)):
        full_change, faded = hard[i] - src[i], soft[i] - src[i]
        assert np.abs(faded - w * full_change).max() <= 1.0  # the residual, scaled by the weight (+ rounding)
        assert np.abs(full_change).max() > 60


class _Loses:
    """A detector that finds nothing on the given calls (a face missed for a few frames)."""

    name = "loses"

    def __init__(self, drop: set[int]):
        from fvr.faces import DetectorConfig, make_detector

        self.inner, self.drop, self.calls = make_detector(DetectorConfig()), drop, 0

    def detect(self, rgb: np.ndarray):
        from fvr.faces import Detections

        n, self.calls = self.calls, self.calls + 1
        return Detections.empty() if n in self.drop else self.inner.detect(rgb)


def test_face_missed_for_a_few_frames_keeps_being_restored(talking_clip: Path, tmp_path: Path) -> None:
    """The tracker bridges detector misses of up to max_gap frames (interpolated landmarks): the face is pasted on
    the missed frames too, with no fade around the gap (it is one track)."""
    from fvr.faces import TrackerConfig, analyse_frames

    frames = read_frames(talking_clip)[0]
    tracks = analyse_frames(list(frames), _Loses({8, 9, 10}), TrackerConfig(detect_every=1))  # call n = frame n
    assert [(t.start, t.end) for t in tracks.tracks] == [(0, 24)]
    assert np.array_equal(np.flatnonzero(~tracks.tracks[0].detected), [8, 9, 10])
    report = restore_video(talking_clip, tmp_path / "gap", RestoreConfig(feather=0.02), restorer=Painter(),
                           tracks=tracks)
    assert report.tracks == 1 and report.face_frames == 24
    out = _sequence(tmp_path / "gap").astype(int)
    green = (out[..., 1] - out[..., 0] > 150) & (out[..., 1] > 200)
    assert all(green[i].sum() > 2000 for i in range(24))  # painted on the missed frames 8-10 as on the others
    # at full weight all along, the gap included: the same frames as with fades off
    restore_video(talking_clip, tmp_path / "nofade", RestoreConfig(feather=0.02, fade_frames=0), restorer=Painter(),
                  tracks=tracks)
    assert np.array_equal(out, _sequence(tmp_path / "nofade").astype(int))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_clips_of_one_to_four_frames_restore_their_face(tmp_path: Path, n: int) -> None:
    """A clip shorter than the tracker's minimum track length keeps every detected face (MTCNN finds the
    astronaut at 0.997+): it is restored, not re-encoded with "no faces found"."""
    # the first n frames of a 12-frame take (face_clip(n) would squeeze the whole camera path into n frames)
    src = write_video(tmp_path / f"short{n}.mp4", face_clip(12, 256)[:n])
    report = restore_video(src, tmp_path / "out.mp4", RestoreConfig(feather=0.02, encode=EncodeOptions(crf=10)),
                           restorer=Painter())
    assert report.frames == n and report.tracks == 1 and report.face_frames == n and not report.warnings
    a, b = read_frames(src)[0].astype(int), read_frames(tmp_path / "out.mp4")[0].astype(int)
    green = (b[..., 1] - b[..., 0] > 150) & (b[..., 1] > 200)
    assert all(green[i].sum() > 2000 for i in range(n))  # the face is painted on every frame
    assert np.abs(a - b).mean() > 10  # unlike a no-face re-encode
    identity = restore_video(src, tmp_path / "id.mp4", RestoreConfig(model="identity"))
    assert identity.tracks == 1 and identity.face_frames == n


def test_fade_frames_is_validated_and_part_of_the_job_settings(talking_clip: Path, tmp_path: Path) -> None:
    from fvr.run.jobs import settings_key

    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="fade_frames"):
            restore_video(talking_clip, tmp_path / "x.mp4", RestoreConfig(fade_frames=bad))  # type: ignore[arg-type]
    assert settings_key(RestoreConfig(fade_frames=0), 100) != settings_key(RestoreConfig(), 100)


def test_background_upsampler_runs_on_the_models_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--background with --device cuda builds the background network on that device, like the face model (it was
    built on the CPU). The device check is faked: this machine has no GPU."""
    import fvr.models.backgrounds
    import fvr.run.build
    from fvr.models.backgrounds import make_background

    built = []

    def recording(method: str, factor: int, **kwargs: object):
        built.append((method, factor, kwargs.get("device")))
        return make_background("lanczos", factor)

    monkeypatch.setattr(fvr.run.build, "resolve_device", lambda device, option="device": "cuda")
    monkeypatch.setattr(fvr.models.backgrounds, "make_background", recording)
    src = write_video(tmp_path / "in.mp4", face_clip(3, 96))
    from fvr.models import builtin_registry

    report = restore_video(src, tmp_path / "out.mp4", RestoreConfig(background="realesrgan", upscale=2, device="cuda"),
                           restorer=builtin_registry(plugins=False).create("identity"))
    assert report.frames == 3 and built == [("realesrgan", 2, "cuda")]


def test_face_strength_replaces_strength_for_its_track(talking_clip: Path, tmp_path: Path) -> None:
    def run(name: str, **settings: object) -> np.ndarray:
        restore_video(talking_clip, tmp_path / name, RestoreConfig(feather=0.02, **settings), restorer=Painter())
        return _sequence(tmp_path / name).astype(int)

    half = run("half", strength=0.5)
    assert np.array_equal(run("own", face_strength={0: 0.5}), half)  # the track's own strength, the same paste
    assert np.array_equal(run("own-over-global", strength=0.2, face_strength={0: 0.5}), half)
    assert np.array_equal(run("off", face_strength={0: 0.0}), read_frames(talking_clip)[0].astype(int))
    assert np.abs(run("full") - half).max() > 40  # and strength does matter on this clip
    with pytest.raises(ConfigError, match="face track 3"):
        restore_video(talking_clip, tmp_path / "x", RestoreConfig(face_strength={3: 0.5}), restorer=Painter())
    assert not (tmp_path / "x").exists()
    for bad in ({0: 1.5}, {-1: 0.5}):
        with pytest.raises(ConfigError):
            RestoreConfig(face_strength=bad)
