"""Peak memory of `fvr restore` against video length: it must not grow with the number of frames.

Builds synthetic 1080p videos of the astronaut's moving face (public domain) with an AAC track, of each given
duration, then runs `fvr restore` on each in a fresh process and reports its peak resident memory: of the largest
single process (``ru_maxrss``) and of the process with its worker processes together (sampled; a segmented job
restores its segments in fresh workers, `--segments-per-process`). Same settings for every length, so any growth
would come from the length alone.

    python scripts/bench_memory.py --minutes 1 10 --fps 10 --json docs/bench/memory.json

The frame rate only sets how many frames a minute holds (10 fps keeps the 10-minute run short on a 2-core CPU);
the pipeline does the same work per frame at any rate.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from fvr.synthetic import moving_face_frames

SIZE = (1920, 1080)


def make_video(path: Path, minutes: float, fps: int) -> int:
    """A 1080p H.264 + AAC video of ``minutes``: the face drifts across a textured background, on a 20 s cycle."""
    n = round(minutes * 60 * fps)
    cycle = list(moving_face_frames(20 * fps, size=360))  # 20 s of face motion, reused (the encoder sees motion)
    background = cv2.resize(cycle[0], SIZE, interpolation=cv2.INTER_LINEAR)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "23", "preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = *SIZE, "yuv420p"
        aus = out.add_stream("aac", rate=48000)
        samples = 0
        for i in range(n):
            frame = background.copy()
            x = 200 + int(600 * (0.5 + 0.5 * np.sin(2 * np.pi * i / (20 * fps))))
            frame[360:720, x:x + 360] = cycle[i % len(cycle)]
            out.mux(vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            while samples < (i + 1) * 48000 // fps:  # keep audio in step with video
                t = (samples + np.arange(1024)) / 48000
                tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                af = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
                af.sample_rate, af.pts, af.time_base = 48000, samples, Fraction(1, 48000)
                out.mux(aus.encode(af))
                samples += 1024
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))
    return n


_WRAPPER = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _tree_rss_kb(pid: int) -> dict[int, int]:
    """Resident memory (KB) of each descendant of process ``pid`` (not ``pid`` itself), from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    rss, todo = {}, list(children.get(pid, []))
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            rss[p] = int(Path(f"/proc/{p}/statm").read_text().split()[1]) * 4  # pages of 4 KB
        except (OSError, IndexError, ValueError):
            pass
    return rss


def run_restore(src: Path, dst: Path, extra: list[str]) -> dict[str, float]:
    """`fvr restore` in a child of a small wrapper process; returns the wall time, the peak resident memory of the
    largest single process (``ru_maxrss`` of the wrapper's children, exact) and the peak of the sum over `fvr` and
    its worker processes (sampled every 0.1 s), in MB."""
    fvr = str(Path(sys.executable).parent / "fvr")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, fvr, "restore", str(src), "-o", str(dst), "-q", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree_kb = 0
    per_pid: dict[int, int] = {}  # sampled peak of each process (the parent, its workers)
    while proc.poll() is None:
        sample = _tree_rss_kb(proc.pid)
        tree_kb = max(tree_kb, sum(sample.values()))
        for p, kb in sample.items():
            per_pid[p] = max(per_pid.get(p, 0), kb)
        time.sleep(0.1)
    seconds = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"fvr restore failed: {err.strip()}")
    peak_kb = int(out.strip().splitlines()[-1])  # Linux reports KB
    big = sorted(kb / 1024.0 for kb in per_pid.values() if kb > 100 * 1024)  # the parent and the workers
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024.0, "peak_tree_rss_mb": tree_kb / 1024.0,
            "process_peaks_mb": big}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--restore-args", default="--detect-every 10 --preset ultrafast",
                    help="extra `fvr restore` options, the same for every length")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            src = Path(tmp) / f"in-{minutes:g}min.mp4"
            frames = make_video(src, minutes, args.fps)
            result = run_restore(src, Path(tmp) / f"out-{minutes:g}min.mp4", args.restore_args.split())
            rows.append({"minutes": minutes, "frames": frames, **result, "fps": frames / result["seconds"]})
            src.unlink()
            print(f"{minutes:g} min ({frames} frames 1920x1080): peak RSS {result['peak_rss_mb']:.0f} MB "
                  f"(all processes {result['peak_tree_rss_mb']:.0f} MB), {result['seconds']:.0f} s, "
                  f"{frames / result['seconds']:.1f} fps; sampled peaks of the processes over 100 MB: "
                  f"{', '.join(f'{x:.0f}' for x in result['process_peaks_mb'])} MB", flush=True)
    print("\n| length | frames | peak RSS MB, largest process | peak RSS MB, all processes | seconds | fps |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['minutes']:g} min | {r['frames']} | {r['peak_rss_mb']:.0f} | {r['peak_tree_rss_mb']:.0f} | "
              f"{r['seconds']:.0f} | {r['fps']:.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "fps": args.fps, "restore_args": args.restore_args,
                                         "machine": platform.platform(), "command": " ".join(sys.argv)}, indent=1))


if __name__ == "__main__":
    main()
