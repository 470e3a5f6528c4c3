from __future__ import annotations

import dataclasses
import json
from dataclasses import replace

import numpy as np
import pytest
from face_scenes import DroppingDetector, Face, ScriptedDetector, Studio, detections_of, textured_background

from fvr.errors import ConfigError, InputError
from fvr.faces import (
    FFHQ_TEMPLATE_512,
    Detections,
    FaceTracker,
    FaceTracks,
    SceneCutDetector,
    SmoothingConfig,
    Track,
    TrackerConfig,
    analyse_frames,
    smooth_tracks,
)

N = 30
EVERY_FRAME = TrackerConfig(detect_every=1)  # the detector on every frame: tests of association


def _two_faces(i: int) -> list[Face]:
    """Two heads drifting towards each other (never touching), one bobbing, one slowly growing."""
    return [Face(95 + 1.6 * i, 150 + 10 * np.sin(i / 5), 0.55), Face(305 - 1.6 * i, 140, 0.5 + 0.005 * i)]


@pytest.fixture(scope="module")
def two_face_frames(studio: Studio) -> list[np.ndarray]:
    return [studio.frame(_two_faces(i)) for i in range(N)]


@pytest.fixture(scope="module")
def per_frame_tracks(two_face_frames, mtcnn) -> FaceTracks:
    return analyse_frames(two_face_frames, mtcnn, EVERY_FRAME)


def _lm(cx: float, cy: float, scale: float = 0.15) -> np.ndarray:
    """Landmarks (5, 2) of a face centred near (cx, cy): the FFHQ template scaled (0.15: a ~ 50 px face)."""
    t = FFHQ_TEMPLATE_512.astype(np.float64) * scale
    return (t - t.mean(axis=0) + [cx, cy]).astype(np.float32)


def _scripted(positions) -> ScriptedDetector:
    """Fake detector: positions(n) -> list of (cx, cy) faces on the n-th frame."""
    return ScriptedDetector(lambda n: detections_of([_lm(x, y) for x, y in positions(n)]))


def _blank_frames(n: int, size: tuple[int, int] = (240, 320)) -> list[np.ndarray]:
    bg = textured_background(size[1], size[0], seed=0)
    return [bg] * n


# --- real detector, real frames


def test_two_moving_faces_keep_their_ids(studio, per_frame_tracks) -> None:
    tracks = per_frame_tracks
    assert tracks.num_frames == N and tracks.scene_cuts == []
    assert [t.id for t in tracks.tracks] == [0, 1]
    for t in tracks.tracks:
        assert (t.start, t.end) == (0, N) and t.detected.all() and np.all(t.scores >= 0.9)
        assert t.frames.dtype == np.int64 and t.raw_landmarks.dtype == np.float32
        assert np.array_equal(t.landmarks, t.raw_landmarks)
    # No ID switch: on every frame, track k sits on head k (heads ordered left to right at frame 0).
    for i in range(N):
        for k, face in enumerate(_two_faces(i)):
            assert np.abs(tracks.tracks[k].raw_landmarks[i] - studio.landmarks(face)).max() < 4.0


def test_detect_every_3_tracks_with_optical_flow(two_face_frames, per_frame_tracks, mtcnn) -> None:
    tracks = analyse_frames(two_face_frames, mtcnn, TrackerConfig(detect_every=3, redetect_motion=0))
    assert [(t.start, t.end) for t in tracks.tracks] == [(0, N), (0, N)]
    for t, ref in zip(tracks.tracks, per_frame_tracks.tracks):
        assert np.array_equal(t.detected, np.arange(N) % 3 == 0)
        assert np.all(t.scores[~t.detected] == 0)
        assert np.abs(t.raw_landmarks - ref.raw_landmarks).max() < 4.0


def _detector_frames(frames, detector, config: TrackerConfig) -> tuple[list[int], FaceTracks]:
    """The frames the detector ran on, and the tracks."""
    ran: list[int] = []
    tracker = FaceTracker(detector, config)
    for i, f in enumerate(frames):
        before = tracker.detector_runs
        tracker.update(f)
        if tracker.detector_runs > before:
            ran.append(i)
    return ran, tracker.finish()


def test_fast_motion_brings_the_detector_run_forward(studio, mtcnn) -> None:
    adaptive = TrackerConfig(detect_every=8, redetect_motion=0.05)  # ~1 frame of this motion: runs every 2nd
    slow = [studio.frame([Face(150 + 0.3 * i, 150, 0.55)]) for i in range(N)]
    ran, _ = _detector_frames(slow, mtcnn, adaptive)
    assert ran == list(range(0, N, 8))  # a face that barely moves: the plain cadence
    fast = [studio.frame([Face(100 + 4 * i, 150, 0.55)]) for i in range(N)]  # ~5 % of the face size a frame
    ran, tracks = _detector_frames(fast, mtcnn, adaptive)
    assert len(tracks.tracks) == 1 and np.array_equal(np.flatnonzero(tracks.tracks[0].detected), ran)
    gaps = np.diff(ran)
    assert len(ran) > 2 * len(range(0, N, 8)) and len(ran) < N and gaps.max() <= 3
    strict, _ = _detector_frames(fast, mtcnn, replace(adaptive, redetect_motion=0))
    assert strict == list(range(0, N, 8))


def test_a_missed_run_is_retried_and_flow_fills_the_frame(studio, mtcnn) -> None:
    frames = [studio.frame([Face(150 + 0.5 * i, 150, 0.55)]) for i in range(20)]
    truth = [studio.landmarks(Face(150 + 0.5 * i, 150, 0.55)) for i in range(20)]
    config = TrackerConfig(detect_every=4, redetect_motion=0.05)
    ran, tracks = _detector_frames(frames, DroppingDetector(mtcnn, drop={2}), config)  # the run on frame 8
    assert ran == [0, 4, 8, 9, 13, 17]
    (t,) = tracks.tracks
    assert (t.start, t.end) == (0, 20) and np.array_equal(np.flatnonzero(t.detected), [0, 4, 9, 13, 17])
    assert np.abs(t.raw_landmarks[8] - truth[8]).max() < 4.0  # carried by flow, not interpolated blindly
    ran, tracks = _detector_frames(frames, DroppingDetector(mtcnn, drop={2}), replace(config, redetect_motion=0))
    assert ran == [0, 4, 8, 12, 16] and np.array_equal(np.flatnonzero(tracks.tracks[0].detected), [0, 4, 12, 16])


def test_missed_detections_are_interpolated(studio, mtcnn) -> None:
    frames = [studio.frame([Face(150 + 2 * i, 150)]) for i in range(20)]
    tracks = analyse_frames(frames, DroppingDetector(mtcnn, drop={8, 9, 10}), EVERY_FRAME)
    assert len(tracks.tracks) == 1
    t = tracks.tracks[0]
    assert (t.start, t.end) == (0, 20)
    assert np.array_equal(np.flatnonzero(~t.detected), [8, 9, 10])
    assert np.all(t.scores[8:11] == 0) and np.all(t.scores[t.detected] > 0.9)
    assert np.allclose(t.raw_landmarks[9], (t.raw_landmarks[7] + t.raw_landmarks[11]) / 2, atol=1e-4)
    assert np.allclose(t.boxes[8], 0.75 * t.boxes[7] + 0.25 * t.boxes[11], atol=1e-3)


def test_scene_cut_detector_fires_on_cuts_only(studio) -> None:
    det = SceneCutDetector()
    big = textured_background(1200, 400, seed=3)
    pan = [big[:, 8 * i : 8 * i + 400] for i in range(40)]  # a steady pan, 2% of the width per frame
    assert not any(det.update(f) for f in pan)
    zoom = [studio.frame([Face(200, 150, 0.5 + 0.02 * i)]) for i in range(15)]
    assert [det.update(f) for f in zoom] == [True] + [False] * 14  # cut from the pan, then a smooth zoom
    assert det.update(textured_background(400, 300, seed=11))  # another scene
    assert not det.update(textured_background(400, 300, seed=11))
    assert det.update(studio.photo[100:400, 0:400])
    off = SceneCutDetector(threshold=0)
    assert not any(off.update(f) for f in (pan[0], studio.photo))


# --- scripted detections


def test_scene_cut_splits_a_track(studio) -> None:
    other = textured_background(studio.width, studio.height, seed=7)
    frames = [studio.background] * 15 + [other] * 15
    # The same face at the same place before and after the cut: only the cut can split it.
    tracks = analyse_frames(frames, _scripted(lambda n: [(200, 150)]), EVERY_FRAME)
    assert tracks.scene_cuts == [15]
    assert [(t.id, t.start, t.end) for t in tracks.tracks] == [(0, 0, 15), (1, 15, 30)]


def test_no_interpolation_across_a_cut(studio) -> None:
    other = textured_background(studio.width, studio.height, seed=7)
    frames = [studio.background] * 15 + [other] * 15
    seen = lambda n: [] if 12 <= n <= 17 else [(200, 150)]  # noqa: E731
    tracks = analyse_frames(frames, _scripted(seen), EVERY_FRAME)
    assert [(t.start, t.end) for t in tracks.tracks] == [(0, 12), (18, 30)]
    assert all(t.detected.all() for t in tracks.tracks)


def test_cut_restarts_detection_schedule(studio) -> None:
    other = textured_background(studio.width, studio.height, seed=7)
    frames = [studio.background] * 16 + [other] * 14
    det = _scripted(lambda n: [(200, 150)])
    tracker = FaceTracker(det, TrackerConfig(detect_every=4, min_length=4))
    for f in frames:
        tracker.update(f)
    tracks = tracker.finish()
    assert tracks.scene_cuts == [16]
    assert [(t.start, t.end) for t in tracks.tracks] == [(0, 16), (16, 30)]
    second = tracks.tracks[1]
    assert np.array_equal(np.flatnonzero(second.detected) + 16, [16, 20, 24, 28])


def test_face_entering_later_gets_a_new_id() -> None:
    # B enters at frame 10, to the left of A: IDs follow first appearance, not position.
    det = _scripted(lambda n: [(250, 120)] + ([(70, 120)] if n >= 10 else []))
    tracks = analyse_frames(_blank_frames(N), det, EVERY_FRAME)
    assert [(t.id, t.start, t.end) for t in tracks.tracks] == [(0, 0, N), (1, 10, N)]
    assert tracks.tracks[1].raw_landmarks[0, 0, 0] < 100


def test_simultaneous_faces_numbered_left_to_right() -> None:
    det = _scripted(lambda n: [(250, 120), (70, 120), (160, 60)])  # detector order is arbitrary
    tracks = analyse_frames(_blank_frames(10), det, EVERY_FRAME)
    xs = [t.raw_landmarks[0, :, 0].mean() for t in tracks.tracks]
    assert [t.id for t in tracks.tracks] == [0, 1, 2] and xs == sorted(xs)


def test_face_leaving_ends_its_track() -> None:
    det = _scripted(lambda n: [(100 + 3 * n, 120)] if n < 15 else [])
    tracks = analyse_frames(_blank_frames(40), det, TrackerConfig(detect_every=1))
    assert [(t.start, t.end) for t in tracks.tracks] == [(0, 15)]
    assert tracks.num_frames == 40


def test_long_gap_starts_a_new_track() -> None:
    det = _scripted(lambda n: [] if 10 <= n < 25 else [(150, 120)])
    tracks = analyse_frames(_blank_frames(40), det, TrackerConfig(detect_every=1, max_gap=12))
    assert [(t.start, t.end) for t in tracks.tracks] == [(0, 10), (25, 40)]
    short_gap = analyse_frames(_blank_frames(40), _scripted(lambda n: [] if 10 <= n < 22 else [(150, 120)]),
                               TrackerConfig(detect_every=1, max_gap=12))
    assert [(t.start, t.end) for t in short_gap.tracks] == [(0, 40)]


def test_short_false_positives_are_dropped() -> None:
    def faces(n: int) -> list[tuple[float, float]]:
        out = [(150.0, 120.0)]
        if n in (5, 6, 7, 8, 25):  # flickering false positives elsewhere
            out.append((280.0, 200.0))
        return out

    tracks = analyse_frames(_blank_frames(N), _scripted(faces), TrackerConfig(detect_every=1, min_length=5))
    assert [(t.start, t.end) for t in tracks.tracks] == [(0, N)]
    shorter = TrackerConfig(detect_every=1, min_length=4)
    assert len(analyse_frames(_blank_frames(N), _scripted(faces), shorter).tracks) == 2


def _scored(faces) -> ScriptedDetector:
    """Fake detector: faces(n) -> list of (cx, cy, score) on the n-th frame."""

    def script(n: int) -> Detections:
        found = faces(n)
        if not found:
            return Detections.empty()
        dets = detections_of([_lm(x, y) for x, y, _ in found])
        return Detections(dets.boxes, np.array([s for _, _, s in found], np.float32), dets.landmarks)

    return ScriptedDetector(script)


def test_min_detections_follow_the_shot_length() -> None:
    cfg = EVERY_FRAME  # min_length 5
    assert [cfg.min_detections_for(n) for n in range(1, 12)] == [1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 5]
    assert cfg.min_detections_for(10**6) == cfg.min_detections == 5
    every2 = TrackerConfig(detect_every=2)
    assert [every2.min_detections_for(n) for n in (1, 5, 7, 9, 100)] == [1, 1, 2, 3, 3]


@pytest.mark.parametrize("n", [1, 2, 4])
def test_short_clips_keep_every_detected_face(n: int) -> None:
    """A clip shorter than min_length cannot tell a flicker from a face by persistence: every face is kept, even
    one found on a single frame of it at a modest score."""
    det = _scored(lambda k: [(150.0, 120.0, 0.999)] + ([(260.0, 180.0, 0.93)] if k == n - 1 else []))
    tracks = analyse_frames(_blank_frames(n), det, EVERY_FRAME)
    assert [(t.start, t.end) for t in tracks.tracks] == [(0, n), (n - 1, n)]


def test_long_clip_drops_low_score_flickers() -> None:
    """In a long shot, 1-2 frame detections are dropped as before, whatever a real face around them does."""
    def faces(k: int) -> list[tuple[float, float, float]]:
        out = [(150.0, 120.0, 0.9999)]
        if k in (5, 6, 20):  # flickers: two frames, then one
            out.append((270.0, 190.0, 0.92))
        return out

    tracks = analyse_frames(_blank_frames(N), _scored(faces), EVERY_FRAME)
    assert [(t.start, t.end) for t in tracks.tracks] == [(0, N)]


def test_a_short_shot_keeps_its_faces_a_long_one_drops_flickers() -> None:
    """Shots of 20, 3 and 12 frames: the 3-frame shot's face, seen on 2 of its frames, is kept (the rule follows
    the shot, not the whole video); a 1-frame flicker in the 20-frame shot is dropped."""
    a, b = textured_background(320, 240, seed=0), textured_background(320, 240, seed=7)
    frames = [a] * 20 + [b] * 3 + [a] * 12

    def faces(k: int) -> list[tuple[float, float, float]]:
        if k < 20:
            return [(100.0, 120.0, 0.999)] + ([(250.0, 60.0, 0.95)] if k == 10 else [])
        if k < 23:
            return [(200.0, 120.0, 0.999)] if k < 22 else []
        return [(100.0, 120.0, 0.999)]

    tracks = analyse_frames(frames, _scored(faces), EVERY_FRAME)
    assert tracks.scene_cuts == [20, 23]
    assert [(t.start, t.end) for t in tracks.tracks] == [(0, 20), (20, 22), (23, 35)]


def test_tracks_closed_early_wait_for_their_shot_length() -> None:
    """A track that ends before its shot does is judged by the shot's final length, not the length so far: in a
    7-frame clip (3 detections needed), a 1-frame detection that ended on frame 0 is dropped."""
    det = _scored(lambda k: [(150.0, 120.0, 0.999)] + ([(260.0, 180.0, 0.95)] if k == 0 else []))
    tracks = analyse_frames(_blank_frames(7), det, TrackerConfig(detect_every=1, max_gap=0))
    assert [(t.start, t.end) for t in tracks.tracks] == [(0, 7)]
    # the same 1-frame detection in a 2-frame clip is kept
    det = _scored(lambda k: [(150.0, 120.0, 0.999)] + ([(260.0, 180.0, 0.95)] if k == 0 else []))
    assert len(analyse_frames(_blank_frames(2), det, TrackerConfig(detect_every=1, max_gap=0)).tracks) == 2


def test_crossing_faces_keep_their_ids() -> None:
    # A moves right, B left, on nearby rows: their boxes overlap while they pass each other.
    def faces(n: int) -> list[tuple[float, float]]:
        return [(40 + 9 * n, 110 + 0.5 * n), (280 - 9 * n, 140 - 0.5 * n)]

    tracks = analyse_frames(_blank_frames(N), _scripted(faces), EVERY_FRAME)
    assert len(tracks.tracks) == 2
    a, b = tracks.tracks
    assert np.all(np.diff(a.raw_landmarks[:, 2, 0]) > 0) and np.all(np.diff(b.raw_landmarks[:, 2, 0]) < 0)


def test_no_faces() -> None:
    frames = [np.zeros((120, 160, 3), np.uint8)] * 12
    seen: list[int] = []
    tracks = analyse_frames(frames, ScriptedDetector(lambda n: Detections.empty()), EVERY_FRAME,
                            on_frame=seen.append)
    assert tracks.tracks == [] and tracks.num_frames == 12 and seen == list(range(12))
    assert tracks.at_frame(3) == [] and tracks.select("largest").tracks == []


def test_tracker_holds_no_frames() -> None:
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[::7, ::5] = 200
    tracker = FaceTracker(_scripted(lambda n: [(900, 500)]), TrackerConfig(detect_every=2))
    for _ in range(12):
        tracker.update(frame)
    biggest = max((a.nbytes for a in _arrays(tracker)), default=0)
    assert biggest <= 960 * 540  # the optical-flow thumbnail, never a frame (6 MB)
    assert len(tracker.finish().tracks) == 1


def _arrays(obj, seen=None):
    """Every numpy array reachable from obj through attributes, containers and dataclasses."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type)) or callable(obj) and not hasattr(
        obj, "__dict__"
    ):
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, dict):
        for v in list(obj.keys()) + list(obj.values()):
            yield from _arrays(v, seen)
    elif isinstance(obj, (list, tuple, set)) or type(obj).__name__ == "deque":
        for v in obj:
            yield from _arrays(v, seen)
    elif hasattr(obj, "__dict__"):
        yield from _arrays(vars(obj), seen)
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _arrays(getattr(obj, f.name), seen)


def test_tracker_rejects_bad_input_and_config() -> None:
    with pytest.raises(ConfigError):
        FaceTracker(_scripted(lambda n: []), TrackerConfig(detect_every=0))
    with pytest.raises(ConfigError):
        FaceTracker(_scripted(lambda n: []), TrackerConfig(iou_threshold=1.5))
    tracker = FaceTracker(_scripted(lambda n: []), EVERY_FRAME)
    with pytest.raises(InputError):
        tracker.update(np.zeros((10, 10), np.uint8))


# --- FaceTracks


def _tracks_for_selection() -> FaceTracks:
    # Shot 1 (frames 0-49): a big face 0 and a small face 1. Shot 2 (50-79): face 2 alone, small.
    det = _scripted(lambda n: [(80, 120), (250, 120)] if n < 50 else [(160, 120)])

    def sizes(n: int) -> Detections:
        d = det.script(n)
        scale = [1.0, 0.6] if n < 50 else [0.5]
        lms = [(lm - lm.mean(0)) * s + lm.mean(0) for lm, s in zip(d.landmarks, scale)]
        return detections_of(lms)

    frames = _blank_frames(50) + [np.zeros((240, 320, 3), np.uint8)] * 30
    return analyse_frames(frames, ScriptedDetector(sizes), EVERY_FRAME)


def test_select_and_at_frame() -> None:
    tracks = _tracks_for_selection()
    assert tracks.scene_cuts == [50]
    assert [(t.id, t.start, t.end) for t in tracks.tracks] == [(0, 0, 50), (1, 0, 50), (2, 50, 80)]
    assert tracks.tracks[0].size > tracks.tracks[1].size > tracks.tracks[2].size > 0
    assert tracks.select("all").ids() == [0, 1, 2]
    assert tracks.select("largest").ids() == [0, 2]  # the main face of each shot
    assert tracks.select("1").ids() == [1]
    assert tracks.select(" 2, 0 ").ids() == [0, 2]
    assert tracks.select("1").num_frames == 80 and tracks.select("1").scene_cuts == [50]
    with pytest.raises(ConfigError, match="unknown face track id 7"):
        tracks.select("7")
    for bad in ("first", "1;2", "-1", ","):
        with pytest.raises(ConfigError):
            tracks.select(bad)
    with pytest.raises(ConfigError, match="no face tracks"):
        FaceTracks([], 10, []).select("0")

    at = tracks.at_frame(10)
    assert [tid for tid, _ in at] == [0, 1]
    assert np.array_equal(at[1][1], tracks.tracks[1].landmarks[10]) and at[1][1].shape == (5, 2)
    assert [tid for tid, _ in tracks.at_frame(50)] == [2]
    assert tracks.at_frame(-1) == [] and tracks.at_frame(80) == [] and tracks.at_frame(10**6) == []
    assert [tid for tid, _ in tracks.select("1,2").at_frame(10)] == [1]


def test_json_round_trip() -> None:
    tracks = smooth_tracks(_tracks_for_selection(), SmoothingConfig(), fps=25.0)
    data = json.loads(json.dumps(tracks.to_json()))
    back = FaceTracks.from_json(data)
    assert back.num_frames == tracks.num_frames and back.scene_cuts == tracks.scene_cuts
    for a, b in zip(tracks.tracks, back.tracks):
        for f in dataclasses.fields(Track):
            x, y = getattr(a, f.name), getattr(b, f.name)
            assert np.array_equal(x, y) and np.asarray(x).dtype == np.asarray(y).dtype, f.name
    raw = FaceTracks.from_json(json.loads(json.dumps(_tracks_for_selection().to_json())))
    assert "landmarks" not in raw.to_json()["tracks"][0]  # unsmoothed: stored once
    with pytest.raises(InputError):
        FaceTracks.from_json({"version": 1, "tracks": [{"id": 0}]})
    with pytest.raises(InputError):
        FaceTracks.from_json({"version": 99, "tracks": [], "num_frames": 1, "scene_cuts": []})


def test_window_keeps_the_whole_track_extent() -> None:
    """A cut remembers where its whole track starts and ends (paste fades depend on it), also through JSON."""
    tracks = _tracks_for_selection()
    assert tracks.tracks[2].extent == (50, 80) and tracks.tracks[2].span is None
    cut = tracks.window(60, 70)
    assert [(t.start, t.end, t.extent) for t in cut.tracks] == [(60, 70, (50, 80))]
    assert cut.window(62, 65).tracks[0].extent == (50, 80)  # a cut of a cut: still the whole track's
    back = FaceTracks.from_json(json.loads(json.dumps(cut.to_json())))
    assert back.tracks[0].span == (50, 80) and "span" not in tracks.to_json()["tracks"][0]
