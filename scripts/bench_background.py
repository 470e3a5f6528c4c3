"""Speed of the background up-samplers (``--background``) per frame on this machine, as a Markdown table.

    python scripts/bench_background.py --case 640x360:2 320x180:4 480x270:4 --threads 2 --repeats 10 \\
        --slow-repeats 3 --json runs/bench_background.json

Each case is ``WxH:factor`` (input width x height, integer up-scaling factor). The frame is
``skimage.data.astronaut()`` centre-cropped to the case's aspect ratio and area-resized to WxH (speed does not
depend on content). Every method is built once per case (network loading is not timed), called ``--warmup`` times,
then timed ``--repeats`` times; realesrgan (seconds per frame on a CPU) uses ``--slow-warmup`` (default 0: its
first call is timed too, its start-up is small next to a call) and ``--slow-repeats``. The median and the minimum
are reported (on a shared machine the minimum is the least disturbed run). The whole call is timed: uint8 frame
in, uint8 frame out, as the pipeline uses it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

SLOW_METHODS = frozenset({"realesrgan"})


@dataclass
class Row:
    """One timed (method, case): times in milliseconds per frame."""

    method: str
    input_wh: tuple[int, int]
    factor: int
    output_wh: tuple[int, int]
    ms_median: float
    ms_min: float
    runs: int

    @property
    def fps(self) -> float:
        return 1000.0 / self.ms_median if self.ms_median > 0 else float("inf")


def parse_case(text: str) -> tuple[int, int, int]:
    """``"640x360:2"`` -> (width 640, height 360, factor 2)."""
    try:
        size, factor = text.split(":")
        w, h = (int(v) for v in size.lower().split("x"))
        f = int(factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"case {text!r} is not WxH:factor (e.g. 640x360:2)") from None
    if min(w, h) < 8 or f < 1:
        raise argparse.ArgumentTypeError(f"case {text!r}: sides must be >= 8 and the factor >= 1")
    return w, h, f


def synthetic_frame(width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB: the astronaut photograph, centre-cropped to the aspect ratio and resized."""
    from skimage import data

    img = data.astronaut()  # (512, 512, 3) uint8, bundled with scikit-image (no download)
    h, w = img.shape[:2]
    if width / height > w / h:  # wider than the source: keep all columns, crop rows
        ch, cw = round(w * height / width), w
    else:
        ch, cw = h, round(h * width / height)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crop = img[y0:y0 + ch, x0:x0 + cw]
    interpolation = cv2.INTER_AREA if width <= cw else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (width, height), interpolation=interpolation))


def time_calls(fn: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` calls after ``warmup`` untimed ones (oneDNN picks kernels on the first)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def bench_case(method: str, width: int, height: int, factor: int, warmup: int, repeats: int) -> Row:
    """Build ``method`` for ``factor``, then time it on a WxH frame (see the module docstring)."""
    from fvr.models.backgrounds import make_background

    frame = synthetic_frame(width, height)
    background = make_background(method, factor)
    t0 = time.perf_counter()
    out = background(frame)  # the first call: a warm-up, or the first timed run when warmup is 0
    first = [(time.perf_counter() - t0) * 1000.0] if warmup == 0 else []
    times = first + time_calls(lambda: background(frame), max(warmup - 1, 0), repeats - len(first))
    return Row(method, (width, height), factor, (out.shape[1], out.shape[0]), statistics.median(times), min(times),
               repeats)


def _ms(value: float) -> str:
    """Three significant-ish digits: 0.123, 12.3, 1,234."""
    return f"{value:,.3f}" if value < 1 else f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def markdown_table(rows: list[Row]) -> str:
    lines = ["| method | input WxH | factor | output WxH | ms/frame (median) | ms (min) | fps (median) | runs |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        fps = f"{r.fps:,.0f}" if r.fps >= 100 else f"{r.fps:,.2f}"
        (iw, ih), (ow, oh) = r.input_wh, r.output_wh
        lines.append(f"| {r.method} | {iw}x{ih} | x{r.factor} | {ow}x{oh} | {_ms(r.ms_median)} | {_ms(r.ms_min)} "
                     f"| {fps} | {r.runs} |")
    return "\n".join(lines)


def environment(threads: int) -> dict[str, object]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "cpu": cpu,
            "threads": threads, "torch": torch.__version__, "opencv": cv2.__version__,
            "python": platform.python_version(),
            "command": " ".join(shlex.quote(a) for a in ["python", "scripts/bench_background.py", *sys.argv[1:]])}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", nargs="+", type=parse_case, default=[parse_case("640x360:2")],
                    help="WxH:factor cases (default 640x360:2)")
    ap.add_argument("--methods", nargs="+", default=["lanczos", "bicubic", "compact", "realesrgan"])
    ap.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads")
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls before timing")
    ap.add_argument("--repeats", type=int, default=10, help="timed calls per case (median reported)")
    ap.add_argument("--slow-repeats", type=int, default=3, help="timed calls for realesrgan (seconds per frame)")
    ap.add_argument("--slow-warmup", type=int, default=0, help="untimed calls for realesrgan")
    ap.add_argument("--json", type=Path, help="also write the rows and the environment here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    env = environment(args.threads)
    rows = []
    for width, height, factor in args.case:
        for method in args.methods:
            slow = method in SLOW_METHODS
            warmup, repeats = (args.slow_warmup, args.slow_repeats) if slow else (args.warmup, args.repeats)
            row = bench_case(method, width, height, factor, max(warmup, 0), max(repeats, 1))
            print(f"{method:>10} {width}x{height} x{factor}: {row.ms_median:,.1f} ms (min {row.ms_min:,.1f})",
                  file=sys.stderr, flush=True)
            rows.append(row)
    print(f"\n{env['date']}, {env['cpu']}, {args.threads} threads, torch {env['torch']}\n")
    print(markdown_table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"environment": env, "rows": [{**asdict(r), "fps": r.fps} for r in rows]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
