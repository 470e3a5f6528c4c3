"""`fvr live` against the clock: a clip played at a camera's pace (720p and 1080p, 25 and 30 fps), restored by
the live engine to a null sink, on whatever machine runs it.

For each (height, fps): the clip is rescaled to that height (even width, area filter) and re-timed to that frame
rate (frame i at i / fps s) into a temporary file (not timed); then `fvr live SRC --realtime -o null --stats` runs
in a child process with the given model and settings, and its stats are collected: frames delivered (written /
captured), dropped, capture -> output latency p50 / p95 / max, output fps, and where the real-time policy left the
detector (every k frames, at n px).

Usage:
    python scripts/bench_live.py CLIP [--heights 720,1080] [--fps 25,30] [--model fvr-fast] [--json out.json]
        [-- extra fvr live options, e.g. --no-adapt --detect-every 3]

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path


def retimed(clip: str, out: str, height: int, fps: int) -> tuple[int, int, int]:
    """``clip`` at ``height`` lines and ``fps`` frames a second into ``out`` (x264 CRF 12). (width, height, n)."""
    import cv2

    from fvr.io import EncodeOptions, MediaSource, open_sink

    with MediaSource(clip) as src:
        info = src.info
        w = int(round(info.width * height / info.height / 2)) * 2
        target = replace(info, fps=Fraction(fps), time_base=Fraction(1, fps))
        n = 0
        with open_sink(out, target, (w, height), EncodeOptions(crf=12, preset="fast")) as sink:
            for frame in src.frames():
                sink.write(cv2.resize(frame.rgb, (w, height), interpolation=cv2.INTER_AREA), n)
                n += 1
    return w, height, n


def session(source: str, model: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        proc = subprocess.run([sys.executable, "-m", "fvr.cli", "live", source, "--realtime", "-o", "null",
                               "--stats", str(stats), "--model", model, "-q", *extra], capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "fvr live failed")
        return json.loads(stats.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip")
    ap.add_argument("--heights", default="720,1080")
    ap.add_argument("--fps", default="25,30")
    ap.add_argument("--model", default="fvr-fast")
    ap.add_argument("--json", type=Path)
    ap.add_argument("extra", nargs="*", help="options passed to fvr live (after --)")
    # argparse gives the positional `extra` nothing once `clip` is taken: what follows `--` arrives as unknown
    a, unknown = ap.parse_known_args()
    a.extra = [*a.extra, *(x for x in unknown if x != "--")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for height in (int(h) for h in a.heights.split(",")):
            for fps in (int(f) for f in a.fps.split(",")):
                source = f"{tmp}/src-{height}-{fps}.mp4"
                w, h, n = retimed(a.clip, source, height, fps)
                s = session(source, a.model, a.extra)
                rows.append({"source": f"{w}x{h} @ {fps} fps, {n} frames", "model": a.model, **s})
    print("| source | model | delivered | dropped | latency p50 / p95 / max (ms) | fps out | detector at the end |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['source']} | {r['model']} | {100 * r['delivered']:.1f} % ({r['frames_out']}/{r['frames_in']}) "
              f"| {r['dropped']} | {r['latency_ms_p50']:.0f} / {r['latency_ms_p95']:.0f} / {r['latency_ms_max']:.0f} "
              f"| {r['fps_out']:.1f} | every {r['detect_every']} at {r['detect_size']} px |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
