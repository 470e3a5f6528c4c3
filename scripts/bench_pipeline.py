"""End-to-end speed and memory of `fvr restore` against decode+encode alone, on real clips.

For each clip, in separate child processes (so that peak RSS is per job):
  * baseline: decode every frame to RGB and re-encode it with the same encoder settings, copying audio;
  * restore:  the full pipeline (`restore_video`) with the given model (default `identity`);
  * detector: the face detector alone on every k-th frame (ms/frame), plus the tracks and ID switches found.

Usage:
    python scripts/bench_pipeline.py CLIP [CLIP ...] [--model identity] [--json out.json]
    # real time: the shipped fast model on a 720p version of a clip, x264 veryfast, detector every 5th frame at 640 px
    python scripts/bench_pipeline.py CLIP --height 720 --model fvr-fast --preset veryfast --detect-every 5 \
        --detect-size 640 --smoothing one-euro

--height H first rescales each clip to H lines (even width, x264 CRF 10 into a temp file, not timed), so that any
clip gives a 720p test. --preset and --crf apply to both jobs (the same encoder settings); --detect-every,
--detect-size and --smoothing to the restore job (and the detector job). The restore job's fps excludes the
process start-up (importing torch and the networks, loading the model: once per process), reported beside it.

--repeat N runs the baseline and the restore job(s) N times in turn and reports the median ratio (this machine's
speed drifts by 10-20 % between minutes); several --detect-every values are measured in the same rounds.

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


def _encode(preset: str, crf: int):
    from fvr.io import EncodeOptions

    return EncodeOptions(preset=preset, crf=crf)


def job_baseline(clip: str, out: str, preset: str, crf: str) -> dict:
    import av

    from fvr.io import MediaSource, open_sink

    t0 = time.perf_counter()
    n = 0
    with MediaSource(clip) as src:
        info = src.info
        with open_sink(out, info, (info.width, info.height), _encode(preset, int(crf)),
                       src.copyable_streams) as sink:
            for item in src.media():
                if isinstance(item, av.Packet):
                    sink.copy_packet(item)
                else:
                    sink.write(item.rgb, item.pts)
                    n += 1
    dt = time.perf_counter() - t0
    return {"frames": n, "seconds": dt, "fps": n / dt, "peak_rss_mb": _peak_rss_mb()}


def job_restore(clip: str, out: str, model: str, preset: str, crf: str, every: str, smoothing: str,
                detect_size: str, model_opts: str = "{}") -> dict:
    t0 = time.perf_counter()
    from fvr.faces import DetectorConfig, SmoothingConfig, TrackerConfig
    from fvr.models import builtin_registry
    from fvr.run.config import RestoreConfig
    from fvr.run.pipeline import restore_video

    # start-up, once per process and not per frame: importing torch and the networks, loading the model
    restorer = builtin_registry().create(model, **json.loads(model_opts))
    config = RestoreConfig(model=model, encode=_encode(preset, int(crf)),
                           detector=DetectorConfig(max_side=int(detect_size)),
                           tracker=TrackerConfig(detect_every=int(every)), smoothing=SmoothingConfig(method=smoothing))
    t1 = time.perf_counter()
    r = restore_video(clip, out, config, restorer=restorer)
    dt = time.perf_counter() - t1
    return {"frames": r.frames, "seconds": dt, "fps": r.frames / dt, "startup_seconds": t1 - t0,
            "fps_with_startup": r.frames / (dt + t1 - t0), "seconds_analyse": r.seconds_analyse,
            "seconds_restore": r.seconds_restore, "tracks": r.tracks, "peak_rss_mb": _peak_rss_mb()}


def job_detector(clip: str, every: int, detect_size: int) -> dict:
    from fvr.faces import DetectorConfig, make_detector
    from fvr.io import MediaSource
    from fvr.run.pipeline import analyse_source

    det = make_detector(DetectorConfig(max_side=detect_size))
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


def rescale(clip: str, out: str, height: str) -> dict:
    """Write ``clip`` rescaled to ``height`` lines (area filter, even width) at x264 CRF 10, audio copied."""
    import cv2

    from fvr.io import EncodeOptions, Frame, MediaSource, open_sink

    with MediaSource(clip) as src:
        info = src.info
        h = int(height)
        w = int(round(info.width * h / info.height / 2)) * 2
        with open_sink(out, info, (w, h), EncodeOptions(crf=10, preset="fast"), src.copyable_streams) as sink:
            for item in src.media(copy_streams=True):
                if isinstance(item, Frame):
                    sink.write(cv2.resize(item.rgb, (w, h), interpolation=cv2.INTER_AREA), item.pts)
                else:
                    sink.copy_packet(item)
    return {"width": w, "height": h}


def _child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "child failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*")
    ap.add_argument("--model", default="identity")
    from fvr.faces.track import TrackerConfig

    ap.add_argument("--detect-every", type=int, nargs="+", default=[TrackerConfig.detect_every],
                    help="restore job: the detector's cadence (default: fvr restore's); several values give one row "
                         "each, their restore jobs run in turn after the same baseline")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run baseline and restore jobs this many times, alternating; the ratio is the median of the "
                         "runs' ratios (each restore against the baseline of its own round)")
    ap.add_argument("--preset", default="medium", help="x264 preset of both jobs")
    ap.add_argument("--crf", type=int, default=18, help="x264 CRF of both jobs")
    ap.add_argument("--smoothing", default="gaussian", help="landmark smoothing of the restore job")
    ap.add_argument("--detect-size", type=int, default=960, help="detector input: longest side (restore job)")
    ap.add_argument("--height", type=int, default=0, help="rescale each clip to this height first (0 = as is)")
    ap.add_argument("--model-opt", action="append", default=[], metavar="KEY=VALUE",
                    help="an option of the model's loader, as fvr restore --model-opt (e.g. precision=float32)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, *rest = a.child
        result = {"baseline": lambda: job_baseline(*rest), "restore": lambda: job_restore(*rest),
                  "rescale": lambda: rescale(*rest),
                  "detector": lambda: job_detector(rest[0], int(rest[1]), int(rest[2]))}[kind]()
        print(json.dumps(result))
        return
    from fvr.cli.options import model_options

    opts = model_options(a.model_opt, None)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in a.clips:
            name = Path(clip).name
            if a.height:
                size = _child(["rescale", clip, f"{tmp}/scaled.mp4", str(a.height)])
                clip, name = f"{tmp}/scaled.mp4", f"{name} at {size['width']}×{size['height']}"
            enc = [a.preset, str(a.crf)]
            rounds: list[tuple[dict, dict[int, dict]]] = []
            for _ in range(a.repeat):
                base = _child(["baseline", clip, f"{tmp}/base.mp4", *enc])
                rounds.append((base, {k: _child(["restore", clip, f"{tmp}/rest.mp4", a.model, *enc, str(k),
                                                 a.smoothing, str(a.detect_size), json.dumps(opts)])
                                      for k in a.detect_every}))
            for k in a.detect_every:
                ratios = [r[k]["fps"] / b["fps"] for b, r in rounds]
                mid = sorted(range(len(rounds)), key=lambda i: ratios[i])[len(rounds) // 2]  # the median round
                det = _child(["detector", clip, str(k), str(a.detect_size)])
                rows.append({"clip": name, "model": a.model, "model_opts": opts, "preset": a.preset, "crf": a.crf,
                             "detect_every": k, "smoothing": a.smoothing, "detect_size": a.detect_size,
                             "baseline": rounds[mid][0], "restore": rounds[mid][1][k], "ratios": ratios,
                             "detector": det})
            print(f"done {clip}", file=sys.stderr)
    print(f"model {a.model} {opts or ''}, x264 {a.preset} CRF {a.crf}, detector at {a.detect_size} px, smoothing "
          f"{a.smoothing}; {a.repeat} round(s), the median round shown")
    print("| clip | detect every | frames | decode+encode fps | fvr restore fps | ratio (each round) "
          "| fps with start-up (s) | peak RSS base / fvr (MB) | detector ms/frame | tracks | ID switches |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b, s, d = r["baseline"], r["restore"], r["detector"]
        each = ", ".join(f"{x:.2f}" for x in r["ratios"])
        print(f"| {r['clip']} | {r['detect_every']} | {b['frames']} | {b['fps']:.1f} | {s['fps']:.1f} "
              f"| {s['fps'] / b['fps']:.2f} ({each}) | {s['fps_with_startup']:.1f} ({s['startup_seconds']:.1f}) "
              f"| {b['peak_rss_mb']:.0f} / {s['peak_rss_mb']:.0f} | {d['detector_ms']:.1f} | {d['tracks']} "
              f"| {max(d['tracks'] - 1, 0)} |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
