"""Degradation parameters: one random draw per clip, presets, overrides, JSON round trip.

A :class:`DegradeParams` holds every value of a degradation (the blur kernel's shape, both noise levels, the
down-sampling, the codec, the JPEG quality, the old-film look). It is drawn once per clip from a preset with
:func:`sample_params` (deterministic per seed) so that every frame of the clip gets the same blur, scale and codec,
as in VFHQ-Test; only the noise (and the old-film damage) is drawn afresh per frame, from (seed, frame index).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fvr.errors import ConfigError

BLUR_KINDS = ("none", "iso", "aniso", "motion")
INTERPOLATIONS = ("area", "linear", "cubic")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
CODECS = ("libx264",)  # the in-memory codec pass decodes with FFmpeg's h264 decoder
PIX_FMTS = ("yuv420p", "yuv444p")


def _number(name: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a float in [lo, hi], or ConfigError (bools and strings are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"degradation parameter {name} must be a number, got {value!r}")
    value = float(value)
    if not (lo <= value <= hi) or math.isnan(value):
        raise ConfigError(f"degradation parameter {name} = {value:g} is outside [{lo:g}, {hi:g}]")
    return value


def _integer(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int in [lo, hi]; integral floats (from JSON or a CLI) are accepted."""
    number = _number(name, value, lo, hi)
    if number != int(number):
        raise ConfigError(f"degradation parameter {name} must be an integer, got {value!r}")
    return int(number)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"degradation parameter {name} = {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"degradation parameter {name} must be true or false, got {value!r}")
    return bool(value)


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses: normalise values in __post_init__


@dataclass(frozen=True)
class BlurParams:
    """The blur kernel, applied to the full-resolution frame.

    kind: "none", "iso" (isotropic Gaussian, sigma_x == sigma_y), "aniso" (Gaussian with standard deviations
        sigma_x along the direction ``theta`` and sigma_y across it) or "motion" (a straight line).
    kernel_size: odd side of the square kernel in pixels (21 in VFHQ-Test).
    sigma_x, sigma_y: Gaussian standard deviations in full-resolution pixels.
    theta: direction of the sigma_x axis, radians, counter-clockwise from the image x axis as displayed.
    motion_length: length of the motion line in pixels (at most kernel_size - 1, so it fits the kernel).
    motion_angle: direction of the motion line, radians, counter-clockwise from the x axis as displayed.
    """

    kind: str = "none"
    kernel_size: int = 21
    sigma_x: float = 0.0
    sigma_y: float = 0.0
    theta: float = 0.0
    motion_length: float = 0.0
    motion_angle: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "kind", _choice("blur.kind", self.kind, BLUR_KINDS))
        size = _integer("blur.kernel_size", self.kernel_size, 1, 101)
        if size % 2 == 0:
            raise ConfigError(f"degradation parameter blur.kernel_size must be odd, got {size}")
        _set(self, "kernel_size", size)
        for name in ("sigma_x", "sigma_y"):
            _set(self, name, _number(f"blur.{name}", getattr(self, name), 0.0, 100.0))
        _set(self, "theta", _number("blur.theta", self.theta, -2 * math.pi, 2 * math.pi))
        _set(self, "motion_length", _number("blur.motion_length", self.motion_length, 0.0, size - 1))
        _set(self, "motion_angle", _number("blur.motion_angle", self.motion_angle, -2 * math.pi, 2 * math.pi))
        if self.kind in ("iso", "aniso") and min(self.sigma_x, self.sigma_y) <= 0:
            raise ConfigError(f"a {self.kind} blur needs sigma_x and sigma_y > 0")


@dataclass(frozen=True)
class NoiseParams:
    """Additive Gaussian noise: ``sigma`` on the 0-255 scale; ``gray`` uses one value for all three channels."""

    sigma: float = 0.0
    gray: bool = False

    def __post_init__(self) -> None:
        _set(self, "sigma", _number("noise.sigma", self.sigma, 0.0, 255.0))
        _set(self, "gray", _flag("noise.gray", self.gray))


@dataclass(frozen=True)
class FilmParams:
    """The old-film look. Damage is drawn afresh every frame; the amounts here are per clip.

    grain: standard deviation of the (gray, slightly clumped) film grain, 0-255 scale.
    scratches: mean number of vertical scratches per frame (Poisson).
    dust: mean number of dust specks per frame (Poisson).
    fade: 0 = original colours, 1 = fully sepia with lifted blacks and dimmed whites.
    flicker: each frame's brightness is multiplied by 1 + flicker * U[-1, 1].
    """

    grain: float = 0.0
    scratches: float = 0.0
    dust: float = 0.0
    fade: float = 0.0
    flicker: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "grain", _number("film.grain", self.grain, 0.0, 255.0))
        _set(self, "scratches", _number("film.scratches", self.scratches, 0.0, 100.0))
        _set(self, "dust", _number("film.dust", self.dust, 0.0, 1000.0))
        _set(self, "fade", _number("film.fade", self.fade, 0.0, 1.0))
        _set(self, "flicker", _number("film.flicker", self.flicker, 0.0, 1.0))


_NESTED = {"blur": BlurParams, "noise_before": NoiseParams, "noise_after": NoiseParams, "film": FilmParams}


@dataclass(frozen=True)
class DegradeParams:
    """Every value of one clip's degradation. Applied in this order (see :func:`fvr.degrade.degrade_frame`):

    crop to multiples of 2*scale -> blur -> old-film effects -> noise_before -> down-sample by ``scale`` with
    ``interpolation`` -> noise_after -> JPEG at ``jpeg_quality`` -> ``codec`` at ``crf`` (whole clip).

    preset: the preset the values were drawn from ("custom" when built by hand), for the record.
    crf: None skips the codec pass (the output file is then stored near-losslessly, see degrade_video).
    codec_preset: the x264 speed preset of the codec pass (FFmpeg's default, medium, in VFHQ-Test).
    jpeg_quality: None skips JPEG; 1-100 otherwise (OpenCV's quality scale).
    film: None, or the old-film look.
    """

    preset: str = "custom"
    blur: BlurParams = field(default_factory=BlurParams)
    noise_before: NoiseParams = field(default_factory=NoiseParams)
    scale: int = 4
    interpolation: str = "area"
    noise_after: NoiseParams = field(default_factory=NoiseParams)
    codec: str = "libx264"
    crf: int | None = None
    pix_fmt: str = "yuv420p"
    codec_preset: str = "medium"
    jpeg_quality: int | None = None
    film: FilmParams | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.preset, str) or not self.preset:
            raise ConfigError(f"degradation parameter preset must be a name, got {self.preset!r}")
        for name, cls in _NESTED.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                _set(self, name, _from_mapping(cls, value, name))
            elif not (isinstance(value, cls) or (name == "film" and value is None)):
                raise ConfigError(f"degradation parameter {name} must be a {cls.__name__}, got {value!r}")
        _set(self, "scale", _integer("scale", self.scale, 1, 16))
        _set(self, "interpolation", _choice("interpolation", self.interpolation, INTERPOLATIONS))
        _set(self, "codec", _choice("codec", self.codec, CODECS))
        _set(self, "pix_fmt", _choice("pix_fmt", self.pix_fmt, PIX_FMTS))
        _set(self, "codec_preset", _choice("codec_preset", self.codec_preset, X264_PRESETS))
        if self.crf is not None:
            _set(self, "crf", _integer("crf", self.crf, 0, 51))
        if self.jpeg_quality is not None:
            _set(self, "jpeg_quality", _integer("jpeg_quality", self.jpeg_quality, 1, 100))

    # -- JSON ------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (nested dicts, no tuples), so ``json.loads(json.dumps(d)) == d``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DegradeParams:
        """The inverse of :meth:`to_dict`; missing keys take the defaults, unknown keys are a ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError(f"degradation parameters must be a JSON object, got {type(data).__name__}")
        return _from_mapping(cls, data, "params")

    def replace(self, **overrides: Any) -> DegradeParams:
        """A copy with fields overridden by keyword, validated (ConfigError on bad names or values).

        Top-level fields by name (``crf=20``, ``scale=2``, ``film=None``); nested fields flattened with their
        group's name (``blur_sigma_x=2.0``, ``noise_after_gray=True``, ``film_grain=8``); and two shorthands:
        ``blur_sigma=X`` (isotropic Gaussian of sigma X, 0 for no blur) and ``noise=X`` (both noise passes).
        """
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {name: {} for name in _NESTED}
        for key, value in overrides.items():
            _route_override(key, value, top, nested)
        params = replace(self, **top) if top else self
        changes = {}
        for group, values in nested.items():
            if values:
                base = getattr(params, group) or _NESTED[group]()
                changes[group] = replace(base, **values)
        return replace(params, **changes) if changes else params


def _from_mapping(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown degradation parameter(s) in {where}: {', '.join(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"bad degradation parameters in {where}: {exc}") from None


def _route_override(key: str, value: Any, top: dict[str, Any], nested: dict[str, dict[str, Any]]) -> None:
    """Sort one keyword of :meth:`DegradeParams.replace` into top-level and nested changes."""
    if key == "blur_sigma":
        sigma = _number("blur_sigma", value, 0.0, 100.0)
        nested["blur"].update(kind="iso" if sigma > 0 else "none", sigma_x=sigma, sigma_y=sigma, theta=0.0)
        return
    if key == "noise":
        sigma = _number("noise", value, 0.0, 255.0)
        nested["noise_before"]["sigma"] = sigma
        nested["noise_after"]["sigma"] = sigma
        return
    if key in {f.name for f in fields(DegradeParams)}:
        top[key] = value
        return
    for group, cls in _NESTED.items():
        prefix = group + "_"
        if key.startswith(prefix) and key[len(prefix):] in {f.name for f in fields(cls)}:
            nested[group][key[len(prefix):]] = value
            return
    raise ConfigError(f"unknown degradation parameter {key!r}")


# -- presets --------------------------------------------------------------------------------------------------

Range = tuple[float, float]

_VFHQ_BLUR = (("iso", 0.7), ("aniso", 0.3))
_VFHQ_INTERP = (("area", 0.2), ("linear", 0.4), ("cubic", 0.4))


@dataclass(frozen=True)
class PresetSpec:
    """The distribution a preset draws from. Ranges are uniform and inclusive; ``None`` means "not applied".

    blur: (kind, probability) pairs; sigma: range of each Gaussian sigma (iso: one value; aniso: sigma_x and
    sigma_y drawn independently, theta uniform in [0, pi)); motion_length: range for "motion" (angle uniform in
    [0, pi)); noise_before / noise_after: sigma ranges (0-255 scale), each pass gray with probability gray_p;
    crf / jpeg: integer ranges; film: ranges of the FilmParams fields.
    """

    description: str
    blur: tuple[tuple[str, float], ...] = _VFHQ_BLUR
    kernel_size: int = 21
    sigma: Range = (0.1, 10.0)
    motion_length: Range = (0.0, 0.0)
    noise_before: Range | None = (0.0, 10.0)
    noise_after: Range | None = (0.0, 10.0)
    gray_p: float = 0.5
    scale: int = 4
    interpolation: tuple[tuple[str, float], ...] = _VFHQ_INTERP
    crf: tuple[int, int] | None = (18, 24)
    jpeg: tuple[int, int] | None = None
    film: dict[str, Range] | None = None


PRESETS: dict[str, PresetSpec] = {
    "vfhq": PresetSpec(
        "VFHQ-Test protocol: Gaussian blur (k=21, iso 0.7 / aniso 0.3, sigma 0.1-10), noise 0-10 before and after "
        "x4 down-sampling (area/linear/cubic 0.2/0.4/0.4), libx264 CRF 18-24",
    ),
    "light": PresetSpec(
        "milder VFHQ: blur sigma 0.1-3, noise 0-3, x4, CRF 15-20",
        sigma=(0.1, 3.0), noise_before=(0.0, 3.0), noise_after=(0.0, 3.0), crf=(15, 20),
    ),
    "heavy": PresetSpec(
        "stronger VFHQ: blur sigma 2-10, noise 5-20, x4, CRF 28-35",
        sigma=(2.0, 10.0), noise_before=(5.0, 20.0), noise_after=(5.0, 20.0), crf=(28, 35),
    ),
    "jpeg": PresetSpec(
        "blur sigma 0.1-3, x4, noise 0-5, JPEG quality 10-40 on every frame, no video codec",
        sigma=(0.1, 3.0), noise_before=None, noise_after=(0.0, 5.0), crf=None, jpeg=(10, 40),
    ),
    "motion-blur": PresetSpec(
        "linear motion blur 6-20 px in any direction, noise 0-5, x4, CRF 18-24",
        blur=(("motion", 1.0),), motion_length=(6.0, 20.0), noise_before=(0.0, 5.0), noise_after=(0.0, 5.0),
    ),
    "old-film": PresetSpec(
        "old film: slight blur, sepia fade, flicker, grain, scratches and dust changing every frame, x2, CRF 20-28",
        blur=(("iso", 1.0),), sigma=(0.5, 2.0), noise_before=None, noise_after=None, scale=2, crf=(20, 28),
        film={"grain": (4.0, 12.0), "scratches": (0.5, 3.0), "dust": (2.0, 10.0), "fade": (0.3, 0.8),
              "flicker": (0.02, 0.08)},
    ),
}


def _uniform(rng: np.random.Generator, span: Range) -> float:
    # 4 decimals: readable sidecars; the draw stays inside the (4-decimal) range
    return round(float(rng.uniform(span[0], span[1])), 4)


def _pick(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    names = [name for name, _ in options]
    return names[int(rng.choice(len(names), p=[p for _, p in options]))]


def _draw_blur(spec: PresetSpec, rng: np.random.Generator) -> BlurParams:
    kind = _pick(rng, spec.blur)
    if kind == "iso":
        sigma = _uniform(rng, spec.sigma)
        return BlurParams("iso", spec.kernel_size, sigma, sigma)
    if kind == "aniso":
        sx, sy = _uniform(rng, spec.sigma), _uniform(rng, spec.sigma)
        theta = round(float(rng.uniform(0.0, math.pi)), 4) % round(math.pi, 4)  # [0, pi) after rounding too
        return BlurParams("aniso", spec.kernel_size, sx, sy, theta)
    if kind == "motion":
        length = _uniform(rng, spec.motion_length)
        angle = round(float(rng.uniform(0.0, math.pi)), 4) % round(math.pi, 4)
        return BlurParams("motion", spec.kernel_size, motion_length=length, motion_angle=angle)
    return BlurParams("none", spec.kernel_size)


def _draw_noise(span: Range | None, gray_p: float, rng: np.random.Generator) -> NoiseParams:
    if span is None:
        return NoiseParams()
    sigma = _uniform(rng, span)
    return NoiseParams(sigma, bool(rng.random() < gray_p))


def _draw(name: str, spec: PresetSpec, rng: np.random.Generator) -> DegradeParams:
    """The draws happen in a fixed order, so a seed always gives the same parameters."""
    blur = _draw_blur(spec, rng)
    noise_before = _draw_noise(spec.noise_before, spec.gray_p, rng)
    interpolation = _pick(rng, spec.interpolation)
    noise_after = _draw_noise(spec.noise_after, spec.gray_p, rng)
    crf = int(rng.integers(spec.crf[0], spec.crf[1] + 1)) if spec.crf else None
    jpeg = int(rng.integers(spec.jpeg[0], spec.jpeg[1] + 1)) if spec.jpeg else None
    film = FilmParams(**{k: _uniform(rng, span) for k, span in spec.film.items()}) if spec.film else None
    return DegradeParams(
        preset=name, blur=blur, noise_before=noise_before, scale=spec.scale, interpolation=interpolation,
        noise_after=noise_after, crf=crf, jpeg_quality=jpeg, film=film,
    )


def check_seed(seed: Any) -> int:
    """Seeds are non-negative integers (what numpy's SeedSequence accepts)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"the degradation seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def sample_params(preset: str, seed: int, **overrides: Any) -> DegradeParams:
    """Draw one clip's parameters from ``preset`` with ``numpy.random.default_rng(seed)``, then apply the
    keyword overrides (see :meth:`DegradeParams.replace`). Overrides do not shift the other draws."""
    spec = PRESETS.get(preset)
    if spec is None:
        raise ConfigError(f"unknown degradation preset {preset!r}; choose one of {', '.join(PRESETS)}")
    params = _draw(preset, spec, np.random.default_rng(check_seed(seed)))
    return params.replace(**overrides) if overrides else params


# -- files ------------------------------------------------------------------------------------------------------


class Resolved(NamedTuple):
    """What a degradation run needs besides its input and output."""

    params: DegradeParams
    seed: int
    max_frames: int | None


def load_params(path: str | Path) -> Resolved:
    """Read a sidecar written by :func:`fvr.degrade.degrade_video` (params, seed and frame limit) or a bare
    params JSON (``DegradeParams.to_dict()``; seed 0, no frame limit)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"parameter file not found: {p}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read parameters from {p}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("params"), dict):
        seed = check_seed(data.get("seed", 0))
        limit = data.get("max_frames")
        return Resolved(DegradeParams.from_dict(data["params"]), seed, None if limit is None else int(limit))
    return Resolved(DegradeParams.from_dict(data), 0, None)


def resolve_params(
    preset: str = "vfhq",
    seed: int | None = None,
    *,
    params_file: str | Path | None = None,
    max_frames: int | None = None,
    **overrides: Any,
) -> Resolved:
    """Parameters, seed and frame limit of a run, as ``fvr degrade`` combines them: a params/sidecar file when
    given (else a draw from ``preset``), then explicit values on top. ``seed``/``max_frames`` None = from the
    file, or 0 / no limit."""
    if params_file is not None:
        loaded = load_params(params_file)
        params = loaded.params.replace(**overrides) if overrides else loaded.params
        return Resolved(params, loaded.seed if seed is None else check_seed(seed),
                        loaded.max_frames if max_frames is None else max_frames)
    seed = 0 if seed is None else seed
    return Resolved(sample_params(preset, seed, **overrides), check_seed(seed), max_frames)


def describe(params: DegradeParams) -> str:
    """A one-line short form, e.g. ``blur iso s=2.31 | noise 4.1 gray | x4 cubic | noise 6.2 | x264 crf 21``."""
    b = params.blur
    parts = [{
        "none": "no blur",
        "iso": f"blur iso s={b.sigma_x:.2f}",
        "aniso": f"blur aniso s={b.sigma_x:.2f}/{b.sigma_y:.2f} @{math.degrees(b.theta):.0f}deg",
        "motion": f"motion {b.motion_length:.1f}px @{math.degrees(b.motion_angle):.0f}deg",
    }[b.kind]]
    if params.film is not None:
        f = params.film
        parts.append(f"film grain {f.grain:.1f} scratches {f.scratches:.1f} fade {f.fade:.2f} flicker {f.flicker:.2f}")
    parts.append(_noise_text(params.noise_before))
    parts.append(f"x{params.scale} {params.interpolation}")
    parts.append(_noise_text(params.noise_after))
    if params.jpeg_quality is not None:
        parts.append(f"jpeg q{params.jpeg_quality}")
    parts.append(f"x264 crf {params.crf}" if params.crf is not None else "no codec")
    return " | ".join(p for p in parts if p)


def _noise_text(noise: NoiseParams) -> str:
    return f"noise {noise.sigma:.1f}{' gray' if noise.gray else ''}" if noise.sigma > 0 else ""
