"""What the web app does, without the web: accept an upload (checked against limits, inside a private folder),
find its face tracks, preview a frame with the settings chosen, restore the whole file.

:mod:`fvr.ui.app` puts a Gradio page over these; they are tested here without a browser. Every step runs fvr's
own pipeline: the analysis of ``fvr info``/``fvr restore`` (:func:`fvr.run.jobs.analyse_job`), the preview through
:func:`fvr.run.jobs.restored_frames` (what a segment of a job writes) on the whole video's tracks, the full run
through :func:`fvr.run.pipeline.restore_video` with those same tracks.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fvr.compose.mask import DEFAULT_COVERAGE
from fvr.errors import ConfigError, FvrError, InputError, check_range
from fvr.faces import FaceTracks
from fvr.faces.analyse import aligned_faces
from fvr.inspect import sampled_crops
from fvr.io import EncodeOptions, Frame, MediaSource, VideoInfo, VideoSink
from fvr.models import ModelRegistry, Restorer
from fvr.provenance.restore import begin_record, build_record, finish_record
from fvr.run.build import build_restorer
from fvr.run.config import RestoreConfig, RestoreReport
from fvr.run.defaults import LIVE
from fvr.run.jobs import analyse_job, restored_frames, selected_tracks
from fvr.run.live import LiveAssembler, check_causal
from fvr.run.pipeline import restore_video

MB = 1024 * 1024
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,150}")
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts")


@dataclass(frozen=True)
class UiLimits:
    """What an upload may be: ``max_upload_mb`` per file (enforced by the server before the file is stored, and
    again here), ``max_seconds`` of video, ``max_side`` pixels on its longer side; ``preview_seconds`` the longest
    preview."""

    max_upload_mb: float = 2048.0
    max_seconds: float = 3600.0
    max_side: int = 4096
    preview_seconds: float = 2.0

    def __post_init__(self) -> None:
        check_range("max upload size (MB)", self.max_upload_mb, 0.001, None)
        check_range("max duration (s)", self.max_seconds, 0.04, None)
        check_range("max side (px)", self.max_side, 16, None, integer=True)
        check_range("preview length (s)", self.preview_seconds, 0.0, 2.0)


class Workspace:
    """A private folder (mode 0700) for one app's uploads and results: the only files the app reads or serves.
    :meth:`close` removes it with everything in it."""

    def __init__(self, parent: str | Path | None = None):
        self.path = Path(tempfile.mkdtemp(prefix="fvr-ui-", dir=parent)).resolve()
        os.chmod(self.path, 0o700)

    def job_folder(self) -> Path:
        """A new private sub-folder for one upload and what is made from it."""
        return Path(tempfile.mkdtemp(prefix="job-", dir=self.path))

    def contains(self, path: str | Path) -> bool:
        """Whether ``path`` (symbolic links resolved) lies inside the workspace."""
        return Path(path).resolve().is_relative_to(self.path)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def safe_name(name: str) -> str:
    """``name`` if it is a plain file name (no folder, no ``..``, no control or shell characters, a media
    suffix); else InputError. The app names its own files after it."""
    if not _SAFE_NAME.fullmatch(name) or ".." in name or Path(name).name != name:
        raise InputError(f"unsafe file name {name!r}: use letters, digits, spaces and . _ ( ) + - only")
    if Path(name).suffix.lower() not in PHOTO_SUFFIXES + VIDEO_SUFFIXES:
        raise InputError(f"{name}: not a video or photo file name ({', '.join(VIDEO_SUFFIXES + PHOTO_SUFFIXES)})")
    return name


@dataclass(frozen=True)
class Upload:
    """An accepted upload: ``path`` inside a job folder of the workspace, named ``name``; ``photo`` for a still."""

    path: Path
    name: str
    info: VideoInfo
    photo: bool

    @property
    def seconds(self) -> float:
        return self.info.num_frames / float(self.info.fps or 25)


def accept_upload(path: str | Path, name: str, workspace: Workspace, limits: UiLimits) -> Upload:
    """Check an uploaded file and move it into a new job folder under the safe ``name``: it must lie in the
    workspace (nothing else is ever read), be at most ``limits.max_upload_mb``, decode as a video or photo, and be
    within the duration and size limits. InputError (one line) otherwise; a refused file is deleted."""
    src = Path(path)
    if src.is_symlink() or not workspace.contains(src) or not src.is_file():
        raise InputError(f"{name}: not an uploaded file")  # and not the app's to delete
    try:
        name = safe_name(Path(name).name if name else src.name)
        size = src.stat().st_size
        if size > limits.max_upload_mb * MB:
            raise InputError(f"{name}: {size / MB:.0f} MB is over the {limits.max_upload_mb:g} MB upload limit")
        folder = workspace.job_folder()
        dest = folder / name
        shutil.move(str(src), dest)
        src = dest
        with MediaSource(dest) as media:
            info = media.info
        photo = dest.suffix.lower() in PHOTO_SUFFIXES
        seconds = info.num_frames / float(info.fps or 25)
        if not photo and seconds > limits.max_seconds:
            raise InputError(f"{name}: {seconds:.0f} s is over the {limits.max_seconds:g} s limit")
        if max(info.width, info.height) > limits.max_side:
            raise InputError(f"{name}: {info.width}x{info.height} is over the {limits.max_side} px limit")
        return Upload(dest, name, info, photo)
    except Exception:
        src.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class UiSettings:
    """The restore settings the app offers. ``faces``: track IDs to restore (None = every face);
    ``face_strength``: track ID -> strength replacing ``strength`` for that face; ``fidelity``: for models that take
    it (None = the model's default); ``stabilise``: None = the model's own default."""

    model: str | None = None
    upscale: int = 1
    strength: float = 1.0
    fidelity: float | None = None
    mask_coverage: float = DEFAULT_COVERAGE
    stabilise: str | None = None
    background: str = "lanczos"
    faces: tuple[int, ...] | None = None
    face_strength: Mapping[int, float] = field(default_factory=dict)

    def restore_config(self) -> RestoreConfig:
        """The run's config (validated: ConfigError, one line); detection at its defaults, like the analysis."""
        if self.faces is not None and not self.faces:
            raise ConfigError("no face selected: select at least one face to restore")
        return RestoreConfig(
            model=self.model, upscale=self.upscale, strength=self.strength, face_strength=dict(self.face_strength),
            mask_coverage=self.mask_coverage,
            stabilise=self.stabilise, background=self.background,
            model_options={"fidelity": self.fidelity} if self.fidelity is not None else {},
            faces="all" if self.faces is None else ",".join(str(i) for i in self.faces),
        )


@dataclass(frozen=True)
class TrackThumb:
    """One face track as the app lists it: ID, frames [start, end), and a (S, S, 3) uint8 crop from its middle."""

    id: int
    start: int
    end: int
    crop: np.ndarray


@dataclass(frozen=True)
class Preview:
    """Frame ``index`` before (the input, resized to the output's size) and after; per restored face, its aligned
    crop before and after (``faces``: (track id, before, after))."""

    index: int
    before: np.ndarray
    after: np.ndarray
    faces: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)


Progress = Callable[[str, int, int], None]


def _sized_like(rgb: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``rgb`` (an input frame) at ``target``'s size (bicubic), for showing it beside the restored frame."""
    h, w = target.shape[:2]
    return rgb if rgb.shape[:2] == (h, w) else cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC)


class Cancelled(FvrError):
    """A run stopped by :meth:`UiSession.cancel`; its output was never written."""


class UiSession:
    """One upload's work: its face tracks (found once), previews and full runs. Restorers are built once per
    model setting and reused."""

    def __init__(self, upload: Upload, registry: ModelRegistry):
        self.upload = upload
        self.registry = registry
        self.raw: FaceTracks | None = None
        self.pts: np.ndarray | None = None
        self.warnings: list[str] = []
        self._restorers: dict[tuple, Restorer] = {}
        self._cancel = threading.Event()

    def close(self) -> None:
        """Delete this upload's job folder: the upload, its previews, results and reports."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def cancel(self) -> None:
        """Stop the run in progress at its next frame (from another thread); nothing is written."""
        self._cancel.set()

    @property
    def folder(self) -> Path:
        return self.upload.path.parent

    def analyse(self, progress: Progress | None = None, thumb: int = 128) -> list[TrackThumb]:
        """Detect and track the faces (default detection settings: what the restore uses); one thumbnail each."""
        config = RestoreConfig()
        with MediaSource(self.upload.path) as source:
            first = analyse_job(source, config, progress)
            self.raw, self.pts, self.warnings = first.tracks, first.pts, list(first.warnings)
            tracks = selected_tracks(self.raw, config, float(source.info.fps))
            crops = sampled_crops(source, tracks, 3, thumb)
        return [TrackThumb(t.id, t.start, t.end, crops[row, 1 if (row, 1) in crops else 0])
                for row, t in enumerate(tracks.tracks)]

    def _restorer(self, config: RestoreConfig) -> Restorer:
        key = (config.model, tuple(sorted(config.model_options.items())), config.stabilise,
               tuple(sorted(config.stabilise_options.items())), config.device)
        if key not in self._restorers:
            self._restorers[key] = build_restorer(config, self.registry)
        return self._restorers[key]

    def _tracks(self, config: RestoreConfig) -> FaceTracks:
        if self.raw is None:
            raise InputError("the faces have not been analysed yet")
        return selected_tracks(self.raw, config, float(self.upload.info.fps))

    def preview(self, index: int, settings: UiSettings, crop: int = 256) -> Preview:
        """Frame ``index`` restored exactly as the full run restores it (same tracks, same restorer, its temporal
        context read around the frame)."""
        n = self.upload.info.num_frames
        if not 0 <= index < n:
            raise InputError(f"frame {index} is outside the video (0-{n - 1})")
        config = settings.restore_config()
        tracks = self._tracks(config)
        restorer = self._restorer(config)
        with MediaSource(self.upload.path) as source:
            (frame, after), = list(restored_frames(source, tracks, restorer, config, index, index + 1, self.pts))
        before = _sized_like(frame.rgb, after)
        up = config.upscale
        faces = []
        for a, b in zip(aligned_faces(frame.rgb, tracks, index, crop),
                        aligned_faces(after, tracks, index, crop, scale=float(up))):
            faces.append((a.track, a.crop, b.crop))
        return Preview(index, before, after, faces)

    def preview_clip(self, start: int, seconds: float, settings: UiSettings) -> Path:
        """Frames [start, start + seconds) restored exactly as the full run restores them, written as a short
        video of input | restored side by side (the input resized to the output's size; no audio)."""
        info = self.upload.info
        n = info.num_frames
        if not 0 <= start < n:
            raise InputError(f"frame {start} is outside the video (0-{n - 1})")
        stop = min(n, start + max(1, round(seconds * float(info.fps or 25))))
        config = settings.restore_config()
        tracks, restorer = self._tracks(config), self._restorer(config)
        w, h = info.width * config.upscale, info.height * config.upscale
        path = self.folder / f"preview-{start}-{stop}.mp4"
        with MediaSource(self.upload.path) as source, \
                VideoSink(path, info, (2 * w, h), EncodeOptions(crf=18, preset="veryfast"), copy_streams=[]) as sink:
            for frame, after in restored_frames(source, tracks, restorer, config, start, stop, self.pts):
                sink.write(np.concatenate([_sized_like(frame.rgb, after), after], axis=1), frame.pts)
        return path

    def restore(self, settings: UiSettings, progress: Progress | None = None) -> tuple[Path, RestoreReport]:
        """The whole file restored into the job folder (``NAME-restored.SUFFIX``; a photo stays a photo, a video
        keeps its audio, subtitles and timing as ``fvr restore`` does), with its provenance record beside it
        (``NAME-restored.SUFFIX.fvr.json``, :func:`fvr.provenance.record.record_path`)."""
        config = settings.restore_config()
        self._tracks(config)  # a selection the video does not have fails here, before any work
        stem, suffix = self.upload.path.stem, self.upload.path.suffix.lower()
        out = self.folder / f"{stem}-restored{'.png' if self.upload.photo else suffix}"
        self._cancel.clear()

        def step(stage: str, done: int, total: int) -> None:
            if self._cancel.is_set():
                raise Cancelled("restore cancelled")  # the sink's temporary file is removed on the way out
            if progress is not None:
                progress(stage, done, total)

        begun = begin_record(self.upload.path, out, config)
        report = restore_video(self.upload.path, out, config, restorer=self._restorer(config), tracks=self.raw,
                               progress=step, record=begun.options, metadata=begun.metadata)
        finish_record(build_record(begun, report, out), out, begun.started)
        return out, report

    def quality(self, output: Path, settings: UiSettings) -> tuple[Path, Path | None, list[dict]]:
        """The quality report of ``output`` (this upload restored with ``settings``): per-track identity and flicker
        curves as JSON and a PNG plot (None without matplotlib) beside it, and each track's summary."""
        from fvr.ui.report import plot_report, quality_report, write_report

        config = settings.restore_config()
        report = quality_report(self.upload.path, output, self._tracks(config), config.upscale)
        stem = output.with_suffix("")
        return (write_report(report, Path(f"{stem}.quality.json")), plot_report(report, Path(f"{stem}.quality.png")),
                [q.summary() for q in report])


def live_config(model: str = LIVE.model) -> RestoreConfig:
    """The settings of the page's live tab: those ``fvr live`` starts with (:data:`fvr.run.defaults.LIVE`)."""
    from fvr.faces import DetectorConfig, SmoothingConfig, TrackerConfig

    return RestoreConfig(model=model, smoothing=SmoothingConfig(method=LIVE.smoothing),
                         detector=DetectorConfig(max_side=LIVE.detect_size),
                         tracker=TrackerConfig(detect_every=LIVE.detect_every))


class LiveView:
    """The browser camera's frames restored one by one, causally (:class:`fvr.run.live.LiveAssembler`, the engine
    of ``fvr live``). A new frame size (another camera) starts a new session of the engine."""

    def __init__(self, registry: ModelRegistry, config: RestoreConfig | None = None):
        self.config = config or live_config()
        self.restorer = build_restorer(self.config, registry)
        check_causal(self.restorer, self.config)
        self._engine: LiveAssembler | None = None
        self._shape: tuple[int, ...] | None = None
        self.frames = 0

    def push(self, rgb: np.ndarray) -> np.ndarray:
        """One camera frame ((H, W, 3) uint8 RGB) -> the restored frame (same size)."""
        rgb = np.ascontiguousarray(rgb[..., :3])
        if self._engine is None or rgb.shape != self._shape:
            self._engine = LiveAssembler(self.restorer, self.config, 25.0)
            self._engine.warm_up(rgb.shape[1], rgb.shape[0])
            self._shape = rgb.shape
        out = self._engine.push(Frame(self.frames, rgb, self.frames))
        self.frames += 1
        return out
