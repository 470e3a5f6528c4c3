"""Long videos as segmented, resumable jobs: bounded memory, progress on disk, ``--resume``, exact joins.

A video longer than ``segment_frames`` is restored segment by segment. The job keeps its state next to the
output, in ``.OUT.fvr-job/``:

    job.json        what the job is (input file, its size and mtime, the restore settings, the segment plan)
    tracks.npz      the analysis pass's raw face tracks (pass 1 is not repeated on resume)
    pts.npy         every frame's timestamp (a segment seeks to its keyframe instead of decoding from the start)
    seg-00000.tracks.npz  the smoothed, selected face tracks one segment needs (its frames and context), cut
                    once from the whole video's: a segment worker reads only its own and never smooths
    selection.json  the counts the final report gives (tracks, face frames, scene cuts)
    seg-00000.mp4   one finished segment: the restored frames [start, stop), video only, original timestamps

A segment restores frames ``[start − past, stop + future)`` — the context its restorer declares — and keeps
``[start, stop)``, so every segment is a pure function of the input and the settings: a job killed at any point
and run again with ``--resume`` keeps its finished segments, redoes only the rest, and produces exactly the output
an uninterrupted run produces (both go through the same segments). Temporal models re-warm their state over the
declared past context at every segment start (inside a segment, recurrent models carry it from chunk to chunk).
When all segments are done, their packets are joined without re-encoding into the output, interleaved with the
input's audio and subtitle packets (copied untouched), written to a temporary file and renamed into place; then
the job folder is removed.

Segments are also the unit of parallel work: :mod:`fvr.run.batch` runs them on Ray workers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from fvr.errors import ConfigError, FvrError, InputError, OutputError, add_note, reason
from fvr.faces import FaceTracks, smooth_tracks
from fvr.faces.store import load_tracks, save_tracks
from fvr.io import Frame, MediaSource, check_output_path, is_sequence_path
from fvr.io.remux import join_segments
from fvr.io.sink import VideoSink
from fvr.models import ModelRegistry, Restorer, builtin_registry
from fvr.run.assemble import FrameAssembler
from fvr.run.build import build_restorer
from fvr.run.changes import ChangeLog, ChangeRecorder, RecordOptions, make_recorder
from fvr.run.config import ProgressCallback, RestoreConfig, RestoreReport
from fvr.run.pipeline import FirstPass, analyse_video, input_warnings, open_change_map
from fvr.signals import Interrupted

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_FRAMES = 1500
"""Frames per segment (one minute at 25 fps): the granularity of --resume and of parallel work."""
JOB_FORMAT = 1


@dataclass(frozen=True)
class Segment:
    """Frames [start, stop) of a video, restored into ``seg-{index:05d}.mp4``."""

    index: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"seg-{self.index:05d}.mp4"


def plan_segments(num_frames: int, length: int, scene_cuts: list[int] | tuple[int, ...] = ()) -> list[Segment]:
    """Cut ``num_frames`` frames into segments of about ``length``; a boundary moves to a scene cut within a fifth
    of ``length`` of it (a cut is a seam the viewer expects, and no temporal context crosses it usefully)."""
    if length < 1:
        raise ConfigError(f"segment length must be >= 1 frame, got {length}")
    cuts = sorted(c for c in scene_cuts if 0 < c < num_frames)
    bounds, start = [0], 0
    while num_frames - start > length:
        target = start + length
        near = [c for c in cuts if abs(c - target) <= length // 5 and c > start]
        start = min(near, key=lambda c: abs(c - target)) if near else target
        bounds.append(start)
    bounds.append(num_frames)
    return [Segment(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(bounds)) if b > a]


# --------------------------------------------------------------------------------------------------- job folder


def job_dir(output: str | Path) -> Path:
    """The folder holding a job's state for ``output``."""
    out = Path(output)
    return out.with_name(f".{out.name}.fvr-job")


def settings_key(config: RestoreConfig, segment_frames: int) -> str:
    """A digest of everything that changes the output: a resumed job must use the same settings."""
    settings = asdict(config)
    if not settings["face_strength"]:  # added later, changes nothing when empty: jobs started before still resume
        del settings["face_strength"]
    if not config.forensic:  # likewise: off, the forensic settings change nothing
        del settings["forensic"], settings["forensic_min_identity"]
    data = {"config": settings, "segment_frames": segment_frames}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class JobIdentity:
    """What a job folder belongs to: the input file (resolved path, size, mtime) and the settings' digest
    (:func:`settings_key`). A resumed job must match it exactly."""

    input: str
    size: int | None
    mtime_ns: int | None
    settings: str

    @classmethod
    def of(cls, path: Path, settings: str) -> JobIdentity:
        stat = path.stat() if path.is_file() else None
        return cls(str(path.resolve()), stat.st_size if stat else None, stat.st_mtime_ns if stat else None, settings)


@dataclass(frozen=True)
class JobMeta:
    """``job.json``: what a segmented job is — its identity, the segment plan, the frame count and pass 1's
    warnings about the input (kept for the report of a resumed job)."""

    identity: JobIdentity
    segment_frames: int
    num_frames: int
    segments: tuple[Segment, ...]
    warnings: tuple[str, ...] = ()
    format: int = JOB_FORMAT

    def to_json(self) -> str:
        data = {"format": self.format, **asdict(self.identity), "segment_frames": self.segment_frames,
                "num_frames": self.num_frames, "segments": [[s.start, s.stop] for s in self.segments],
                "warnings": list(self.warnings)}
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> JobMeta:
        """Read ``job.json``; ValueError (or KeyError/TypeError) when it is not one."""
        data = json.loads(text)
        identity = JobIdentity(data["input"], data["size"], data["mtime_ns"], data["settings"])
        segments = tuple(Segment(i, int(a), int(b)) for i, (a, b) in enumerate(data["segments"]))
        return cls(identity, int(data["segment_frames"]), int(data["num_frames"]), segments,
                   tuple(data.get("warnings", ())), int(data.get("format", JOB_FORMAT)))


@dataclass
class Job:
    """One segmented restore: its folder, its plan and which segments are finished."""

    folder: Path
    meta: JobMeta

    @classmethod
    def load(cls, folder: Path) -> Job:
        """The job a folder holds (``job.json``)."""
        return cls(folder, JobMeta.from_json((folder / "job.json").read_text()))

    @property
    def segments(self) -> list[Segment]:
        return list(self.meta.segments)

    def segment_path(self, segment: Segment) -> Path:
        return self.folder / segment.name

    def done(self, segment: Segment) -> bool:
        """Finished segments exist under their final name (each is written to a temporary name and renamed)."""
        return self.segment_path(segment).is_file()

    def tracks(self) -> FaceTracks:
        """The whole video's raw face tracks (pass 1)."""
        return load_tracks(self.folder / "tracks.npz")

    def segment_tracks_path(self, segment: Segment) -> Path:
        return self.folder / f"seg-{segment.index:05d}.tracks.npz"

    def segment_tracks(self, segment: Segment) -> FaceTracks:
        """The smoothed, selected tracks cut to ``segment`` and its context (see :func:`prepare_segments`)."""
        return load_tracks(self.segment_tracks_path(segment))

    def pts(self) -> np.ndarray:
        """(N,) int64 timestamps of every frame, as the analysis pass decoded them."""
        return np.load(self.folder / "pts.npy", allow_pickle=False)


def open_job(input: Path, output: Path, config: RestoreConfig, segment_frames: int, *, resume: bool,
             analyse: Callable[[], FirstPass]) -> Job:
    """The job for (input, output, settings): resumed from its folder when ``resume`` and the folder describes
    the same input and settings; otherwise a fresh one (``analyse()`` runs pass 1, see :func:`analyse_job`;
    its warnings are kept in the job's metadata as ``warnings``)."""
    folder = job_dir(output)
    identity = JobIdentity.of(input, settings_key(config, segment_frames))
    meta_path = folder / "job.json"
    if resume and meta_path.is_file():
        try:
            meta = JobMeta.from_json(meta_path.read_text())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OutputError(f"cannot resume: {meta_path} is damaged ({reason(exc)}); run without --resume") from None
        if meta.identity != identity:
            raise ConfigError(f"cannot resume: {folder} belongs to another input or other settings; run again "
                              f"without --resume to start over")
        job = Job(folder, meta)
        log.info("resuming: %d of %d segments already done", sum(job.done(s) for s in job.segments),
                 len(job.segments))
        return job
    if folder.exists():
        shutil.rmtree(folder)
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(f"cannot create the job folder {folder}: {reason(exc)}") from None
    raw, pts, warnings = analyse()
    save_tracks(raw, folder / "tracks.npz")
    np.save(folder / "pts.npy", np.asarray(pts, dtype=np.int64))
    plan = plan_segments(raw.num_frames, segment_frames, raw.scene_cuts)
    meta = JobMeta(identity, segment_frames, raw.num_frames, tuple(plan), tuple(warnings))
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(meta.to_json())
    tmp.replace(meta_path)
    return Job(folder, meta)


# --------------------------------------------------------------------------------------------------- segments


def analyse_job(source: MediaSource, config: RestoreConfig, progress: ProgressCallback | None = None) -> FirstPass:
    """Pass 1 of a job (:func:`fvr.run.pipeline.analyse_video`), its warnings led by those about what the input is
    (a still image under a video name), as the job's report gives them."""
    first = analyse_video(source, config.analysis, progress)
    return FirstPass(first.tracks, first.pts, input_warnings(source) + first.warnings)


def restored_frames(source: MediaSource, tracks: FaceTracks, restorer: Restorer, config: RestoreConfig,
                    start: int, stop: int, pts: np.ndarray | None = None,
                    recorder: ChangeRecorder | None = None) -> Iterator[tuple[Frame, np.ndarray]]:
    """Frames [start, stop) of ``source`` restored: (the input frame, the output (H·u, W·u, 3) uint8 RGB), in
    order, reading the restorer's declared past/future context around them. ``tracks``: smoothed and selected (the
    whole video's, or a cut of them covering the context). ``pts``: every frame's timestamp (from the analysis
    pass), to seek instead of decoding from the first frame. ``recorder`` measures the frames (give it the window
    [start, stop): the context frames around it are restored too). A segment of a job and the UI's preview both come
    from here, so a preview shows exactly what the full run writes on those frames."""
    lo = max(0, start - restorer.spec.past)
    hi = stop + restorer.spec.future
    state = FrameAssembler(tracks, restorer, config, recorder=recorder)
    source.rewind()
    frames = source.frames_from(lo, pts) if pts is not None else source.frames()
    for frame in frames:
        if frame.index < lo:
            continue  # decoded and dropped: before the context
        if frame.index >= hi:
            break
        yield from ((f, rgb) for f, rgb in state.push(frame) if start <= f.index < stop)
    yield from ((f, rgb) for f, rgb in state.finish() if start <= f.index < stop)


def restore_segment(source: MediaSource, path: Path, tracks: FaceTracks, restorer: Restorer,
                    config: RestoreConfig, segment: Segment, pts: np.ndarray | None = None,
                    on_frame: Callable[[int], None] | None = None, record: RecordOptions | None = None) -> int:
    """Restore frames [segment.start, segment.stop) of ``source`` (:func:`restored_frames`) into the video-only
    file ``path`` (atomic). ``on_frame(k)`` is called after the segment's k-th frame is written. Returns the number
    of frames written. ``record``: also measure the segment's frames into :func:`segment_changes` and, when it
    names a change map, write the segment's map to :func:`segment_map` (both in place before the segment's video
    is: a segment whose video exists is complete)."""
    info = source.info
    size = (info.width * config.upscale, info.height * config.upscale)
    # mp4 stores every packet's dts (the join needs them); keep the input's time base exactly
    tb = info.time_base
    options = {"video_track_timescale": str(tb.denominator)} if tb.numerator == 1 else {}
    with ExitStack() as stack:
        # entered last, committed first: the map is in place before the segment's video
        sink = stack.enter_context(VideoSink(path, info, size, config.encode, copy_streams=[],
                                             container_options=options))
        map_sink = None
        if record is not None and record.change_map is not None:
            map_sink = stack.enter_context(open_change_map(segment_map(path), info, size, options))
        recorder = None if record is None else make_recorder(config, record, tracks, map_sink,
                                                             (segment.start, segment.stop))
        for frame, rgb in restored_frames(source, tracks, restorer, config, segment.start, segment.stop, pts,
                                          recorder):
            sink.write(rgb, frame.pts)
            if on_frame is not None:
                on_frame(sink.frames_written)
        written = sink.frames_written
        if recorder is not None:
            recorder.log.save(segment_changes(path))
    return written


def segment_changes(path: Path) -> Path:
    """Where the figures measured on a segment (its video at ``path``) wait for the join."""
    return path.with_name(path.stem + ".changes.npz")


def segment_map(path: Path) -> Path:
    """Where a segment's change map waits for the join."""
    return path.with_name(path.stem + ".map.mp4")


# --------------------------------------------------------------------------------------------------- the job


def restore_video_job(
    input: str | Path,
    output: str | Path,
    config: RestoreConfig = RestoreConfig(),
    *,
    segment_frames: int = DEFAULT_SEGMENT_FRAMES,
    resume: bool = False,
    registry: ModelRegistry | None = None,
    progress: ProgressCallback | None = None,
    segments_per_process: int = 0,
    overwrite: bool = True,
    record: RecordOptions | None = None,
    metadata: Mapping[str, str] | None = None,
) -> RestoreReport:
    """``fvr restore`` for videos of any length: segmented and resumable (see the module docstring).

    Video outputs whose input is longer than ``segment_frames`` go through segments; shorter inputs, PNG-sequence
    outputs and whole-frame models run the single-pass :func:`fvr.run.pipeline.restore_video`.

    segments_per_process: 0 runs everything in this process. N > 0 restores a segmented job in a chain of fresh
    child processes (spawned): one runs the analysis pass (when it is not on disk yet), then each restores at most
    N segments and exits; the next one resumes the job from its folder. Memory that the C allocator keeps after a
    segment (heap fragmentation, which grows with the number of frames a process has handled) goes back to the
    system with each child, so peak memory stays that of N segments however long the video is. This process only
    waits (it does not import torch or load a model). ``registry`` must then be None (the children build the
    model from ``config`` with the built-in registry).

    overwrite: False refuses an existing output (OutputError) before any work; ``resume`` implies it (the job
    being resumed owns its output).

    record, metadata: as :func:`fvr.run.pipeline.restore_video` (a segmented job measures each segment and joins
    the figures and the change-map segments with the video).
    """
    config.validate()
    in_path = Path(input)
    out_path = check_output_path(output, input, encode=config.encode, overwrite=overwrite or resume)
    if segments_per_process < 0:
        raise ConfigError(f"segments_per_process must be >= 0, got {segments_per_process}")
    try:
        if segments_per_process and registry is None and not is_sequence_path(out_path):
            frames = _frame_estimate(in_path, config)
            if frames is None or frames > segment_frames or (resume and job_dir(out_path).is_dir()):
                return _restore_in_children(in_path, out_path, config, segment_frames, resume, progress,
                                            segments_per_process, record, metadata)
        report = restore_job(in_path, out_path, config, segment_frames, resume, registry, progress, None, record,
                             metadata)
    except (Interrupted, KeyboardInterrupt) as exc:
        if job_dir(out_path).is_dir():
            add_note(exc, f"finished segments are kept in {job_dir(out_path)}: run the same command with "
                          f"--resume to continue")
        raise
    assert report is not None  # no segment limit: the job ran to the end
    return report


def restore_job(in_path: Path, out_path: Path, config: RestoreConfig, segment_frames: int, resume: bool,
                registry: ModelRegistry | None, progress: ProgressCallback | None,
                max_segments: int | None, record: RecordOptions | None = None,
                metadata: Mapping[str, str] | None = None) -> RestoreReport | None:
    """The job in this process; with ``max_segments``, stops after restoring that many unfinished segments and
    returns None while segments remain (the job folder keeps the progress)."""
    from fvr.run.pipeline import restore_video

    registry = registry or builtin_registry()
    restorer = build_restorer(config, registry)
    info_frames = _frame_estimate(in_path, config)
    folder = job_dir(out_path)
    short = info_frames is not None and info_frames <= segment_frames
    single = (is_sequence_path(out_path) or restorer.spec.frame_model
              or (short and not (resume and folder.is_dir())))
    if single:
        # a folder output keeps its trailing separator: "frames.v2/" is a folder, "frames.v2" an unknown suffix
        target = f"{out_path}{os.sep}" if is_sequence_path(out_path) else out_path
        return restore_video(in_path, target, config, registry=registry, restorer=restorer, progress=progress,
                             record=record, metadata=metadata)

    t0 = time.perf_counter()
    analysed: list[bool] = []
    with MediaSource(in_path, sequence_fps=config.sequence_fps, strict=config.strict) as source:

        def analyse() -> FirstPass:
            analysed.append(True)
            return analyse_job(source, config, progress)

        job = open_job(in_path, out_path, config, segment_frames, resume=resume, analyse=analyse)
        counts = prepare_segments(job, config, float(source.info.fps), restorer.spec.past, restorer.spec.future)
        if analysed and max_segments is not None:
            # a worker that ran pass 1 (every frame of the video) stops there: its heap has seen the whole video,
            # the segment workers after it see one segment each
            return None
        pts = job.pts()
        t1 = time.perf_counter()
        done = 0
        total = job.meta.num_frames
        budget = max_segments
        for segment in job.segments:
            if not job.done(segment) or not _measured(job, segment, record):
                if budget is not None and budget <= 0:
                    return None
                on_frame = None if progress is None else partial(_restored, progress, done, total)
                restore_segment(source, job.segment_path(segment), job.segment_tracks(segment), restorer, config,
                                segment, pts, on_frame=on_frame, record=record)
                budget = None if budget is None else budget - 1
            done += segment.stop - segment.start
            if progress is not None:
                progress("restore", done, total)
        paths = [job.segment_path(s) for s in job.segments]
        changes = None
        if record is not None:
            if record.change_map is not None:
                join_segments([segment_map(p) for p in paths], source, record.change_map, other_streams=False)
            changes = ChangeLog.merge(ChangeLog.load(segment_changes(p)) for p in paths)
        frames = join_segments(paths, source, out_path, metadata=metadata)
        info = source.info
    shutil.rmtree(job.folder, ignore_errors=True)
    t2 = time.perf_counter()
    warnings = list(job.meta.warnings)
    if not counts["tracks"]:
        warnings.append("no faces found: the output is the input re-encoded")
    return RestoreReport(
        input=str(in_path), output=str(out_path), model=restorer.spec.name, frames=frames,
        width=info.width * config.upscale, height=info.height * config.upscale, tracks=counts["tracks"],
        face_frames=counts["face_frames"], scene_cuts=counts["scene_cuts"],
        seconds_analyse=t1 - t0, seconds_restore=t2 - t1, warnings=warnings, changes=changes,
    )


def _measured(job: Job, segment: Segment, record: RecordOptions | None) -> bool:
    """Whether a done segment also has what ``record`` asks for (a job begun without a record or a change map and
    resumed with one restores its done segments again)."""
    if record is None:
        return True
    path = job.segment_path(segment)
    return segment_changes(path).is_file() and (record.change_map is None or segment_map(path).is_file())


def _restored(progress: ProgressCallback, base: int, total: int, k: int) -> None:
    """Restore progress of the k-th frame written by a segment that starts ``base`` frames into the job."""
    progress("restore", base + k, total)


def prepare_segments(job: Job, config: RestoreConfig, fps: float, past: int, future: int) -> dict[str, int]:
    """Cut the smoothed, selected face tracks once for every unfinished segment: frames
    [start − past, stop + future) (the restorer's declared context) into ``seg-NNNNN.tracks.npz``, so that a
    segment worker loads only its own part and never smooths (whole-video tracks in every worker made its memory
    grow with the video's length). Smoothing runs over whole tracks, so a cut holds exactly the values a whole
    run uses. Already prepared (a resumed job): nothing is read. Returns the report's counts: ``tracks``,
    ``face_frames``, ``scene_cuts``. ConfigError for a ``--faces`` choice the video does not have."""
    summary_path = job.folder / "selection.json"
    todo = [s for s in job.segments if not job.done(s)]
    if summary_path.is_file() and all(job.segment_tracks_path(s).is_file() for s in todo):
        return json.loads(summary_path.read_text())
    raw = job.tracks()
    tracks = selected_tracks(raw, config, fps)
    for segment in todo:
        cut = tracks.window(max(0, segment.start - past), segment.stop + future)
        save_tracks(cut, job.segment_tracks_path(segment))
    summary = {"tracks": len(tracks.tracks), "face_frames": sum(len(t) for t in tracks.tracks),
               "scene_cuts": len(raw.scene_cuts)}
    tmp = summary_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary))
    tmp.replace(summary_path)
    return summary


def selected_tracks(raw: FaceTracks, config: RestoreConfig, fps: float) -> FaceTracks:
    """A job's raw face tracks (``job.tracks()``), smoothed and selected (``config.faces``) as every segment of
    it must see them."""
    config.check_tracks(raw)
    tracks = smooth_tracks(raw, config.smoothing, fps)
    return tracks.select(config.faces) if raw.tracks else tracks


# ------------------------------------------------------------------------------------------ child processes

_ERRORS = {cls.__name__: cls for cls in (FvrError, InputError, OutputError, ConfigError)}
_PROGRESS_EVERY = 0.2  # seconds between progress messages from a child


def _job_child(queue: Any, input: str, output: str, config: RestoreConfig, segment_frames: int, resume: bool,
               max_segments: int, log_level: int = logging.WARNING, record: RecordOptions | None = None,
               metadata: Mapping[str, str] | None = None) -> None:
    """Child process entry: run (part of) the job and report to the parent through ``queue``. ``log_level``:
    the parent's (a spawned interpreter starts without logging set up: ``-q`` must hold here too)."""
    logging.basicConfig(level=log_level, format="%(message)s")
    last = [0.0]

    def progress(stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] >= _PROGRESS_EVERY or (total is not None and done >= total):
            last[0] = now
            queue.put(("progress", stage, done, total))

    from fvr.signals import signals_raise

    try:
        # the parent stops a child with SIGTERM: unwind, so that the segment being written leaves no temp file
        with signals_raise():
            report = restore_job(Path(input), Path(output), config, segment_frames, resume, None, progress,
                                 max_segments, record, metadata)
        queue.put(("done", report))
    except FvrError as exc:
        queue.put(("error", type(exc).__name__, str(exc)))
    except BaseException as exc:
        queue.put(("crash", f"{type(exc).__name__}: {reason(exc)}", traceback.format_exc()))


def _restore_in_children(in_path: Path, out_path: Path, config: RestoreConfig, segment_frames: int, resume: bool,
                         progress: ProgressCallback | None, segments_per_process: int,
                         record: RecordOptions | None = None,
                         metadata: Mapping[str, str] | None = None) -> RestoreReport:
    """Run the job as a chain of spawned children (see :func:`restore_video_job`) until one of them finishes it."""
    import multiprocessing
    import queue as queues

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing inherited, nothing to fork badly
    t0 = time.perf_counter()
    while True:
        channel = ctx.Queue()
        child = ctx.Process(target=_job_child, daemon=True, name="fvr-segments",
                            args=(channel, str(in_path), str(out_path), config, segment_frames, resume,
                                  segments_per_process, logging.getLogger().getEffectiveLevel(), record,
                                  dict(metadata or {})))
        child.start()
        finished = False
        try:
            while True:
                try:
                    message = channel.get(timeout=0.5)
                except queues.Empty:
                    if not child.is_alive():
                        raise OutputError(f"a worker process restoring {in_path.name} ended without a result "
                                          f"(exit code {child.exitcode}: killed, or out of memory?); run again "
                                          f"with --resume to continue") from None
                    continue
                kind = message[0]
                if kind == "progress":
                    if progress is not None:
                        progress(*message[1:])
                    continue
                if kind == "error":
                    raise _ERRORS[message[1]](message[2])
                if kind == "crash":
                    log.debug("worker traceback:\n%s", message[2])
                    raise RuntimeError(f"worker process failed: {message[1]}")
                report = message[1]
                finished = True
                break
        finally:
            if not finished and child.is_alive():
                child.terminate()  # interrupted or failed here: the child cleans up and exits (see _job_child)
            child.join(timeout=30 if finished else 10)
            if child.is_alive():
                child.kill()
            channel.close()
        if report is not None:
            # the report's timings are the last child's: give the whole job's wall time (start-ups included)
            return replace(report, seconds_analyse=0.0, seconds_restore=time.perf_counter() - t0)
        resume = True  # the next child continues the job this one left on disk


def _frame_estimate(path: Path, config: RestoreConfig) -> int | None:
    """The container's frame count; None when it does not say (then the job is segmented: that works for any
    length)."""
    from fvr.io import probe

    return probe(path, sequence_fps=config.sequence_fps).num_frames or None
