"""``fvr demo``: a self-contained showcase built from ``skimage.data.astronaut()`` (a public-domain photo).

It renders a short clip of the face under a smooth camera pan/zoom/roll, degrades it (blur, down-sampling,
per-frame noise, JPEG), restores it with the chosen model through the real ``restore_video`` pipeline at ×2, and
writes a side-by-side comparison (bicubic input | restored | ground truth) as a video and a PNG, with PSNR figures
measured against the clean frames: over whole frames and over the face (its box found by the detector on the clean
frames). The bicubic up-sampled input is encoded with the same encoder settings as the restored video before it is
measured, so that both pay the same codec loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from fvr.faces import DetectorConfig, make_detector
from fvr.io import EncodeOptions, MediaSource, VideoInfo, open_sink
from fvr.provenance.restore import begin_record, build_record, finish_record
from fvr.run.config import ProgressCallback, RestoreConfig, RestoreReport
from fvr.run.pipeline import restore_video
from fvr.synthetic import degrade_frame, moving_face_frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * math.log10(255.0**2 / mse) if mse > 0 else float("inf")


@dataclass
class DemoResult:
    input_video: Path
    restored_video: Path
    comparison_video: Path
    comparison_png: Path
    bicubic_video: Path  # the input up-sampled (bicubic), encoded like the restored video
    report: RestoreReport
    psnr_bicubic: float  # mean over frames, dB, vs the clean frames
    psnr_restored: float
    psnr_face_bicubic: float  # the same inside the face box of each clean frame
    psnr_face_restored: float


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.putText(img, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def run_demo(
    out_dir: str | Path = "fvr-demo",
    *,
    frames: int = 50,
    size: int = 384,
    scale: int = 2,
    config: RestoreConfig | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> DemoResult:
    """Build, degrade, restore and compare. Writes five files into ``out_dir`` and returns their paths + PSNRs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fps = Fraction(25)
    lq_size = size // scale
    lq_info = VideoInfo(path="demo", width=lq_size, height=lq_size, fps=fps, time_base=1 / fps,
                        num_frames=frames, duration=frames / 25.0)
    rng = np.random.default_rng(seed)
    lq_path = out / "demo_input.mp4"
    with open_sink(lq_path, lq_info, (lq_size, lq_size), EncodeOptions(crf=16, preset="medium")) as sink:
        for i, clean in enumerate(moving_face_frames(frames, size)):
            sink.write(degrade_frame(clean, rng, scale=scale), i)

    config = replace(config or RestoreConfig(), upscale=scale)
    restored_path = out / "demo_restored.mp4"
    begun = begin_record(lq_path, restored_path, config)  # the demo's output has its record, as every output
    report = restore_video(lq_path, restored_path, config, progress=progress, record=begun.options,
                           metadata=begun.metadata)
    finish_record(build_record(begun, report, restored_path), restored_path, begun.started)

    info = VideoInfo(path="demo", width=size, height=size, fps=fps, time_base=1 / fps, num_frames=frames,
                     duration=frames / 25.0)
    bicubic_path = out / "demo_bicubic.mp4"
    with MediaSource(lq_path) as lq, open_sink(bicubic_path, info, (size, size), config.encode) as sink:
        for lq_f in lq.frames():
            sink.write(cv2.resize(lq_f.rgb, (size, size), interpolation=cv2.INTER_CUBIC), lq_f.index)

    cmp_info = replace(info, width=3 * size)
    cmp_path, png_path = out / "demo_comparison.mp4", out / "demo_comparison.png"
    detector = make_detector(DetectorConfig())
    psnr_b, psnr_r, face_b, face_r = [], [], [], []
    with MediaSource(bicubic_path) as bc, MediaSource(restored_path) as rs, \
            open_sink(cmp_path, cmp_info, (3 * size, size), EncodeOptions(crf=18)) as sink:
        for i, (bc_f, rs_f, clean) in enumerate(zip(bc.frames(), rs.frames(), moving_face_frames(frames, size))):
            psnr_b.append(_psnr(bc_f.rgb, clean))
            psnr_r.append(_psnr(rs_f.rgb, clean))
            box = _face_box(detector, clean)
            if box is not None:
                y0, y1, x0, x1 = box
                face_b.append(_psnr(bc_f.rgb[y0:y1, x0:x1], clean[y0:y1, x0:x1]))
                face_r.append(_psnr(rs_f.rgb[y0:y1, x0:x1], clean[y0:y1, x0:x1]))
            row = np.hstack([_label(bc_f.rgb, "input (bicubic x2)"), _label(rs_f.rgb, f"fvr: {report.model}"),
                             _label(clean, "ground truth")])
            sink.write(row, i)
            if i == frames // 2:
                cv2.imwrite(str(png_path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
    return DemoResult(lq_path, restored_path, cmp_path, png_path, bicubic_path, report,
                      float(np.mean(psnr_b)), float(np.mean(psnr_r)),
                      _mean_or_nan(face_b), _mean_or_nan(face_r))


def _face_box(detector, clean: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the most confident face in a clean frame, clipped to the frame; None without one."""
    found = detector.detect(clean)
    if len(found.boxes) == 0:
        return None
    h, w = clean.shape[:2]
    x0, y0, x1, y1 = np.round(found.boxes[0]).astype(int)
    return max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)


def _mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
