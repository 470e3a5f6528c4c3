"""Does a recurrent model's carried state drift on long tracks? Restores whole degraded clips with the state
carried along each track (the pipeline's default) and with it re-warmed over the declared past context at every
chunk (memory of `past` frames only), and compares both with the ground truth in the face region.

    python scripts/bench_long_tracks.py ../shared/data/eval/{hdtf-WDA_KatieHill_000,liveportrait-d8,retalking-4}.mp4 \
        --model fvr-fast --json docs/bench/carry/long-tracks.json

Each clip is degraded with `fvr degrade --preset vfhq --seed 0` (×4), then restored with `--upscale 4 --background
bicubic` three ways: no face model (`identity`: the bicubic reference), carried, re-warmed; lossless output.
PSNR is over the pixels the face model changed (the pasted face region), per frame, averaged per clip and per third
of the clip (a drifting state would lose PSNR in the last third).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from fvr.degrade import degrade_video, resolve_params
from fvr.io import EncodeOptions
from fvr.io.source import MediaSource
from fvr.models.registry import builtin_registry
from fvr.run.config import RestoreConfig
from fvr.run.pipeline import restore_video


def _frames(path: Path) -> list[np.ndarray]:
    with MediaSource(path) as source:
        return [f.rgb for f in source.frames()]


def _psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    d = (a.astype(np.float64) - b.astype(np.float64))[mask]
    return float(10 * np.log10(255.0**2 / max(float(np.mean(d**2)), 1e-12)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--model", default="fvr-fast")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    registry = builtin_registry()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            lq = Path(tmp) / f"{clip.stem}-lq.mp4"
            run = resolve_params("vfhq", 0)
            degrade_video(clip, lq, run.params, run.seed)
            gt = _frames(clip)
            outs = {}
            for label in ("bicubic", "carried", "re-warmed"):
                model = registry.create("identity" if label == "bicubic" else args.model, device="cpu")
                model.carries_state = model.carries_state and label == "carried"
                path = Path(tmp) / f"{clip.stem}-{label}.mp4"
                restore_video(lq, path, RestoreConfig(upscale=4, background="bicubic", encode=EncodeOptions(crf=0)),
                              restorer=model)
                outs[label] = _frames(path)
            row = {}
            for label, frames in outs.items():
                per_frame = []
                for i, out in enumerate(frames):
                    mask = np.abs(outs["carried"][i].astype(int) - outs["bicubic"][i]).max(-1) > 0
                    if mask.sum() > 100:
                        per_frame.append(_psnr(out, gt[i][:out.shape[0], :out.shape[1]], mask))
                n = len(per_frame)
                row[label] = {"psnr": float(np.mean(per_frame)),
                              "thirds": [float(np.mean(per_frame[k * n // 3:(k + 1) * n // 3])) for k in range(3)]}
            rows[clip.stem] = {"frames": len(gt), **row}
            print(clip.stem, len(gt), "frames:", ", ".join(
                f"{k} {v['psnr']:.3f} dB (thirds {' / '.join(f'{x:.3f}' for x in v['thirds'])})"
                for k, v in row.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "clips": rows, "command": " ".join(sys.argv)}, indent=1))


if __name__ == "__main__":
    main()
