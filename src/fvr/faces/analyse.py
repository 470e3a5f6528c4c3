"""The one face analysis every part of fvr runs: detect and track every face of a frame stream, then smooth the
tracks' landmarks over time; and the aligned crops of the tracked faces on one frame.

``fvr restore`` (offline and segmented), ``fvr bench``, ``fvr info`` and the training-data cache all call
:func:`analyse_faces` with their :class:`AnalysisConfig` and cut crops with :func:`aligned_faces`, so a face is
found, followed and aligned the same way wherever fvr looks at it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from fvr.faces.align import align_matrix, transform_points, warp_to_crop
from fvr.faces.detect import DetectorConfig, make_detector
from fvr.faces.smooth import SmoothingConfig, smooth_tracks
from fvr.faces.track import FaceTracks, TrackerConfig, analyse_frames


@dataclass(frozen=True)
class AnalysisConfig:
    """How faces are found (detector), followed (tracker) and steadied (landmark smoothing)."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)


@dataclass(frozen=True)
class FaceAnalysis:
    """The tracks of one frame stream: ``raw`` (detected and tracked landmarks, what a job stores and what
    ``--faces`` IDs refer to) and :attr:`tracks` (the same tracks with landmarks smoothed over time at ``fps``,
    what crops are cut with; computed on first use)."""

    raw: FaceTracks
    fps: float
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)

    @cached_property
    def tracks(self) -> FaceTracks:
        return smooth_tracks(self.raw, self.smoothing, self.fps)


def analyse_faces(frames: Iterable[np.ndarray], config: AnalysisConfig, fps: float,
                  on_frame: Callable[[int], None] | None = None) -> FaceAnalysis:
    """Detect, track and smooth every face of ``frames`` ((H, W, 3) uint8 RGB, in order, at ``fps`` frames a
    second); ``on_frame(i)`` after frame i. Memory: the tracks' small per-frame arrays, never frames."""
    raw = analyse_frames(frames, make_detector(config.detector), config.tracker, on_frame=on_frame)
    return FaceAnalysis(raw, fps, config.smoothing)


@dataclass(frozen=True)
class AlignedFace:
    """One tracked face on one frame, cut out and aligned.

    track: the track ID. crop: (S, S, 3), the frame's dtype. matrix: (2, 3) float64 frame -> crop, from the
    (smoothed) landmarks. landmarks: (5, 2) float32 crop pixels of the *raw* (detected) landmarks, what a restorer
    is handed with the crop.
    """

    track: int
    crop: np.ndarray
    matrix: np.ndarray
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        s = self.crop.shape[0]
        if self.crop.ndim != 3 or self.crop.shape[:2] != (s, s) or self.matrix.shape != (2, 3) \
                or self.landmarks.shape != (5, 2):
            raise ValueError(f"aligned face of track {self.track}: crop {self.crop.shape}, matrix "
                             f"{self.matrix.shape}, landmarks {self.landmarks.shape}")


def aligned_faces(rgb: np.ndarray, tracks: FaceTracks, index: int, size: int, *, scale: float = 1.0,
                  only: Iterable[int] | None = None) -> list[AlignedFace]:
    """The aligned ``size``² crops of the faces ``tracks`` follow on frame ``index``, cut from ``rgb``
    ((H, W, 3) uint8 or float; the frame itself, or an up-sampled copy of it ``scale`` times its size).
    ``only``: track IDs to cut (None: all present)."""
    if index >= tracks.num_frames:
        return []
    wanted = None if only is None else set(only)
    faces = []
    for track_id, landmarks in tracks.at_frame(index):
        if wanted is not None and track_id not in wanted:
            continue
        track = tracks.track(track_id)
        faces.append(align_face(rgb, track_id, landmarks, track.raw_landmarks[index - track.start], size, scale))
    return faces


def align_face(rgb: np.ndarray, track: int, landmarks: np.ndarray, raw: np.ndarray, size: int,
               scale: float = 1.0) -> AlignedFace:
    """One face of ``rgb`` aligned: cut with ``landmarks`` (smoothed, (5, 2) frame pixels), handed on with
    ``raw`` (detected) in crop pixels; frame coordinates times ``scale`` for an up-sampled ``rgb``."""
    matrix = align_matrix(landmarks * scale, size)
    crop_raw = transform_points(matrix, raw * scale).astype(np.float32)
    return AlignedFace(track, warp_to_crop(rgb, matrix, size), matrix, crop_raw)
