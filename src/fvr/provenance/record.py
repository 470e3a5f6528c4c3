"""The provenance record of a restored file (``OUT.fvr.json``): what went in (path, size, sha256, streams), which
fvr, model and weights (sha256, licence), every setting, what changed per face track and frame (region, mean and
largest change, identity similarity to the input face), what came out (sha256) and how long it took.

The record is plain JSON, written atomically next to the output; :func:`load_record` reads it back and
:func:`record_config` turns its settings into the :class:`~fvr.run.config.RestoreConfig` that re-runs the job.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fvr import installed_version
from fvr.errors import ConfigError, InputError, OutputError, reason
from fvr.io import VideoInfo
from fvr.models import ModelRegistry
from fvr.models.learned import shipped_weights
from fvr.models.reference import ModelRef
from fvr.models.registry import resolve_device
from fvr.run.build import model_reference
from fvr.run.config import RestoreConfig, config_from_dict, config_to_dict

FORMAT = "fvr-provenance-1"
METADATA_KEY = "fvr_provenance"
"""The container tag (MP4/MOV/MKV) holding the record's header: input, fvr, model and settings."""
SHIPPED_LICENCE = ("Apache-2.0 (fvr's own weights, trained on permissively licensed clips only; model card: "
                   "docs/model-cards/{name}.md)")
_CHUNK = 1 << 20


def record_path(output: str | Path) -> Path:
    """The record of ``output``: ``OUT.fvr.json`` next to it (a folder output ``frames/`` -> ``frames.fvr.json``)."""
    out = Path(output)
    return out.with_name(out.name + ".fvr.json")


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes; of a folder (a PNG sequence): of the lines "NAME SHA256" of its files,
    sorted by name. One-line InputError when it cannot be read."""
    p = Path(path)
    try:
        if p.is_dir():
            lines = "".join(f"{f.name} {file_sha256(f)}\n" for f in sorted(p.iterdir()) if f.is_file())
            return hashlib.sha256(lines.encode()).hexdigest()
        digest = hashlib.sha256()
        with open(p, "rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
        return digest.hexdigest()
    except OSError as exc:
        raise InputError(f"cannot read {p}: {reason(exc)}") from None


def file_size(path: Path) -> int:
    """Bytes of a file, or of the files of a folder."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return path.stat().st_size


def media_summary(info: VideoInfo) -> dict[str, Any]:
    """The stream summary of a probed input."""
    return {"width": info.width, "height": info.height, "fps": str(info.fps), "frames": info.num_frames,
            "duration": round(info.duration, 3), "codec": info.codec, "pix_fmt": info.pix_fmt,
            "rotation": info.rotation, "streams": [asdict(s) for s in info.streams]}


def input_entry(path: Path, info: VideoInfo) -> dict[str, Any]:
    """The record's ``input``: path, name, size, sha256 and stream summary."""
    return {"path": str(path.resolve()), "name": path.name, "size": file_size(path), "sha256": file_sha256(path),
            **media_summary(info)}


def model_entry(config: RestoreConfig, registry: ModelRegistry, name: str) -> dict[str, Any]:
    """The record's ``model``: the reference the run resolved (the device's default when none was given), the
    restorer's name, kind and tags, and every weight file it loads with its sha256 and licence."""
    device = resolve_device(config.device, "--device")
    reference = model_reference(config, registry)
    ref = ModelRef.parse(reference)
    files = [weight_entry(Path(ref.model), None) if ref.is_file else _shipped(ref.model)]
    for stabiliser in (ref.stabiliser, config.stabilise):
        if stabiliser and stabiliser.endswith(".safetensors"):
            files.append(weight_entry(Path(stabiliser), None))
        elif stabiliser == "learned":
            files.append(_shipped("stabiliser"))
    entry: dict[str, Any] = {"reference": reference, "name": name, "device": device,
                             "weights": [f for f in files if f is not None]}
    base = ref.model if not ref.is_file else None
    if base is not None and base in registry.names():
        spec = registry.spec(base)
        entry.update(kind=spec.kind, tags=list(spec.tags))
    return entry


def _shipped(name: str) -> dict[str, Any] | None:
    path = shipped_weights(name)
    return weight_entry(path, SHIPPED_LICENCE.format(name=name)) if path is not None else None


def weight_entry(path: Path, licence: str | None) -> dict[str, Any]:
    """One weight file: name, sha256 and licence (a user's own file: "as given by its owner")."""
    return {"file": path.name, "sha256": file_sha256(path),
            "licence": licence or "not known to fvr (a file given by the user)"}


def environment() -> dict[str, str]:
    """fvr's version and the software it ran on (a bit-identical re-run needs the same)."""
    import av
    import cv2
    import numpy
    import torch

    return {"version": installed_version(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "opencv": cv2.__version__, "pyav": av.__version__,
            "platform": platform.platform(), "machine": platform.machine()}


def record_header(input_path: Path, info: VideoInfo, config: RestoreConfig, model: Mapping[str, Any]
                  ) -> dict[str, Any]:
    """What is known before the output exists: format, creation time, fvr, input, model and settings (the part
    embedded in the output's container tags). The settings name the model the run resolved (the device's default
    when none was given), so that a re-run builds the same one anywhere."""
    settings = config_to_dict(config)
    settings["model"] = model["reference"]
    return {"format": FORMAT, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "fvr": environment(), "input": input_entry(input_path, info), "model": dict(model),
            "settings": settings}


def embedded_header(header: Mapping[str, Any]) -> dict[str, str]:
    """The container tags of an output: the record header without its creation time (a re-run must write the same
    bytes) and the input's stream list, compact JSON."""
    slim = {k: v for k, v in header.items() if k != "created"}
    slim["input"] = {k: v for k, v in header["input"].items() if k != "streams"}
    return {METADATA_KEY: json.dumps(slim, separators=(",", ":"), sort_keys=True, default=str)}


def write_record(record: Mapping[str, Any], path: Path) -> Path:
    """Write ``record`` as indented JSON to ``path`` atomically (temp file, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record, indent=1, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write the record {path}: {reason(exc)}") from None
    return path


def load_record(path: str | Path) -> dict[str, Any]:
    """A record written by :func:`write_record`; one-line InputError when it is missing or not a record."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as exc:
        raise InputError(f"cannot read the record {p}: {reason(exc)}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{p} is not an fvr record: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{p} is not an fvr provenance record (no \"format\": \"{FORMAT}\")")
    return data


def record_config(record: Mapping[str, Any]) -> RestoreConfig:
    """The settings of a record as the config that re-runs its job, the model pinned to the one the run resolved
    (a record of a run with no --model must not pick another default on another device)."""
    try:
        settings = dict(record["settings"])
        model = record["model"]["reference"]
    except (KeyError, TypeError):
        raise InputError("the record has no settings or model: not a complete fvr record") from None
    if settings.get("model") is None:
        settings["model"] = model
    return config_from_dict(settings)


def check_weights(record: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """One-line ConfigError when the weights this installation loads differ from the record's."""
    was = {w["file"]: w["sha256"] for w in record["model"].get("weights", [])}
    now = {w["file"]: w["sha256"] for w in current.get("weights", [])}
    for name, digest in was.items():
        if now.get(name) != digest:
            raise ConfigError(f"the weights {name} differ from the record's (sha256 {digest[:12]}..., here "
                              f"{(now.get(name) or 'missing')[:12]}...): the output cannot be reproduced")
