"""Run a whole-frame video model (e.g. ``basicvsr``, ``frame_model=True``) on a video, streaming.

Every frame is bicubic up-sampled ×``upscale`` and the network — any module with the fvr network contract
``net(x) -> y``, x and y (1, T, 3, H, W) float32 in [0, 1] — sees overlapping temporal chunks::

    frames:   ... | overlap | chunk (emitted) | overlap | ...

Each call covers ``chunk`` emitted frames plus up to ``overlap`` frames of context on each side, which are read but
not emitted, so a network whose temporal reach is at most ``overlap`` frames gives exactly the same output as one
call on the whole video (recurrent networks re-warm their state over the context: chunk borders don't show).
Large frames can be split into spatial tiles, each run with ``tile_overlap`` pixels of context that are cropped
away again. Memory is bounded: at most ``chunk + 2·overlap`` decoded input frames are held (in a deque), whatever
the video's length. The output keeps the input's frame count and timestamps, and its audio/subtitle packets are
copied untouched; it is written atomically (temporary file, renamed when complete).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fvr.errors import ConfigError
from fvr.io import EncodeOptions, Frame, MediaSource, check_output_path, open_sink
from fvr.models.upsample import tiled

DEFAULT_ENCODE = EncodeOptions()
DEFAULT_OVERLAP = 6  # K: the context of the frame models' presets (basicvsr past = future = 6)

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage, done, total): stage is "restore"; total is the container's frame count (0 when unknown)."""


@dataclass(frozen=True)
class FrameRestoreReport:
    input: str
    output: str
    frames: int
    width: int
    height: int
    seconds: float


# ----------------------------------------------------------------------------------------------- frames


def upsample(rgb: np.ndarray, upscale: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H·u, W·u) float32 in [0, 1], bicubic (clipped: bicubic overshoots)."""
    img: np.ndarray = rgb.astype(np.float32) * (1.0 / 255.0)
    if upscale != 1:
        img = cv2.resize(img, (rgb.shape[1] * upscale, rgb.shape[0] * upscale), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(np.clip(img, 0.0, 1.0).transpose(2, 0, 1))


def to_uint8(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1] (values outside are clipped) -> uint8, rounded."""
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def check_options(upscale: int, chunk: int, overlap: int, tile: int | None) -> None:
    """One-line ConfigError for runner options that cannot work."""
    if upscale < 1 or chunk < 1 or overlap < 0:
        raise ConfigError(f"upscale and chunk must be >= 1 and overlap >= 0 (got {upscale}, {chunk}, {overlap})")
    if tile is not None and tile < 1:
        raise ConfigError(f"tile must be a positive number of pixels, got {tile}")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


# ----------------------------------------------------------------------------------------------- network calls


def run_tiled(net: nn.Module, x: torch.Tensor, tile: int | None, tile_overlap: int) -> torch.Tensor:
    """net on (1, T, 3, H, W), optionally in spatial tiles.

    The frame is first padded (edge replicate) to a multiple of the network's ``size_multiple`` (16 when it does
    not say). Tiles start on that grid (:func:`fvr.models.upsample.tiled` with ``grid``), so pixel-unshuffling
    networks see the same pixel groups as on the whole frame; each tile is run with ``tile_overlap`` pixels of
    context (clipped at the frame edges) that are cropped away, so a network whose spatial reach is at most
    ``tile_overlap`` gives the whole-frame result.
    """
    m = int(getattr(net, "size_multiple", 16))
    h, w = x.shape[-2:]
    hp, wp = _round_up(h, m), _round_up(w, m)
    if (hp, wp) != (h, w):  # replicate-pad needs a 4-D tensor: fold T into the batch
        b, t = x.shape[:2]
        x = F.pad(x.reshape(b * t, *x.shape[2:]), (0, wp - w, 0, hp - h), mode="replicate").reshape(b, t, 3, hp, wp)
    return tiled(net, x, 1, tile or 0, tile_overlap, grid=m)[..., :h, :w]


@torch.inference_mode()
def _run_window(net: nn.Module, window: list[Frame], keep: range, upscale: int, tile: int | None,
                tile_overlap: int, device: torch.device) -> list[np.ndarray]:
    """Run the network on a window of frames; return (H, W, 3) float32 outputs for the window offsets in ``keep``."""
    x = torch.from_numpy(np.stack([upsample(f.rgb, upscale) for f in window]))[None].to(device)
    y = run_tiled(net, x, tile, tile_overlap)[0]
    return [y[i].permute(1, 2, 0).float().cpu().numpy() for i in keep]


def restore_frame_stream(
    frames: Iterable[Frame],
    net: nn.Module,
    *,
    upscale: int = 4,
    chunk: int = 8,
    overlap: int = DEFAULT_OVERLAP,
    tile: int | None = None,
    tile_overlap: int = 32,
) -> Iterator[tuple[Frame, np.ndarray]]:
    """Restore a stream of frames with a whole-frame network; yields (input frame, (H·u, W·u, 3) float32 output,
    unclamped) in order, one per input frame. Holds at most ``chunk + 2·overlap`` input frames."""
    check_options(upscale, chunk, overlap, tile)
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    buffer: deque[Frame] = deque(maxlen=chunk + 2 * overlap)
    first = 0  # stream position of buffer[0]
    start = 0  # stream position of the next frame to emit
    count = 0  # frames received

    def emit(n: int) -> Iterator[tuple[Frame, np.ndarray]]:
        """Run the window around [start, start + n) and yield those n frames."""
        lo, hi = max(start - overlap, first), min(start + n + overlap, count)
        window = list(buffer)[lo - first:hi - first]
        keep = range(start - lo, start - lo + n)
        outs = _run_window(net, window, keep, upscale, tile, tile_overlap, device)
        yield from zip(window[keep.start:keep.stop], outs)

    for frame in frames:
        if len(buffer) == buffer.maxlen:  # the oldest frame is before every future window: drop it
            first += 1
        buffer.append(frame)
        count += 1
        if count == start + chunk + overlap:  # the chunk and its right context are in
            yield from emit(chunk)
            start += chunk
    while start < count:  # the tail: right context is whatever is left
        n = min(chunk, count - start)
        yield from emit(n)
        start += n


# ----------------------------------------------------------------------------------------------- videos


def restore_frames_video(
    input: str | Path,
    output: str | Path,
    net: nn.Module,
    *,
    upscale: int = 4,
    chunk: int = 8,
    overlap: int = DEFAULT_OVERLAP,
    tile: int | None = None,
    tile_overlap: int = 32,
    encode: EncodeOptions = DEFAULT_ENCODE,
    sequence_fps: Fraction | float | None = None,
    progress: ProgressCallback | None = None,
    metadata: Mapping[str, str] | None = None,
) -> FrameRestoreReport:
    """Restore a whole video (or PNG-sequence folder) with a frame model and write it atomically.

    input/output: as ``fvr restore`` (output by suffix: a video file, or a folder for a PNG sequence).
    net: an ``nn.Module`` with the fvr network contract (e.g. ``load_weights(...).net`` of a ``basicvsr`` file),
        in eval mode; it runs on the device its parameters are on.
    upscale: integer output scale (bicubic up-sampling before the network, as the network was trained).
    chunk / overlap: frames emitted per network call / context frames read on each side and not emitted.
    tile / tile_overlap: optional spatial tile side and context, in output pixels (None = whole frames).
    The output keeps every input frame with its timestamp; audio and subtitles are copied. metadata: container
    tags of a video output.
    """
    check_options(upscale, chunk, overlap, tile)
    out_path = check_output_path(output, input)
    net.eval()
    t0 = time.perf_counter()
    with MediaSource(input, sequence_fps=sequence_fps) as source:
        info = source.info
        size = (info.width * upscale, info.height * upscale)
        total, written = info.num_frames, 0
        with open_sink(out_path, info, size, encode, source.copyable_streams, metadata=metadata) as sink:

            def video_frames() -> Iterator[Frame]:
                for item in source.media(copy_streams=True):
                    if isinstance(item, Frame):
                        yield item
                    else:  # audio/subtitle packets go straight through (the muxer interleaves them)
                        sink.copy_packet(item)

            for frame, out in restore_frame_stream(video_frames(), net, upscale=upscale, chunk=chunk,
                                                   overlap=overlap, tile=tile, tile_overlap=tile_overlap):
                sink.write(to_uint8(out), frame.pts)
                written += 1
                if progress is not None:
                    progress("restore", written, total)
    return FrameRestoreReport(input=str(input), output=str(out_path), frames=written, width=size[0],
                              height=size[1], seconds=time.perf_counter() - t0)
