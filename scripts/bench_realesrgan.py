"""Speed of Real-ESRGAN x4plus (fvr's torch port) on this machine, as a Markdown table.

    python scripts/bench_realesrgan.py [--frame VIDEO] [--runs 3] [--seams]

Cases: the face-restorer case (a 128x128 crop -> 512x512), fp32, with and without channels_last; and a whole
480x270 frame -> 1920x1080 with tiling (tile 256, the default tile_pad 32; one run). ``--seams`` also runs the
frame untiled and with tile_pad 16 and reports how far the tiled outputs are from the untiled one. ``--frame``
takes the first frame of a video (resized to 480x270); without it a synthetic textured frame is used (speed does
not depend on content; seams do).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import cv2
import numpy as np
import torch

from fvr.models.thirdparty.realesrgan.model import RealESRGAN, load_realesrgan_x4plus


def _frame(path: str | None, size: tuple[int, int] = (480, 270)) -> np.ndarray:
    if path:
        import av

        with av.open(path) as container:
            rgb = next(container.decode(video=0)).to_ndarray(format="rgb24")
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    coarse = rng.uniform(30, 225, size=(9, 16, 3)).astype(np.float32)
    img = cv2.resize(coarse, size, interpolation=cv2.INTER_CUBIC) + rng.normal(0, 4, (size[1], size[0], 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def _ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frame", help="video whose first frame is the 480x270 test frame")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of the face case (median reported)")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--seams", action="store_true", help="also compare tiled with untiled output on the frame")
    args = ap.parse_args()

    rows = []
    crop = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    for channels_last in (False, True):
        up = RealESRGAN(tile=0, channels_last=channels_last, network=load_realesrgan_x4plus())
        up.upscale_tensor(crop)  # warm-up: oneDNN picks and caches its kernels on the first call of a shape
        ms = _ms(lambda up=up: up.upscale_tensor(crop), args.runs)
        layout = "channels_last" if channels_last else "NCHW (contiguous)"
        rows.append(("face crop", "128x128 -> 512x512", layout, "none", f"{ms:,.0f} (median of {args.runs})"))

    frame = _frame(args.frame)
    tiled = RealESRGAN(tile=args.tile)
    t0 = time.perf_counter()
    tiled.upscale(frame)
    ms = (time.perf_counter() - t0) * 1000
    rows.append(("frame", "480x270 -> 1920x1080", "channels_last", f"{args.tile} / pad {tiled.tile_pad}",
                 f"{ms:,.0f} (1 run)"))

    seams = []
    if args.seams:
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
        t0 = time.perf_counter()
        whole = RealESRGAN(tile=0, network=tiled.net).upscale_tensor(x)
        ms = (time.perf_counter() - t0) * 1000
        rows.append(("frame", "480x270 -> 1920x1080", "channels_last", "none (untiled)", f"{ms:,.0f} (1 run)"))
        for pad in (16, 32):
            t0 = time.perf_counter()
            out = RealESRGAN(tile=args.tile, tile_pad=pad, network=tiled.net).upscale_tensor(x)
            ms = (time.perf_counter() - t0) * 1000
            if pad != tiled.tile_pad:
                rows.append(("frame", "480x270 -> 1920x1080", "channels_last", f"{args.tile} / pad {pad}",
                             f"{ms:,.0f} (1 run)"))
            d = (out - whole).abs().flatten()
            q = torch.quantile(d[:: max(1, d.numel() // 1_000_000)], torch.tensor([0.99, 0.999])).tolist()
            seams.append((pad, float(d.max()), float(d.mean()), q[0], q[1]))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
          f", fp32{', frame: ' + args.frame if args.frame else ', synthetic frame'}\n")
    print("| case | size | layout | tile | ms |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if seams:
        print("\n| tile_pad | max abs diff vs untiled | mean | 99th pct | 99.9th pct |")
        print("| --- | --- | --- | --- | --- |")
        for pad, mx, mean, q99, q999 in seams:
            print(f"| {pad} | {mx:.4f} | {mean:.5f} | {q99:.4f} | {q999:.4f} |")


if __name__ == "__main__":
    main()
