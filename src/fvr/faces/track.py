"""Face tracking: per-frame detections -> face tracks with stable IDs over consecutive frames.

:class:`FaceTracker` is fed frames one at a time and keeps only small per-frame arrays (landmarks, boxes, scores)
of the faces it follows, plus one grey thumbnail of the previous frame (for optical flow) and a scene-cut
signature, so its memory is proportional to the number of detections and its per-frame work does not grow with
the video's length.

Per frame: a scene cut ends every live track; the detector runs (every ``detect_every`` frames; in between, live
tracks are carried forward by Lucas-Kanade optical flow); detections are matched to live tracks by Hungarian
assignment on a cost of box overlap and landmark distance; unmatched detections start tracks; a track missed for
more than ``max_gap`` frames ends. When a track ends its missed frames are filled by linear interpolation (a face
the detector misses for up to ``max_gap`` frames stays one track, present on every frame), and tracks with too few
detections for their shot are dropped as false positives (:meth:`TrackerConfig.min_detections_for`: the rule
applies in full to shots of at least ``2 * min_length - 1`` frames; in a clip or shot of at most ``min_length``
frames every detected face is kept).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from fvr.errors import ConfigError, InputError, check_range
from fvr.faces.align import FFHQ_TEMPLATE_512, similarity_transform, transform_points
from fvr.faces.detect import Detections, FaceDetector, check_frame, resize_factors, shrink, shrink_factor
from fvr.faces.scenes import SceneCutDetector

__all__ = [
    "FaceTracker",
    "FaceTracks",
    "SceneCutDetector",
    "Track",
    "TrackerConfig",
    "analyse_frames",
    "face_sizes",
]

JSON_VERSION = 1

# Association gate: a detection farther than this from a track's predicted landmarks (mean distance, in units of
# the face's aligned-crop side, about two face widths) cannot continue it, whatever the box overlap.
_MAX_LANDMARK_SHIFT = 0.25
# Constant-velocity prediction over a gap is capped at this many frames: people stop moving more often than they
# keep going in a straight line.
_MAX_EXTRAPOLATION = 5
_VELOCITY_BASELINE = 5  # frames
# Lucas-Kanade: a grid of points over the face box plus the landmarks, checked forward-backward.
_FLOW_GRID = 7
_FLOW_WINDOW = (15, 15)
_FLOW_LEVELS = 3
_FLOW_MAX_FB_ERROR = 1.0  # thumbnail pixels
_FLOW_MIN_POINTS = 8
_FLOW_MAX_ZOOM = 1.25  # per frame; more means the flow latched onto something else


# --------------------------------------------------------------------------------------------------------------
# Results


def face_sizes(landmarks: np.ndarray) -> np.ndarray:
    """Face size per frame: the side, in frame pixels, of the square that the FFHQ-aligned crop covers.

    landmarks: (..., 5, 2). Returns (...) float64. About twice the face's width (brows-to-chin box side); it is
    the scale of the least-squares similarity fit of the landmarks to the template (in closed form, vectorised),
    so it uses all five points and is stable for turned heads, unlike the inter-ocular distance.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    src = lm[..., 0] + 1j * lm[..., 1]
    tpl = FFHQ_TEMPLATE_512.astype(np.float64) / 512.0
    dst = tpl[:, 0] + 1j * tpl[:, 1]
    src_c = src - src.mean(axis=-1, keepdims=True)
    dst_c = dst - dst.mean()
    # Complex least squares dst_c ~ a * src_c: |a| is the frame -> unit-crop scale, so 1/|a| is the crop side.
    a = (np.conj(src_c) * dst_c).sum(axis=-1) / np.maximum((np.abs(src_c) ** 2).sum(axis=-1), 1e-12)
    return 1.0 / np.maximum(np.abs(a), 1e-12)


TRACK_ARRAYS = ("frames", "landmarks", "raw_landmarks", "boxes", "scores", "detected")
"""The per-frame array fields of :class:`Track`, in constructor order (after ``id``)."""


@dataclass(eq=False)  # identity equality: field-wise == on arrays is ambiguous
class Track:
    """One face followed over consecutive frames (gaps already filled).

    frames: (N,) int64 consecutive frame indices.
    landmarks: (N, 5, 2) float32 frame pixels, smoothed after :func:`fvr.faces.smooth_tracks` (else = raw).
    raw_landmarks: (N, 5, 2) float32 as detected, propagated by optical flow or interpolated.
    boxes: (N, 4) float32 x0, y0, x1, y1.
    scores: (N,) float32 detector score, 0 where the detector did not find the face on that frame.
    detected: (N,) bool, True where the detector found the face on that frame.
    span: for a part cut out of a longer track (:meth:`FaceTracks.window`), the whole track's [start, end); None
        for a whole track (see :attr:`extent`).
    """

    id: int
    frames: np.ndarray
    landmarks: np.ndarray
    raw_landmarks: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    detected: np.ndarray
    span: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, dtype=np.int64).reshape(-1)
        n = len(self.frames)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(n, 5, 2)
        self.raw_landmarks = np.asarray(self.raw_landmarks, dtype=np.float32).reshape(n, 5, 2)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(n, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)
        self.detected = np.asarray(self.detected, dtype=bool).reshape(n)
        if n and np.any(np.diff(self.frames) != 1):
            raise ValueError(f"track {self.id}: frames must be consecutive")
        if self.span is not None:
            self.span = (int(self.span[0]), int(self.span[1]))

    @property
    def extent(self) -> tuple[int, int]:
        """[start, end) of the whole track this one is (or was cut from): where the face appears and disappears."""
        return self.span if self.span is not None else (self.start, self.end)

    @property
    def start(self) -> int:
        """First frame index."""
        return int(self.frames[0]) if len(self.frames) else 0

    @property
    def end(self) -> int:
        """One past the last frame index."""
        return self.start + len(self.frames)

    @property
    def size(self) -> float:
        """Median face size in frame pixels (see :func:`face_sizes`: side of the aligned crop's footprint)."""
        return float(np.median(face_sizes(self.raw_landmarks))) if len(self.frames) else 0.0

    def __len__(self) -> int:
        return len(self.frames)

    def to_json(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict (exact: float32 values survive the round trip)."""
        out: dict[str, Any] = {
            "id": int(self.id),
            "start": self.start,
            "length": len(self.frames),
            "raw_landmarks": self.raw_landmarks.reshape(-1, 10).tolist(),
            "boxes": self.boxes.tolist(),
            "scores": self.scores.tolist(),
            "detected": self.detected.astype(np.uint8).tolist(),
        }
        if not np.array_equal(self.landmarks, self.raw_landmarks):
            out["landmarks"] = self.landmarks.reshape(-1, 10).tolist()
        if self.span is not None:
            out["span"] = list(self.span)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Track:
        """Inverse of :meth:`to_json`."""
        n = int(data["length"])
        raw = np.asarray(data["raw_landmarks"], dtype=np.float32).reshape(n, 5, 2)
        lms = np.asarray(data["landmarks"], dtype=np.float32).reshape(n, 5, 2) if "landmarks" in data else raw.copy()
        return cls(
            id=int(data["id"]),
            frames=np.arange(int(data["start"]), int(data["start"]) + n, dtype=np.int64),
            landmarks=lms,
            raw_landmarks=raw,
            boxes=np.asarray(data["boxes"], dtype=np.float32).reshape(n, 4),
            scores=np.asarray(data["scores"], dtype=np.float32).reshape(n),
            detected=np.asarray(data["detected"], dtype=bool).reshape(n),
            span=tuple(data["span"]) if data.get("span") is not None else None,
        )


@dataclass
class _FrameIndex:
    """Which tracks are active on each frame, in CSR form: tracks ``order[offsets[i]:offsets[i + 1]]``."""

    offsets: np.ndarray  # (num_frames + 1,) int64
    order: np.ndarray  # (total track frames,) int64 indices into FaceTracks.tracks


@dataclass(eq=False)
class FaceTracks:
    """All face tracks of a video. Treat as immutable: methods return new objects (the per-frame index is built
    on the first :meth:`at_frame` call and not updated if ``tracks`` is changed in place).

    tracks: in ID order (IDs 0..K-1 from the tracker, in order of first appearance; a selection keeps its IDs).
    num_frames: frames analysed.
    scene_cuts: frame indices where a new shot starts (frame 0 is not listed).
    """

    tracks: list[Track]
    num_frames: int
    scene_cuts: list[int] = field(default_factory=list)
    _index: _FrameIndex | None = field(default=None, init=False, repr=False, compare=False)

    def ids(self) -> list[int]:
        """Track IDs in order."""
        return [t.id for t in self.tracks]

    def track(self, track_id: int) -> Track:
        """The track with this ID; ConfigError if there is none."""
        for t in self.tracks:
            if t.id == track_id:
                return t
        raise ConfigError(f"unknown face track id {track_id}; {self._ids_text()}")

    def at_frame(self, i: int) -> list[tuple[int, np.ndarray]]:
        """(track id, (5, 2) float32 landmarks) of every track active on frame ``i``, in track order. O(faces)."""
        index = self._index if self._index is not None else self._build_index()
        if not 0 <= i < len(index.offsets) - 1:
            return []
        out = []
        for k in index.order[index.offsets[i] : index.offsets[i + 1]]:
            t = self.tracks[k]
            out.append((t.id, t.landmarks[i - t.start]))
        return out

    def window(self, start: int, stop: int) -> FaceTracks:
        """The tracks cut to frames [start, stop), as copies (a cut does not keep the whole-video arrays alive);
        tracks with no frame there are dropped. IDs, ``num_frames`` and ``scene_cuts`` are unchanged, and each cut
        keeps its whole track's [start, end) in ``span`` (so that what depends on where a face appears and
        disappears, such as the paste fades, is the same in a cut). One segment of a job, with its context, needs
        only this."""
        keep = []
        for t in self.tracks:
            a, b = max(start, t.start), min(stop, t.end)
            if a >= b:
                continue
            part = slice(a - t.start, b - t.start)
            # copies of the TRACK_ARRAYS, in the order Track takes them
            frames, landmarks, raw, boxes, scores, detected = (
                np.array(getattr(t, name)[part]) for name in TRACK_ARRAYS)
            keep.append(Track(t.id, frames, landmarks, raw, boxes, scores, detected, span=t.extent))
        return FaceTracks(keep, self.num_frames, list(self.scene_cuts))

    def _build_index(self) -> _FrameIndex:
        lengths = np.array([len(t) for t in self.tracks], dtype=np.int64)
        frames = np.concatenate([t.frames for t in self.tracks]) if self.tracks else np.zeros(0, np.int64)
        owner = np.repeat(np.arange(len(self.tracks), dtype=np.int64), lengths)
        span = max(self.num_frames, int(frames.max()) + 1 if len(frames) else 0)
        order = owner[np.argsort(frames, kind="stable")]  # stable: track order within a frame
        counts = np.bincount(frames, minlength=span) if len(frames) else np.zeros(span, np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._index = _FrameIndex(offsets, order)
        return self._index

    def select(self, spec: str) -> FaceTracks:
        """The tracks ``spec`` names, IDs unchanged.

        "all"; "largest": the main face of each shot, i.e. every track that is the largest face on screen (by
        median size) for at least half of its frames; or comma-separated IDs such as "0,2" (ConfigError for an
        ID that does not exist or a malformed list).
        """
        text = (spec or "all").strip().lower()
        if text == "all":
            keep = list(self.tracks)
        elif text == "largest":
            keep = self._largest()
        else:
            wanted = _parse_ids(text)
            known = set(self.ids())
            missing = [i for i in wanted if i not in known]
            if missing:
                raise ConfigError(
                    f"unknown face track id{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))}; "
                    f"{self._ids_text()}"
                )
            keep = [t for t in self.tracks if t.id in set(wanted)]
        return FaceTracks(keep, self.num_frames, list(self.scene_cuts))

    def _largest(self) -> list[Track]:
        if not self.tracks:
            return []
        index = self._index if self._index is not None else self._build_index()
        sizes = np.array([t.size for t in self.tracks])
        wins = np.zeros(len(self.tracks), dtype=np.int64)
        counts = np.diff(index.offsets)
        busy = np.flatnonzero(counts)
        # For each frame with faces, the track of largest median size wins (ties: the lower index).
        for i in busy:
            members = index.order[index.offsets[i] : index.offsets[i + 1]]
            wins[members[np.argmax(sizes[members])]] += 1
        return [t for t, w in zip(self.tracks, wins) if 2 * w >= len(t)]

    def _ids_text(self) -> str:
        if not self.tracks:
            return "this video has no face tracks"
        return f"this video has track ids {', '.join(map(str, self.ids()))}"

    def to_json(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict (for caching and ``fvr info``)."""
        return {
            "version": JSON_VERSION,
            "num_frames": int(self.num_frames),
            "scene_cuts": [int(c) for c in self.scene_cuts],
            "tracks": [t.to_json() for t in self.tracks],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaceTracks:
        """Inverse of :meth:`to_json`; InputError (one line) if ``data`` is not such a dict."""
        try:
            if int(data["version"]) != JSON_VERSION:
                raise InputError(f"face tracks: unsupported version {data['version']} (expected {JSON_VERSION})")
            tracks = [Track.from_json(t) for t in data["tracks"]]
            return cls(tracks, int(data["num_frames"]), [int(c) for c in data["scene_cuts"]])
        except InputError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"face tracks: malformed data ({type(exc).__name__}: {exc})") from None


def _parse_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        ids = []
    if not ids or any(i < 0 for i in ids):
        raise ConfigError(f"faces must be 'all', 'largest' or comma-separated track ids such as 0,2; got {text!r}")
    return ids


# --------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class TrackerConfig:
    """How faces are followed from frame to frame.

    detect_every: run the detector every k-th frame of a shot (and on each shot's first frame); in between, live
        tracks are carried by pyramidal Lucas-Kanade optical flow, much cheaper than detection.
    max_gap: frames a track may go undetected and still continue (carried by optical flow while it can, else
        interpolated linearly between the detections around the gap).
    min_length: the false-positive rule (see :meth:`min_detections_for`): in a shot of at least
        2 * min_length - 1 frames, tracks with fewer than ceil(min_length / detect_every) detections are dropped;
        in a shorter shot the requirement is lower, and in a shot (or a whole clip) of at most min_length frames
        every detected face is kept.
    iou_threshold: minimum box overlap between a track's predicted box and a detection to match them.
    landmark_weight: association cost = (1 - IoU) + landmark_weight * mean landmark distance / face size.
    redetect_motion: with ``detect_every`` > 1, run the detector early (and count the k frames from there) when a
        face has moved more than this many face sizes (:func:`face_sizes`, about four inter-ocular distances)
        since its last detection, summed over the frames optical flow carried it; when optical flow lost a face
        it carried; and on each frame after a run that missed a face flow still carries (until it is found or
        ``max_gap`` runs out): fast motion is where flow drifts from the face (turns, blur), and a face missed
        once is often found on the next frame. 0 turns the early runs off.
    scene_cut_threshold: see :class:`SceneCutDetector`; <= 0 disables cut detection.
    flow_max_side: frames are shrunk so that max(H, W) <= flow_max_side for optical flow (as for detection).
    """

    detect_every: int = 5
    max_gap: int = 12
    min_length: int = 5
    iou_threshold: float = 0.2
    landmark_weight: float = 1.0
    redetect_motion: float = 0.03
    scene_cut_threshold: float = 0.2
    flow_max_side: int = 960

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` (one line) for unusable values (also at construction)."""
        check_range("detect_every", self.detect_every, 1, None, integer=True)
        check_range("max_gap", self.max_gap, 0, None, integer=True)
        check_range("min_length", self.min_length, 1, None, integer=True)
        check_range("iou_threshold", self.iou_threshold, 0.0, 1.0, open_high=True)
        check_range("landmark_weight", self.landmark_weight, 0.0, None)
        check_range("redetect_motion", self.redetect_motion, 0.0, None)
        check_range("flow_max_side", self.flow_max_side, 32, None, integer=True)

    @property
    def min_detections(self) -> int:
        """Detections a track needs to be kept in a long shot (see :meth:`min_detections_for`)."""
        return max(1, math.ceil(self.min_length / self.detect_every))

    def min_detections_for(self, shot_frames: int) -> int:
        """Detections a track needs to be kept, in a shot (or clip) of ``shot_frames`` frames.

        The minimum track length is there to drop false detections, which flicker for a frame or two while a real
        face persists; that test needs a shot long enough to tell the two apart. So the required track length is
        ``shot_frames - min_length + 1`` frames, clamped to [1, ``min_length``]: it grows by one frame per frame of
        shot, so that no shot length is a cliff. Every detected face is kept in a shot of at most ``min_length``
        frames (a 1-5 frame clip with the default 5), and from ``2 * min_length - 1`` frames on (9 by default) the
        full rule applies. With ``detect_every`` k, n frames of track need ceil(n / k) detections.
        """
        frames = min(self.min_length, max(1, int(shot_frames) - self.min_length + 1))
        return max(1, math.ceil(frames / self.detect_every))


# --------------------------------------------------------------------------------------------------------------
# Live tracks


class _LiveTrack:
    """A track being built: compact per-frame records (4-byte floats), appended as frames arrive."""

    def __init__(self, key: int = 0) -> None:
        self.key = key  # stable while the track lives (final IDs are given by FaceTracker.finish)
        self.frames = array("q")
        self.landmarks = array("f")  # 10 per frame
        self.boxes = array("f")  # 4 per frame
        self.scores = array("f")
        self.detected = array("b")
        self.motion = 0.0  # face sizes moved since the last detection, summed over the frames flow carried it
        self.last_detection = -1  # frame of the last detected record

    def append(self, frame: int, landmarks: np.ndarray, box: np.ndarray, score: float, detected: bool) -> None:
        self.motion = 0.0 if detected or not self.frames else self.motion + self.step(landmarks)
        if detected:
            self.last_detection = frame
        self.frames.append(frame)
        self.landmarks.extend(np.asarray(landmarks, dtype=np.float32).ravel().tolist())
        self.boxes.extend(np.asarray(box, dtype=np.float32).ravel().tolist())
        self.scores.append(float(score))
        self.detected.append(1 if detected else 0)

    @property
    def last_frame(self) -> int:
        return self.frames[-1]

    def last(self, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks (5, 2) and box (4,) of the k-th last record."""
        n = len(self.frames) - k
        lm = np.array(self.landmarks[10 * n : 10 * n + 10], dtype=np.float32).reshape(5, 2)
        return lm, np.array(self.boxes[4 * n : 4 * n + 4], dtype=np.float32)

    def step(self, landmarks: np.ndarray) -> float:
        """Mean distance of ``landmarks`` (5, 2) from the last record's, in face sizes."""
        last = self.last()[0]
        return float(np.linalg.norm(landmarks - last, axis=1).mean() / max(float(face_sizes(last)), 1.0))

    def predict(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks and box expected on ``frame``: constant velocity, extrapolated at most a few frames."""
        lm, box = self.last()
        if len(self.frames) < 2:
            return lm, box
        # Velocity over a baseline of a few frames: consecutive records (a detection next to an optical-flow
        # estimate, or two detections) differ by their own noise, which extrapolation would amplify.
        back = 2
        while back < len(self.frames) and self.frames[-1] - self.frames[-back] < _VELOCITY_BASELINE:
            back += 1
        lm_then, _ = self.last(back)
        velocity = (lm - lm_then) / float(self.frames[-1] - self.frames[-back])
        shift = velocity * min(frame - self.last_frame, _MAX_EXTRAPOLATION)
        return lm + shift, box + np.tile(shift.mean(axis=0), 2)

    def num_detections(self) -> int:
        return sum(self.detected)

    def trim_undetected_tail(self) -> None:
        """Drop trailing optical-flow records (for a track the detector lost: the face may have left already)."""
        n = len(self.detected)
        while n and not self.detected[n - 1]:
            n -= 1
        del self.frames[n:], self.landmarks[10 * n :], self.boxes[4 * n :], self.scores[n:], self.detected[n:]

    def to_track(self) -> Track:
        """Consecutive-frame track, missed frames linearly interpolated (ID assigned later)."""
        known = np.frombuffer(self.frames, dtype=np.int64)
        lms = np.frombuffer(self.landmarks, dtype=np.float32).reshape(-1, 10)
        boxes = np.frombuffer(self.boxes, dtype=np.float32).reshape(-1, 4)
        frames = np.arange(known[0], known[-1] + 1, dtype=np.int64)
        slot = frames - known[0]
        at = known - known[0]
        scores = np.zeros(len(frames), np.float32)
        detected = np.zeros(len(frames), bool)
        scores[at] = np.frombuffer(self.scores, dtype=np.float32)
        detected[at] = np.frombuffer(self.detected, dtype=np.int8).astype(bool)
        lm_full = interpolate_rows(at, lms, slot).reshape(-1, 5, 2)
        return Track(
            id=-1,
            frames=frames,
            landmarks=lm_full.copy(),
            raw_landmarks=lm_full,
            boxes=interpolate_rows(at, boxes, slot),
            scores=scores,
            detected=detected,
        )


def interpolate_rows(known: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows: ``values`` (n, D) given at increasing ``known`` (n,), evaluated at ``at``
    (m,) inside [known[0], known[-1]]. Returns (m, D) float32."""
    if len(known) == 1:
        return np.repeat(values[:1], len(at), axis=0).astype(np.float32)
    j = np.clip(np.searchsorted(known, at, side="right") - 1, 0, len(known) - 2)
    w = ((at - known[j]) / (known[j + 1] - known[j])).astype(np.float64)[:, None]
    out = values[j].astype(np.float64) * (1.0 - w) + values[j + 1].astype(np.float64) * w
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# Association


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (T, 4) and b (D, 4), x0 y0 x1 y1: (T, D) float64 in [0, 1]."""
    a = np.asarray(a, dtype=np.float64)[:, None, :]
    b = np.asarray(b, dtype=np.float64)[None, :, :]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def match(
    pred_boxes: np.ndarray, pred_landmarks: np.ndarray, dets: Detections, config: TrackerConfig
) -> list[tuple[int, int]]:
    """(track row, detection row) pairs: minimum-cost assignment among the pairs that pass the gate.

    pred_*: (T, 4) and (T, 5, 2) where each track is expected. Cost = (1 - IoU) + landmark_weight * mean landmark
    distance / face size; a pair is allowed only if IoU >= iou_threshold and the distance is < 0.25 face size.
    """
    if len(pred_boxes) == 0 or len(dets) == 0:
        return []
    iou = box_iou(pred_boxes, dets.boxes)
    sizes = face_sizes(pred_landmarks)[:, None]
    dist = np.linalg.norm(pred_landmarks[:, None] - dets.landmarks[None], axis=-1).mean(axis=-1) / sizes
    allowed = (iou >= config.iou_threshold) & (dist < _MAX_LANDMARK_SHIFT)
    cost = np.where(allowed, (1.0 - iou) + config.landmark_weight * dist, 1e6)
    from scipy.optimize import linear_sum_assignment  # imported when first needed: scipy is slow to import

    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]


# --------------------------------------------------------------------------------------------------------------
# Optical flow


@dataclass(frozen=True)
class _FlowImage:
    grey: np.ndarray  # (h, w) uint8, the frame shrunk
    factors: np.ndarray  # (2,) fx, fy of the shrink
    frame_shape: tuple[int, int]

    def to_thumb(self, pts: np.ndarray) -> np.ndarray:
        """Frame pixel positions (..., 2) -> thumbnail positions (pixel-centre convention of cv2.resize)."""
        return (pts + 0.5) * self.factors - 0.5

    def to_frame(self, pts: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_thumb`."""
        return (pts + 0.5) / self.factors - 0.5


def flow_image(rgb: np.ndarray, max_side: int) -> _FlowImage:
    """Grey, shrunk copy of an (H, W, 3) uint8 RGB frame for optical flow."""
    h, w = rgb.shape[:2]
    small = shrink(rgb, shrink_factor(h, w, max_side))
    return _FlowImage(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), resize_factors(rgb, small), (h, w))


def _flow_points(landmarks: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Points to follow for one face (frame pixels): a grid over the inner box plus the five landmarks."""
    x0, y0, x1, y1 = box.astype(np.float64)
    mx, my = 0.15 * (x1 - x0), 0.15 * (y1 - y0)
    gx = np.linspace(x0 + mx, x1 - mx, _FLOW_GRID)
    gy = np.linspace(y0 + my, y1 - my, _FLOW_GRID)
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    return np.concatenate([grid, landmarks.astype(np.float64)], axis=0)


def propagate(
    prev: _FlowImage, cur: _FlowImage, faces: list[tuple[np.ndarray, np.ndarray]]
) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Carry each face ((5, 2) landmarks, (4,) box, frame pixels) from ``prev`` to ``cur``.

    All faces' points go through one forward and one backward Lucas-Kanade call; per face, a similarity is
    fitted to the points that survive the forward-backward check (then refitted without outliers) and applied
    to its landmarks and box. None for a face whose motion cannot be trusted.
    """
    if not faces:
        return []
    pts = [_flow_points(lm, box) for lm, box in faces]
    counts = [len(p) for p in pts]
    p0 = prev.to_thumb(np.concatenate(pts)).astype(np.float32).reshape(-1, 1, 2)
    params: dict[str, Any] = dict(
        winSize=_FLOW_WINDOW, maxLevel=_FLOW_LEVELS,
        criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 0.03),
    )
    # cv2's stub requires the nextPts array; OpenCV takes None for it (no initial guess) and allocates the result
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev.grey, cur.grey, p0, None, **params)  # type: ignore[call-overload]
    p0b, st0, _ = cv2.calcOpticalFlowPyrLK(cur.grey, prev.grey, p1, None, **params)  # type: ignore[call-overload]
    ok = (st1.ravel() == 1) & (st0.ravel() == 1)
    ok &= np.linalg.norm((p0 - p0b).reshape(-1, 2), axis=1) < _FLOW_MAX_FB_ERROR
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    start = 0
    for (lm, box), n in zip(faces, counts):
        sl = slice(start, start + n)
        start += n
        m = _fit_motion(p0.reshape(-1, 2)[sl][ok[sl]], p1.reshape(-1, 2)[sl][ok[sl]])
        out.append(None if m is None else _moved(lm, box, m, prev, cur))
    return out


def _fit_motion(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """Similarity (thumbnail pixels) from tracked point pairs, refitted once without outliers; None if unsure."""
    if len(src) < _FLOW_MIN_POINTS:
        return None
    m = similarity_transform(src, dst)
    resid = np.linalg.norm(transform_points(m, src.astype(np.float64)) - dst, axis=1)
    inliers = resid <= max(0.5, 2.5 * float(np.median(resid)))
    if inliers.sum() < _FLOW_MIN_POINTS:
        return None
    m = similarity_transform(src[inliers], dst[inliers])
    zoom = math.sqrt(abs(np.linalg.det(m[:, :2])))
    if not 1.0 / _FLOW_MAX_ZOOM <= zoom <= _FLOW_MAX_ZOOM:
        return None
    return m


def _moved(
    lm: np.ndarray, box: np.ndarray, m: np.ndarray, prev: _FlowImage, cur: _FlowImage
) -> tuple[np.ndarray, np.ndarray] | None:
    """Landmarks and box moved by ``m`` (thumbnail pixels); None if the face centre left the frame."""
    new_lm = cur.to_frame(transform_points(m, prev.to_thumb(lm.astype(np.float64))))
    centre = box.reshape(2, 2).mean(axis=0).astype(np.float64)
    half = (box[2:] - box[:2]).astype(np.float64) / 2.0 * math.sqrt(abs(np.linalg.det(m[:, :2])))
    new_c = cur.to_frame(transform_points(m, prev.to_thumb(centre)))
    h, w = cur.frame_shape
    if not (0 <= new_c[0] < w and 0 <= new_c[1] < h):
        return None
    new_box = np.concatenate([new_c - half, new_c + half])
    new_box[0::2] = np.clip(new_box[0::2], 0, w)
    new_box[1::2] = np.clip(new_box[1::2], 0, h)
    return new_lm.astype(np.float32), new_box.astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# The tracker


class FaceTracker:
    """Streaming face tracker: :meth:`update` once per frame in order, then :meth:`finish` once."""

    def __init__(self, detector: FaceDetector, config: TrackerConfig = TrackerConfig()):
        config.validate()
        self.detector = detector
        self.config = config
        self._scenes = SceneCutDetector(config.scene_cut_threshold)
        self._frame = 0
        self._shot_start = 0
        self._last_detection = 0  # frame of the last detector run
        self.detector_runs = 0  # frames the detector ran on
        self._shape: tuple[int, ...] | None = None
        self._prev_flow: _FlowImage | None = None
        self._live: list[_LiveTrack] = []
        self._next_key = 0
        self._shot_tracks: list[Track] = []  # closed in the current shot, kept or dropped once its length is known
        self._done: list[Track] = []
        self._cuts: list[int] = []
        self._finished = False

    @property
    def frames_seen(self) -> int:
        """Frames fed so far."""
        return self._frame

    def update(self, rgb: np.ndarray) -> None:
        """Process the next frame: (H, W, 3) uint8 RGB."""
        if self._finished:
            raise RuntimeError("FaceTracker.update() after finish()")
        rgb = check_frame(rgb)
        i = self._frame
        if self._starts_shot(rgb) and i > 0:
            self._end_shot(i)
        flow = flow_image(rgb, self.config.flow_max_side) if self.config.detect_every > 1 else None
        carried = self._carry(flow, i)
        if self._detection_due(i, carried):
            self._last_detection = i
            self.detector_runs += 1
            self._assign(i, self.detector.detect(rgb), carried)
        else:
            for track, moved in carried.items():
                track.append(i, moved[0], moved[1], 0.0, False)
        self._expire(i)
        self._settle(i + 1 - self._shot_start, shot_ended=False)
        self._prev_flow = flow
        self._frame += 1

    def current(self) -> list[tuple[int, np.ndarray]]:
        """The faces followed on the last frame given to :meth:`update`, as it was processed (causally: nothing
        after it is known): (live key, (5, 2) float32 landmarks) per live track with a record on that frame,
        detected or carried by optical flow. A key stays the same while its track lives; a face missed on this
        frame is absent (the offline tracks interpolate such gaps afterwards)."""
        last = self._frame - 1
        return [(t.key, t.last()[0]) for t in self._live if len(t.frames) and t.last_frame == last]

    def finish(self) -> FaceTracks:
        """Close every track and return them, IDs 0..K-1 in order of first appearance."""
        self._finished = True
        for track in self._live:
            self._close(track)
        self._live = []
        self._settle(self._frame - self._shot_start, shot_ended=True)
        # Order of first appearance; simultaneous faces left to right, then top to bottom: deterministic.
        ordered = sorted(self._done, key=lambda t: (t.start, float(t.boxes[0, 0]), float(t.boxes[0, 1])))
        for new_id, done in enumerate(ordered):
            done.id = new_id
        return FaceTracks(ordered, self._frame, list(self._cuts))

    # --- per-frame steps

    def _starts_shot(self, rgb: np.ndarray) -> bool:
        """Scene cut, or a change of frame size (which no track can survive either)."""
        resized = self._shape is not None and rgb.shape != self._shape
        self._shape = rgb.shape
        if resized:
            self._scenes.reset()
            self._scenes.update(rgb)
            return True
        return self._scenes.update(rgb)

    def _end_shot(self, i: int) -> None:
        for track in self._live:
            self._close(track)
        self._live = []
        self._settle(i - self._shot_start, shot_ended=True)
        self._cuts.append(i)
        self._shot_start = i
        self._prev_flow = None

    def _detection_due(self, i: int, carried: dict[_LiveTrack, tuple[np.ndarray, np.ndarray]]) -> bool:
        """The detector runs on a shot's first frame, ``detect_every`` frames after its last run, and early when
        optical flow lost a face or carried one too far (:attr:`TrackerConfig.redetect_motion`)."""
        if i == self._shot_start or i - self._last_detection >= self.config.detect_every:
            return True
        limit = self.config.redetect_motion
        if limit <= 0:
            return False
        if any(t.last_frame == i - 1 and t not in carried for t in self._live):
            return True  # flow lost a face
        if any(t.last_detection < self._last_detection for t in carried):
            return True  # the last run missed a face flow still follows
        return any(t.motion + t.step(moved[0]) > limit for t, moved in carried.items())

    def _carry(self, flow: _FlowImage | None, i: int) -> dict[_LiveTrack, tuple[np.ndarray, np.ndarray]]:
        """Optical-flow positions on frame i of the tracks seen on frame i - 1."""
        if flow is None or self._prev_flow is None:
            return {}
        recent = [t for t in self._live if t.last_frame == i - 1]
        moved = propagate(self._prev_flow, flow, [t.last() for t in recent])
        return {t: m for t, m in zip(recent, moved) if m is not None}

    def _assign(
        self, i: int, dets: Detections, carried: dict[_LiveTrack, tuple[np.ndarray, np.ndarray]]
    ) -> None:
        """Match detections to live tracks; extend the matched, start tracks for the rest."""
        predicted = [carried[t] if t in carried else t.predict(i) for t in self._live]
        pairs = []
        if predicted:
            pairs = match(
                np.stack([p[1] for p in predicted]), np.stack([p[0] for p in predicted]), dets, self.config
            )
        used = set()
        for row, col in pairs:
            self._live[row].append(i, dets.landmarks[col], dets.boxes[col], float(dets.scores[col]), True)
            used.add(col)
        matched = {row for row, _ in pairs}
        for row, track in enumerate(self._live):
            # A face the detector missed once (blur, a turn) stays where optical flow puts it, within max_gap.
            if row not in matched and track in carried and i - track.last_detection <= self.config.max_gap:
                track.append(i, carried[track][0], carried[track][1], 0.0, False)
        for col in range(len(dets)):
            if col not in used:
                track = _LiveTrack(self._next_key)
                self._next_key += 1
                track.append(i, dets.landmarks[col], dets.boxes[col], float(dets.scores[col]), True)
                self._live.append(track)

    def _expire(self, i: int) -> None:
        """End the tracks undetected for more than max_gap frames."""
        keep = []
        for track in self._live:
            # Unseen by a detector run and for longer than max_gap (a cadence longer than max_gap is no miss).
            if track.last_detection < self._last_detection and i - track.last_detection > self.config.max_gap:
                track.trim_undetected_tail()
                self._close(track)
            else:
                keep.append(track)
        self._live = keep

    def _close(self, track: _LiveTrack) -> None:
        self._shot_tracks.append(track.to_track())

    def _settle(self, shot_frames: int, shot_ended: bool) -> None:
        """Keep or drop the tracks closed in this shot (:meth:`TrackerConfig.min_detections_for`), once the shot
        has ended or is already long enough for the full rule (which a longer shot does not change)."""
        need = self.config.min_detections_for(shot_frames)
        if not self._shot_tracks or not (shot_ended or need >= self.config.min_detections):
            return
        self._done.extend(t for t in self._shot_tracks if int(t.detected.sum()) >= need)
        self._shot_tracks = []


def analyse_frames(
    frames: Iterable[np.ndarray],
    detector: FaceDetector,
    config: TrackerConfig = TrackerConfig(),
    on_frame: Callable[[int], None] | None = None,
) -> FaceTracks:
    """Track faces over ``frames`` ((H, W, 3) uint8 RGB, in order); ``on_frame(i)`` after frame i is done."""
    tracker = FaceTracker(detector, config)
    for i, rgb in enumerate(frames):
        tracker.update(rgb)
        if on_frame is not None:
            on_frame(i)
    return tracker.finish()
