"""What a restore run is told (:class:`RestoreConfig`) and what it reports (:class:`RestoreReport`): the one typed
config that ``fvr restore``, ``fvr batch``, segmented jobs, the benchmark and the Python API all build."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from fvr.compose.mask import DEFAULT_COVERAGE
from fvr.errors import ConfigError, check_range
from fvr.faces import DetectorConfig, FaceTracks, SmoothingConfig, TrackerConfig
from fvr.faces.analyse import AnalysisConfig
from fvr.io import EncodeOptions

if TYPE_CHECKING:
    from fvr.run.changes import ChangeLog

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
    forensic: fidelity first, for evidence and archives: only non-generative restorers and classical backgrounds
        are accepted (:func:`check_forensic`), and every restored face is checked against its input face's
        identity (FaceNet, the metrics extra): where the similarity would fall below ``forensic_min_identity``
        the face's strength is lowered in steps until it does not (0 keeps the input face).
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
    forensic: bool = False
    forensic_min_identity: float = 0.8

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
        check_range("forensic minimum identity", self.forensic_min_identity, 0.0, 1.0)

    def check_tracks(self, tracks: FaceTracks) -> None:
        """ConfigError (one line) when ``face_strength`` names a track ``tracks`` does not have."""
        if unknown := sorted(set(self.face_strength) - set(tracks.ids())):
            raise ConfigError(f"--face-strength names face track {unknown[0]}, which this video does not have; "
                              f"its tracks: {', '.join(map(str, tracks.ids())) or 'none'}")

    @property
    def analysis(self) -> AnalysisConfig:
        """How the run finds, follows and steadies faces."""
        return AnalysisConfig(self.detector, self.tracker, self.smoothing)


def config_to_dict(config: RestoreConfig) -> dict[str, Any]:
    """Every setting of ``config`` as JSON-able values (nested configs as dicts, per-face strengths keyed by the
    track ID as a string); :func:`config_from_dict` reads it back to an equal config."""
    data = asdict(config)
    data["face_strength"] = {str(k): v for k, v in config.face_strength.items()}
    data["model_options"] = dict(config.model_options)
    data["stabilise_options"] = dict(config.stabilise_options)
    return data


_NESTED = {"detector": DetectorConfig, "tracker": TrackerConfig, "smoothing": SmoothingConfig,
           "encode": EncodeOptions}


def config_from_dict(data: Mapping[str, Any]) -> RestoreConfig:
    """The config :func:`config_to_dict` wrote (validated). A setting this version does not know is a one-line
    ConfigError (a record written by a newer fvr must not be re-run with settings silently dropped); a setting
    missing keeps its default."""
    known = {f.name for f in fields(RestoreConfig)}
    if unknown := sorted(set(data) - known):
        raise ConfigError(f"unknown restore setting {unknown[0]!r} (written by another fvr version?)")
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name in _NESTED:
            sub = _NESTED[name]
            sub_known = {f.name for f in fields(sub)}
            if not isinstance(value, Mapping):
                raise ConfigError(f"the {name} settings must be a mapping, got {value!r}")
            if bad := sorted(set(value) - sub_known):
                raise ConfigError(f"unknown {name} setting {bad[0]!r} (written by another fvr version?)")
            value = sub(**value)
        elif name == "face_strength":
            try:
                value = {int(k): float(v) for k, v in dict(value).items()}
            except (TypeError, ValueError):
                raise ConfigError(f"face_strength must map track IDs to strengths, got {value!r}") from None
        values[name] = value
    return RestoreConfig(**values)


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
    changes: ChangeLog | None = field(default=None, repr=False)  # what was measured, when a record was asked for

    @property
    def fps(self) -> float:
        total = self.seconds_analyse + self.seconds_restore
        return self.frames / total if total > 0 else 0.0
