"""Option groups shared by the commands that restore: each option is declared once, and ``fvr restore``,
``fvr batch`` and ``fvr info`` take the groups they need, so they accept the same settings with the same names,
ranges and help, and build the same :class:`~fvr.run.config.RestoreConfig` (:func:`restore_config`).

A command declares its own parameters and asks for groups with :func:`with_options`; it receives the group values
as one ``options`` mapping (name -> value).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from fvr.errors import ConfigError

if typing.TYPE_CHECKING:
    from fvr.faces.analyse import AnalysisConfig
    from fvr.run.config import RestoreConfig


@dataclass(frozen=True)
class Opt:
    """One command-line option: its parameter name, its typer annotation and its default."""

    name: str
    annotation: Any
    default: Any


def _opt(name: str, kind: Any, default: Any, *flags: str, **info: Any) -> Opt:
    return Opt(name, Annotated[kind, typer.Option(*flags, **info)], default)


MODEL = (
    _opt("model", str | None, None, "--model", "-m", help="Restorer name (see `fvr models`), a .safetensors file "
                                                          "from `fvr train`, an .onnx model, or a "
                                                          "GFPGAN/CodeFormer/... checkpoint with fvr[spandrel] "
                                                          "(docs/external-models.md); MODEL+STABILISER adds a "
                                                          "temporal stabiliser. Default: fvr-prior-rt+flow-fast on "
                                                          "CPU, fvr-prior+flow on CUDA (the shipped defaults with "
                                                          "their stabiliser)."),
    _opt("model_opt", list[str] | None, None, "--model-opt", help="KEY=VALUE for the model's loader, repeatable "
                                                                  "(e.g. detail=0.5, precision=float32; range=-1,1 "
                                                                  "channels=bgr w=0.7 for an .onnx file; see "
                                                                  "docs/models.md and docs/external-models.md)."),
    _opt("crop_size", int | None, None, "--crop-size", help="Override the model's crop size (128/256/512)."),
    _opt("fidelity", float | None, None, "--fidelity", min=0.0, max=1.0, help="Fidelity-perception control of models "
                                                                              "that have one (fvr-prior; "
                                                                              "CodeFormer's w): 1 = closest to the "
                                                                              "input, 0 = most generated detail."),
    _opt("stabilise", str | None, None, "--stabilise", help="Temporal stabiliser around the model: flow (offline), "
                                                            "flow-causal (streaming), flow-fast (real time: flow at "
                                                            "256², one neighbour each side), learned (shipped, "
                                                            "trained around image-baseline), or a trained stabiliser "
                                                            ".safetensors."),
    _opt("stabilise_window", int | None, None, "--stabilise-window", min=0, max=8, help="Stabiliser: neighbours "
                                                                                        "fused on each side (default "
                                                                                        "2)."),
    _opt("stabilise_strength", float | None, None, "--stabilise-strength", min=0.0, max=1.0, help="Stabiliser: 0 = "
                                                                                                  "per-frame output, "
                                                                                                  "1 = fully fused "
                                                                                                  "(default 1)."),
    _opt("device", str, "auto", "--device", help="Where learned models run: auto (CUDA when available), cpu, cuda."),
)
"""Which model restores the faces, where, and with which temporal stabiliser."""

COMPOSE = (
    _opt("upscale", int, 1, "--upscale", "-u", min=1, max=8, help="Output scale factor."),
    _opt("background", str, "lanczos", "--background", help="Background up-sampling: lanczos, bicubic, bilinear, "
                                                            "compact (fast learned x2-x4), realesrgan (slow on CPU), "
                                                            "or a super-resolution checkpoint file with "
                                                            "fvr[spandrel]."),
    _opt("faces", str, "all", "--faces", help="'all', 'largest', or track IDs from `fvr info`, e.g. 0,2."),
    _opt("strength", float, 1.0, "--strength", min=0.0, max=1.0, help="Blend of restored over input face."),
    _opt("face_strength", str | None, None, "--face-strength", help="Per-face strengths replacing --strength for "
                                                                     "those faces, e.g. 0=0.5,2=0.8 (track IDs "
                                                                     "from `fvr info`)."),
    _opt("fade_frames", int, 4, "--fade-frames", min=0, help="A face track that starts or ends while its shot goes "
                                                             "on fades in/out over this many frames (0 = switch at "
                                                             "once)."),
    _opt("color_match", bool, False, "--color-match/--no-color-match", help="Match face colours to the input."),
    _opt("feather", float, 0.06, "--feather", help="Mask edge softness (fraction of the crop)."),
    _opt("mask_coverage", float, 1.6, "--mask-coverage", min=0.25, max=2.0, help="Size of the pasted face region: 1 "
                                                                                 "= brows to chin, 1.6 (default) = "
                                                                                 "nearly the whole aligned crop, "
                                                                                 "hair included."),
)
"""How restored faces are pasted onto the (up-sampled) frame."""

DETECTION = (
    _opt("detector", str, "mtcnn", "--detector", help="Face detector: mtcnn (built in) or yunet."),
    _opt("detector_model", Path | None, None, "--detector-model", help="Model file for yunet "
                                                                       "(face_detection_yunet_*.onnx)."),
    _opt("detect_size", int, 960, "--detect-size", min=64, help="Frames are shrunk to this longest side for "
                                                                "detection (smaller is faster; faces must stay >= 20 "
                                                                "px). The track IDs of --faces depend on it."),
    _opt("detect_every", int, 5, "--detect-every", min=1,
         help="Run the detector every k frames, and sooner when a face moves fast or was missed; optical flow "
              "tracks in between (1 = every frame: slower, for the most exact landmarks). The track IDs of --faces "
              "depend on it."),
    _opt("redetect_motion", float, 0.03, "--redetect-motion", min=0.0,
         help="With --detect-every K > 1: run the detector early when optical flow carried a face more than this "
              "fraction of its size since its last detection (0 = strictly every K frames)."),
    _opt("smoothing", str, "gaussian", "--smoothing", help="Landmark smoothing: gaussian, savgol, one-euro (causal), "
                                                           "none."),
    _opt("sigma", float, 3.0, "--sigma", help="Gaussian smoothing sigma in frames."),
)
"""How faces are found, tracked and steadied (``fvr info`` shows the tracks these settings give)."""

ENCODE = (
    _opt("crf", int, 18, "--crf", min=0, max=63, help="Encoder quality (lower is better)."),
    _opt("preset", str, "medium", "--preset", help="Encoder preset (ultrafast ... veryslow)."),
    _opt("codec", str | None, None, "--codec", help="Video encoder: libx264, libx265, libsvtav1, libvpx-vp9, ffv1, "
                                                    "... Default: libx264 (libvpx-vp9 for .webm)."),
    _opt("encoder_opt", list[str] | None, None, "--encoder-opt",
         help="KEY=VALUE for the video encoder, repeatable (FFmpeg names, e.g. tune=film; "
              "x264-params=mbtree=1 gives smaller x264 files whose bytes may differ between runs, "
              "docs/provenance.md)."),
    _opt("pix_fmt", str | None, None, "--pix-fmt", help="Default: yuv420p, which every player decodes (odd sizes are "
                                                        "padded by one edge pixel; yuv444p keeps them exact), or "
                                                        "yuv420p10le for 10-bit input where the codec has it."),
)
"""How the output video is encoded."""

INPUT = (
    _opt("fps", float | None, None, "--fps", help="Frame rate for image-sequence input."),
    _opt("strict", bool, False, "--strict", help="Refuse input with any decode error (corrupt or missing data) "
                                                 "instead of restoring what the decoder concealed, with a warning."),
)
"""How the input is read."""

FORENSIC = (
    _opt("forensic", bool, False, "--forensic", help="Fidelity first, for evidence and archives: non-generative "
                                                     "models and classical backgrounds only, each face's strength "
                                                     "lowered where its identity would drift from the input's "
                                                     "(FaceNet, the metrics extra), the record always written."),
    _opt("forensic_min_identity", float, 0.8, "--forensic-min-identity", min=0.0, max=1.0,
         help="--forensic: lowest identity similarity of a restored face to its input face (cosine of FaceNet "
              "embeddings)."),
)
"""Forensic mode (``fvr restore`` only: it always writes the provenance record)."""

SHARED_GROUPS = (MODEL, COMPOSE, DETECTION, ENCODE, INPUT)
"""The settings ``fvr restore`` and ``fvr batch`` share."""
RESTORE_GROUPS = (*SHARED_GROUPS, FORENSIC)
"""Every setting of a restore run."""


def with_options(*groups: tuple[Opt, ...], defaults: Mapping[str, Any] | None = None
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the options of ``groups`` to a typer command, after its own parameters; the command receives their
    values as ``options`` (a dict, name -> value). ``defaults``: other defaults for this command (``fvr live``
    detects less often than ``fvr restore``). An option name used twice is a programming error."""
    defaults = dict(defaults or {})
    extra = [replace(o, default=defaults.pop(o.name)) if o.name in defaults else o for group in groups for o in group]
    if defaults:
        raise ValueError(f"defaults for options not in the groups: {sorted(defaults)}")
    names = [o.name for o in extra]
    if len(set(names)) != len(names):
        raise ValueError(f"an option is in two groups: {names}")

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(command, eval_str=True)
        hints = typing.get_type_hints(command, include_extras=True)
        params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in own.parameters.values()
                  if p.name != "options"]
        if clash := {p.name for p in params} & set(names):
            raise ValueError(f"{command.__name__} declares shared options itself: {sorted(clash)}")
        params += [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default,
                                     annotation=o.annotation) for o in extra]

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            options = {name: kwargs.pop(name) for name in names}
            return command(**kwargs, options=options)

        run.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run

    return decorate


# ------------------------------------------------------------------------------------------------ configs


def model_options(pairs: list[str] | None, crop_size: int | None = None,
                  fidelity: float | None = None) -> dict[str, object]:
    """--model-opt KEY=VALUE pairs (and --crop-size, --fidelity) -> the model factory's keyword options."""
    from fvr.models.reference import parse_option_value

    options: dict[str, object] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--model-opt wants KEY=VALUE, got {pair!r}")
        options[key.strip()] = parse_option_value(value)
    if crop_size:
        options["crop_size"] = crop_size
    if fidelity is not None:
        options["fidelity"] = fidelity
    return options


def encoder_options(pairs: list[str] | None) -> dict[str, str]:
    """--encoder-opt KEY=VALUE pairs -> the encoder's options (the value may hold "=": x264-params=a=1:b=2)."""
    options: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--encoder-opt wants KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def parse_face_strength(text: str | None) -> dict[int, float]:
    """``--face-strength`` "ID=S,ID=S" -> {track ID: strength}; ConfigError (one line) for anything else."""
    out: dict[int, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        try:
            track, strength = int(key), float(value)
        except ValueError:
            raise ConfigError(f"--face-strength wants ID=STRENGTH pairs such as 0=0.5,2=0.8, got {part.strip()!r}"
                              ) from None
        if not sep or track in out:
            raise ConfigError(f"--face-strength wants each face once as ID=STRENGTH, got {part.strip()!r}")
        out[track] = strength
    return out


def stabiliser_options(window: int | None, strength: float | None) -> dict[str, object]:
    """--stabilise-window / --stabilise-strength -> the stabiliser's options (only those given)."""
    return {k: v for k, v in (("window", window), ("strength", strength)) if v is not None}


def analysis_config(o: Mapping[str, Any]) -> AnalysisConfig:
    """The :data:`DETECTION` group's values -> how faces are found, tracked and smoothed."""
    from fvr.faces import DetectorConfig, SmoothingConfig, TrackerConfig
    from fvr.faces.analyse import AnalysisConfig

    model = o["detector_model"]
    return AnalysisConfig(
        detector=DetectorConfig(name=o["detector"], model_path=str(model) if model else None,
                                max_side=o["detect_size"]),
        tracker=TrackerConfig(detect_every=o["detect_every"], redetect_motion=o["redetect_motion"]),
        smoothing=SmoothingConfig(method=o["smoothing"], sigma=o["sigma"]),
    )


def restore_config(o: Mapping[str, Any]) -> RestoreConfig:
    """The values of :data:`RESTORE_GROUPS` -> the run's config (validated as it is built: a one-line ConfigError
    when a value is out of range). Options of groups the command does not take keep their defaults."""
    from fvr.io import EncodeOptions
    from fvr.run.config import RestoreConfig

    o = {**{opt.name: opt.default for group in RESTORE_GROUPS for opt in group}, **o}

    analysis = analysis_config(o)
    config = RestoreConfig(
        model=o["model"], model_options=model_options(o["model_opt"], o["crop_size"], o["fidelity"]),
        stabilise=o["stabilise"], stabilise_options=stabiliser_options(o["stabilise_window"], o["stabilise_strength"]),
        device=o["device"], upscale=o["upscale"], background=o["background"], faces=o["faces"],
        strength=o["strength"], face_strength=parse_face_strength(o["face_strength"]),
        fade_frames=o["fade_frames"], color_match=o["color_match"], feather=o["feather"],
        mask_coverage=o["mask_coverage"], detector=analysis.detector, tracker=analysis.tracker,
        smoothing=analysis.smoothing,
        encode=EncodeOptions(codec=o["codec"], crf=o["crf"], preset=o["preset"], pix_fmt=o["pix_fmt"],
                             extra=encoder_options(o["encoder_opt"])),
        sequence_fps=o["fps"], strict=o["strict"], forensic=o["forensic"],
        forensic_min_identity=o["forensic_min_identity"],
    )
    return config
