"""Faces: detect -> track (stable IDs, gaps, scene cuts) -> smooth landmarks over time -> align to FFHQ.

Landmarks are always (5, 2) float32 x, y in frame pixels, ordered left eye, right eye, nose, mouth left, mouth
right ("left" = smaller x in the image).
"""

from __future__ import annotations

from fvr.faces.align import (
    FFHQ_TEMPLATE_512,
    align_matrix,
    face_template,
    invert_affine,
    similarity_transform,
    transform_points,
    warp_to_crop,
)
from fvr.faces.analyse import AlignedFace, AnalysisConfig, FaceAnalysis, aligned_faces, analyse_faces
from fvr.faces.detect import (
    DETECTORS,
    Detections,
    DetectorConfig,
    FaceDetector,
    MtcnnDetector,
    YuNetDetector,
    make_detector,
)
from fvr.faces.scenes import SceneCutDetector
from fvr.faces.smooth import (
    METHODS as SMOOTHING_METHODS,
)
from fvr.faces.smooth import (
    OneEuroFilter,
    SmoothingConfig,
    gaussian_smooth,
    is_causal,
    one_euro_smooth,
    savgol_smooth,
    smooth_landmarks,
    smooth_tracks,
)
from fvr.faces.track import FaceTracker, FaceTracks, Track, TrackerConfig, analyse_frames, face_sizes

__all__ = [
    "DETECTORS",
    "AlignedFace",
    "AnalysisConfig",
    "FaceAnalysis",
    "aligned_faces",
    "analyse_faces",
    "FFHQ_TEMPLATE_512",
    "SMOOTHING_METHODS",
    "DetectorConfig",
    "Detections",
    "FaceDetector",
    "FaceTracker",
    "FaceTracks",
    "MtcnnDetector",
    "OneEuroFilter",
    "SceneCutDetector",
    "SmoothingConfig",
    "Track",
    "TrackerConfig",
    "YuNetDetector",
    "align_matrix",
    "analyse_frames",
    "face_sizes",
    "face_template",
    "gaussian_smooth",
    "invert_affine",
    "is_causal",
    "make_detector",
    "one_euro_smooth",
    "savgol_smooth",
    "similarity_transform",
    "smooth_landmarks",
    "smooth_tracks",
    "transform_points",
    "warp_to_crop",
]
