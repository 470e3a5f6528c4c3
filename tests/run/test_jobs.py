"""Segmented, resumable restore jobs (fvr.run.jobs): plans, track files, exact joins, resume after a kill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fvr.errors import ConfigError
from fvr.faces import FaceTracks
from fvr.faces.store import load_tracks, save_tracks
from fvr.io import EncodeOptions, MediaSource
from fvr.run.config import RestoreConfig
from fvr.run.jobs import job_dir, plan_segments, restore_video_job
from fvr.run.pipeline import analyse_source, restore_video
from media import face_clip, read_frames, read_packets, write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("jobs") / "in.mp4", face_clip(30, 160), audio=True)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_plan_covers_every_frame_and_snaps_to_cuts():
    plan = plan_segments(100, 30)
    assert [(s.start, s.stop) for s in plan] == [(0, 30), (30, 60), (60, 90), (90, 100)]
    snapped = plan_segments(100, 30, scene_cuts=[33, 80])
    assert [(s.start, s.stop) for s in snapped] == [(0, 33), (33, 63), (63, 93), (93, 100)]
    assert plan_segments(10, 30)[0].stop == 10 and len(plan_segments(0, 30)) == 0
    with pytest.raises(ConfigError):
        plan_segments(10, 0)


def test_tracks_round_trip(clip: Path, tmp_path: Path):
    with MediaSource(clip) as source:
        tracks = analyse_source(source)
    path = save_tracks(tracks, tmp_path / "tracks.npz")
    back = load_tracks(path)
    assert back.num_frames == tracks.num_frames and back.scene_cuts == tracks.scene_cuts
    assert back.ids() == tracks.ids()
    for a, b in zip(tracks.tracks, back.tracks, strict=True):
        for name in ("frames", "landmarks", "raw_landmarks", "boxes", "scores", "detected"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    empty = load_tracks(save_tracks(FaceTracks([], 5), tmp_path / "empty.npz"))
    assert empty.tracks == [] and empty.num_frames == 5


@pytest.mark.parametrize("model, min_psnr", [("classical", 99.0), ("fvr-fast", 55.0)])
def test_segmented_run_matches_single_pass(clip: Path, tmp_path: Path, model: str, min_psnr: float):
    """Segments restored with the model's declared context equal the single-pass result: exactly for a per-frame
    model, within a hair for the causal recurrent one, which re-warms its state over its past context (6 frames)
    at each segment start. Lossless encoding (CRF 0), so that what is compared is the restoration, not x264's
    decisions at different GOP boundaries."""
    config = RestoreConfig(model=model, encode=EncodeOptions(crf=0))
    single = restore_video(clip, tmp_path / "single.mp4", config)
    seg = restore_video_job(clip, tmp_path / "seg.mp4", config, segment_frames=8)
    assert seg.frames == single.frames == 30 and seg.face_frames == single.face_frames
    a, ta = read_frames(tmp_path / "single.mp4")
    b, tb = read_frames(tmp_path / "seg.mp4")
    assert ta == tb
    assert min(_psnr(x, y) for x, y in zip(a, b, strict=True)) >= min_psnr
    assert read_packets(tmp_path / "seg.mp4", "audio") == read_packets(clip, "audio")
    assert not job_dir(tmp_path / "seg.mp4").exists()  # cleaned up after the join


def test_window_cuts_copies_of_the_tracks(clip: Path):
    with MediaSource(clip) as source:
        tracks = analyse_source(source)
    assert tracks.tracks and tracks.tracks[0].start < 10 < 20 < tracks.tracks[0].end
    cut = tracks.window(10, 20)
    assert cut.num_frames == tracks.num_frames and cut.scene_cuts == tracks.scene_cuts
    a, b = tracks.tracks[0], cut.tracks[0]
    assert b.id == a.id and b.start == 10 and b.end == 20
    for name in ("frames", "landmarks", "raw_landmarks", "boxes", "scores", "detected"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name)[10 - a.start:20 - a.start])
        assert not np.shares_memory(getattr(b, name), getattr(a, name))  # the whole arrays can be freed
    assert [i for i, _ in cut.at_frame(15)] == [i for i, _ in tracks.at_frame(15)]
    assert cut.at_frame(5) == [] and tracks.window(40, 50).tracks == []


@pytest.mark.parametrize("model", ["classical", "fvr-quality"])
def test_a_segment_restored_from_its_cut_equals_one_from_whole_tracks(clip: Path, tmp_path: Path, model: str):
    """A segment's cut [start - past, stop + future) gives the frames whole tracks give, bit for bit (lossless),
    also for the bidirectional model with look-ahead."""
    from fvr.models import builtin_registry
    from fvr.run.build import build_restorer
    from fvr.run.jobs import Segment, restore_segment, selected_tracks

    config = RestoreConfig(model=model, encode=EncodeOptions(crf=0))
    restorer = build_restorer(config, builtin_registry())
    segment = Segment(1, 10, 20)
    with MediaSource(clip) as source:
        whole = selected_tracks(analyse_source(source), config, float(source.info.fps))
        cut = whole.window(segment.start - restorer.spec.past, segment.stop + restorer.spec.future)
        assert sum(map(len, cut.tracks)) < sum(map(len, whole.tracks))
        restore_segment(source, tmp_path / "whole.mp4", whole, restorer, config, segment)
        restore_segment(source, tmp_path / "cut.mp4", cut, restorer, config, segment)
    a, ta = read_frames(tmp_path / "whole.mp4")
    b, tb = read_frames(tmp_path / "cut.mp4")
    assert len(a) == 10 and ta == tb and np.array_equal(a, b)


class _Kill(Exception):
    pass


def test_resume_after_a_kill_gives_the_uninterrupted_output(clip: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch):
    from fvr.run import jobs

    # lossless: x264 at CRF 18 is not bit-repeatable here even for two uninterrupted runs (docs/pipeline.md)
    config = RestoreConfig(model="classical", encode=EncodeOptions(crf=0))
    restore_video_job(clip, tmp_path / "full.mp4", config, segment_frames=7)

    def kill_after_two(stage: str, done: int, total: int) -> None:
        if stage == "restore" and done >= 15:  # the first frame of the third segment
            raise _Kill

    out = tmp_path / "resumed.mp4"
    with pytest.raises(_Kill):
        restore_video_job(clip, out, config, segment_frames=7, progress=kill_after_two)
    assert not out.exists()  # nothing half-written
    done = sorted(p.name for p in job_dir(out).glob("seg-*.mp4"))
    assert done == ["seg-00000.mp4", "seg-00001.mp4"]
    redone: list[int] = []
    original = jobs.restore_segment

    def counting(*args, **kwargs):
        redone.append(args[5].index)
        return original(*args, **kwargs)

    monkeypatch.setattr(jobs, "restore_segment", counting)
    # the resumed run reads only each segment's own cut of the face tracks: never the whole video's, never smooths
    assert all((job_dir(out) / f"seg-{i:05d}.tracks.npz").is_file() for i in (2, 3, 4))

    def whole_video_tracks(*args, **kwargs):
        raise AssertionError("a segment must not need the whole video's face tracks")

    monkeypatch.setattr(jobs.Job, "tracks", whole_video_tracks)
    monkeypatch.setattr(jobs, "smooth_tracks", whole_video_tracks)
    report = restore_video_job(clip, out, config, segment_frames=7, resume=True)
    assert redone == [2, 3, 4]  # the finished segments are kept
    assert report.frames == 30
    assert not job_dir(out).exists()
    a, ta = read_frames(tmp_path / "full.mp4")
    b, tb = read_frames(out)
    assert ta == tb and np.array_equal(a, b)  # decoded frames identical, not just close
    assert read_packets(out, "audio") == read_packets(tmp_path / "full.mp4", "audio") == read_packets(clip, "audio")


def test_segments_in_fresh_processes_give_the_in_process_output(clip: Path, tmp_path: Path):
    """segments_per_process: a chain of spawned children (one for the analysis pass, then 2 segments each: 3 more
    for 5 segments) produces exactly the in-process output and audio, reports progress, leaves no job folder."""
    import multiprocessing

    config = RestoreConfig(model="fvr-fast", encode=EncodeOptions(crf=0))
    restore_video_job(clip, tmp_path / "here.mp4", config, segment_frames=7)
    children: set[int] = set()
    seen: list[tuple[str, int]] = []

    def progress(stage: str, done: int, total: int) -> None:
        seen.append((stage, done))
        children.update(c.pid for c in multiprocessing.active_children() if c.pid is not None)

    out = tmp_path / "children.mp4"
    report = restore_video_job(clip, out, config, segment_frames=7, segments_per_process=2, progress=progress)
    assert report.frames == 30 and report.face_frames > 0
    assert len(children) == 4  # the analysis pass, then one fresh process per two segments
    assert ("restore", 30) in seen and any(stage == "analyse" for stage, _ in seen)
    a, ta = read_frames(tmp_path / "here.mp4")
    b, tb = read_frames(out)
    assert ta == tb and np.array_equal(a, b)
    assert read_packets(out, "audio") == read_packets(clip, "audio")
    assert not job_dir(out).exists()


def test_an_error_in_a_child_process_is_the_same_one_line_error(clip: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="no-such-model"):
        restore_video_job(clip, tmp_path / "x.mp4", RestoreConfig(model="no-such-model"), segment_frames=7,
                          segments_per_process=1)
    assert not (tmp_path / "x.mp4").exists()


def test_resume_refuses_other_settings(clip: Path, tmp_path: Path):
    out = tmp_path / "x.mp4"

    def kill(stage: str, done: int, total: int) -> None:
        if stage == "restore" and done >= 7:
            raise _Kill

    with pytest.raises(_Kill):
        restore_video_job(clip, out, RestoreConfig(model="classical"), segment_frames=7, progress=kill)
    with pytest.raises(ConfigError, match="another input or other settings"):
        restore_video_job(clip, out, RestoreConfig(model="classical", strength=0.5), segment_frames=7, resume=True)
    # without --resume a new job starts over
    assert restore_video_job(clip, out, RestoreConfig(model="classical"), segment_frames=7).frames == 30


def test_frames_from_seeks_and_gives_the_same_frames(tmp_path: Path):
    """A clip with a keyframe every 5 frames: reading from frame k by seeking equals decoding from the start."""
    import av

    path = tmp_path / "gop.mp4"
    frames = face_clip(23, 96)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"crf": "10", "preset": "ultrafast", "g": "5",
                                                          "keyint_min": "5", "sc_threshold": "0"})
        vs.width, vs.height, vs.pix_fmt = 96, 96, "yuv420p"
        for rgb in frames:
            out.mux(vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(vs.encode(None))
    with MediaSource(path) as source:
        full = list(source.frames())
        pts = np.array([f.pts for f in full], dtype=np.int64)
        for start in (0, 3, 5, 11, 22):
            got = list(source.frames_from(start, pts))
            assert [f.index for f in got] == list(range(start, 23))
            assert [f.pts for f in got] == [f.pts for f in full[start:]]
            assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(got, full[start:], strict=True))


def test_a_cut_track_fades_as_the_whole_track_does(clip: Path, tmp_path: Path):
    """Paste fades depend on the whole track, not on where a segment starts: a cut keeps its track's extent
    (``Track.span``, saved with the segment's tracks), so a segment that begins inside a track which ends in it
    fades out as a whole run does, and does not fade in at its own start."""
    from dataclasses import replace

    from fvr.faces import Track
    from fvr.faces.track import TRACK_ARRAYS
    from fvr.models import builtin_registry
    from fvr.run.build import build_restorer
    from fvr.run.jobs import Segment, restore_segment, selected_tracks

    config = RestoreConfig(model="classical", encode=EncodeOptions(crf=0))
    restorer = build_restorer(config, builtin_registry())
    segment = Segment(1, 10, 20)
    with MediaSource(clip) as source:
        tracks = selected_tracks(analyse_source(source), config, float(source.info.fps))
        t = tracks.tracks[0]
        assert (t.start, t.end) == (0, 30)
        whole = FaceTracks([Track(t.id, *(getattr(t, n)[:15] for n in TRACK_ARRAYS))], tracks.num_frames)
        cut = load_tracks(save_tracks(whole.window(10, 20), tmp_path / "cut.npz"))
        assert (cut.tracks[0].start, cut.tracks[0].end, cut.tracks[0].span) == (10, 15, (0, 15))
        assert whole.tracks[0].span is None and whole.window(0, 30).tracks[0].span == (0, 15)
        restore_segment(source, tmp_path / "whole.mp4", whole, restorer, config, segment)
        restore_segment(source, tmp_path / "cut.mp4", cut, restorer, config, segment)
        restore_segment(source, tmp_path / "hard.mp4", cut, restorer, replace(config, fade_frames=0), segment)
    a, _ = read_frames(tmp_path / "whole.mp4")
    b, _ = read_frames(tmp_path / "cut.mp4")
    c, _ = read_frames(tmp_path / "hard.mp4")
    assert np.array_equal(a, b)
    # frames 10 (weight 1) and 15-19 (no face) as without fades; 11-14 fade out
    same = [np.array_equal(x, y) for x, y in zip(b, c, strict=True)]
    assert same == [True, False, False, False, False, True, True, True, True, True]
