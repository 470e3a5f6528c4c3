"""The ``fvr`` commands: each parses its options, builds a typed config and calls one function of the library
(:mod:`fvr.run`, :mod:`fvr.inspect`, :mod:`fvr.bench`, :mod:`fvr.degrade`, :mod:`fvr.train`, :mod:`fvr.export`).
The settings of a restore run are the shared option groups of :mod:`fvr.cli.options`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from fvr.cli.app import app, err, out, require_ready, setup_logging
from fvr.cli.options import (
    COMPOSE,
    DETECTION,
    MODEL,
    RESTORE_GROUPS,
    SHARED_GROUPS,
    analysis_config,
    restore_config,
    with_options,
)
from fvr.cli.progress import StageBars, batch_progress, summary_table
from fvr.run.defaults import LIVE


@app.command()
@with_options(*RESTORE_GROUPS)
def restore(
    input: Annotated[Path | None, typer.Argument(help="Video file, a photo (.png/.jpg), or a folder of PNG/JPEG "
                                                      "frames (with --from-record: default, the recorded input).",
                                                 show_default=False)] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Output video (.mp4/.mkv/.mov/.webm), an "
                                                                      "image for a photo (.png/.jpg), or a folder "
                                                                      "for PNG frames (an existing folder, or a "
                                                                      "name ending in /).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y",
                                            help="Replace an existing output (default: refuse).")] = False,
    segment_frames: Annotated[int, typer.Option(min=1, help="Videos longer than this are restored in segments of "
                                                            "this many frames, with progress kept on disk (see "
                                                            "--resume).")] = 1500,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run of the same command: finished "
                                                          "segments are kept.")] = False,
    segments_per_process: Annotated[int, typer.Option(min=0, help="Segmented videos: restore this many segments in a "
                                                                  "fresh worker process, then start another, so "
                                                                  "memory cannot creep over hours of video (0 = all "
                                                                  "in this process).")] = 1,
    record: Annotated[bool, typer.Option("--record/--no-record", help="Write the provenance record OUT.fvr.json "
                                                                      "next to the output (docs/provenance.md).")]
    = True,
    record_identity: Annotated[int, typer.Option("--record-identity", min=0, help="The record measures each face's "
                                                                                  "identity similarity to the input "
                                                                                  "on every N-th frame of its track "
                                                                                  "(1 = every frame, 0 = never; "
                                                                                  "needs the metrics extra).")] = 10,
    change_map: Annotated[Path | None, typer.Option("--change-map", help="Also write a video of where and how much "
                                                                         "each frame was changed (black = "
                                                                         "untouched).")] = None,
    change_map_scale: Annotated[int, typer.Option("--change-map-scale", min=1, max=255,
                                                  help="Change (grey levels) drawn at full heat in the change map; "
                                                       "smaller shows faint changes brighter.")] = 64,
    sign_cert: Annotated[Path | None, typer.Option("--sign-cert", help="Sign the output with C2PA Content "
                                                                       "Credentials: the certificate chain (PEM; "
                                                                       "`fvr keygen` makes a test one). With "
                                                                       "--sign-key.")] = None,
    sign_key: Annotated[Path | None, typer.Option("--sign-key", help="The private key (PEM) of --sign-cert.")]
    = None,
    from_record: Annotated[Path | None, typer.Option("--from-record", help="Re-run the job an OUT.fvr.json "
                                                                           "record describes (its input, settings "
                                                                           "and model, checked by sha256); -o "
                                                                           "defaults to the recorded output.")]
    = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run report as JSON.")] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Restore every face of a video and write it with timing, audio and subtitles intact, and its provenance
    record."""
    from fvr.errors import ConfigError
    from fvr.provenance.credentials import SigningKey
    from fvr.provenance.restore import ProvenanceOptions, rerun_record, restore_with_provenance
    from fvr.run.changes import RecordOptions

    setup_logging(quiet)
    if (sign_cert is None) != (sign_key is None):
        raise ConfigError("signing needs both --sign-cert and --sign-key")
    signing = SigningKey(sign_cert, sign_key) if sign_cert is not None and sign_key is not None else None
    measure = RecordOptions(identity_every=record_identity, change_map=change_map, change_map_full=change_map_scale)
    provenance = ProvenanceOptions(record=record, measure=measure, signing=signing)
    with StageBars(err, enabled=not quiet and not as_json) as progress:
        if from_record is not None:
            _check_no_settings(options)
            result = rerun_record(from_record, output, input=input, progress=progress, overwrite=overwrite,
                                  options=provenance)
        else:
            if input is None or output is None:
                raise ConfigError("fvr restore needs INPUT and -o OUTPUT (or --from-record RECORD)")
            result = restore_with_provenance(input, output, restore_config(options), provenance,
                                             segment_frames=segment_frames, resume=resume, progress=progress,
                                             segments_per_process=segments_per_process, overwrite=overwrite)
    report = result.report
    if as_json:
        data = {k: v for k, v in asdict(report).items() if k != "changes"}
        out.print_json(json.dumps({**data, "fps": report.fps, "record": str(result.record_path or ""),
                                   "signed": result.signed, "reproduced": result.reproduced}))
        return
    if not quiet:
        err.print(
            f"[green]wrote[/] {escape(report.output)}: {report.frames} frames {report.width}x{report.height}, "
            f"{report.tracks} face track(s), model {escape(report.model)}, {report.fps:.1f} fps overall"
            + (", signed (C2PA)" if result.signed else ""), soft_wrap=True)
        if result.record_path is not None:
            err.print(f"record: {escape(str(result.record_path))}", soft_wrap=True, highlight=False)
    if result.reproduced is not None:
        if result.reproduced:
            err.print("reproduced: the output has the recorded bytes (sha256 "
                      f"{result.record['output'].get('sha256_unsigned') or result.record['output']['sha256']})",
                      soft_wrap=True, highlight=False)
        else:
            err.print("[yellow]not reproduced[/]: the output's bytes differ from the recorded ones (another machine, "
                      "device or library version?)", soft_wrap=True)


def _check_no_settings(options: dict[str, Any]) -> None:
    """--from-record takes every setting from the record: a restore setting given as well is a one-line error."""
    from fvr.errors import ConfigError

    defaults = {opt.name: opt.default for group in RESTORE_GROUPS for opt in group}
    if given := [name for name, value in options.items() if value != defaults[name]]:
        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(f"--from-record takes its settings from the record; {flag} was given too")


@app.command()
def keygen(
    folder: Annotated[Path, typer.Argument(help="Folder for cert.pem (the certificate chain) and key.pem (the "
                                                "private key, readable by you only).")],
    name: Annotated[str, typer.Option("--name", help="The signer's name in the certificate.")]
    = "fvr local test signer",
    days: Annotated[int, typer.Option("--days", min=1, help="Days the certificate stays valid.")] = 365,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y", help="Replace existing files.")] = False,
) -> None:
    """Make a local test certificate chain and key for signing outputs (--sign-cert/--sign-key); `fvr verify
    --trust DIR/cert.pem` trusts it. Not for publishing: it is trusted by no one else."""
    from fvr.provenance.credentials import keygen as make_keys

    files = make_keys(folder, name=name, days=days, overwrite=overwrite)
    out.print(f"wrote {escape(str(files.cert))} (certificate chain) and {escape(str(files.key))} (private key); "
              f"sign with --sign-cert {escape(str(files.cert))} --sign-key {escape(str(files.key))}",
              soft_wrap=True, highlight=False)


@app.command()
def verify(
    file: Annotated[Path, typer.Argument(help="A restored file (video or photo).")],
    trust: Annotated[list[Path] | None, typer.Option("--trust", help="A PEM certificate (chain) to trust as "
                                                                     "signer, repeatable (fvr keygen's "
                                                                     "cert.pem, or your organisation's CA).")]
    = None,
    record: Annotated[Path | None, typer.Option("--record", help="The record to check against (default: "
                                                                 "FILE.fvr.json when present).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was found as JSON.")] = False,
) -> None:
    """Check a restored file's Content Credentials (signature, hash binding, trusted signer) and provenance record,
    and print its history. Exits 5 when the file was changed, its signer is not trusted, or nothing can be
    verified."""
    from fvr.provenance.verify import verify_output

    report = verify_output(file, trust or [], record)
    if as_json:
        creds = report.credentials
        out.print_json(json.dumps({
            "file": str(report.path), "ok": report.ok, "problems": report.problems, "notes": report.notes,
            "credentials": asdict(creds) if creds is not None else None,
            "record": str(report.record_file) if report.record_file else None,
            "record_matches": report.record_matches, "embedded": report.embedded}, default=str))
    else:
        _print_history(report)
    report.raise_for_problems()


def _print_history(report: Any) -> None:
    """The history a file's credentials and record tell, for a person."""
    creds = report.credentials
    if creds is not None and creds.state != "none":
        out.print(f"[bold]Content Credentials[/]: {creds.state}; signed by {escape(str(creds.signer))}"
                  + (f" at {creds.signed_at}" if creds.signed_at else ""), highlight=False, soft_wrap=True)
        for ing in creds.ingredients:
            out.print(f"  ingredient: {escape(str(ing.get('title')))} ({ing.get('relationship')}), sha256 "
                      f"{ing.get('sha256')}", highlight=False, soft_wrap=True)
        for action in creds.actions:
            agent = action.get("softwareAgent") or {}
            who = f" by {agent.get('name')} {agent.get('version', '')}".rstrip() if isinstance(agent, dict) and agent \
                else ""
            what = f": {action['description']}" if action.get("description") else ""
            out.print(f"  action: {escape(str(action.get('action')))}{escape(who)}{escape(what)}", highlight=False,
                      soft_wrap=True)
            if action.get("digitalSourceType"):
                out.print(f"    source type: {escape(str(action['digitalSourceType']))}", highlight=False,
                          soft_wrap=True)
    elif creds is not None:
        out.print("Content Credentials: none", highlight=False)
    data = report.record or report.embedded
    if data is not None:
        where = f"record {report.record_file}" if report.record is not None else "container tags"
        model = data.get("model", {})
        inp = data.get("input", {})
        out.print(f"[bold]fvr {escape(str(data.get('fvr', {}).get('version')))}[/] ({escape(where)}): "
                  f"{escape(str(inp.get('name')))} (sha256 {inp.get('sha256')}) restored with "
                  f"{escape(str(model.get('reference')))}", highlight=False, soft_wrap=True)
        for track in data.get("tracks", []):
            ident = "" if track.get("identity_mean") is None else \
                f", identity to input mean {track['identity_mean']:.3f} (lowest {track['identity_min']:.3f})"
            out.print(f"  face {track['id']}: frames {track['first']}-{track['last']}, region {track['region']}, "
                      f"change mean {track['change_mean']:.1f} max {track['change_max']}{ident}", highlight=False,
                      soft_wrap=True)
    if report.record_matches is not None:
        out.print(f"record hash: {'matches' if report.record_matches else 'DIFFERS'}", highlight=False)
    for note in report.notes:
        out.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    if report.ok:
        out.print("[green]verified[/]")


@app.command()
@with_options(DETECTION)
def info(
    input: Annotated[Path, typer.Argument(help="Video file or image-sequence folder.")],
    tracks: Annotated[bool, typer.Option("--tracks/--no-tracks", help="Detect and track faces (slower).")] = True,
    contact_sheet: Annotated[Path | None, typer.Option("--contact-sheet",
                                                       help="Write a PNG of each track's faces.")] = None,
    fps: Annotated[float | None, typer.Option(help="Frame rate for image-sequence input.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Streams, frame rate, duration and the face tracks found (IDs to use with `restore --faces`)."""
    from fvr.inspect import contact_sheet as write_sheet
    from fvr.io import MediaSource
    from fvr.run.pipeline import analyse_source

    setup_logging(as_json)
    analysis = analysis_config(options)  # validated as it is built
    with MediaSource(input, sequence_fps=fps) as source:
        vi = source.info
        found = None
        if tracks or contact_sheet:
            with StageBars(err, enabled=not as_json) as progress:
                found = analyse_source(source, analysis.detector, analysis.tracker, progress=progress)
        if contact_sheet and found is not None:
            write_sheet(source, found, contact_sheet)
    data: dict[str, Any] = {
        "path": vi.path, "width": vi.width, "height": vi.height, "fps": float(vi.fps), "time_base": str(vi.time_base),
        "frames": found.num_frames if found else vi.num_frames, "duration": vi.duration, "rotation": vi.rotation,
        "codec": vi.codec, "pix_fmt": vi.pix_fmt, "streams": [asdict(s) for s in vi.streams],
    }
    if found is not None:
        data["scene_cuts"] = found.scene_cuts
        data["tracks"] = [
            {"id": t.id, "start": t.start, "end": t.end - 1, "frames": len(t.frames),
             "detected": int(t.detected.sum()), "size_px": round(float(t.size), 1)}
            for t in found.tracks
        ]
    if contact_sheet:
        data["contact_sheet"] = str(contact_sheet)
    if as_json:
        out.print_json(json.dumps(data))
        return
    out.print(f"[bold]{vi.path}[/]  {vi.width}x{vi.height}  {float(vi.fps):.3f} fps  {vi.duration:.2f} s  "
              f"{data['frames']} frames" + (f"  rotation {vi.rotation}°" if vi.rotation else ""))
    table = Table("stream", "type", "codec", "details")
    for s in vi.streams:
        table.add_row(str(s.index), s.type, s.codec, s.details)
    out.print(table)
    if found is not None:
        tt = Table("track", "first", "last", "frames", "detected", "face px", title="face tracks")
        for t in data["tracks"]:
            tt.add_row(*(str(t[k]) for k in ("id", "start", "end", "frames", "detected", "size_px")))
        out.print(tt)
        out.print(f"scene cuts at frames: {found.scene_cuts or 'none'}")
    if contact_sheet:
        out.print(f"contact sheet: {contact_sheet}")


_MODELS_WIDE = 120
"""Terminal columns from which `fvr models` shows the descriptions inside its table."""


@app.command()
def models(
    all_models: Annotated[bool, typer.Option("--all", "-a", help="Also list the registered models that do not "
                                             "run as installed (no weights yet, or an extra not installed), "
                                             "and what each needs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print every registered model as JSON, with \"ready\" "
                                          "and, for the others, \"needs\" (with or without --all).")] = False,
) -> None:
    """List the restorers that run as installed; --all lists every registered one and what the others need."""
    from fvr.models import builtin_registry
    from fvr.models.registry import NEEDS_TRAINING

    registry = builtin_registry()
    on = {d: registry.default_for(d, with_stabiliser=False) for d in ("cpu", "cuda")}
    entries = registry.entries()
    rows: list[dict[str, Any]] = [
        {"name": e.spec.name, "kind": e.spec.kind, "temporal": e.spec.temporal, "causal": e.spec.causal,
         "crop_size": e.spec.crop_size, "past": e.spec.past, "future": e.spec.future,
         "default": [d for d in on if on[d] == e.spec.name], "default_with": e.default_with,
         "ready": e.ready, "needs": e.needs or None, "weights": e.ready,
         "tags": list(e.spec.tags),
         "description": e.spec.description}
        for e in entries
    ]
    if as_json:  # scripts get every model, ready or not
        out.print_json(json.dumps(rows))
        return
    shown = [(e, r) for e, r in zip(entries, rows) if all_models or e.ready]
    # the short columns never wrap; the descriptions need room, so a narrow terminal gets them one per line below
    wide = out.width >= _MODELS_WIDE
    # causality reads off the context column (+0 future frames = causal)
    headers = ("name", "kind", "temporal", "crop", "context", *(("ready",) if all_models else ()), "default")
    table = Table(*(Column(h, no_wrap=True) for h in headers), box=None, padding=(0, 1, 0, 0))
    if wide:
        table.add_column("description", ratio=1)
    for e, r in shown:
        ready = "yes" if e.ready else "train" if e.needs_training else "extra"
        cells = [r["name"], r["kind"], r["temporal"], str(r["crop_size"]), f"-{r['past']}/+{r['future']}",
                 *((ready,) if all_models else ()),
                 ",".join(r["default"]) + (f" (+{r['default_with']})" if r["default"] and r["default_with"] else "")]
        table.add_row(*(escape(c) for c in cells), *([escape(r["description"])] if wide else []))
    out.print(table)
    if not wide:
        for _, r in shown:
            out.print(f"[bold]{escape(r['name'])}[/bold]: {escape(r['description'])}", highlight=False)
    not_ready = [e for e in entries if not e.ready]
    train = [e for e in not_ready if e.needs_training]
    extras = [e for e in not_ready if not e.needs_training]
    if all_models:
        legend = f"ready: yes = runs as installed; train = needs {NEEDS_TRAINING}"
        out.print(escape(legend + ("; extra = needs an optional extra:" if extras else "")), highlight=False)
        for e in extras:
            out.print(escape(f"  {e.spec.name}: needs {e.needs}"), highlight=False)
    elif not_ready:
        what = " or ".join(w for w, n in (("weights (fvr train)", train), ("an extra", extras)) if n)
        out.print(f"{len(not_ready)} more need {what}: fvr models --all", highlight=False)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo files.")] = Path("fvr-demo"),
    model: Annotated[str | None, typer.Option("--model", "-m", help="Restorer name.")] = None,
    frames: Annotated[int, typer.Option(min=8, max=2000, help="Clip length in frames.")] = 50,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Build a degraded moving-face clip from a public-domain photo, restore it, and write a comparison."""
    from fvr.demo import run_demo
    from fvr.run.config import RestoreConfig

    setup_logging(quiet)
    with StageBars(err, enabled=not quiet) as progress:
        result = run_demo(out_dir, frames=frames, config=RestoreConfig(model=model), progress=progress)
    out.print(f"input (degraded)  {result.input_video}")
    out.print(f"restored          {result.restored_video}  (model {result.report.model}, "
              f"{result.report.tracks} track(s), {result.report.fps:.1f} fps)")
    out.print(f"bicubic input     {result.bicubic_video}  (encoded like the restored video)")
    out.print(f"comparison        {result.comparison_video}  and  {result.comparison_png}")
    out.print(f"PSNR vs clean frames (both encoded alike): whole frame bicubic {result.psnr_bicubic:.2f} dB, "
              f"restored {result.psnr_restored:.2f} dB; face bicubic {result.psnr_face_bicubic:.2f} dB, "
              f"restored {result.psnr_face_restored:.2f} dB")


@app.command()
def bench(
    data: Annotated[Path | None, typer.Option("--data", help="Folder of high-quality clips (ground truth).")] = None,
    real: Annotated[Path | None, typer.Option("--real",
                                              help="Folder of real low-quality clips (no ground truth).")] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated: bicubic, classical, realesrgan, realesrgan-frame, "
                                         "or any name from `fvr models`.")] = "bicubic,classical,realesrgan",
    preset: Annotated[str, typer.Option(help="Degradation preset (see `fvr degrade`).")] = "vfhq",
    seed: Annotated[int, typer.Option(help="Degradation seed (each clip derives its own from it).")] = 0,
    out_dir: Annotated[Path, typer.Option("--out", "-o",
                                          help="Folder for results.json/md and the plots.")] = Path("bench-out"),
    frames: Annotated[int | None, typer.Option(min=5, help="Use only the first N frames of each clip.")] = None,
    clips: Annotated[str, typer.Option(help="Glob on clip file names (comma-separated globs for several).")] = "*",
    upscale: Annotated[int | None, typer.Option(
        help="Output scale (default: the preset's, or auto for --real).")] = None,
    metrics: Annotated[str | None, typer.Option(help="Comma-separated metric subset (default: all).")] = None,
    keep_outputs: Annotated[bool, typer.Option("--keep-outputs", help="Keep each method's output frames.")] = False,
    cache: Annotated[Path | None, typer.Option(help="Degradation cache folder (default: OUT/cache).")] = None,
    grid_clips: Annotated[str, typer.Option(
        help="Comma-separated globs: clips whose face crops go into crops.png.")] = "*",
    mask_coverage: Annotated[float, typer.Option(
        min=0.25, max=2.0,
        help="Pasted face region of every method (as fvr restore --mask-coverage; default 1.6).")] = 1.6,
    detect_every: Annotated[int, typer.Option(
        min=1, help="Every method's restore detects faces every k frames (as fvr restore --detect-every, whose "
                    "default is 5); default 1, every frame. The evaluation crops always come from detection on every "
                    "frame.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
) -> None:
    """Benchmark restorers: degrade clips, restore them with each method, measure, write tables and plots."""
    from fvr.bench import BenchConfig, run_bench
    from fvr.bench.report import summary_rows
    from fvr.errors import ConfigError

    folder = data if data is not None else real
    if folder is None or (data is not None and real is not None):
        raise ConfigError("give exactly one of --data DIR (clips with ground truth) or --real DIR (real footage)")
    # realesrgan-frame: Real-ESRGAN as the background, which needs what the realesrgan model needs
    require_ready("realesrgan" if m.strip() == "realesrgan-frame" else m.strip() for m in methods.split(","))
    setup_logging(quiet)
    config = BenchConfig(
        data=folder, out=out_dir, methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        preset=preset, seed=seed, frames=frames, clips=clips, real=real is not None, upscale=upscale,
        metrics=tuple(m.strip() for m in metrics.split(",")) if metrics else None, keep_outputs=keep_outputs,
        cache=cache, grid_clips=grid_clips, mask_coverage=mask_coverage, detect_every=detect_every,
    )
    with StageBars(err, enabled=not quiet, rate="", width=48, steps=True) as progress:
        results = run_bench(config, progress=progress)
    if not quiet:
        header, rows = summary_rows(results)
        table = Table(*header, title="mean over clips (all metrics in results.md)")
        for row in rows:
            table.add_row(*row)
        out.print(table)
        out.print(f"wrote {out_dir / 'results.json'}, {out_dir / 'results.md'} and plots in {out_dir} "
                  f"({results['seconds'] / 60:.1f} min)")


@app.command()
def degrade(
    input: Annotated[Path, typer.Argument(help="Clean video file, or a folder of PNG/JPEG frames.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Degraded video (.mp4/.mkv/.mov); its record "
                                         "goes to OUTPUT.json.")],
    preset: Annotated[str, typer.Option(help="vfhq (VFHQ-Test protocol), light, heavy, jpeg, motion-blur, "
                                        "old-film.")] = "vfhq",
    seed: Annotated[int | None, typer.Option(min=0, help="Random seed (default 0, or the --params file's).")] = None,
    frames: Annotated[int | None, typer.Option(min=1, help="Degrade only the first N frames.")] = None,
    scale: Annotated[int | None, typer.Option(min=1, max=16, help="Override the down-sampling factor.")] = None,
    crf: Annotated[int | None, typer.Option(min=0, max=51, help="Override the x264 CRF of the codec pass.")] = None,
    blur_sigma: Annotated[float | None, typer.Option(
        "--blur-sigma", min=0.0, help="Override the blur: isotropic Gaussian sigma (0: none).")] = None,
    noise: Annotated[float | None, typer.Option(min=0.0, max=255.0,
                                                   help="Override both noise sigmas (0-255 scale).")] = None,
    params_file: Annotated[Path | None, typer.Option("--params", help="Reproduce a run: a sidecar (.json) or "
                                                        "params JSON; replaces --preset.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record (the sidecar) as JSON.")] = False,
) -> None:
    """Degrade a clean clip into a low-quality input (blur, noise, down-sampling, codec), reproducibly."""
    from fvr.degrade import degrade_video, resolve_params

    setup_logging(quiet)
    overrides = {k: v for k, v in (("scale", scale), ("crf", crf), ("blur_sigma", blur_sigma), ("noise", noise))
                 if v is not None}
    run = resolve_params(preset, seed, params_file=params_file, max_frames=frames, **overrides)
    with StageBars(err, enabled=not quiet and not as_json) as progress:
        record = degrade_video(input, output, run.params, run.seed, max_frames=run.max_frames, progress=progress)
    if as_json:
        out.print_json(json.dumps(record.to_dict()))
    elif not quiet:
        w, h = record.output_size
        err.print(f"[green]wrote[/] {escape(str(output))}: {record.frames} frames {w}x{h}, "
                  f"{escape(record.preset)} seed {record.seed}: {escape(record.summary)}", soft_wrap=True)


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training config (.toml; .yaml with PyYAML). "
                                         "See docs/train.md.")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in run.out from its latest "
                                         "checkpoint, exactly.")] = False,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (overrides run.device).")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Total optimisation steps (overrides "
                                                 "optim.steps).")] = None,
    pack: Annotated[Path | None, typer.Option("--pack", help="Only build the clip cache and pack it into this "
                                                 ".npz (to train on a machine without PyAV); no training.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a learned restorer: cached face crops, on-the-fly degradation, checkpoints, validation, export."""
    from fvr.train import (
        load_config,
        pack_config_data,
        resolve_crop_size,
        with_overrides,
    )
    from fvr.train import train as run_training

    setup_logging(quiet)
    cfg = with_overrides(load_config(config), steps=steps, device=device)
    if pack is not None:
        with StageBars(err, enabled=not quiet, rate="it/s", width=22) as progress:
            path = pack_config_data(cfg, resolve_crop_size(cfg), pack,
                                    progress=lambda stage, done, total: progress(stage, done, total, {}))
        size = path.stat().st_size / 2**20
        out.print(f"packed the cached clips into {escape(str(path))} ({size:.1f} MiB); train from it with "
                  f"data.packed = \"{escape(str(path))}\"")
        return
    with StageBars(err, enabled=not quiet, rate="it/s", width=22) as progress:
        result = run_training(cfg, progress=progress, resume=resume)
    if not quiet:
        val = ", ".join(f"{k.removeprefix('val/')} {v:.4g}" for k, v in result.val.items())
        out.print(f"trained {result.steps} steps on {result.device} in {result.seconds / 60:.1f} min"
                  f"{f' (resumed at {result.start_step})' if result.start_step else ''}; "
                  f"{f'validation: {val}; ' if val else ''}weights: {escape(str(result.weights))}")


@app.command()
def export(
    weights: Annotated[Path, typer.Argument(help="fvr weights file (.safetensors, e.g. from fvr train).")],
    onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write.")],
    frames: Annotated[int | None, typer.Option(min=1, help="T, frames per input clip (default: the "
                                                  "architecture's past + 1 + future).")] = None,
    size: Annotated[int | None, typer.Option(min=16, help="S, crop side (default: the trained crop "
                                                "size).")] = None,
) -> None:
    """Export a feed-forward network to ONNX (opset 17, dynamic batch) and check it with onnxruntime."""
    from fvr.export import export_onnx

    result = export_onnx(weights, onnx, frames=frames, size=size)
    inputs = "x, prior" if result.uses_prior else "x"
    out.print(f"wrote {escape(str(result.path))}: {result.arch}, inputs {inputs} (B,{result.frames},3,"
              f"{result.size},{result.size}) RGB [0,1]; onnxruntime max |diff| vs torch = {result.max_abs_diff:.2e}")


@app.command()
@with_options(*SHARED_GROUPS)
def batch(
    inputs: Annotated[list[Path], typer.Argument(help="Video files, and folders of videos (the video files directly "
                                                      "inside).")],
    out_dir: Annotated[Path, typer.Option("--output", "-o", help="Output folder: OUT_DIR/NAME.SUFFIX per video, and "
                                                                 "batch-summary.json.")],
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="A running Ray cluster: auto, or HOST:PORT "
                                                                          "of its head. Default: a local cluster of "
                                                                          "--workers CPUs on this machine.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (Ray actors) working at once, over the whole "
                                                     "cluster.")] = 2,
    threads: Annotated[int | None, typer.Option(min=1, help="torch/OpenCV threads per worker (default: the node's "
                                                            "cores / its workers).")] = None,
    segment_frames: Annotated[int, typer.Option(min=1, help="Videos are restored in segments of this many frames "
                                                            "(the unit of parallel work and of --resume), as `fvr "
                                                            "restore --segment-frames`.")] = 1500,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted batch: finished videos and "
                                                          "finished segments are kept.")] = False,
    segments_per_worker: Annotated[int, typer.Option(min=0, help="Replace a worker by a fresh process after it "
                                                                 "restored this many segments, so memory cannot "
                                                                 "creep over a long batch (0 = keep every worker for "
                                                                 "the whole batch).")] = 4,
    record: Annotated[bool, typer.Option("--record/--no-record", help="Write each output's provenance record "
                                                                      "OUT.fvr.json (docs/provenance.md).")] = True,
    record_identity: Annotated[int, typer.Option("--record-identity", min=0, help="As fvr restore: identity "
                                                                                  "measured on every N-th frame of "
                                                                                  "each face track (0 = never).")]
    = 10,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars and no table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the batch summary as JSON.")] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Restore many videos (and long ones, in segments) in parallel on Ray (the "batch" extra), with every setting
    of `fvr restore`. Exits 1 when any video failed (the others are still written); OUT_DIR/batch-summary.json
    lists every video."""
    from fvr.provenance.restore import BatchRecords
    from fvr.run.batch import SUMMARY_NAME, BatchFailed, run_batch

    require_ready([options["model"]])
    setup_logging(quiet or as_json)
    config = restore_config(options)
    hook = BatchRecords(config, record_identity) if record else None
    with batch_progress(err, enabled=not quiet and not as_json) as progress:
        summary = run_batch(inputs, out_dir, config, workers=workers, ray_address=ray_address,
                            segment_frames=segment_frames, resume=resume, threads=threads, progress=progress,
                            segments_per_worker=segments_per_worker, hook=hook)
    if as_json:
        out.print_json(summary.to_json())
    elif not quiet:
        out.print(summary_table(summary))
        out.print(f"wrote {escape(str(out_dir / SUMMARY_NAME))}")
    if summary.failed:  # one line and exit code 1 through main(), like every other error
        raise BatchFailed(summary)


@app.command()
@with_options(MODEL, COMPOSE, DETECTION, defaults=asdict(LIVE))
def live(
    source: Annotated[str, typer.Argument(help="A camera (0, 1, ... or /dev/videoN), a stream URL (rtsp://, "
                                               "http://, udp://, ...) or a video file.")],
    output: Annotated[str, typer.Option("--output", "-o",
                                        help="Where restored frames go: a video file (.mp4, .mkv, ...), "
                                             "udp://HOST:PORT (MPEG-TS), mjpeg:PORT (a preview on "
                                             "http://127.0.0.1:PORT/), window, virtualcam, or null.")] = "mjpeg:8080",
    realtime: Annotated[bool, typer.Option("--realtime",
                                           help="A file source plays at its own frame rate, like a camera (frames "
                                                "the restorer cannot keep up with are dropped); without it a file "
                                                "is read as fast as it is restored, with no drop.")] = False,
    stats: Annotated[Path | None, typer.Option(
        "--stats", help="Write the session's figures as JSON (frames_in, frames_out, dropped, latency_ms_p50/p95, "
                        "...).")] = None,
    side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Show input | restored.")] = False,
    overlay: Annotated[bool, typer.Option("--overlay", help="Draw fps and latency on the output.")] = False,
    adapt: Annotated[bool, typer.Option("--adapt/--no-adapt",
                                        help="When frames are dropped, detect less often and on smaller frames.")]
    = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y", help="Replace an existing output file.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No running figures.")] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Restore faces live, one causal pass: a camera or stream to a virtual camera, a window, a browser preview, a
    network stream or a file. Ctrl-C ends the session; a file keeps every frame written."""
    from fvr.io.live import open_live_sink, open_live_source
    from fvr.models import builtin_registry
    from fvr.run.build import build_restorer
    from fvr.run.live import LiveAssembler, check_causal, output_size, run_live, write_stats

    setup_logging(quiet)
    config = restore_config(options)  # the encoder and input groups keep their defaults: a live sink encodes its own
    require_ready([config.model])
    restorer = build_restorer(config, builtin_registry())
    check_causal(restorer, config)
    src = open_live_source(source, realtime=realtime)
    try:
        info = src.info
        sink = open_live_sink(output, info, output_size(info.width, info.height, config.upscale, side_by_side),
                              overwrite=overwrite)
    except BaseException:
        src.close()
        raise
    url = getattr(sink, "url", None)
    if url and not quiet:
        err.print(f"preview: {url}")
    assembler = LiveAssembler(restorer, config, float(info.fps or 25))

    def show(s: Any) -> None:
        err.print(f"[dim]{s.frames_out}/{s.frames_in} frames, {s.dropped} dropped, {s.fps_out:.1f} fps, latency "
                  f"p50 {s.latency_ms_p50:.0f} ms p95 {s.latency_ms_p95:.0f} ms[/]", highlight=False)

    result = run_live(src, sink, assembler, adapt=adapt, side_by_side=side_by_side, overlay=overlay,
                      on_stats=None if quiet else show)
    if stats is not None:
        write_stats(result, stats)
    if not quiet:
        ended = f"stopped ({result.stopped_by})" if result.stopped_by else "source ended"
        err.print(f"{ended}: {result.frames_out} of {result.frames_in} frames restored ({result.dropped} dropped), "
                  f"{result.fps_out:.1f} fps, latency p50 {result.latency_ms_p50:.0f} ms, "
                  f"p95 {result.latency_ms_p95:.0f} ms")


@app.command()
def ui(
    host: Annotated[str, typer.Option("--host", help="Address to serve on: 127.0.0.1 (default) is this machine "
                                                     "only; 0.0.0.0 opens it to the network (use --auth).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 7860,
    auth: Annotated[str | None, typer.Option("--auth", help="USER:PASS required to open the page.")] = None,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001,
                                                 help="Largest upload; bigger ones are refused before they are "
                                                      "stored.")] = 2048.0,
    max_seconds: Annotated[float, typer.Option("--max-seconds", min=0.04, help="Longest video accepted.")] = 3600.0,
    max_side: Annotated[int, typer.Option("--max-side", min=16, help="Largest frame side accepted (pixels).")]
    = 4096,
) -> None:
    """A local web page: upload a video or photo, choose faces and settings, preview a frame before/after, restore
    and download. Needs the extra fvr[ui]; works offline. Ctrl-C stops it and deletes its uploads."""
    from fvr.errors import ConfigError
    from fvr.ui.app import UiConfig, launch
    from fvr.ui.session import UiLimits

    login = None
    if auth is not None:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise ConfigError("--auth wants USER:PASS")
        login = (user, password)
    config = UiConfig(host, port, login, UiLimits(max_upload_mb, max_seconds, max_side))
    launch(config, on_ready=lambda url: err.print(f"fvr ui: {url} (Ctrl-C stops it)"))
