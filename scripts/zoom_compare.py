"""Input | restored ... | ground truth, one face region at 2x zoom (nearest), as one PNG: the close look that a
benchmark's table cannot give.

Usage:
    python scripts/zoom_compare.py --gt GT.mp4 --lq LQ.mp4 --frame 12 --out zoom.png \
        NAME=RESTORED.mp4 [NAME=RESTORED.mp4 ...] [--zoom 2] [--region 0.5]

LQ is the degraded clip (any size: it is up-sampled bicubically to the ground truth's size, the "input" column);
each RESTORED is an `fvr restore` output of LQ at the ground truth's size (`--upscale` as the degradation's factor).
The region is a square around the largest face MTCNN finds in the ground-truth frame, ``--region`` times the
frame's shorter side; only permissively licensed clips belong in committed figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from fvr.faces import DetectorConfig
from fvr.faces.detect import make_detector
from fvr.io import MediaSource


def frame_at(path: str | Path, index: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB of frame ``index`` (decoded in order from the start)."""
    with MediaSource(path) as src:
        for i, frame in enumerate(src.frames()):
            if i == index:
                return frame.rgb
    raise SystemExit(f"{path} has no frame {index}")


def face_square(rgb: np.ndarray, fraction: float) -> tuple[int, int, int]:
    """(x0, y0, side) of a square centred on the largest detected face, ``fraction`` of the shorter side."""
    dets = make_detector(DetectorConfig()).detect(rgb)
    h, w = rgb.shape[:2]
    side = int(min(h, w) * fraction)
    if len(dets.boxes) == 0:
        cx, cy = w // 2, h // 2
    else:
        areas = (dets.boxes[:, 2] - dets.boxes[:, 0]) * (dets.boxes[:, 3] - dets.boxes[:, 1])
        x0, y0, x1, y1 = dets.boxes[int(np.argmax(areas))]
        cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
    x0 = int(np.clip(cx - side // 2, 0, w - side))
    y0 = int(np.clip(cy - side // 2, 0, h - side))
    return x0, y0, side


def labelled(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(tile, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, width, cv2.LINE_AA)
    return tile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gt", required=True)
    ap.add_argument("--lq", required=True)
    ap.add_argument("--frame", type=int, default=0)
    ap.add_argument("--zoom", type=int, default=2)
    ap.add_argument("--region", type=float, default=0.5)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("restored", nargs="+", help="NAME=PATH of fvr restore outputs")
    a = ap.parse_args()
    gt = frame_at(a.gt, a.frame)
    h, w = gt.shape[:2]
    lq = cv2.resize(frame_at(a.lq, a.frame), (w, h), interpolation=cv2.INTER_CUBIC)
    x0, y0, side = face_square(gt, a.region)
    columns = [("input (bicubic)", lq)]
    for item in a.restored:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: write NAME=PATH")
        columns.append((name, frame_at(path, a.frame)))
    columns.append(("ground truth", gt))
    tiles = []
    for name, img in columns:
        if img.shape[:2] != (h, w):
            raise SystemExit(f"{name}: {img.shape[1]}x{img.shape[0]}, not the ground truth's {w}x{h}")
        crop = img[y0:y0 + side, x0:x0 + side]
        zoomed = cv2.resize(crop, (side * a.zoom, side * a.zoom), interpolation=cv2.INTER_NEAREST)
        tiles.append(labelled(zoomed, name))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(a.out), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))
    print(f"{a.out}: {len(tiles)} columns, region {side}x{side} at ({x0}, {y0}), {a.zoom}x")


if __name__ == "__main__":
    main()
