"""Builders of small synthetic media files for tests (no external data)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from fvr.synthetic import moving_face_frames


def write_video(
    path: Path,
    frames: list[np.ndarray] | np.ndarray,
    *,
    pts: list[int] | None = None,
    time_base: Fraction = Fraction(1, 1000),
    fps: int = 25,
    audio: bool = False,
    subtitles: bool = False,
    rotation: int = 0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
) -> Path:
    """Encode RGB frames (T,H,W,3 uint8) near-losslessly, optionally with an AAC sine track, a SubRip track
    (.mkv only) and a display rotation. ``pts`` in units of ``time_base`` (default: constant ``fps``)."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    if pts is None:
        pts = [int(round(i / fps / time_base)) for i in range(len(frames))]
    duration = float(pts[-1] * time_base) + 1 / fps
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=fps, options={"crf": "8", "preset": "ultrafast"} if codec == "libx264" else {})
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.time_base = time_base
        vs.codec_context.time_base = time_base
        if rotation:
            vs.set_display_rotation(rotation)
        aus = out.add_stream("aac", rate=48000) if audio else None
        sub = out.add_mux_stream("subrip") if subtitles else None
        if sub is not None:
            sub.time_base = Fraction(1, 1000)
        for rgb, p in zip(frames, pts):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            f.pts, f.time_base = p, time_base
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        if aus is not None:
            n = int(48000 * duration)
            t = np.arange(n) / 48000
            samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, n, 1024):
                chunk = samples[start : start + 1024]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = 48000, start, Fraction(1, 48000)
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))
        if sub is not None:
            for k, text in enumerate([b"first line", b"second line"]):
                pkt = av.Packet(text)
                pkt.stream = sub
                pkt.pts = pkt.dts = k * 500
                pkt.duration = 400
                pkt.time_base = Fraction(1, 1000)
                out.mux(pkt)
    return path


def face_clip(n: int = 12, size: int = 256, **kwargs: object) -> np.ndarray:
    """(n, size, size, 3) uint8: the astronaut's face moving smoothly (clean, no degradation)."""
    return np.stack(list(moving_face_frames(n, size=size, **kwargs)))


def read_packets(path: Path, kind: str) -> list[tuple[int | None, bytes]]:
    """(pts, payload) of every packet of the first stream of ``kind`` ('audio' or 'subtitle')."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        if not streams:
            return []
        return [(p.pts, bytes(p)) for p in c.demux(streams[0]) if p.size]


def read_frames(path: Path) -> tuple[np.ndarray, list[float]]:
    """All frames (T,H,W,3 uint8, upright as fvr reads them) and their times in seconds."""
    from fvr.io import MediaSource

    with MediaSource(path) as src:
        frames, times = [], []
        for fr in src.frames():
            frames.append(fr.rgb)
            times.append(float(fr.pts * src.info.time_base))
    return np.stack(frames), times


_FVR_WITH_SIGINT = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                    "from fvr.cli import main; sys.exit(main(sys.argv[1:]))")


def fvr_command(*args: str) -> list[str]:
    """The command line of `fvr ARGS` in a child process with SIGINT at its default: a test run as a script's
    background job has it ignored, which fvr keeps (as a program should). Reset in the child's own first line, not
    with ``preexec_fn``: Python code between fork and exec can deadlock in a threaded parent (a garbage-collected
    PyAV scaler joined its threads there and hung the test run)."""
    import sys

    return [sys.executable, "-c", _FVR_WITH_SIGINT, *args]
