"""End-to-end speed and memory of `fvr restore` against decode+encode alone, on real clips.

For each clip, in separate child processes (so that peak RSS is per job):
  * baseline: decode every frame to RGB and re-encode it with the same encoder settings, copying audio;
  * restore:  the full pipeline (`restore_video`) with the given model (default `identity`);
  * detector: the face detector alone on every k-th frame (ms/frame), plus the tracks and ID switches found.

Usage:
    python scripts/bench_pipeline.py CLIP [CLIP ...] [--model identity] [--json out.json]

Prints a Markdown table. Timings are wall-clock on whatever machine runs it: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def job_baseline(clip: str, out: str) -> dict:
    import av

    from fvr.io import EncodeOptions, MediaSource, open_sink

    t0 = time.perf_counter()
    n = 0
    with MediaSource(clip) as src:
        info = src.info
        with open_sink(out, info, (info.width, info.height), EncodeOptions(), src.copyable_streams) as sink:
            for item in src.media():
                if isinstance(item, av.Packet):
                    sink.copy_packet(item)
                else:
                    sink.write(item.rgb, item.pts)
                    n += 1
    dt = time.perf_counter() - t0
    return {"frames": n, "seconds": dt, "fps": n / dt, "peak_rss_mb": _peak_rss_mb()}


def job_restore(clip: str, out: str, model: str) -> dict:
    from fvr.pipeline import RestoreConfig, restore_video

    t0 = time.perf_counter()
    r = restore_video(clip, out, RestoreConfig(model=model))
    dt = time.perf_counter() - t0
    return {"frames": r.frames, "seconds": dt, "fps": r.frames / dt, "seconds_analyse": r.seconds_analyse,
            "seconds_restore": r.seconds_restore, "tracks": r.tracks, "peak_rss_mb": _peak_rss_mb()}


def job_detector(clip: str, every: int) -> dict:
    from fvr.faces import DetectorConfig, make_detector
    from fvr.io import MediaSource
    from fvr.pipeline import analyse_source

    det = make_detector(DetectorConfig())
    times, faces = [], 0
    with MediaSource(clip) as src:
        for f in src.frames():
            if f.index % every:
                continue
            t0 = time.perf_counter()
            faces += len(det.detect(f.rgb))
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tracks = analyse_source(src)
        dt = time.perf_counter() - t0
    # one person per eval clip: any extra track is an identity switch (or a false positive)
    return {
        "detector_ms": 1000 * sum(times) / len(times), "detections_per_frame": faces / len(times),
        "analyse_fps": tracks.num_frames / dt, "tracks": len(tracks.tracks),
        "track_frames": [len(t.frames) for t in tracks.tracks], "frames": tracks.num_frames,
        "scene_cuts": len(tracks.scene_cuts),
    }


def _child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "child failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*")
    ap.add_argument("--model", default="identity")
    ap.add_argument("--detect-every", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, *rest = a.child
        result = {"baseline": lambda: job_baseline(*rest), "restore": lambda: job_restore(*rest),
                  "detector": lambda: job_detector(rest[0], int(rest[1]))}[kind]()
        print(json.dumps(result))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in a.clips:
            base = _child(["baseline", clip, f"{tmp}/base.mp4"])
            rest = _child(["restore", clip, f"{tmp}/rest.mp4", a.model])
            det = _child(["detector", clip, str(a.detect_every)])
            rows.append({"clip": Path(clip).name, "baseline": base, "restore": rest, "detector": det})
            print(f"done {clip}", file=sys.stderr)
    print("| clip | frames | decode+encode fps | fvr restore fps | ratio | peak RSS base / fvr (MB) "
          "| detector ms/frame | tracks | ID switches |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b, s, d = r["baseline"], r["restore"], r["detector"]
        print(f"| {r['clip']} | {b['frames']} | {b['fps']:.1f} | {s['fps']:.1f} | {s['fps'] / b['fps']:.2f} "
              f"| {b['peak_rss_mb']:.0f} / {s['peak_rss_mb']:.0f} | {d['detector_ms']:.1f} | {d['tracks']} "
              f"| {max(d['tracks'] - 1, 0)} |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
