"""Floors of the temporal metrics: TLME and E*warp of outputs that are temporally perfect but not the ground truth.

TLME compares dlib's 68 landmarks on the output with those on the ground truth, frame to frame. dlib's landmarks
jitter by themselves as soon as the image differs from the ground truth, so even an output that is exactly the
ground truth, slightly blurred (the same blur on every frame: no flicker at all), has a TLME well above 0. This
script measures that floor on the bench's clips, with the bench's own crops and metric code:

    python scripts/metric_floor.py --data ../shared/data/eval --frames 24 --json docs/bench/stabiliser/floor.json

Variants: the ground truth blurred (Gaussian σ = 1 and 2 px on the 512² crop) and with fixed Gaussian noise
(σ = 2 grey levels, the same noise image on every frame).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from fvr.bench.runner import BenchConfig, _frames, analyse_tracks, list_clips
from fvr.faces import align_matrix, warp_to_crop
from fvr.io import probe
from fvr.metrics import ReferenceEvaluator

SIZE = 512


def variants(gt_crop: np.ndarray, noise: np.ndarray) -> dict[str, np.ndarray]:
    """Temporally perfect stand-ins for a restoration: each is the same function of every ground-truth frame."""
    return {
        "gt-blur-1": cv2.GaussianBlur(gt_crop, (0, 0), 1.0),
        "gt-blur-2": cv2.GaussianBlur(gt_crop, (0, 0), 2.0),
        "gt-noise-2": np.clip(gt_crop.astype(np.float32) + noise, 0, 255).astype(np.uint8),
    }


def clip_floor(clip: Path, frames: int | None, config: BenchConfig) -> dict[str, dict[str, float]]:
    fps = float(probe(clip).fps)
    tracks = analyse_tracks(_frames(clip, limit=frames), fps, config.detector, frames)
    noise = np.random.default_rng(0).normal(0, 2.0, (SIZE, SIZE, 3)).astype(np.float32)
    evaluators: dict[tuple[str, int], ReferenceEvaluator] = {}
    for t, gt in enumerate(_frames(clip, limit=frames)):
        for track_id, landmarks in tracks.at_frame(t) if t < tracks.num_frames else []:
            gt_crop = warp_to_crop(gt, align_matrix(landmarks, SIZE), SIZE)
            for name, out in variants(gt_crop, noise).items():
                key = (name, track_id)
                if key not in evaluators:
                    evaluators[key] = ReferenceEvaluator(metrics=("psnr", "tlme", "ewarp"), crop_size=SIZE)
                evaluators[key].update(out, gt_crop)
    result: dict[str, dict[str, list[float]]] = {}
    for (name, _), ev in evaluators.items():
        means = ev.result().mean
        for metric, value in means.items():
            result.setdefault(name, {}).setdefault(metric, []).append(value)
    return {name: {m: float(np.nanmean(v)) for m, v in ms.items()} for name, ms in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--clips", default="*")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = BenchConfig(data=args.data, out=Path("/tmp"))
    per_clip = {clip.stem: clip_floor(clip, args.frames, config) for clip in list_clips(args.data, args.clips)}
    names = sorted({n for c in per_clip.values() for n in c})
    mean = {n: {m: float(np.mean([c[n][m] for c in per_clip.values() if n in c])) for m in ("psnr", "tlme", "ewarp")}
            for n in names}
    print("| output | PSNR | TLME | E*warp |\n|---|---|---|---|")
    for n in names:
        print(f"| {n} | {mean[n]['psnr']:.2f} | {mean[n]['tlme']:.3f} | {mean[n]['ewarp']:.3f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"mean": mean, "clips": per_clip, "frames": args.frames}, indent=1))


if __name__ == "__main__":
    main()
