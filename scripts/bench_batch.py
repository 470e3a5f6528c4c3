"""Throughput of `fvr batch` with 1 and then 2 workers (Ray actors), in one run, on synthetic clips.

Builds K moving-face clips (the astronaut photo under a smooth camera, lightly degraded: blur, noise, JPEG) at
WxH, then restores the same batch twice on a fresh local Ray cluster each time: with 1 worker, then with 2 (or
the --workers list). Each worker gets the node's cores / workers threads (unless --threads), so every run uses the
whole machine: what is compared is one process with all the threads against several processes sharing them.

Usage:
    python scripts/bench_batch.py [--clips 4] [--frames 150] [--size 640x360] [--model fvr-fast]
        [--workers 1,2] [--segment-frames 1500] [--segments-per-worker 0] [--preset medium] [--json out.json]
        [--keep DIR]

--segments-per-worker takes a list too ("0,1": every worker count with actors kept for the whole batch, then
with a fresh actor after every segment), to measure what recycling the actors costs.

Prints, per worker count, frames/s over the batch (the cluster and actor start-up excluded, reported beside it)
and the ratio to the first run. Timings are wall-clock on whatever machine runs it: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


def synthetic_clip(path: Path, frames: int, width: int, height: int, fov: float, seed: int) -> Path:
    """The astronaut's face under a smooth camera (as fvr.synthetic) on a WxH frame, lightly degraded."""
    from skimage import data

    from fvr.io import EncodeOptions, VideoInfo, open_sink
    from fvr.synthetic import camera_matrix, degrade_frame

    photo = np.ascontiguousarray(data.astronaut())
    fps = Fraction(25)
    info = VideoInfo(path=str(path), width=width, height=height, fps=fps, time_base=1 / fps, num_frames=frames,
                     duration=frames / 25.0)
    rng = np.random.default_rng(seed)
    with open_sink(path, info, (width, height), EncodeOptions(crf=16, preset="fast")) as sink:
        for i in range(frames):
            m = camera_matrix(i / frames, height, fov)
            m[0, 2] += (width - height) / 2.0  # the square camera, centred in the wide frame
            clean = cv2.warpAffine(photo, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            sink.write(degrade_frame(clean, rng, scale=1, blur=1.0, noise=4.0, jpeg=60), i)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--size", default="640x360", help="WxH of the clips")
    parser.add_argument("--model", default="fvr-fast")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts, run in this order")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (default: cores / workers)")
    parser.add_argument("--segment-frames", type=int, default=1500)
    parser.add_argument("--segments-per-worker", default="0",
                        help="comma-separated values of run_batch's segments_per_worker (0: actors never recycled)")
    parser.add_argument("--preset", default="medium", help="x264 preset of the outputs")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the clips and outputs in this folder")
    args = parser.parse_args()

    from fvr.io import EncodeOptions
    from fvr.run.batch import run_batch
    from fvr.run.config import RestoreConfig

    width, height = (int(v) for v in args.size.lower().split("x"))
    counts = [int(w) for w in args.workers.split(",")]
    root = args.keep or Path(tempfile.mkdtemp(prefix="fvr-bench-batch-"))
    clips = root / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for k in range(args.clips):
        synthetic_clip(clips / f"clip{k}.mp4", args.frames, width, height, fov=180.0 + 20.0 * k, seed=k)
    print(f"{args.clips} clips x {args.frames} frames {width}x{height} in {time.perf_counter() - t0:.1f} s ({root})")

    config = RestoreConfig(model=args.model, device="cpu", encode=EncodeOptions(preset=args.preset))
    rows = []
    recycles = [int(v) for v in args.segments_per_worker.split(",")]
    for workers, recycle in ((w, r) for w in counts for r in recycles):
        out = root / f"out-{workers}-{recycle}"
        shutil.rmtree(out, ignore_errors=True)
        load_before = os.getloadavg()[0]  # a shared machine: other work skews the figures, so say how much
        summary = run_batch([clips], out, config, workers=workers, threads=args.threads,
                            segment_frames=args.segment_frames, segments_per_worker=recycle)
        failed = [f"{Path(v.input).name}: {v.error}" for v in summary.failed]
        if failed:
            raise SystemExit(f"{len(failed)} video(s) failed: {'; '.join(failed)}")
        row = {"workers": workers, "segments_per_worker": recycle, "threads_per_worker": summary.threads,
               "frames": summary.frames,
               "seconds": round(summary.seconds, 2), "startup_seconds": round(summary.startup_seconds, 2),
               "fps": round(summary.fps, 3), "load_before": round(load_before, 2),
               "load_after": round(os.getloadavg()[0], 2)}
        rows.append(row)
        print(f"workers {workers} (threads {summary.threads}, segments per worker {recycle or 'all'}): "
              f"{summary.frames} frames in {summary.seconds:.1f} s "
              f"= {summary.fps:.2f} frames/s (+{summary.startup_seconds:.1f} s cluster and actor start-up; "
              f"1-min load average {row['load_before']:.2f} before, {row['load_after']:.2f} after)")
    base = rows[0]["fps"]
    for row in rows:
        row["speedup"] = round(row["fps"] / base, 3) if base else None
    print(" | ".join(f"{r['workers']} worker(s), recycle {r['segments_per_worker']}: {r['fps']:.2f} fps "
                     f"({r['speedup']:.2f}x)" for r in rows))

    if args.json:
        record = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.node(), "cores": _cores(),
                  "clips": args.clips, "frames": args.frames, "size": [width, height], "model": args.model,
                  "segment_frames": args.segment_frames, "preset": args.preset, "runs": rows}
        args.json.write_text(json.dumps(record, indent=1))
        print(f"wrote {args.json}")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    main()
