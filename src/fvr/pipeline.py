"""``restore_video``: the whole pipeline, io -> faces -> models -> compose -> io, streaming.

Two passes over the input, both with bounded memory:

1. **analyse** — decode, detect, track (stable IDs, gaps, scene cuts), then smooth each track's landmarks over
   time. Only small per-frame landmark arrays are kept, never frames.
2. **restore** — decode again; for each frame, cut the aligned crop of every selected track, feed each track to the
   restorer in chunks (with the past/future context the model declares), paste the results back and encode,
   copying audio and subtitle packets untouched. Frames wait in a short queue (at most ``chunk + future`` frames)
   until all their faces are restored.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fvr.compose import FacePaste, face_mask, paste_faces
from fvr.compose.mask import DEFAULT_COVERAGE
from fvr.compose.background import make_background
from fvr.errors import ConfigError
from fvr.faces import (
    DetectorConfig,
    FaceTracks,
    SmoothingConfig,
    Track,
    TrackerConfig,
    align_matrix,
    analyse_frames,
    make_detector,
    smooth_tracks,
    transform_points,
    warp_to_crop,
)
from fvr.io import (
    EncodeOptions,
    Frame,
    MediaSource,
    VideoInfo,
    check_output_path,
    open_sink,
)
from fvr.io.sink import VIDEO_SUFFIXES
from fvr.models import ModelRegistry, Restorer, builtin_registry
from fvr.models.base import chw_clip
from fvr.models.registry import resolve_device

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage, done, total): stage is "analyse" or "restore"; total is an estimate (0 when unknown)."""


@dataclass(frozen=True)
class RestoreConfig:
    """Everything ``fvr restore`` can be told. Defaults are what the CLI uses.

    model: registry name or a ``.safetensors`` weight file (None = the default for the device: the shipped
        ``fvr-fast`` on CPU, ``fvr-quality`` on CUDA, ``classical`` when no weights are installed);
        model_options go to the model's factory.
    stabilise: wrap the model with a temporal stabiliser: "flow" (training-free, offline), "flow-causal", or a
        ``.safetensors`` file of a trained ``stabiliser``; stabilise_options: its window, strength, ...
        (see :mod:`fvr.models.stabilise`).
    device: where learned models run: "auto" (CUDA when available), "cpu" or "cuda".
    upscale: integer output scale; the background is up-sampled with ``background``
        (lanczos | bicubic | bilinear | realesrgan).
    faces: "all", "largest", or comma-separated track IDs as listed by ``fvr info``.
    strength: 0 keeps the input face, 1 uses the restored face fully.
    fade_frames: a track that starts or ends while its shot goes on (a face turning away, entering or missed by the
        detector for longer than the tracker bridges) is pasted with a weight that ramps linearly over its first
        and last ``fade_frames`` frames, so restoration fades in and out instead of switching in one frame
        (:class:`TrackFade`); 0 pastes every frame at full ``strength``, as before.
    color_match: pull the restored face's colours to the input's (Lab mean/std in the mask).
    feather: mask edge softness, fraction of the crop size.
    mask_coverage: size of the pasted face ellipse (1 = brows to chin; larger also pastes the restored hair and
        surroundings inside the crop; the default 1.6 is nearly the whole crop, :data:`fvr.compose.mask.DEFAULT_COVERAGE`).
    chunk: frames per restorer call per track (memory/latency vs. batching efficiency); None = automatic:
        4 for a causal model that carries its state (its output does not depend on the chunk, and fewer frames
        wait in memory), else 16 (see :func:`chunk_frames`).
    sequence_fps: frame rate assumed for image-sequence inputs.
    strict: refuse input with any decode error (corrupt packets, missing frames) instead of restoring what the
        decoder concealed, with a warning.
    """

    model: str | None = None
    model_options: Mapping[str, object] = field(default_factory=dict)
    stabilise: str | None = None
    stabilise_options: Mapping[str, object] = field(default_factory=dict)
    device: str = "auto"
    upscale: int = 1
    background: str = "lanczos"
    faces: str = "all"
    strength: float = 1.0
    fade_frames: int = 4
    color_match: bool = False
    feather: float = 0.06
    mask_coverage: float = DEFAULT_COVERAGE
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    chunk: int | None = None
    sequence_fps: float | None = None
    strict: bool = False

    def validate(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"strength must be in [0, 1], got {self.strength}")
        if isinstance(self.fade_frames, bool) or not isinstance(self.fade_frames, int) or self.fade_frames < 0:
            raise ConfigError(f"fade_frames must be an integer >= 0, got {self.fade_frames!r}")
        if not isinstance(self.upscale, int) or not 1 <= self.upscale <= 8:
            raise ConfigError(f"upscale must be an integer from 1 to 8, got {self.upscale}")
        if self.chunk is not None and self.chunk < 1:
            raise ConfigError(f"chunk must be >= 1, got {self.chunk}")
        if not 0.0 < self.feather <= 0.5:
            raise ConfigError(f"feather must be in (0, 0.5], got {self.feather}")
        if self.stabilise_options and not self.stabilise:
            raise ConfigError("stabiliser options were given without a stabiliser (--stabilise flow|flow-causal|FILE)")
        if not 0.25 <= self.mask_coverage <= 2.0:
            raise ConfigError(f"mask coverage must be in [0.25, 2], got {self.mask_coverage}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")


@dataclass
class RestoreReport:
    """What a run did and how long it took."""

    input: str
    output: str
    model: str
    frames: int
    width: int
    height: int
    tracks: int
    face_frames: int
    scene_cuts: int
    seconds_analyse: float
    seconds_restore: float
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        total = self.seconds_analyse + self.seconds_restore
        return self.frames / total if total > 0 else 0.0


def analyse_source(
    source: MediaSource,
    detector: DetectorConfig = DetectorConfig(),
    tracker: TrackerConfig = TrackerConfig(),
    progress: ProgressCallback | None = None,
) -> FaceTracks:
    """Pass 1: detect and track every face of ``source`` (raw landmarks, not yet smoothed)."""
    total = source.info.num_frames

    def on_frame(i: int) -> None:
        if progress is not None:
            progress("analyse", i + 1, total)

    frames = (f.rgb for f in source.frames())
    return analyse_frames(frames, make_detector(detector), tracker, on_frame=on_frame)


@dataclass(frozen=True)
class TrackFade:
    """Paste weight of one track over its frames: a linear ramp in over its first ``fade_in`` frames and out over its
    last ``fade_out`` (weights (k + 1) / (ramp + 1), so the frame before the track and the one after it would be 0),
    1 in between.

    start, end: the whole track's [start, end) (:attr:`Track.extent`: a segment's cut of a track fades exactly as
    the whole track does, wherever the segment starts).
    """

    start: int
    end: int
    fade_in: int = 0
    fade_out: int = 0

    @classmethod
    def of(cls, track: Track, tracks: FaceTracks, frames: int) -> TrackFade:
        """The fade of ``track`` (one of ``tracks``) for ``frames`` frames of ramp.

        No fade where the face appears or disappears with the picture itself: at the video's first frame, its last
        analysed frame (``tracks.num_frames``) or a scene cut. A track too short for full ramps gets shorter ones,
        so that at least one frame is pasted at full weight (a 1-frame track: no fade).
        """
        start, end = track.extent
        cuts = set(tracks.scene_cuts)
        fade_in = frames > 0 and start > 0 and start not in cuts
        fade_out = frames > 0 and end < tracks.num_frames and end not in cuts
        sides = int(fade_in) + int(fade_out)
        ramp = min(frames, (end - start - 1) // sides) if sides else 0
        return cls(start, end, ramp if fade_in else 0, ramp if fade_out else 0)

    def weight(self, frame: int) -> float:
        """Paste weight in (0, 1] on ``frame`` (a frame of the track); exactly 1.0 outside the ramps."""
        w = 1.0
        if frame - self.start < self.fade_in:
            w = min(w, (frame - self.start + 1) / (self.fade_in + 1))
        if self.end - 1 - frame < self.fade_out:
            w = min(w, (self.end - frame) / (self.fade_out + 1))
        return w


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


@dataclass
class _Crop:
    frame: int
    crop: np.ndarray  # (S, S, 3) float32 [0, 1]
    matrix: np.ndarray  # (2, 3) frame -> crop
    landmarks: np.ndarray  # (5, 2) crop pixels
    weight: float = 1.0  # paste weight (TrackFade)


CHUNK = 16
"""Frames per restorer call per track for models that recompute context or look-ahead at every call."""
CARRIED_CHUNK = 4
"""Frames per call for a causal model that carries its state: the chunk changes neither its output nor its cost."""


def chunk_frames(config: RestoreConfig, restorer: Restorer) -> int:
    """Frames per restorer call per track: ``config.chunk``, or when it is None, 4 for a causal model that carries
    its state (the chunk size then changes neither its output nor its cost per frame, measured in
    docs/bench/carry.md, and a small chunk keeps few decoded frames waiting) and 16 for the others (whose context
    is recomputed per call, or whose look-ahead is)."""
    if config.chunk is not None:
        return config.chunk
    return CARRIED_CHUNK if restorer.carries_state and restorer.spec.future == 0 else CHUNK


class _TrackRunner:
    """Feeds one track to the restorer in chunks: with the past context the model declares, or, for a model that
    carries its state along the track, with the state the previous chunk left."""

    def __init__(self, track: Track, restorer: Restorer, chunk: int):
        self.track = track
        self.restorer = restorer
        self.chunk = chunk
        self.pending: list[_Crop] = []
        self.carry = restorer.carries_state
        self.state: object = None  # carried state after the last restored frame (carrying models)
        past = 0 if self.carry else restorer.spec.past
        self.history: deque[_Crop] = deque(maxlen=past)  # LQ context already restored

    def add(self, item: _Crop) -> list[tuple[int, FacePaste]]:
        self.pending.append(item)
        final = item.frame >= self.track.end - 1
        if final or len(self.pending) >= self.chunk + self.restorer.spec.future:
            return self.run(final)
        return []

    def run(self, final: bool) -> list[tuple[int, FacePaste]]:
        if not self.pending:
            return []
        context = list(self.history) + self.pending
        clip = chw_clip([c.crop for c in context])
        lms = np.stack([c.landmarks for c in context]).astype(np.float32)
        keep = len(self.pending) if final else len(self.pending) - self.restorer.spec.future
        if self.carry:
            out, self.state = self.restorer.step(clip, lms, self.state, keep)
        else:
            out = self.restorer(clip, lms)
        offset = len(self.history)
        results = []
        for k in range(keep):
            item = self.pending[k]
            restored = np.ascontiguousarray(out[offset + k].transpose(1, 2, 0))
            results.append((item.frame, FacePaste(item.matrix, restored, item.crop, weight=item.weight)))
        self.history.extend(self.pending[:keep])
        self.pending = self.pending[keep:]
        return results


@dataclass
class _Waiting:
    frame: Frame
    background: np.ndarray
    expected: int
    pastes: list[FacePaste] = field(default_factory=list)


class _Restorer:
    """Pass 2 state: the frame queue and one runner per track."""

    def __init__(self, tracks: FaceTracks, restorer: Restorer, config: RestoreConfig):
        self.tracks = tracks
        self.restorer = restorer
        self.config = config
        self.size = restorer.spec.crop_size
        self.mask = face_mask(self.size, feather=config.feather, coverage=config.mask_coverage)
        # built once (a network, maybe), on the device the learned models use
        self.background = make_background(config.background, config.upscale,
                                          device=resolve_device(config.device, "--device"))
        chunk = chunk_frames(config, restorer)
        self.runners = {t.id: _TrackRunner(t, restorer, chunk) for t in tracks.tracks}
        self.fades = {t.id: TrackFade.of(t, tracks, config.fade_frames) for t in tracks.tracks}
        self.queue: deque[_Waiting] = deque()
        self.face_frames = 0

    def push(self, frame: Frame) -> Iterator[tuple[Frame, np.ndarray]]:
        """Add a decoded frame; yield (frame, composed rgb) for every frame that became complete, in order."""
        scale = self.config.upscale
        background = self.background(frame.rgb)
        active = self.tracks.at_frame(frame.index) if frame.index < self.tracks.num_frames else []
        waiting = _Waiting(frame, background, expected=len(active))
        self.queue.append(waiting)
        for track_id, landmarks in active:
            runner = self.runners[track_id]
            raw = runner.track.raw_landmarks[frame.index - runner.track.start]
            matrix = align_matrix(landmarks * scale, self.size)
            crop = warp_to_crop(background, matrix, self.size).astype(np.float32) * (1.0 / 255.0)
            item = _Crop(frame.index, crop, matrix, transform_points(matrix, raw * scale).astype(np.float32),
                         self.fades[track_id].weight(frame.index))
            for index, paste in runner.add(item):
                self._deliver(index, paste)
        yield from self._ready()

    def finish(self) -> Iterator[tuple[Frame, np.ndarray]]:
        """End of input: restore what is left (tracks cut short by a shorter second decode) and drain."""
        for runner in self.runners.values():
            for index, paste in runner.run(final=True):
                self._deliver(index, paste)
        for waiting in self.queue:
            waiting.expected = len(waiting.pastes)
        yield from self._ready()

    def _deliver(self, index: int, paste: FacePaste) -> None:
        head = self.queue[0].frame.index
        self.queue[index - head].pastes.append(paste)
        self.face_frames += 1

    def _ready(self) -> Iterator[tuple[Frame, np.ndarray]]:
        while self.queue and len(self.queue[0].pastes) >= self.queue[0].expected:
            w = self.queue.popleft()
            if w.pastes:
                rgb = paste_faces(w.background, w.pastes, self.mask, strength=self.config.strength,
                                  color_match=self.config.color_match)
            else:
                rgb = w.background
            yield w.frame, rgb


def build_restorer(config: RestoreConfig, registry: ModelRegistry) -> Restorer:
    """The restorer ``config`` asks for: ``model`` (with ``model_options``) on ``device``, wrapped with the
    temporal stabiliser when ``stabilise`` is set."""
    # onnxruntime picks its own provider for "auto": a CUDA torch does not imply a CUDA onnxruntime
    onnx = config.model is not None and ".onnx" in config.model.lower()
    model_device = config.device if onnx else resolve_device(config.device, "--device")
    # --stabilise replaces the default model's own stabiliser
    model = config.model or registry.default_for(model_device, with_stabiliser=not config.stabilise)
    restorer = registry.create(model, device=model_device, **dict(config.model_options))
    if config.stabilise:
        from fvr.models.stabilise import stabilised

        device = resolve_device(config.device, "--device") if onnx else model_device
        restorer = stabilised(restorer, config.stabilise, dict(config.stabilise_options), device=device)
    return restorer


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
) -> RestoreReport:
    """Restore every (selected) face of a video or PNG-sequence folder and write the result atomically.

    input: a video file or a folder of images. output: a video file (by suffix: .mp4, .mkv, .mov, ...) or a folder
    for a PNG sequence. ``restorer`` overrides ``config.model`` with an already built model; ``tracks`` (raw tracks
    from :func:`analyse_source` on the same input) skips the analysis pass. ``overwrite=False`` refuses an existing
    output before any work.
    Raises :class:`fvr.errors.FvrError` subclasses with one-line messages for every user-fixable problem.
    """
    config.validate()
    out_path = check_output_path(output, input, encode=config.encode, overwrite=overwrite)
    registry = registry or builtin_registry()
    if restorer is None:
        restorer = build_restorer(config, registry)
    if getattr(restorer, "frame_model", False):
        return _restore_whole_frames(input, out_path, restorer, config, progress)
    warnings: list[str] = []

    with MediaSource(input, sequence_fps=config.sequence_fps, strict=config.strict) as source:
        info = source.info
        warnings.extend(input_warnings(source))
        t0 = time.perf_counter()
        raw_tracks = tracks if tracks is not None else analyse_source(source, config.detector, config.tracker, progress)
        if tracks is None:
            warnings.extend(decode_warnings(source))
        selected = smooth_tracks(raw_tracks, config.smoothing, float(info.fps))
        if raw_tracks.tracks:  # with no face at all, any --faces choice just means "re-encode"
            selected = selected.select(config.faces)
        t1 = time.perf_counter()
        if not selected.tracks:
            msg = "no faces found: the output is the input re-encoded" if not raw_tracks.tracks else \
                f"no track matches --faces {config.faces}: the output is the input re-encoded"
            log.warning(msg)
            warnings.append(msg)
        frames = _restore_pass(source, info, out_path, selected, restorer, config, progress, raw_tracks.num_frames)
        if tracks is not None:  # no analysis pass here: the restore pass was the first to decode
            warnings.extend(decode_warnings(source))
        t2 = time.perf_counter()

    return RestoreReport(
        input=str(input), output=str(out_path), model=restorer.spec.name, frames=frames.count,
        width=info.width * config.upscale, height=info.height * config.upscale, tracks=len(selected.tracks),
        face_frames=frames.face_frames, scene_cuts=len(raw_tracks.scene_cuts),
        seconds_analyse=t1 - t0, seconds_restore=t2 - t1, warnings=warnings,
    )


FRAME_TILE = 512
"""Whole-frame models run on spatial tiles of this many output pixels (bounded memory at any frame size)."""


def _restore_whole_frames(input: str | Path, out_path: Path, restorer: Restorer, config: RestoreConfig,
                          progress: ProgressCallback | None) -> RestoreReport:
    """A whole-frame model (generic video restoration, e.g. ``basicvsr``): no face analysis; every frame, up-sampled
    by ``config.upscale``, goes through the network in overlapping chunks (its declared context) and tiles."""
    from fvr.models.framewise import restore_frames_video

    net = restorer.net  # type: ignore[attr-defined]
    report = restore_frames_video(input, out_path, net, upscale=config.upscale, chunk=config.chunk or CHUNK,
                                  overlap=max(restorer.spec.past, restorer.spec.future), tile=FRAME_TILE,
                                  encode=config.encode, sequence_fps=config.sequence_fps, progress=progress)
    return RestoreReport(
        input=str(input), output=report.output, model=restorer.spec.name, frames=report.frames,
        width=report.width, height=report.height, tracks=0, face_frames=0, scene_cuts=0,
        seconds_analyse=0.0, seconds_restore=report.seconds, warnings=[],
    )


@dataclass
class _PassResult:
    count: int
    face_frames: int


def _restore_pass(
    source: MediaSource, info: VideoInfo, out_path: Path, tracks: FaceTracks, restorer: Restorer,
    config: RestoreConfig, progress: ProgressCallback | None, total: int,
) -> _PassResult:
    source.rewind()
    size = (info.width * config.upscale, info.height * config.upscale)
    state = _Restorer(tracks, restorer, config)
    count = 0
    with open_sink(out_path, info, size, config.encode, source.copyable_streams) as sink:
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
