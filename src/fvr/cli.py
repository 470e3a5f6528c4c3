"""The ``fvr`` command line: a thin layer over :mod:`fvr.pipeline`, :mod:`fvr.inspect` and :mod:`fvr.demo`.

Every user-fixable failure ends as one line on stderr and a non-zero exit code; never a traceback (set
``FVR_DEBUG=1`` to see one).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from typer.core import TyperGroup

from fvr.errors import ConfigError, FvrError


class _HelpFormatter(typer.Context.formatter_class):  # type: ignore[misc,name-defined]
    """click's help formatter, except that a line never breaks at a hyphen: `--segment-frames` and
    docs/external-models.md stay whole (and copyable) at any terminal width."""

    _HYPHEN = "\u2011"  # a non-breaking hyphen while wrapping, a plain one in the output

    def _unprotect(self, start: int) -> None:
        self.buffer[start:] = [part.replace(self._HYPHEN, "-") for part in self.buffer[start:]]

    def write_dl(self, rows: Iterable[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        start = len(self.buffer)
        super().write_dl([(a, b.replace("-", self._HYPHEN)) for a, b in rows], col_max, col_spacing)
        self._unprotect(start)

    def write_text(self, text: str) -> None:
        start = len(self.buffer)
        super().write_text(text.replace("-", self._HYPHEN))
        self._unprotect(start)


class _Context(typer.Context):  # typer's click: recent typer vendors a copy of click of its own
    formatter_class = _HelpFormatter


class _Commands(TyperGroup):
    """fvr's command group: help through :class:`_HelpFormatter`, and `fvr --help` lists each command with its
    first sentence in full, wrapped to the terminal (click cuts it with "..." after a few words)."""

    context_class = _Context

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            command.context_class = _Context
        return command

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# rich_markup_mode=None: click's plain help, wrapped to the terminal's width with nothing cut off ("…"), and help
# text shown as written (rich markup would swallow "[spandrel]" in fvr[spandrel])
app = typer.Typer(
    name="fvr",
    help="Face video restoration: sharp, identity-preserving, temporally stable faces in real videos.",
    cls=_Commands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
err = Console(stderr=True)
out = Console()


def fvr_version() -> str:
    """The installed distribution's version (importlib.metadata), else the package's ``__version__``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fvr")
    except PackageNotFoundError:
        import fvr

        return getattr(fvr, "__version__", "unknown")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"fvr {fvr_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print fvr's version and exit.")] = False,
) -> None:
    pass


class _RichProgress:
    """Adapts the pipeline's progress(stage, done, total) callback to a rich progress bar with fps and ETA."""

    LABELS = {"analyse": "finding faces", "restore": "restoring"}

    def __init__(self, enabled: bool):
        self.progress = Progress(
            TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:>6.1f} fps"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=err, disable=not enabled, transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(self.LABELS.get(stage, stage), total=total or None, fps=0.0)
        task_id = self.tasks[stage]
        task = self.progress.tasks[task_id]
        if total and done > total:
            total = done
        elapsed = task.elapsed or 0.0
        self.progress.update(task_id, completed=done, total=total or None, fps=done / elapsed if elapsed else 0.0)

    def __enter__(self) -> _RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.ERROR if quiet else logging.WARNING, format="%(message)s", force=True,
        handlers=[RichHandler(console=err, show_time=False, show_path=False, markup=False)],
    )


def _model_options(pairs: list[str] | None, crop_size: int | None,
                   fidelity: float | None = None) -> dict[str, object]:
    """--model-opt KEY=VALUE pairs (and --crop-size, --fidelity) -> the model factory's keyword options."""
    from fvr.models.registry import parse_option_value

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


def _require_ready(models: Iterable[str | None]) -> None:
    """Models chosen that do not run as installed (no weights, an extra missing) fail here, before any work, with
    one line naming the models that run (:meth:`fvr.models.ModelRegistry.require_ready`)."""
    from fvr.models import builtin_registry

    registry = builtin_registry()
    for name in models:
        registry.require_ready(name)


def _stabiliser_options(window: int | None, strength: float | None) -> dict[str, object]:
    options: dict[str, object] = {}
    if window is not None:
        options["window"] = window
    if strength is not None:
        options["strength"] = strength
    return options


@app.command()
def restore(
    input: Annotated[Path, typer.Argument(help="Video file, a photo (.png/.jpg), or a folder of PNG/JPEG frames.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Output video (.mp4/.mkv/.mov/.webm), an image for a photo (.png/.jpg), or a folder for PNG frames (an existing folder, or a name ending in /).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y", help="Replace an existing output (default: refuse).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse input with any decode error (corrupt or missing data) instead of restoring what the decoder concealed, with a warning.")] = False,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Restorer name (see `fvr models`), a .safetensors file from `fvr train`, an .onnx model, or a GFPGAN/CodeFormer/... checkpoint with fvr[spandrel] (docs/external-models.md). Default: fvr-prior-rt+flow-fast on CPU, fvr-prior+flow on CUDA (the shipped defaults with their stabiliser).")] = None,
    stabilise: Annotated[Optional[str], typer.Option("--stabilise", help="Temporal stabiliser around the model: flow (offline), flow-causal (streaming), flow-fast (real time: flow at 256², one neighbour each side), learned (shipped, trained around image-baseline), or a trained stabiliser .safetensors.")] = None,
    stabilise_window: Annotated[Optional[int], typer.Option(min=0, max=8, help="Stabiliser: neighbours fused on each side (default 2).")] = None,
    stabilise_strength: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Stabiliser: 0 = per-frame output, 1 = fully fused (default 1).")] = None,
    device: Annotated[str, typer.Option(help="Where learned models run: auto (CUDA when available), cpu, cuda.")] = "auto",
    upscale: Annotated[int, typer.Option("--upscale", "-u", min=1, max=8, help="Output scale factor.")] = 1,
    faces: Annotated[str, typer.Option(help="'all', 'largest', or track IDs from `fvr info`, e.g. 0,2.")] = "all",
    strength: Annotated[float, typer.Option(min=0.0, max=1.0, help="Blend of restored over input face.")] = 1.0,
    fade_frames: Annotated[int, typer.Option(min=0, help="A face track that starts or ends while its shot goes on fades in/out over this many frames (0 = switch at once).")] = 4,
    fidelity: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Fidelity-perception control of models that have one (fvr-prior; CodeFormer's w): 1 = closest to the input, 0 = most generated detail.")] = None,
    crf: Annotated[int, typer.Option(min=0, max=63, help="Encoder quality (lower is better).")] = 18,
    preset: Annotated[str, typer.Option(help="Encoder preset (ultrafast ... veryslow).")] = "medium",
    codec: Annotated[Optional[str], typer.Option(help="Video encoder: libx264, libx265, libsvtav1, libvpx-vp9, ffv1, ... Default: libx264 (libvpx-vp9 for .webm).")] = None,
    pix_fmt: Annotated[Optional[str], typer.Option("--pix-fmt", help="Default: yuv420p, which every player decodes (odd sizes are padded by one edge pixel; yuv444p keeps them exact), or yuv420p10le for 10-bit input where the codec has it.")] = None,
    background: Annotated[str, typer.Option(help="Background up-sampling: lanczos, bicubic, bilinear, compact (fast learned x2-x4), realesrgan (slow on CPU), or a super-resolution checkpoint file with fvr[spandrel].")] = "lanczos",
    color_match: Annotated[bool, typer.Option("--color-match/--no-color-match", help="Match face colours to the input.")] = False,
    feather: Annotated[float, typer.Option(help="Mask edge softness (fraction of the crop).")] = 0.06,
    mask_coverage: Annotated[float, typer.Option(min=0.25, max=2.0, help="Size of the pasted face region: 1 = brows to chin, 1.6 (default) = nearly the whole aligned crop, hair included.")] = 1.6,
    crop_size: Annotated[Optional[int], typer.Option(help="Override the model's crop size (128/256/512).")] = None,
    model_opt: Annotated[Optional[list[str]], typer.Option("--model-opt", help="KEY=VALUE for the model's loader, repeatable (e.g. range=-1,1 channels=bgr w=0.7 for an .onnx file; see docs/external-models.md).")] = None,
    detector: Annotated[str, typer.Option(help="Face detector: mtcnn (built in) or yunet.")] = "mtcnn",
    detector_model: Annotated[Optional[Path], typer.Option(help="Model file for yunet (face_detection_yunet_*.onnx).")] = None,
    detect_size: Annotated[int, typer.Option(min=64, help="Frames are shrunk to this longest side for detection (smaller is faster; faces must stay >= 20 px).")] = 960,
    detect_every: Annotated[int, typer.Option(min=1, help="Run the detector every k frames (track in between).")] = 1,
    smoothing: Annotated[str, typer.Option(help="Landmark smoothing: gaussian, savgol, one-euro (causal), none.")] = "gaussian",
    sigma: Annotated[float, typer.Option(help="Gaussian smoothing sigma in frames.")] = 3.0,
    fps: Annotated[Optional[float], typer.Option(help="Frame rate for image-sequence input.")] = None,
    segment_frames: Annotated[int, typer.Option(min=1, help="Videos longer than this are restored in segments of this many frames, with progress kept on disk (see --resume).")] = 1500,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run of the same command: finished segments are kept.")] = False,
    segments_per_process: Annotated[int, typer.Option(min=0, help="Segmented videos: restore this many segments in a fresh worker process, then start another, so memory cannot creep over hours of video (0 = all in this process).")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run report as JSON.")] = False,
) -> None:
    """Restore every face of a video and write it with timing, audio and subtitles intact."""
    from fvr.faces import DetectorConfig, SmoothingConfig, TrackerConfig
    from fvr.io import EncodeOptions
    from fvr.jobs import restore_video_job
    from fvr.pipeline import RestoreConfig

    _setup_logging(quiet)
    config = RestoreConfig(
        model=model, model_options=_model_options(model_opt, crop_size, fidelity), device=device, upscale=upscale,
        stabilise=stabilise, stabilise_options=_stabiliser_options(stabilise_window, stabilise_strength),
        background=background, faces=faces, strength=strength, fade_frames=fade_frames, color_match=color_match,
        feather=feather,
        mask_coverage=mask_coverage,
        detector=DetectorConfig(name=detector, model_path=str(detector_model) if detector_model else None,
                                max_side=detect_size),
        tracker=TrackerConfig(detect_every=detect_every),
        smoothing=SmoothingConfig(method=smoothing, sigma=sigma),
        encode=EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt),
        sequence_fps=fps, strict=strict,
    )
    with _RichProgress(enabled=not quiet and not as_json) as progress:
        report = restore_video_job(input, output, config, segment_frames=segment_frames, resume=resume,
                                   progress=progress, segments_per_process=segments_per_process,
                                   overwrite=overwrite)
    if as_json:
        out.print_json(json.dumps({**asdict(report), "fps": report.fps}))
    elif not quiet:
        err.print(
            f"[green]wrote[/] {report.output}: {report.frames} frames {report.width}x{report.height}, "
            f"{report.tracks} face track(s), model {report.model}, {report.fps:.1f} fps overall"
        )


@app.command()
def info(
    input: Annotated[Path, typer.Argument(help="Video file or image-sequence folder.")],
    tracks: Annotated[bool, typer.Option("--tracks/--no-tracks", help="Detect and track faces (slower).")] = True,
    contact_sheet: Annotated[Optional[Path], typer.Option("--contact-sheet", help="Write a PNG of each track's faces.")] = None,
    detector: Annotated[str, typer.Option(help="Face detector: mtcnn or yunet.")] = "mtcnn",
    detector_model: Annotated[Optional[Path], typer.Option(help="Model file for yunet.")] = None,
    detect_size: Annotated[int, typer.Option(min=64, help="Longest side the detector sees, as in restore (the track IDs depend on it).")] = 960,
    detect_every: Annotated[int, typer.Option(min=1, help="Detect every k frames, as in restore (the track IDs depend on it).")] = 1,
    fps: Annotated[Optional[float], typer.Option(help="Frame rate for image-sequence input.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Streams, frame rate, duration and the face tracks found (IDs to use with `restore --faces`)."""
    from fvr.faces import DetectorConfig, TrackerConfig
    from fvr.inspect import contact_sheet as write_sheet
    from fvr.io import MediaSource
    from fvr.pipeline import analyse_source

    _setup_logging(as_json)
    with MediaSource(input, sequence_fps=fps) as source:
        vi = source.info
        found = None
        if tracks or contact_sheet:
            with _RichProgress(enabled=not as_json) as progress:
                found = analyse_source(
                    source, DetectorConfig(name=detector, model_path=str(detector_model) if detector_model else None,
                                           max_side=detect_size),
                    TrackerConfig(detect_every=detect_every), progress=progress,
                )
        if contact_sheet and found is not None:
            write_sheet(source, found, contact_sheet)
    data = {
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
    rows = [
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
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Restorer name.")] = None,
    frames: Annotated[int, typer.Option(min=8, max=2000, help="Clip length in frames.")] = 50,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Build a degraded moving-face clip from a public-domain photo, restore it, and write a comparison."""
    from fvr.demo import run_demo
    from fvr.pipeline import RestoreConfig

    _setup_logging(quiet)
    with _RichProgress(enabled=not quiet) as progress:
        result = run_demo(out_dir, frames=frames, config=RestoreConfig(model=model), progress=progress)
    out.print(f"input (degraded)  {result.input_video}")
    out.print(f"restored          {result.restored_video}  (model {result.report.model}, "
              f"{result.report.tracks} track(s), {result.report.fps:.1f} fps)")
    out.print(f"bicubic input     {result.bicubic_video}  (encoded like the restored video)")
    out.print(f"comparison        {result.comparison_video}  and  {result.comparison_png}")
    out.print(f"PSNR vs clean frames (both encoded alike): whole frame bicubic {result.psnr_bicubic:.2f} dB, "
              f"restored {result.psnr_restored:.2f} dB; face bicubic {result.psnr_face_bicubic:.2f} dB, "
              f"restored {result.psnr_face_restored:.2f} dB")


class _BenchProgress:
    """One progress line for ``fvr bench``: the current clip and step, with that step's own progress."""

    def __init__(self, enabled: bool):
        self.progress = Progress(
            TextColumn("{task.description:<48}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err, disable=not enabled, transient=True,
        )
        self.task = self.progress.add_task("bench", total=None)
        self.label = ""
        self.started = False

    def __call__(self, label: str, done: int, total: int) -> None:
        if not self.started:  # started on the first step, so that option errors print nothing else
            self.progress.start()
            self.started = True
        if label != self.label:
            self.label = label
            if not self.progress.disable:
                # a persistent line per step; the bar shows the step's own progress
                err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(label)}", highlight=False)
        self.progress.update(self.task, description=escape(label[:48]), completed=done, total=total or None)

    def __enter__(self) -> _BenchProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.stop()


@app.command()
def bench(
    data: Annotated[Optional[Path], typer.Option("--data", help="Folder of high-quality clips (ground truth).")] = None,
    real: Annotated[Optional[Path], typer.Option("--real", help="Folder of real low-quality clips (no ground truth).")] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated: bicubic, classical, realesrgan, realesrgan-frame, "
                                         "or any name from `fvr models`.")] = "bicubic,classical,realesrgan",
    preset: Annotated[str, typer.Option(help="Degradation preset (see `fvr degrade`).")] = "vfhq",
    seed: Annotated[int, typer.Option(help="Degradation seed (each clip derives its own from it).")] = 0,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for results.json/md and the plots.")] = Path("bench-out"),
    frames: Annotated[Optional[int], typer.Option(min=5, help="Use only the first N frames of each clip.")] = None,
    clips: Annotated[str, typer.Option(help="Glob on clip file names (comma-separated globs for several).")] = "*",
    upscale: Annotated[Optional[int], typer.Option(help="Output scale (default: the preset's, or auto for --real).")] = None,
    metrics: Annotated[Optional[str], typer.Option(help="Comma-separated metric subset (default: all).")] = None,
    keep_outputs: Annotated[bool, typer.Option("--keep-outputs", help="Keep each method's output frames.")] = False,
    cache: Annotated[Optional[Path], typer.Option(help="Degradation cache folder (default: OUT/cache).")] = None,
    grid_clips: Annotated[str, typer.Option(help="Comma-separated globs: clips whose face crops go into crops.png.")] = "*",
    mask_coverage: Annotated[float, typer.Option(min=0.25, max=2.0, help="Pasted face region of every method (as fvr restore --mask-coverage; default 1.6).")] = 1.6,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
) -> None:
    """Benchmark restorers: degrade clips, restore them with each method, measure, write tables and plots."""
    from fvr.bench import BenchConfig, run_bench
    from fvr.bench.report import summary_rows
    from fvr.errors import ConfigError

    if (data is None) == (real is None):
        raise ConfigError("give exactly one of --data DIR (clips with ground truth) or --real DIR (real footage)")
    # realesrgan-frame: Real-ESRGAN as the background, which needs what the realesrgan model needs
    _require_ready("realesrgan" if m.strip() == "realesrgan-frame" else m.strip() for m in methods.split(","))
    _setup_logging(quiet)
    config = BenchConfig(
        data=data or real, out=out_dir, methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        preset=preset, seed=seed, frames=frames, clips=clips, real=real is not None, upscale=upscale,
        metrics=tuple(m.strip() for m in metrics.split(",")) if metrics else None, keep_outputs=keep_outputs,
        cache=cache, grid_clips=grid_clips, mask_coverage=mask_coverage,
    )
    with _BenchProgress(enabled=not quiet) as progress:
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
    seed: Annotated[Optional[int], typer.Option(min=0, help="Random seed (default 0, or the --params file's).")] = None,
    frames: Annotated[Optional[int], typer.Option(min=1, help="Degrade only the first N frames.")] = None,
    scale: Annotated[Optional[int], typer.Option(min=1, max=16, help="Override the down-sampling factor.")] = None,
    crf: Annotated[Optional[int], typer.Option(min=0, max=51, help="Override the x264 CRF of the codec pass.")] = None,
    blur_sigma: Annotated[Optional[float], typer.Option(
        "--blur-sigma", min=0.0, help="Override the blur: isotropic Gaussian sigma (0: none).")] = None,
    noise: Annotated[Optional[float], typer.Option(min=0.0, max=255.0,
                                                   help="Override both noise sigmas (0-255 scale).")] = None,
    params_file: Annotated[Optional[Path], typer.Option("--params", help="Reproduce a run: a sidecar (.json) or "
                                                        "params JSON; replaces --preset.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record (the sidecar) as JSON.")] = False,
) -> None:
    """Degrade a clean clip into a low-quality input (blur, noise, down-sampling, codec), reproducibly."""
    from fvr.degrade import degrade_video, resolve_params

    _setup_logging(quiet)
    overrides = {k: v for k, v in (("scale", scale), ("crf", crf), ("blur_sigma", blur_sigma), ("noise", noise))
                 if v is not None}
    run = resolve_params(preset, seed, params_file=params_file, max_frames=frames, **overrides)
    with _RichProgress(enabled=not quiet and not as_json) as progress:
        record = degrade_video(input, output, run.params, run.seed, max_frames=run.max_frames, progress=progress)
    if as_json:
        out.print_json(json.dumps(record))
    elif not quiet:
        w, h = record["output_size"]
        err.print(f"[green]wrote[/] {escape(str(output))}: {record['frames']} frames {w}x{h}, "
                  f"{escape(record['preset'])} seed {record['seed']}: {escape(record['summary'])}", soft_wrap=True)


class _TrainProgress:
    """Adapts the trainer's progress(stage, done, total, info) to rich bars: clip caching, then training steps
    with it/s, loss and ETA."""

    def __init__(self, enabled: bool):
        self.progress = Progress(
            TextColumn("{task.description:<22.22}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7.2f} it/s"), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=err, disable=not enabled, transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.start: dict[str, tuple[float, int]] = {}

    def __call__(self, stage: str, done: int, total: int, info: dict[str, float]) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total or None, completed=done, rate=0.0, info="")
            self.start[stage] = (time.perf_counter(), done)
        t0, first = self.start[stage]
        rate = (done - first) / max(time.perf_counter() - t0, 1e-9)
        text = " ".join(f"{k} {v:.3g}" for k, v in info.items())
        self.progress.update(self.tasks[stage], completed=done, total=max(total, done) or None, rate=rate, info=text)

    def __enter__(self) -> _TrainProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training config (.toml; .yaml with PyYAML). "
                                         "See docs/train.md.")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in run.out from its latest "
                                         "checkpoint, exactly.")] = False,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda (overrides run.device).")] = None,
    steps: Annotated[Optional[int], typer.Option(min=1, help="Total optimisation steps (overrides "
                                                 "optim.steps).")] = None,
    pack: Annotated[Optional[Path], typer.Option("--pack", help="Only build the clip cache and pack it into this "
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

    _setup_logging(quiet)
    cfg = with_overrides(load_config(config), steps=steps, device=device)
    if pack is not None:
        with _TrainProgress(enabled=not quiet) as progress:
            path = pack_config_data(cfg, resolve_crop_size(cfg), pack,
                                    progress=lambda stage, done, total: progress(stage, done, total, {}))
        size = path.stat().st_size / 2**20
        out.print(f"packed the cached clips into {escape(str(path))} ({size:.1f} MiB); train from it with "
                  f"data.packed = \"{escape(str(path))}\"")
        return
    with _TrainProgress(enabled=not quiet) as progress:
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
    frames: Annotated[Optional[int], typer.Option(min=1, help="T, frames per input clip (default: the "
                                                  "architecture's past + 1 + future).")] = None,
    size: Annotated[Optional[int], typer.Option(min=16, help="S, crop side (default: the trained crop "
                                                "size).")] = None,
) -> None:
    """Export a feed-forward network to ONNX (opset 17, dynamic batch) and check it with onnxruntime."""
    from fvr.export import export_onnx

    result = export_onnx(weights, onnx, frames=frames, size=size)
    inputs = "x, prior" if result.uses_prior else "x"
    out.print(f"wrote {escape(str(result.path))}: {result.arch}, inputs {inputs} (B,{result.frames},3,"
              f"{result.size},{result.size}) RGB [0,1]; onnxruntime max |diff| vs torch = {result.max_abs_diff:.2e}")


@app.command()
def batch(
    inputs: Annotated[list[Path], typer.Argument(help="Video files, and folders of videos (the video files directly inside).")],
    out_dir: Annotated[Path, typer.Option("--output", "-o", help="Output folder: OUT_DIR/NAME.SUFFIX per video, and batch-summary.json.")],
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="A running Ray cluster: auto, or HOST:PORT of its head. Default: a local cluster of --workers CPUs on this machine.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (Ray actors) working at once, over the whole cluster.")] = 2,
    threads: Annotated[Optional[int], typer.Option(min=1, help="torch/OpenCV threads per worker (default: the node's cores / its workers).")] = None,
    segment_frames: Annotated[int, typer.Option(min=1, help="Videos are restored in segments of this many frames (the unit of parallel work and of --resume), as `fvr restore --segment-frames`.")] = 1500,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted batch: finished videos and finished segments are kept.")] = False,
    segments_per_worker: Annotated[int, typer.Option(min=0, help="Replace a worker by a fresh process after it restored this many segments, so memory cannot creep over a long batch (0 = keep every worker for the whole batch).")] = 4,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Restorer name (see `fvr models`) or a weights file, as in `fvr restore`.")] = None,
    device: Annotated[str, typer.Option(help="Where learned models run: auto, cpu, cuda.")] = "auto",
    upscale: Annotated[int, typer.Option("--upscale", "-u", min=1, max=8, help="Output scale factor.")] = 1,
    faces: Annotated[str, typer.Option(help="'all', 'largest', or track IDs (the same for every video).")] = "all",
    stabilise: Annotated[Optional[str], typer.Option("--stabilise", help="Temporal stabiliser around the model, as in `fvr restore`.")] = None,
    crf: Annotated[int, typer.Option(min=0, max=63, help="Encoder quality (lower is better).")] = 18,
    preset: Annotated[str, typer.Option(help="Encoder preset (ultrafast ... veryslow).")] = "medium",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars and no table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the batch summary as JSON.")] = False,
) -> None:
    """Restore many videos (and long ones, in segments) in parallel on Ray (the "batch" extra). Exits 1 when any
    video failed (the others are still written); OUT_DIR/batch-summary.json lists every video."""
    from fvr.batch import (
        SUMMARY_NAME,
        BatchFailed,
        rich_progress,
        run_batch,
        summary_table,
    )
    from fvr.io import EncodeOptions
    from fvr.pipeline import RestoreConfig

    _require_ready([model])
    _setup_logging(quiet or as_json)
    config = RestoreConfig(model=model, device=device, upscale=upscale, faces=faces, stabilise=stabilise,
                           encode=EncodeOptions(crf=crf, preset=preset))
    with rich_progress(err, enabled=not quiet and not as_json) as progress:
        summary = run_batch(inputs, out_dir, config, workers=workers, ray_address=ray_address,
                            segment_frames=segment_frames, resume=resume, threads=threads, progress=progress,
                            segments_per_worker=segments_per_worker)
    if as_json:
        out.print_json(summary.to_json())
    elif not quiet:
        out.print(summary_table(summary))
        out.print(f"wrote {escape(str(out_dir / SUMMARY_NAME))}")
    if summary.failed:  # one line and exit code 1 through main(), like every other error
        raise BatchFailed(summary)


def _notes(exc: BaseException) -> str:
    """What the code on the way out added to an interruption (e.g. how to resume), as one line's tail."""
    notes = getattr(exc, "__notes__", None)
    return "; " + "; ".join(notes) if notes else ""


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app, turn every failure into one line and an exit code."""
    from fvr.signals import Interrupted, signals_raise

    debug = os.environ.get("FVR_DEBUG") == "1"
    try:
        with signals_raise():
            result = app(args=argv, prog_name="fvr", standalone_mode=False)
        # click reports an abort (e.g. Ctrl-C at a prompt) as a return value, not an exception
        return result if isinstance(result, int) else 0
    except Interrupted as exc:
        err.print(f"fvr: interrupted ({exc.name}); unfinished output removed{_notes(exc)}", markup=False,
                  highlight=False, soft_wrap=True)
        return exc.exit_code
    except FvrError as exc:
        err.print(f"[red]fvr: error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        return exc.exit_code
    except OSError as exc:  # disk full, permission denied, ... outside the places that already wrap them
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"fvr: error: {exc.strerror or exc}{where}", markup=False, highlight=False, soft_wrap=True)
        return 3
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort) as exc:
        err.print(f"fvr: interrupted (SIGINT); unfinished output removed{_notes(exc)}", markup=False,
                  highlight=False, soft_wrap=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # usage errors from the CLI parser
            exc.show()
            return int(exc.exit_code)
        if debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        err.print(f"fvr: internal error: {type(exc).__name__}: {first} (set FVR_DEBUG=1 for the traceback)",
                  markup=False, highlight=False, soft_wrap=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
