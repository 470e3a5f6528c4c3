"""What a restore run is told (:class:`RestoreConfig`) and what it reports (:class:`RestoreReport`): the one typed
config that ``fvr restore``, ``fvr batch``, segmented jobs, the benchmark and the Python API all build."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fvr.compose.mask import DEFAULT_COVERAGE
from fvr.errors import ConfigError, check_range
from fvr.faces import DetectorConfig, FaceTracks, SmoothingConfig, TrackerConfig
from fvr.faces.analyse import AnalysisConfig
from fvr.io import EncodeOptions

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage, done, total): stage is "analyse" or "restore"; total is an estimate (0 when unknown)."""

DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RestoreConfig:
    """Everything ``fvr restore`` can be told. Defaults are what the CLI uses.

    model: registry name or a ``.safetensors`` weight file (None = the default for the device: the shipped
        ``fvr-fast`` on CPU, ``fvr-quality`` on CUDA, ``classical`` when no weights are installed);
        model_options go to the model's factory.
    stabilise: wrap the model with a temporal stabiliser: "flow" (training-free, offline), "flow-causal", or a
        ``.safetensors`` file of a trained ``stabiliser``; stabilise_options: its window, strength, ...
        (see :mod:`fvr.models.temporal.stabilise`).
    device: where learned models run: "auto" (CUDA when available), "cpu" or "cuda".
    upscale: integer output scale; the background is up-sampled with ``background``
        (lanczos | bicubic | bilinear | realesrgan).
    faces: "all", "largest", or comma-separated track IDs as listed by ``fvr info``.
    strength: 0 keeps the input face, 1 uses the restored face fully.
    face_strength: per-track strengths (track ID as listed by ``fvr info`` -> strength in [0, 1]) replacing
        ``strength`` for those tracks; a track not named keeps ``strength``.
    fade_frames: a track that starts or ends while its shot goes on (a face turning away, entering or missed by the
        detector for longer than the tracker bridges) is pasted with a weight that ramps linearly over its first
        and last ``fade_frames`` frames, so restoration fades in and out instead of switching in one frame
        (:class:`TrackFade`); 0 pastes every frame at full ``strength``, as before.
    color_match: pull the restored face's colours to the input's (Lab mean/std in the mask).
    feather: mask edge softness, fraction of the crop size.
    mask_coverage: size of the pasted face ellipse (1 = brows to chin; larger also pastes the restored hair and
        surroundings inside the crop; the default 1.6 is nearly the whole crop,
        :data:`fvr.compose.mask.DEFAULT_COVERAGE`).
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
    face_strength: Mapping[int, float] = field(default_factory=dict)
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

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """One-line :class:`ConfigError` for any setting out of its range (also at construction; the sub-configs
        check their own)."""
        check_range("strength", self.strength, 0.0, 1.0)
        for track, value in self.face_strength.items():
            check_range("face track ID", track, 0, None, integer=True)
            check_range(f"strength of face {track}", value, 0.0, 1.0)
        check_range("fade_frames", self.fade_frames, 0, None, integer=True)
        check_range("upscale", self.upscale, 1, 8, integer=True)
        if self.chunk is not None:
            check_range("chunk", self.chunk, 1, None, integer=True)
        check_range("feather", self.feather, 0.0, 0.5, open_low=True)
        if self.stabilise_options and not self.stabilise:
            raise ConfigError("stabiliser options were given without a stabiliser (--stabilise flow|flow-causal|FILE)")
        check_range("mask coverage", self.mask_coverage, 0.25, 2.0)
        if self.device not in DEVICE_CHOICES:
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")

    def check_tracks(self, tracks: FaceTracks) -> None:
        """ConfigError (one line) when ``face_strength`` names a track ``tracks`` does not have."""
        if unknown := sorted(set(self.face_strength) - set(tracks.ids())):
            raise ConfigError(f"--face-strength names face track {unknown[0]}, which this video does not have; "
                              f"its tracks: {', '.join(map(str, tracks.ids())) or 'none'}")

    @property
    def analysis(self) -> AnalysisConfig:
        """How the run finds, follows and steadies faces."""
        return AnalysisConfig(self.detector, self.tracker, self.smoothing)


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
