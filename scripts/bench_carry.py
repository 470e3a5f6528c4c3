"""What carrying a recurrent model's state across chunks saves: the restorer's time per face frame and the whole
`restore_video` speed, with the state carried (the default) against re-warming it over the declared past context
at every chunk (the earlier scheme), alternating in one process on the same clip.

    python scripts/bench_carry.py CLIP [--model fvr-fast] [--chunk 16] [--repeats 3] [--json out.json]

Prints a Markdown table; also the lowest per-frame PSNR between the two outputs (they differ slightly: the
re-warmed state has seen only `past` frames). Timings are wall-clock on whatever machine runs it: compare rows
of one run only.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fvr.faces.detect import DetectorConfig
from fvr.faces.smooth import SmoothingConfig
from fvr.faces.track import TrackerConfig
from fvr.io import EncodeOptions
from fvr.models.registry import builtin_registry
from fvr.run.config import RestoreConfig
from fvr.run.pipeline import restore_video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("--model", default="fvr-fast")
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    restorer = builtin_registry().create(args.model, device="cpu")
    if not restorer.carries_state:
        sys.exit(f"{args.model} does not carry state")
    spent = {"net": 0.0}
    original_step = restorer.step
    original_call = restorer.restore_clip

    def timed(fn, key):
        def run(*a):
            t = time.perf_counter()
            try:
                return fn(*a)
            finally:
                spent[key] += time.perf_counter() - t
        return run

    restorer.step = timed(original_step, "net")
    restorer.restore_clip = timed(original_call, "net")
    # the real-time recipe of docs/bench/realtime.md, where the network's share of the time is largest
    config = RestoreConfig(model=args.model, chunk=args.chunk, encode=EncodeOptions(crf=18, preset="veryfast"),
                           detector=DetectorConfig(max_side=640), tracker=TrackerConfig(detect_every=10),
                           smoothing=SmoothingConfig(method="one-euro"))
    rows: dict[str, list[dict[str, float]]] = {"carried": [], "re-warmed": []}
    outputs: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for label, runs in rows.items():
                restorer.carries_state = label == "carried"
                spent["net"] = 0.0
                out = Path(tmp) / f"{label}.mp4"
                t = time.perf_counter()
                report = restore_video(args.clip, out, config, restorer=restorer)
                seconds = time.perf_counter() - t
                runs.append({"fps": report.frames / seconds,
                                    "net_ms_per_face_frame": 1000 * spent["net"] / max(report.face_frames, 1)})
                outputs[label] = out
        from fvr.io.source import MediaSource

        def frames(p: Path) -> list[np.ndarray]:
            with MediaSource(p) as s:
                return [f.rgb for f in s.frames()]

        def psnr(a: np.ndarray, b: np.ndarray) -> float:
            mse = float(np.mean((a.astype(np.float64) - b) ** 2))
            return 10 * np.log10(255.0**2 / max(mse, 1e-12))

        diff = min(psnr(a, b) for a, b in zip(frames(outputs["carried"]), frames(outputs["re-warmed"]), strict=True))
    summary = {label: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for label, runs in rows.items()}
    print(f"{args.clip.name}, model {args.model}, chunk {args.chunk}, median of {args.repeats} alternating runs\n")
    print("| state | restorer ms / face frame | restore_video fps |\n|---|---|---|")
    for label, s in summary.items():
        print(f"| {label} | {s['net_ms_per_face_frame']:.2f} | {s['fps']:.1f} |")
    print(f"\nlowest per-frame PSNR between the two outputs (x264 CRF 18 each): {diff:.1f} dB")
    if args.json:
        args.json.write_text(json.dumps({"clip": str(args.clip), "model": args.model, "chunk": args.chunk,
                                         "runs": rows, "median": summary, "min_psnr_between_outputs_db": diff,
                                         "machine": platform.platform(), "command": " ".join(sys.argv)}, indent=1))


if __name__ == "__main__":
    main()
