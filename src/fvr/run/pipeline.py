"""``restore_video``: the whole pipeline, io -> faces -> models -> compose -> io, streaming, in one process.

Two passes over the input, both with bounded memory:

1. **analyse** — decode, detect, track (stable IDs, gaps, scene cuts), then smooth each track's landmarks over
   time (:func:`analyse_video`). Only small per-frame landmark arrays are kept, never frames.
2. **restore** — decode again; every frame goes through the :class:`~fvr.run.assemble.FrameAssembler` (aligned
   crops of the selected tracks -> restorer in chunks -> paste-back) and is encoded, with audio and subtitle
   packets copied untouched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fvr.errors import ConfigError
from fvr.faces import DetectorConfig, FaceTracks, TrackerConfig, smooth_tracks
from fvr.faces.analyse import AnalysisConfig, analyse_faces
from fvr.io import EncodeOptions, Frame, MediaSource, VideoInfo, check_output_path, open_sink
from fvr.io.sink import VIDEO_SUFFIXES, ImageSink, SequenceSink, VideoSink
from fvr.models import FrameRestorer, ModelRegistry, Restorer, as_frame_restorer, builtin_registry
from fvr.run.assemble import CHUNK, FrameAssembler
from fvr.run.build import build_restorer
from fvr.run.changes import ChangeLog, RecordOptions, make_recorder
from fvr.run.config import ProgressCallback, RestoreConfig, RestoreReport

log = logging.getLogger(__name__)


class FirstPass(NamedTuple):
    """What the analysis pass found: the raw face tracks, every frame's timestamp ((N,) int64), and the warnings
    about the decoded data (corrupt packets) that the run's report carries."""

    tracks: FaceTracks
    pts: np.ndarray
    warnings: list[str]


def analyse_video(source: MediaSource, analysis: AnalysisConfig = AnalysisConfig(),
                  progress: ProgressCallback | None = None) -> FirstPass:
    """Pass 1 over ``source``: detect and track every face (:func:`fvr.faces.analyse.analyse_faces`), recording
    every frame's timestamp and the decoding warnings (logged here)."""
    pts: list[int] = []

    def frames():
        for frame in source.frames():
            pts.append(frame.pts)
            yield frame.rgb

    faces = analyse_faces(frames(), analysis, float(source.info.fps), on_frame=_analysis_progress(source, progress))
    return FirstPass(faces.raw, np.asarray(pts, dtype=np.int64), decode_warnings(source))


def analyse_source(
    source: MediaSource,
    detector: DetectorConfig = DetectorConfig(),
    tracker: TrackerConfig = TrackerConfig(),
    progress: ProgressCallback | None = None,
) -> FaceTracks:
    """Pass 1 without its bookkeeping: the raw face tracks of ``source`` (landmarks not yet smoothed)."""
    frames = (f.rgb for f in source.frames())
    return analyse_faces(frames, AnalysisConfig(detector, tracker), float(source.info.fps),
                         on_frame=_analysis_progress(source, progress)).raw


def _analysis_progress(source: MediaSource, progress: ProgressCallback | None) -> Callable[[int], None] | None:
    """Pass 1's per-frame callback: ``progress("analyse", frames done, the source's frame count)``."""
    if progress is None:
        return None
    total = source.info.num_frames
    return lambda i: progress("analyse", i + 1, total)


def decode_warnings(source: MediaSource) -> list[str]:
    """Log and return the warning for corrupt data the last decoding pass of ``source`` met (none: [])."""
    if not source.decode_errors:
        return []
    message = f"{source.path.name}: {source.decode_errors.describe()}"
    log.warning(message)
    return [message]


def input_warnings(source: MediaSource) -> list[str]:
    """Log and return warnings about what the input is (a still image under a video name)."""
    if source.info.is_still and source.path.suffix.lower() in VIDEO_SUFFIXES:
        message = (f"{source.path.name} is a single {source.info.codec.upper()} image, not a video: it is restored "
                   f"as a photo")
        log.warning(message)
        return [message]
    return []




def restore_video(
    input: str | Path,
    output: str | Path,
    config: RestoreConfig = RestoreConfig(),
    *,
    registry: ModelRegistry | None = None,
    restorer: Restorer | None = None,
    tracks: FaceTracks | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = True,
    record: RecordOptions | None = None,
    metadata: Mapping[str, str] | None = None,
) -> RestoreReport:
    """Restore every (selected) face of a video or PNG-sequence folder and write the result atomically.

    input: a video file or a folder of images. output: a video file (by suffix: .mp4, .mkv, .mov, ...) or a folder
    for a PNG sequence. ``restorer`` overrides ``config.model`` with an already built model; ``tracks`` (raw tracks
    from :func:`analyse_source` on the same input) skips the analysis pass. ``overwrite=False`` refuses an existing
    output before any work. ``record``: measure what the restore changed (the report's ``changes``) and write the
    change map it names. ``metadata``: container tags of a video output (see :class:`fvr.io.VideoSink`).
    Raises :class:`fvr.errors.FvrError` subclasses with one-line messages for every user-fixable problem.
    """
    config.validate()
    out_path = check_output_path(output, input, encode=config.encode, overwrite=overwrite)
    registry = registry or builtin_registry()
    if restorer is None:
        restorer = build_restorer(config, registry)
    if (frame_restorer := as_frame_restorer(restorer)) is not None:
        if record is not None and record.change_map is not None:
            raise ConfigError(f"{restorer.spec.name} restores whole frames: every pixel is the network's, so there "
                              f"is no change map of pasted faces")
        return _restore_whole_frames(input, out_path, frame_restorer, config, progress, metadata)
    warnings: list[str] = []

    with MediaSource(input, sequence_fps=config.sequence_fps, strict=config.strict) as source:
        info = source.info
        warnings.extend(input_warnings(source))
        t0 = time.perf_counter()
        if tracks is None:
            first = analyse_video(source, config.analysis, progress)
            raw_tracks = first.tracks
            warnings.extend(first.warnings)
        else:
            raw_tracks = tracks
        selected = smooth_tracks(raw_tracks, config.smoothing, float(info.fps))
        config.check_tracks(raw_tracks)
        if raw_tracks.tracks:  # with no face at all, any --faces choice just means "re-encode"
            selected = selected.select(config.faces)
        t1 = time.perf_counter()
        if not selected.tracks:
            msg = "no faces found: the output is the input re-encoded" if not raw_tracks.tracks else \
                f"no track matches --faces {config.faces}: the output is the input re-encoded"
            log.warning(msg)
            warnings.append(msg)
        frames = _restore_pass(source, info, out_path, selected, restorer, config, progress, raw_tracks.num_frames,
                               record, metadata)
        if tracks is not None:  # no analysis pass here: the restore pass was the first to decode
            warnings.extend(decode_warnings(source))
        t2 = time.perf_counter()

    return RestoreReport(
        input=str(input), output=str(out_path), model=restorer.spec.name, frames=frames.count,
        width=info.width * config.upscale, height=info.height * config.upscale, tracks=len(selected.tracks),
        face_frames=frames.face_frames, scene_cuts=len(raw_tracks.scene_cuts),
        seconds_analyse=t1 - t0, seconds_restore=t2 - t1, warnings=warnings, changes=frames.changes,
    )


FRAME_TILE = 512
"""Whole-frame models run on spatial tiles of this many output pixels (bounded memory at any frame size)."""


def _restore_whole_frames(input: str | Path, out_path: Path, restorer: FrameRestorer, config: RestoreConfig,
                          progress: ProgressCallback | None, metadata: Mapping[str, str] | None = None
                          ) -> RestoreReport:
    """A whole-frame model (generic video restoration, e.g. ``basicvsr``): no face analysis; every frame, up-sampled
    by ``config.upscale``, goes through the network in overlapping chunks (its declared context) and tiles."""
    from fvr.run.framewise import restore_frames_video

    report = restore_frames_video(input, out_path, restorer.frame_network(), upscale=config.upscale,
                                  chunk=config.chunk or CHUNK,
                                  overlap=max(restorer.spec.past, restorer.spec.future), tile=FRAME_TILE,
                                  encode=config.encode, sequence_fps=config.sequence_fps, progress=progress,
                                  metadata=metadata)
    return RestoreReport(
        input=str(input), output=report.output, model=restorer.spec.name, frames=report.frames,
        width=report.width, height=report.height, tracks=0, face_frames=0, scene_cuts=0,
        seconds_analyse=0.0, seconds_restore=report.seconds, warnings=[],
    )


@dataclass
class _PassResult:
    count: int
    face_frames: int
    changes: ChangeLog | None = None


def open_change_map(path: Path, info: VideoInfo, size: tuple[int, int],
                    container_options: dict[str, str] | None = None) -> VideoSink:
    """The change map's video: video only, the output's size and timestamps, the default encoder (its path is
    checked to be a video file by :class:`fvr.run.changes.RecordOptions`)."""
    return VideoSink(path, info, size, EncodeOptions(), copy_streams=[], container_options=container_options)


def _restore_pass(
    source: MediaSource, info: VideoInfo, out_path: Path, tracks: FaceTracks, restorer: Restorer,
    config: RestoreConfig, progress: ProgressCallback | None, total: int, record: RecordOptions | None = None,
    metadata: Mapping[str, str] | None = None,
) -> _PassResult:
    source.rewind()
    size = (info.width * config.upscale, info.height * config.upscale)
    with ExitStack() as stack:
        # the map is entered first: it is committed after the output, and both go when either fails
        map_sink = None
        if record is not None and record.change_map is not None:
            map_sink = stack.enter_context(open_change_map(record.change_map, info, size))
        recorder = make_recorder(config, record, tracks, map_sink) if record is not None else None
        sink: VideoSink | SequenceSink | ImageSink = open_sink(out_path, info, size, config.encode,
                                                               source.copyable_streams, metadata=metadata)
        stack.enter_context(sink)
        result = _write_frames(source, sink, FrameAssembler(tracks, restorer, config, recorder=recorder), progress,
                               total)
    return replace(result, changes=recorder.log if recorder is not None else None)


def _write_frames(source: MediaSource, sink: VideoSink | SequenceSink | ImageSink, state: FrameAssembler,
                  progress: ProgressCallback | None, total: int) -> _PassResult:
    """Every frame of ``source`` through ``state`` into ``sink``, the other streams' packets copied."""
    count = 0
    for item in source.media(copy_streams=True):
        if not isinstance(item, Frame):
            sink.copy_packet(item)
            continue
        for frame, rgb in state.push(item):
            sink.write(rgb, frame.pts)
            count += 1
            if progress is not None:
                progress("restore", count, total)
    for frame, rgb in state.finish():
        sink.write(rgb, frame.pts)
        count += 1
    return _PassResult(count, state.face_frames)
