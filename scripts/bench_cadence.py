"""How much face tracking loses when the detector runs only every k-th frame (optical flow in between).

For each clip, the face analysis of `fvr restore` (detector, tracker, landmark smoothing) runs once with the detector
on every frame (the reference) and once per cadence k. Each frame's faces are matched to the reference's by the
nearest landmark centroid; reported per clip and cadence:

  * err mean / p95 / max: the smoothed landmarks' distance to the reference's (what the crops are cut with), mean
    over the 5 points, in units of the reference's inter-ocular distance (0.05 = 5 % of the eye distance);
  * missed / extra: face-frames the reference has and the cadence lacks / the other way round;
  * runs: detector runs per frame (1/k plus the early runs of --motion);
  * tracks: number of tracks (reference -> cadence), a rise meaning a face was split into several;
  * motion: the reference faces' mean landmark speed, inter-ocular distances per frame (how fast the heads move);
  * ms/frame: wall-clock of the whole analysis, decoding included.

Usage:
    python scripts/bench_cadence.py CLIP [CLIP ...] [--every 5 8] [--motion 0 0.05] [--frames 150] [--json out.json]

--motion: the tracker's ``redetect_motion`` values to try at each cadence (0: the detector strictly every k frames).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from fvr.faces.detect import DetectorConfig, make_detector
from fvr.faces.smooth import SmoothingConfig, smooth_tracks
from fvr.faces.track import FaceTracker, FaceTracks, TrackerConfig
from fvr.io.source import MediaSource


def _analyse(path: Path, config: TrackerConfig, frames: int) -> tuple[FaceTracks, float, int]:
    """The smoothed tracks of the first ``frames`` frames, the seconds taken, the detector runs."""
    tracker = FaceTracker(make_detector(DetectorConfig()), config)
    with MediaSource(path) as src:
        t0 = time.perf_counter()
        for f in itertools.islice(src.frames(), frames):
            tracker.update(f.rgb)
        tracks = smooth_tracks(tracker.finish(), SmoothingConfig(), float(src.info.fps))
        seconds = time.perf_counter() - t0
    return tracks, seconds, tracker.detector_runs


def _eye_distance(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[1] - lm[0]))


def _compare(ref: FaceTracks, other: FaceTracks) -> dict:
    errors: list[float] = []
    missed = extra = 0
    speeds: list[float] = []
    prev: dict[int, np.ndarray] = {}
    for i in range(ref.num_frames):
        a = ref.at_frame(i)
        b = [lm for _, lm in other.at_frame(i)]
        for tid, lm in a:
            if tid in prev:
                speeds.append(float(np.linalg.norm(lm - prev[tid], axis=1).mean()) / max(_eye_distance(lm), 1.0))
        prev = {tid: lm for tid, lm in a}
        used: set[int] = set()
        for _, lm in a:
            eye = max(_eye_distance(lm), 1.0)
            best, best_d = None, np.inf
            for j, lb in enumerate(b):
                d = float(np.linalg.norm(lb.mean(0) - lm.mean(0)))
                if j not in used and d < best_d:
                    best, best_d = j, d
            if best is None or best_d > 2 * eye:
                missed += 1
                continue
            used.add(best)
            errors.append(float(np.linalg.norm(b[best] - lm, axis=1).mean()) / eye)
        extra += len(b) - len(used)
    e = np.asarray(errors) if errors else np.zeros(1)
    return {"err_mean": float(e.mean()), "err_p95": float(np.percentile(e, 95)), "err_max": float(e.max()),
            "missed": missed, "extra": extra, "face_frames": len(errors) + missed,
            "tracks": f"{len(ref.tracks)}->{len(other.tracks)}",
            "motion": float(np.mean(speeds)) if speeds else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--every", nargs="+", type=int, default=[5])
    ap.add_argument("--motion", nargs="+", type=float, default=[0.0, TrackerConfig().redetect_motion])
    ap.add_argument("--frames", type=int, default=150, help="frames analysed per clip (from the start)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    print("| clip | k | redetect | motion | err mean | err p95 | err max | missed | extra | face-frames | runs "
          "| tracks | ms/frame (k=1 -> k) |")
    print("|---" * 13 + "|")
    for clip in args.clips:
        ref, ref_s, _ = _analyse(clip, TrackerConfig(detect_every=1), args.frames)
        n = ref.num_frames
        for k, tau in itertools.product(args.every, args.motion):
            other, s, runs = _analyse(clip, TrackerConfig(detect_every=k, redetect_motion=tau), args.frames)
            row = {"clip": clip.name, "every": k, "redetect_motion": tau, "frames": n, **_compare(ref, other),
                   "runs": runs / max(n, 1), "ms_ref": 1000 * ref_s / max(n, 1), "ms": 1000 * s / max(n, 1)}
            rows.append(row)
            print(f"| {clip.stem} | {k} | {tau:g} | {row['motion']:.3f} | {row['err_mean']:.3f} | {row['err_p95']:.3f} "
                  f"| {row['err_max']:.3f} | {row['missed']} | {row['extra']} | {row['face_frames']} | "
                  f"{row['runs']:.2f} | {row['tracks']} | {row['ms_ref']:.0f} -> {row['ms']:.0f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
