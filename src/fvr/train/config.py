"""Training configuration: a TOML (or YAML) file -> frozen dataclasses, validated with one-line errors.

Sections and keys are documented in docs/train.md; every key has a default, so a config only states what differs.
Unknown sections or keys are a :class:`~fvr.errors.ConfigError` naming the key (a typo must not silently train
with a default). Relative paths (data clips, cache, packed file, run.out, ST-LPIPS weights) resolve against the
config file's folder, so a config works from any working directory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from fvr.errors import ConfigError

MODES = ("faces", "frames")
DEVICES = ("auto", "cpu", "cuda")
SCHEDULES = ("cosine", "constant")
GAN_KINDS = ("hinge", "ns")
CODECS = ("auto", "x264", "jpeg")


@dataclass(frozen=True)
class ModelSection:
    """arch: architecture name (``fvr models`` / :func:`fvr.models.nets.architectures`); preset: fast, quality
    or tiny; options: overrides of the preset's config dataclass fields; init: a weights file of the same
    architecture to start from (fine-tuning, or a codebook model's stage 2 from its stage-1 weights): its tensors are
    loaded, and the network's config is the file's config with ``options`` applied on top. pretrained: start from
    the architecture's packaged pretrained weights (architectures built on a pretrained network, e.g.
    ``prior-rrdb``); not together with ``init``. teacher: a trained face network to distil from (``loss.distill``):
    an fvr weight file, or the name of a model shipped in the package (e.g. ``fvr-prior-fast``); it runs frozen on
    the same degraded crops and must take the same crop size."""

    arch: str = ""
    preset: str = "fast"
    options: dict[str, Any] = field(default_factory=dict)
    init: str = ""
    pretrained: bool = False
    teacher: str = ""


@dataclass(frozen=True)
class DataSection:
    """Where training crops come from (see :mod:`fvr.train.data`).

    clips / val_clips: video files, image-sequence folders or globs (val_clips are held out for validation).
    packed: one .npz from ``fvr train --pack`` (replaces clips/val_clips; needs no PyAV).
    mode: "faces" (aligned face-track crops) or "frames" (random patches of whole frames, for frame models).
    crop_size: S; 0 = the preset's crop size. clip_len: T frames per training sample.
    patch: faces mode: train on a random P x P window of each aligned S x S crop (the same window in every frame of
        a sample), 0 = the whole crop. Validation and the saved weights keep S: the network learns S-crop
        statistics (face scale, degradation per crop pixel) at the cost of a P-crop step.
    cache: folder of the decoded/aligned crops (default: <run.out>/cache).
    max_frames_per_video: decode at most this many frames of each video (0 = all).
    min_face: keep face tracks whose median face footprint is at least min_face x crop_size pixels
        (ground truth should not be an up-scaled face).
    frame_max_side: frames mode: frames are cached down-scaled so that max(H, W) <= this.
    val_windows: number of fixed validation windows taken from the val clips.
    permissive_only: refuse clips that are not on the permissive-licence list (see docs/train.md): weights that are
        shipped must be trained only on those.
    """

    clips: tuple[str, ...] = ()
    val_clips: tuple[str, ...] = ()
    packed: str = ""
    mode: str = "faces"
    crop_size: int = 0
    clip_len: int = 5
    patch: int = 0
    cache: str = ""
    max_frames_per_video: int = 300
    min_face: float = 0.75
    frame_max_side: int = 512
    val_windows: int = 8
    permissive_only: bool = False


@dataclass(frozen=True)
class DegradeSection:
    """presets: degradation preset -> sampling weight; overrides: fixed values for every draw (see
    :meth:`fvr.degrade.DegradeParams.replace`); scales: down-sampling factor -> sampling weight (e.g.
    ``{"1" = 0.2, "2" = 0.4, "4" = 0.4}``), drawn per sample instead of one fixed ``overrides.scale`` (a model
    then learns mild and heavy damage at the same crop size); codec: "auto" (real libx264 pass when PyAV is
    importable, else a JPEG stand-in), "x264" (require PyAV), "jpeg" (always the stand-in)."""

    presets: dict[str, float] = field(default_factory=lambda: {"vfhq": 1.0})
    overrides: dict[str, Any] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)
    codec: str = "auto"


@dataclass(frozen=True)
class AugmentSection:
    """hflip: probability; color_jitter: strength of brightness/contrast/saturation jitter (0 = off);
    scale_jitter: relative (0.05 = +-5 %); rotate_jitter: degrees; shift_jitter: crop pixels (these three move the
    whole clip consistently); align_jitter: independent per-frame shift in crop pixels (detector jitter)."""

    hflip: float = 0.5
    color_jitter: float = 0.0
    scale_jitter: float = 0.0
    rotate_jitter: float = 0.0
    shift_jitter: float = 0.0
    align_jitter: float = 0.0


@dataclass(frozen=True)
class LossSection:
    """Loss weights (0 = the term is not computed) and their parameters; formulas in docs/train.md."""

    charbonnier: float = 1.0
    l1: float = 0.0
    stlpips: float = 0.0
    gan: float = 0.0
    temporal: float = 0.0
    component: float = 0.0
    distill: float = 0.0
    charbonnier_eps: float = 1e-3
    component_boost: float = 1.0
    gan_kind: str = "hinge"
    gan_start: int = 0
    disc_channels: int = 32
    stlpips_weights: str = ""


@dataclass(frozen=True)
class OptimSection:
    """AdamW + linear warm-up + cosine decay to lr * min_lr_ratio; EMA of the weights (0 = off)."""

    lr: float = 2e-4
    betas: tuple[float, ...] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema: float = 0.999
    batch_size: int = 4
    steps: int = 10000
    warmup: int = 200
    schedule: str = "cosine"
    min_lr_ratio: float = 0.01
    disc_lr: float = 1e-4


@dataclass(frozen=True)
class RunSection:
    """out: run folder; device: auto (CUDA when available), cpu or cuda; *_every in steps (0 = never, except a
    final validation/checkpoint); num_workers: threads that prepare the samples of a batch (0 = inline)."""

    out: str = "runs/train"
    seed: int = 0
    device: str = "auto"
    val_every: int = 500
    ckpt_every: int = 1000
    log_every: int = 10
    keep_checkpoints: int = 3
    num_workers: int = 0


@dataclass(frozen=True)
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    degrade: DegradeSection = field(default_factory=DegradeSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)
    source: str = ""  # the config file it was read from ("" when built in code)

    def cache_dir(self) -> Path:
        return Path(self.data.cache) if self.data.cache else Path(self.run.out) / "cache"


SECTIONS: dict[str, type] = {
    "model": ModelSection, "data": DataSection, "degrade": DegradeSection, "augment": AugmentSection,
    "loss": LossSection, "optim": OptimSection, "run": RunSection,
}
# keys holding paths, resolved against the config file's folder
_PATH_KEYS = {("model", "init"), ("data", "packed"), ("data", "cache"), ("run", "out"), ("loss", "stlpips_weights")}
_PATH_LIST_KEYS = {("data", "clips"), ("data", "val_clips")}


def is_weights_file(value: str) -> bool:
    """model.teacher names a file (resolved next to the config) rather than a shipped model."""
    return str(value).endswith(".safetensors")


# ----------------------------------------------------------------------------------------------- reading


def load_config(path: str | Path, **run_overrides: Any) -> TrainConfig:
    """Read a .toml (or .yaml/.yml when PyYAML is installed) training config; ``run_overrides`` replace keys of
    sections given as ``section__key=value`` (e.g. ``optim__steps=100``), as the CLI's --steps/--device do."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training config {path} does not exist")
    data = _read_file(path)
    for key, value in run_overrides.items():
        section, _, name = key.partition("__")
        data.setdefault(section, {})[name] = value
    return config_from_mapping(data, base_dir=path.resolve().parent, source=str(path.resolve()))


def _read_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: YAML configs need PyYAML (pip install pyyaml); or write the config as "
                              "TOML") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a training config must be a table of sections")
    return data


def config_from_mapping(data: Mapping[str, Any], *, base_dir: str | Path | None = None,
                        source: str = "") -> TrainConfig:
    """Build a :class:`TrainConfig` from nested mappings (the parsed file); unknown keys -> ConfigError."""
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown config section [{unknown[0]}]; known sections: {', '.join(SECTIONS)}")
    base = Path(base_dir) if base_dir is not None else None
    sections = {}
    for name, cls in SECTIONS.items():
        values = data.get(name, {})
        if not isinstance(values, Mapping):
            raise ConfigError(f"config [{name}] must be a table, got {values!r}")
        sections[name] = _section(name, cls, dict(values), base)
    config = TrainConfig(**sections, source=source)
    validate(config)
    return config


def _section(name: str, cls: type, values: dict[str, Any], base: Path | None) -> Any:
    known = {f.name: f for f in fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"unknown config key {name}.{key}; known keys of [{name}]: {', '.join(known)}")
    out = {key: _coerce(f"{name}.{key}", _annotation(known[key], name), value) for key, value in values.items()}
    if base is not None:  # defaults too: run.out = "runs/train" is next to the config, like any relative path
        for key in known:
            value = out.get(key, getattr(cls(), key))
            if ((name, key) in _PATH_KEYS or ((name, key) == ("model", "teacher") and is_weights_file(value))) \
                    and value:
                out[key] = str(_resolve(base, value))
            elif (name, key) in _PATH_LIST_KEYS:
                out[key] = tuple(str(_resolve(base, v)) for v in value)
    return cls(**out)


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else base / p))  # tidy "a/../b"; globs stay globs


def _annotation(f: Field[Any], section: str) -> str:
    """A config field's annotation, which is a string: the module uses postponed annotations."""
    if not isinstance(f.type, str):
        raise TypeError(f"unhandled annotation {f.type} for {section}.{f.name}")  # a programming error
    return f.type


def _coerce(where: str, annotation: str, value: Any) -> Any:
    """Check ``value`` against a field annotation (strings: the module uses postponed annotations)."""
    if annotation == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"config {where} must be true or false, got {value!r}")
        return value
    if annotation == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config {where} must be an integer, got {value!r}")
        return value
    if annotation == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"config {where} must be a number, got {value!r}")
        return float(value)
    if annotation == "str":
        if not isinstance(value, str):
            raise ConfigError(f"config {where} must be a string, got {value!r}")
        return value
    if annotation == "tuple[str, ...]":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"config {where} must be a list of strings, got {value!r}")
        return tuple(value)
    if annotation == "tuple[float, ...]":
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"config {where} must be a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if annotation.startswith("dict"):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config {where} must be a table, got {value!r}")
        return dict(value)
    raise TypeError(f"unhandled annotation {annotation} for {where}")  # a programming error, not user input


def validate(config: TrainConfig) -> None:
    """Value checks that need no data or network (one-line ConfigError)."""
    d, o, r, lo, a = config.data, config.optim, config.run, config.loss, config.augment
    checks: list[tuple[bool, str]] = [
        (d.mode in MODES, f"data.mode must be one of {', '.join(MODES)}, got {d.mode!r}"),
        (d.crop_size == 0 or d.crop_size >= 16, f"data.crop_size must be 0 (preset) or >= 16, got {d.crop_size}"),
        (d.clip_len >= 1, f"data.clip_len must be >= 1, got {d.clip_len}"),
        (d.patch == 0 or d.patch >= 16, f"data.patch must be 0 (whole crops) or >= 16, got {d.patch}"),
        (d.patch == 0 or d.crop_size == 0 or d.patch <= d.crop_size,
         f"data.patch ({d.patch}) must not exceed data.crop_size ({d.crop_size})"),
        (d.patch == 0 or d.mode == "faces",
         "data.patch is for faces mode (frames mode already trains on crop_size patches of whole frames)"),
        (d.max_frames_per_video >= 0, "data.max_frames_per_video must be >= 0 (0 = all)"),
        (d.min_face >= 0, "data.min_face must be >= 0"),
        (d.frame_max_side >= 16, "data.frame_max_side must be >= 16"),
        (d.val_windows >= 0, "data.val_windows must be >= 0"),
        (config.degrade.codec in CODECS, f"degrade.codec must be one of {', '.join(CODECS)}"),
        (bool(config.degrade.presets), "degrade.presets must name at least one degradation preset"),
        (all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
             for w in config.degrade.presets.values()) and sum(config.degrade.presets.values()) > 0,
         "degrade.presets weights must be non-negative numbers with a positive sum"),
        (all(str(k).isdigit() and 1 <= int(k) <= 16 for k in config.degrade.scales),
         "degrade.scales keys must be down-sampling factors 1-16, e.g. {\"2\" = 0.5, \"4\" = 0.5}"),
        (not config.degrade.scales
         or (all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
                 for w in config.degrade.scales.values()) and sum(config.degrade.scales.values()) > 0),
         "degrade.scales weights must be non-negative numbers with a positive sum"),
        (not (config.degrade.scales and "scale" in config.degrade.overrides),
         "set either degrade.scales or degrade.overrides.scale, not both"),
        (0.0 <= a.hflip <= 1.0, "augment.hflip is a probability in [0, 1]"),
        (min(a.color_jitter, a.scale_jitter, a.rotate_jitter, a.shift_jitter, a.align_jitter) >= 0,
         "augment jitters must be >= 0"),
        (a.scale_jitter < 0.5 and a.color_jitter <= 1.0, "augment.scale_jitter must be < 0.5, color_jitter <= 1"),
        (min(lo.charbonnier, lo.l1, lo.stlpips, lo.gan, lo.temporal, lo.component, lo.distill) >= 0,
         "loss weights must be >= 0"),
        ((lo.distill > 0) == bool(config.model.teacher),
         "loss.distill and model.teacher go together: set both (distillation) or neither"),
        (lo.charbonnier_eps > 0, "loss.charbonnier_eps must be > 0"),
        (lo.gan_kind in GAN_KINDS, f"loss.gan_kind must be one of {', '.join(GAN_KINDS)}"),
        (lo.disc_channels >= 4 and lo.gan_start >= 0, "loss.disc_channels must be >= 4 and gan_start >= 0"),
        (o.lr > 0 and o.disc_lr > 0, "optim.lr and optim.disc_lr must be > 0"),
        (len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optim.betas must be two numbers in [0, 1)"),
        (o.weight_decay >= 0 and o.grad_clip >= 0, "optim.weight_decay and optim.grad_clip must be >= 0"),
        (0 <= o.ema < 1, "optim.ema must be in [0, 1) (0 = no EMA)"),
        (o.batch_size >= 1 and o.steps >= 1 and o.warmup >= 0, "optim.batch_size, steps must be >= 1, warmup >= 0"),
        (o.schedule in SCHEDULES, f"optim.schedule must be one of {', '.join(SCHEDULES)}"),
        (0 <= o.min_lr_ratio <= 1, "optim.min_lr_ratio must be in [0, 1]"),
        (r.device in DEVICES, f"run.device must be one of {', '.join(DEVICES)}, got {r.device!r}"),
        (r.seed >= 0, "run.seed must be >= 0"),
        (min(r.val_every, r.ckpt_every, r.log_every, r.num_workers) >= 0, "run.*_every and num_workers must be >= 0"),
        (r.keep_checkpoints >= 1, "run.keep_checkpoints must be >= 1"),
        (not (config.model.pretrained and config.model.init), "set either model.pretrained or model.init, not both"),
        (bool(config.model.arch), "model.arch is required (an architecture name, see `fvr models`)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if not d.packed and not d.clips:
        raise ConfigError("data.clips is empty: list training videos (or globs), or give data.packed")


def with_overrides(config: TrainConfig, *, steps: int | None = None, device: str | None = None) -> TrainConfig:
    """The CLI's --steps / --device on top of a loaded config (validated)."""
    new = config
    if steps is not None:
        new = replace(new, optim=replace(new.optim, steps=int(steps)))
    if device is not None:
        new = replace(new, run=replace(new.run, device=device))
    validate(new)
    return new


# ----------------------------------------------------------------------------------------------- writing


def config_to_toml(config: TrainConfig) -> str:
    """TOML text of ``config`` (paths already absolute), readable back with :func:`load_config`."""
    lines = [f"# fvr training config{f' (from {config.source})' if config.source else ''}"]
    for name in SECTIONS:
        section = getattr(config, name)
        lines.append(f"\n[{name}]")
        tables = []
        for f in fields(section):
            value = getattr(section, f.name)
            if isinstance(value, dict):
                tables.append((f.name, value))
            else:
                lines.append(f"{f.name} = {toml_value(value)}")
        for key, table in tables:  # sub-tables after the section's plain keys (TOML's rule)
            lines.append(f"\n[{name}.{key}]")
            lines.extend(f"{_toml_key(k)} = {toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else toml_value(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        raise ConfigError("TOML has no null: leave the key out instead")
    raise ConfigError(f"cannot write {value!r} into a TOML config")
