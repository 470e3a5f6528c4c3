"""``fvr bench``: degrade clips, run methods through the real pipeline, measure them on aligned face crops.

With ground truth (``--data``), for each clip:

1. the clip is degraded once per (preset, seed, frames) with :mod:`fvr.degrade` and cached (the sidecar JSON holds
   the parameters drawn); the ground truth is cropped exactly as the degradation cropped it;
2. faces are detected, tracked and smoothed **on the ground truth**;
3. every method runs through :func:`fvr.run.pipeline.restore_video` on the low-quality clip, each in its own process
   (so its runtime and peak memory are its own), writing a lossless PNG sequence;
4. one streaming pass decodes ground truth and all outputs together, cuts 512² crops aligned with the ground
   truth's smoothed landmarks from each, and feeds the metric evaluators; full frames get PSNR/SSIM.

Without ground truth (``--real``), methods run on the real clips themselves and no-reference metrics are computed
on crops aligned with the landmarks found on the input.

Memory is bounded: frames are streamed, only per-frame scalars and one crop per clip (for the crop grid) are kept.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import multiprocessing
import os
import platform
import resource
import shutil
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fvr.bench.methods import BenchMethod, resolve_methods
from fvr.compose.mask import DEFAULT_COVERAGE
from fvr.errors import ConfigError, InputError, check_range
from fvr.faces import DetectorConfig, FaceTracks, TrackerConfig, warp_to_crop
from fvr.faces.analyse import AnalysisConfig, aligned_faces, analyse_faces
from fvr.io import MediaSource, probe
from fvr.io.sink import VIDEO_SUFFIXES
from fvr.models import builtin_registry
from fvr.run.config import RestoreConfig

log = logging.getLogger(__name__)

BenchProgress = Callable[[str, int, int], None]
"""progress(label, done, total) for the bench's own steps (clip x stage)."""

# Metrics of full frames against the ground truth (prefixed to keep them apart from the crop metrics).
FRAME_METRICS = ("psnr", "psnr_y", "ssim", "ssim_y")
CURVE_METRICS = ("ids", "flicker")  # per-frame series kept for the drift / flicker plots
REAL_CURVE_METRICS = ("vidd", "flicker_nr")


@dataclass(frozen=True)
class BenchConfig:
    """What ``fvr bench`` runs.

    data: folder of clips (ground truth with ``real=False``; real low-quality footage with ``real=True``).
    out: folder for results.json, results.md, plots and the degradation cache.
    methods: names, see :mod:`fvr.bench.methods`.
    preset / seed: degradation (``fvr degrade``); each clip draws its own parameters from (seed, clip name).
    frames: use only the first N frames of each clip (None = all).
    clips: glob (or comma-separated globs) on file names inside ``data``.
    upscale: output scale; None = the preset's down-sampling factor (ground truth mode) or, for real clips, the
        smallest of 1/2/4 that brings the median face to >= 256 px.
    metrics: crop metrics to compute (None = all that apply).
    crop_size: side of the aligned evaluation crops (512 in the VFHQ protocol).
    isolate: run each method in a fresh process (per-run peak RSS); False runs in-process (tests).
    keep_outputs: keep each method's PNG outputs under ``out/outputs``.
    cache: degradation cache folder (default ``out/cache``).
    grid_clips: comma-separated globs of the clips whose crops go into crops.png (e.g. only clips whose licence
        allows publishing their frames); the metrics cover every clip either way.
    mask_coverage: size of the pasted face region for every method (``fvr restore --mask-coverage``).
    detect_every: every method's restore runs the face detector every k frames (``fvr restore --detect-every``;
        the evaluation crops always come from detection on every frame of the ground truth).
    """

    data: Path
    out: Path
    methods: tuple[str, ...] = ("bicubic", "classical", "realesrgan")
    preset: str = "vfhq"
    seed: int = 0
    frames: int | None = None
    clips: str = "*"
    real: bool = False
    upscale: int | None = None
    metrics: tuple[str, ...] | None = None
    crop_size: int = 512
    isolate: bool = True
    keep_outputs: bool = False
    cache: Path | None = None
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    grid_clips: str = "*"
    mask_coverage: float = DEFAULT_COVERAGE
    detect_every: int = 1

    def validate(self) -> None:
        if not Path(self.data).is_dir():
            raise ConfigError(f"{self.data} is not a folder of clips")
        if self.frames is not None and self.frames < 5:
            raise ConfigError("--frames must be at least 5 (face tracks and temporal metrics need several frames)")
        if self.upscale is not None and self.upscale not in (1, 2, 4, 8):
            raise ConfigError(f"upscale must be 1, 2, 4 or 8, got {self.upscale}")
        if self.crop_size < 64:
            raise ConfigError("crop size must be at least 64")
        check_range("--detect-every", self.detect_every, 1, None, integer=True)


def list_clips(folder: Path, pattern: str) -> list[Path]:
    """Video files (and image-sequence folders) in ``folder`` whose names match ``pattern`` (comma-separated globs),
    sorted."""
    found = {p for glob in pattern.split(",") if glob.strip() for p in Path(folder).glob(glob.strip())}
    clips = sorted(p for p in found
                   if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or (p.is_dir() and any(p.glob("*.png"))))
    if not clips:
        raise InputError(f"no clips matching {pattern!r} in {folder}")
    return clips


def clip_seed(seed: int, name: str) -> int:
    """Each clip's own degradation seed: stable under adding or removing other clips."""
    return (seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**31)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class MethodJob:
    method: BenchMethod
    input: str
    output: str
    upscale: int
    fps: float | None  # for image-sequence inputs
    mask_coverage: float = DEFAULT_COVERAGE
    detect_every: int = 1


def run_method_job(job: MethodJob) -> dict:
    """Run one method on one clip (in a child process when isolated). Returns timing, memory and the report."""
    from fvr.run.pipeline import restore_video

    base = RestoreConfig(sequence_fps=job.fps, mask_coverage=job.mask_coverage,
                         tracker=TrackerConfig(detect_every=job.detect_every))
    config = job.method.restore_config(base, job.upscale)
    registry = builtin_registry()
    t0 = time.perf_counter()
    if job.method.skip_faces:
        restorer = registry.create("identity")
        pipeline_log = logging.getLogger("fvr.run.pipeline")
        level = pipeline_log.level
        pipeline_log.setLevel(logging.ERROR)  # "no faces found" is the point here, not news
        try:
            report = restore_video(job.input, job.output, config, registry=registry, restorer=restorer,
                                   tracks=FaceTracks([], 0))
        finally:
            pipeline_log.setLevel(level)
    else:
        report = restore_video(job.input, job.output, config, registry=registry)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "frames": report.frames, "fps": report.frames / seconds if seconds else 0.0,
            "peak_rss_mb": peak_rss_mb(), "tracks": report.tracks, "face_frames": report.face_frames}


def _run_job(job: MethodJob, isolate: bool) -> dict:
    if not isolate:
        result = run_method_job(job)
        result["peak_rss_mb"] = None  # the bench's own process: not the method's
        return result
    # A fresh "spawn" process per run: its peak RSS is that run's alone, and no state leaks between methods.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_method_job, job).result()


# --------------------------------------------------------------------------------------------------- frames


def _frames(path: Path, fps: float | None = None, limit: int | None = None,
            crop: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Decoded RGB frames of a video or PNG folder, optionally only the first ``limit`` and cropped to (h, w)."""
    with MediaSource(path, sequence_fps=fps) as src:
        for frame in src.frames():
            if limit is not None and frame.index >= limit:
                return
            rgb = frame.rgb
            yield rgb[: crop[0], : crop[1]] if crop is not None else rgb


def analyse_tracks(frames: Iterator[np.ndarray], fps: float, detector: DetectorConfig) -> FaceTracks:
    """Detect, track and smooth faces (the same analysis ``fvr restore`` does), keeping tracks of >= 2 frames.
    The tracker's minimum track length follows the frames it sees (a short or cut clip keeps its faces:
    :meth:`fvr.faces.TrackerConfig.min_detections_for`, the rule ``fvr restore`` uses)."""
    # The detector on every frame: the reference tracks are the best the analysis can give, whatever cadence the
    # restore jobs run at.
    tracks = analyse_faces(frames, AnalysisConfig(detector=detector, tracker=TrackerConfig(detect_every=1)), fps).tracks
    return FaceTracks([t for t in tracks.tracks if len(t) >= 2], tracks.num_frames, tracks.scene_cuts)


def _write_sequence(frames: Iterator[np.ndarray], folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for n, rgb in enumerate(frames, start=1):
        cv2.imwrite(str(folder / f"{n - 1:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return n


def _upsample_nearest(rgb: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return rgb
    return cv2.resize(rgb, (rgb.shape[1] * factor, rgb.shape[0] * factor), interpolation=cv2.INTER_NEAREST)


# --------------------------------------------------------------------------------------------------- bench


@dataclass
class ClipResult:
    """One clip's outcome: per method, crop-metric means, full-frame means, per-frame curves, runtime."""

    name: str
    frames: int
    width: int
    height: int
    tracks: int
    face_frames: int
    upscale: int
    degradation: dict | None
    methods: dict[str, dict] = field(default_factory=dict)
    crops: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # label -> (S, S, 3) uint8, for the grid
    warnings: list[str] = field(default_factory=list)


def run_bench(config: BenchConfig, progress: BenchProgress | None = None) -> dict:
    """Run the whole benchmark and write results.json, results.md and the plots into ``config.out``.

    Returns the results dictionary (the content of results.json).
    """
    from fvr.bench.plots import write_plots
    from fvr.bench.report import build_results, write_markdown

    config.validate()
    metric_subset(config.metrics, config.real)
    methods = resolve_methods(list(config.methods), builtin_registry())
    clips = list_clips(Path(config.data), config.clips)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: list[ClipResult] = []
    for k, clip in enumerate(clips):
        label = f"[{k + 1}/{len(clips)}] {clip.stem}"
        try:
            if config.real:
                results.append(_bench_real_clip(clip, methods, config, label, progress))
            else:
                results.append(_bench_clip(clip, methods, config, label, progress))
        except InputError as exc:  # one unreadable clip must not sink the whole benchmark
            log.warning("%s: skipped: %s", clip.name, exc)
            results.append(ClipResult(clip.stem, 0, 0, 0, 0, 0, 0, None, warnings=[f"skipped: {exc}"]))
    data = build_results(config, methods, results, seconds=time.perf_counter() - t0, environment=_environment())
    (out / "results.json").write_text(json.dumps(data, indent=1, allow_nan=False))
    write_markdown(data, out / "results.md")
    shown = [r for r in results if any(fnmatch.fnmatch(r.name, g.strip()) or fnmatch.fnmatch(f"{r.name}.*", g.strip())
                                       for g in config.grid_clips.split(",") if g.strip())]
    write_plots(data, shown, out)
    return data


def _environment() -> dict:
    import torch

    from fvr import __version__

    return {"fvr": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "cpu_count": multiprocessing.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def _degraded_clip(clip: Path, config: BenchConfig) -> tuple[Path, dict]:
    """Degrade ``clip`` once (cached by preset, seed and frames); returns the LQ path and its sidecar."""
    from fvr.degrade import degrade_video, sample_params

    cache = Path(config.cache) if config.cache else Path(config.out) / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    seed = clip_seed(config.seed, clip.name)
    params = sample_params(config.preset, seed)
    frames = config.frames if config.frames else "all"
    lq = cache / f"{clip.stem}-{config.preset}-s{config.seed}-f{frames}.mp4"
    sidecar = Path(str(lq) + ".json")
    if lq.is_file() and sidecar.is_file():
        meta = json.loads(sidecar.read_text())
        if meta.get("params") == params.to_dict() and meta.get("seed") == seed:
            return lq, meta
    degrade_video(clip, lq, params, seed, max_frames=config.frames)
    return lq, json.loads(sidecar.read_text())


def _folder_name(method: str) -> str:
    """A method's name as one folder name (a stabiliser file in the name brings its path separators)."""
    return method.replace(os.sep, "_").replace("/", "_")


def _run_methods(methods: list[BenchMethod], lq: Path, work: Path, upscale: int, fps: float | None,
                 config: BenchConfig, label: str, progress: BenchProgress | None) -> dict[str, dict]:
    runs = {}
    work.mkdir(parents=True, exist_ok=True)
    for i, method in enumerate(methods):
        if progress is not None:
            progress(f"{label}: {method.name}", i, len(methods))
        out_dir = work / _folder_name(method.name)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        # a trailing separator: a PNG-frame folder whatever the method's name looks like ("x.onnx",
        # "m.safetensors+flow")
        job = MethodJob(method, str(lq), f"{out_dir}{os.sep}", upscale, fps, config.mask_coverage,
                        config.detect_every)
        runs[method.name] = _run_job(job, config.isolate)
        runs[method.name]["output"] = out_dir
    return runs


def _bench_clip(clip: Path, methods: list[BenchMethod], config: BenchConfig, label: str,
                progress: BenchProgress | None) -> ClipResult:
    from fvr.metrics import ReferenceEvaluator, frame_fidelity

    if progress is not None:
        progress(f"{label}: degrade", 0, 1)
    lq, meta = _degraded_clip(clip, config)
    scale = int(meta["params"]["scale"])
    upscale = config.upscale or scale
    lq_info = probe(lq)
    crop = (lq_info.height * scale, lq_info.width * scale)  # the ground-truth area the degradation kept
    fps = float(probe(clip).fps)
    if progress is not None:
        progress(f"{label}: faces", 0, 1)
    tracks = analyse_tracks(_frames(clip, limit=config.frames, crop=crop), fps, config.detector)
    if upscale != scale:
        raise ConfigError(f"--upscale {upscale} differs from the preset's scale {scale}: outputs would not match "
                          "the ground truth's size")
    work = Path(config.out) / "outputs" / clip.stem
    runs = _run_methods(methods, lq, work, upscale, None, config, label, progress)

    size = config.crop_size
    names = [m.name for m in methods]
    evaluators = {(m, t.id): ReferenceEvaluator(metrics=metric_subset(config.metrics, False), crop_size=size)
                  for m in names
                  for t in tracks.tracks}
    fidelity: dict[str, dict[str, list[float]]] = {m: {k: [] for k in FRAME_METRICS} for m in names}
    grid_frame, grid_track = _grid_choice(tracks)
    crops: dict[str, np.ndarray] = {}
    streams = [_frames(clip, limit=config.frames, crop=crop), _frames(lq)]
    streams += [_frames(runs[m]["output"], fps=fps) for m in names]
    n = 0
    face_frames = 0
    if progress is not None:
        progress(f"{label}: metrics", 0, 1)
    for t, (gt, lq_rgb, *outs) in enumerate(zip(*streams, strict=False)):
        n += 1
        for m, o in zip(names, outs, strict=True):
            if o.shape != gt.shape:
                raise InputError(f"{m} produced {o.shape[1]}x{o.shape[0]} frames for a "
                                 f"{gt.shape[1]}x{gt.shape[0]} ground truth")
            for k, v in frame_fidelity(o, gt).items():
                fidelity[m][k].append(v)
        for face in aligned_faces(gt, tracks, t, size):
            face_frames += 1
            track_id, matrix, gt_crop = face.track, face.matrix, face.crop
            out_crops = [warp_to_crop(o, matrix, size) for o in outs]
            for m, oc in zip(names, out_crops, strict=True):
                evaluators[(m, track_id)].update(oc, gt_crop)
            if t == grid_frame and track_id == grid_track:
                crops["GT"] = gt_crop
                crops["input"] = warp_to_crop(_upsample_nearest(lq_rgb, upscale), matrix, size)
                crops.update(zip(names, out_crops, strict=True))
        if progress is not None:
            progress(f"{label}: metrics", t + 1, tracks.num_frames)
    result = ClipResult(clip.stem, n, crop[1], crop[0], len(tracks.tracks), face_frames, upscale, meta, crops=crops)
    if not tracks.tracks:
        result.warnings.append("no face found on the ground truth: only full-frame metrics")
    for m in names:
        result.methods[m] = _method_summary(runs[m], [evaluators[(m, tr.id)] for tr in tracks.tracks],
                                            fidelity[m], CURVE_METRICS)
    _cleanup(work, config)
    return result


def _bench_real_clip(clip: Path, methods: list[BenchMethod], config: BenchConfig, label: str,
                     progress: BenchProgress | None) -> ClipResult:
    from fvr.metrics import NoReferenceEvaluator

    info = probe(clip)
    fps = float(info.fps)
    work = Path(config.out) / "outputs" / clip.stem
    source = clip
    seq_fps = None
    if config.frames:
        # A lossless PNG copy of the first N frames, so every method sees exactly the same pixels.
        source = work / "_input"
        if source.exists():
            shutil.rmtree(source)
        _write_sequence(_frames(clip, limit=config.frames), source)
        seq_fps = fps
    if progress is not None:
        progress(f"{label}: faces", 0, 1)
    tracks = analyse_tracks(_frames(clip, limit=config.frames), fps, config.detector)
    upscale = config.upscale or auto_upscale(tracks)
    runs = _run_methods(methods, source, work, upscale, seq_fps, config, label, progress)

    size = config.crop_size
    names = [m.name for m in methods]
    metrics = metric_subset(config.metrics, True)
    evaluators = {(m, t.id): NoReferenceEvaluator(metrics=metrics, crop_size=size) for m in names
                  for t in tracks.tracks}
    grid_frame, grid_track = _grid_choice(tracks)
    crops: dict[str, np.ndarray] = {}
    streams = [_frames(clip, limit=config.frames)] + [_frames(runs[m]["output"], fps=fps) for m in names]
    n = 0
    face_frames = 0
    for t, (lq_rgb, *outs) in enumerate(zip(*streams, strict=False)):
        n += 1
        up = cv2.resize(lq_rgb, (lq_rgb.shape[1] * upscale, lq_rgb.shape[0] * upscale),
                        interpolation=cv2.INTER_CUBIC) if upscale > 1 else lq_rgb
        for face in aligned_faces(up, tracks, t, size, scale=upscale):
            face_frames += 1
            track_id, matrix, in_crop = face.track, face.matrix, face.crop
            out_crops = [warp_to_crop(o, matrix, size) for o in outs]
            for m, oc in zip(names, out_crops, strict=True):
                evaluators[(m, track_id)].update(oc, in_crop)
            if t == grid_frame and track_id == grid_track:
                crops["input"] = warp_to_crop(_upsample_nearest(lq_rgb, upscale), matrix, size)
                crops.update(zip(names, out_crops, strict=True))
        if progress is not None:
            progress(f"{label}: metrics", t + 1, tracks.num_frames)
    result = ClipResult(clip.stem, n, info.width * upscale, info.height * upscale, len(tracks.tracks), face_frames,
                        upscale, None, crops=crops)
    if not tracks.tracks:
        result.warnings.append("no face found: nothing to measure")
    for m in names:
        result.methods[m] = _method_summary(runs[m], [evaluators[(m, tr.id)] for tr in tracks.tracks],
                                            None, REAL_CURVE_METRICS)
    _cleanup(work, config)
    return result


def metric_subset(names: tuple[str, ...] | None, real: bool) -> tuple[str, ...] | None:
    """The requested metrics that apply to this mode (None = all). Names valid only in the other mode are
    dropped (one ``--metrics`` list serves both); unknown names give a one-line :class:`ConfigError`."""
    from fvr.metrics import METRICS, NO_REFERENCE_METRICS, REFERENCE_METRICS

    if names is None:
        return None
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from: {', '.join(METRICS)}")
    allowed = NO_REFERENCE_METRICS if real else REFERENCE_METRICS
    subset = tuple(n for n in names if n in allowed)
    if not subset:
        mode = "real clips (no ground truth)" if real else "clips with ground truth"
        raise ConfigError(f"none of the metrics {', '.join(names)} applies to {mode}; use: {', '.join(allowed)}")
    return subset


def auto_upscale(tracks: FaceTracks) -> int:
    """1, 2 or 4: the smallest factor that brings the median face (track size, ~2x face width) to >= 256 px."""
    if not tracks.tracks:
        return 1
    size = float(np.median([t.size for t in tracks.tracks]))
    for factor in (1, 2, 4):
        if size * factor >= 256:
            return factor
    return 4


def _grid_choice(tracks: FaceTracks) -> tuple[int, int]:
    """(frame, track id) shown in the crop grid: the middle frame of the longest track."""
    if not tracks.tracks:
        return -1, -1
    longest = max(tracks.tracks, key=len)
    return int(longest.frames[len(longest) // 2]), longest.id


def _method_summary(run: dict, evaluators: list, fidelity: dict[str, list[float]] | None,
                    curves: tuple[str, ...]) -> dict:
    """Merge the per-track evaluators of one method into face-frame-weighted means plus the curves of its
    longest track (the one the crop grid shows)."""
    results = [ev.result() for ev in evaluators]
    per_frame: dict[str, list[float]] = {}
    for res in results:
        for k, values in res.per_frame.items():
            per_frame.setdefault(k, []).extend(values)
    curve_data: dict[str, list[float]] = {}
    if results:
        longest = max(results, key=lambda r: r.frames)
        curve_data = {k: [float(v) for v in longest.per_frame[k]] for k in curves if k in longest.per_frame}
    crop_means = {k: _nanmean(v) for k, v in per_frame.items()}
    frame_means = {k: _nanmean(v) for k, v in fidelity.items()} if fidelity else {}
    return {
        "crop": crop_means, "frame": frame_means, "curves": curve_data,
        "seconds": run["seconds"], "fps": run["fps"], "peak_rss_mb": run["peak_rss_mb"],
        "frames": run["frames"], "face_frames": run["face_frames"],
    }


def _nanmean(values: list[float]) -> float | None:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else None


def _cleanup(work: Path, config: BenchConfig) -> None:
    if not config.keep_outputs and work.exists():
        shutil.rmtree(work)
