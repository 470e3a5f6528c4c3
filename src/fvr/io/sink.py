"""Writing: video files through PyAV (with audio/subtitle packet copy) and PNG sequence folders, atomically.

Everything is written to a temporary name beside the destination and renamed into place only when the whole
output is complete; on any error (including a full disk or Ctrl-C) the temporary output is removed and an existing
file at the destination is left untouched.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error
import cv2
import numpy as np

from fvr.errors import ConfigError, OutputError, reason
from fvr.io.source import IMAGE_SUFFIXES, VideoInfo

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v")


@dataclass(frozen=True)
class EncodeOptions:
    """Video encoder settings.

    codec: an FFmpeg encoder name (libx264, libx265, libsvtav1, libvpx-vp9, ffv1, mpeg4, ...).
    crf: constant rate factor for the codecs that have one (lower = better; 18 is visually lossless for x264).
    preset: encoder speed/size trade-off (x264/x265 names: ultrafast ... veryslow).
    pix_fmt: None picks yuv420p for even sizes and yuv444p for odd sizes (4:2:0 needs even dimensions, and we
        never change the frame size to satisfy it).
    """

    codec: str = "libx264"
    crf: int | None = 18
    preset: str | None = "medium"
    pix_fmt: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def is_sequence_path(path: str | Path) -> bool:
    """An output path names a PNG sequence folder when it has no video suffix (or is an existing folder)."""
    p = Path(path)
    return p.is_dir() or p.suffix.lower() not in VIDEO_SUFFIXES + IMAGE_SUFFIXES


def check_output_path(output: str | Path, input_path: str | Path | None = None) -> Path:
    """Refuse, before any work is done, outputs that cannot be written or would destroy the input."""
    out = Path(output)
    if input_path is not None:
        inp = Path(input_path)
        if out.resolve() == inp.resolve() or (out.exists() and inp.exists() and out.samefile(inp)):
            raise OutputError(f"output {out} is the input file; choose another output path")
    if out.suffix.lower() in IMAGE_SUFFIXES:
        raise OutputError(f"output {out} is a single image; give a video file (.mp4, .mkv, ...) or a folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {parent} is not writable")
    if out.is_dir() and any(out.iterdir()):
        raise OutputError(f"output folder {out} exists and is not empty")
    if out.exists() and not out.is_dir() and not os.access(out, os.W_OK):
        raise OutputError(f"output file {out} is not writable")
    return out


def _temp_sibling(out: Path, *, directory: bool) -> Path:
    parent = out.parent if str(out.parent) else Path(".")
    prefix = f".{out.name}.fvr-tmp-"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=out.suffix, dir=parent)
    os.close(fd)
    return Path(name)


class VideoSink:
    """Encodes RGB frames to a video file, copying audio/subtitle packets from the input.

    Use as a context manager; leaving it with an exception removes the temporary file. Frames must be written in
    presentation order with strictly increasing ``pts`` in units of ``info.time_base``.
    """

    def __init__(
        self,
        path: str | Path,
        info: VideoInfo,
        size: tuple[int, int],
        options: EncodeOptions = EncodeOptions(),
        copy_streams: list[av.stream.Stream] | None = None,
        video_template: av.VideoStream | None = None,
        container_options: dict[str, str] | None = None,
    ):
        self.path = Path(path)
        self._tmp = _temp_sibling(self.path, directory=False)
        self._done = False
        self.frames_written = 0
        # with a template, already encoded video packets are muxed (joining segments): no encoder is opened
        self._remux = video_template is not None
        try:
            self._container = av.open(str(self._tmp), mode="w", format=_muxer_for(self.path),
                                      options=container_options or {})
            if video_template is not None:
                self._video = self._container.add_stream_from_template(video_template)
                self._time_base = video_template.time_base
            else:
                self._video = self._add_video_stream(info, size, options)
            self._copied = self._add_copied_streams(copy_streams or [])
        except av.error.FFmpegError as exc:
            self._cleanup()
            raise OutputError(f"cannot write {self.path}: {reason(exc)}") from None
        except BaseException:
            self._cleanup()
            raise

    def _add_video_stream(self, info: VideoInfo, size: tuple[int, int], opts: EncodeOptions) -> av.VideoStream:
        width, height = size
        if opts.codec not in av.codecs_available:
            raise ConfigError(f"unknown video codec {opts.codec!r}")
        pix_fmt = opts.pix_fmt or ("yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p")
        if opts.pix_fmt is None and pix_fmt == "yuv444p":
            log.warning("frame size %dx%d is odd: encoding as yuv444p to keep the exact size", width, height)
        codec_opts = dict(opts.extra)
        if opts.crf is not None and opts.codec in ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "libaom-av1"):
            codec_opts.setdefault("crf", str(opts.crf))
        if opts.preset and opts.codec in ("libx264", "libx265", "libsvtav1"):
            codec_opts.setdefault("preset", str(opts.preset))
        rate = Fraction(info.fps).limit_denominator(100000) if info.fps else Fraction(25)
        stream = self._container.add_stream(opts.codec, rate=rate, options=codec_opts)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        # The codec must use the input's time base: with the default 1/fps, x264 snaps variable-frame-rate
        # timestamps to the nominal grid.
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        self._time_base = info.time_base
        return stream

    def _add_copied_streams(self, streams: list[av.stream.Stream]) -> dict[int, av.stream.Stream]:
        supported = getattr(self._container, "supported_codecs", None)
        mapping: dict[int, av.stream.Stream] = {}
        for s in streams:
            name = s.codec_context.name if s.codec_context else None
            if supported is not None and name not in supported:
                log.warning("the %s stream #%d (%s) cannot be stored in %s and is left out",
                            s.type, s.index, name, self.path.suffix or "this container")
                continue
            try:
                mapping[s.index] = self._container.add_stream_from_template(s)
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("the %s stream #%d is left out: %s", s.type, s.index, reason(exc))
        return mapping

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one (H, W, 3) uint8 RGB frame with presentation timestamp ``pts`` (input time base)."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = pts
        frame.time_base = self._time_base
        self._mux(self._video.encode(frame))
        self.frames_written += 1

    def write_packet(self, packet: av.Packet) -> None:
        """Mux one encoded video packet (remux mode: the sink was made with ``video_template``)."""
        if not self._remux:
            raise RuntimeError("write_packet needs a sink made with video_template")
        packet.stream = self._video
        self._mux([packet])
        self.frames_written += 1

    def copy_packet(self, packet: av.Packet) -> None:
        """Mux an input packet untouched (no re-encode), if its stream is being copied."""
        out = self._copied.get(packet.stream.index)
        if out is None or packet.dts is None:
            return
        packet.stream = out
        self._mux([packet])

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            self._container.mux(packets)
        except av.error.FFmpegError as exc:
            raise OutputError(f"cannot write {self.path}: {reason(exc)}") from None
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def commit(self) -> Path:
        """Flush the encoder, finish the file and move it into place."""
        if self.frames_written == 0:
            raise OutputError(f"no frames were written to {self.path}")
        if not self._remux:
            self._mux(self._video.encode(None))
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {self.path}: {reason(exc)}") from None
        os.replace(self._tmp, self.path)
        self._done = True
        return self.path

    def _cleanup(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            try:
                container.close()
            except Exception:  # noqa: BLE001 - already failing; the temp file is removed next
                pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None and not self._done:
            try:
                self.commit()
            except BaseException:
                self._cleanup()
                raise
        elif not self._done:
            self._cleanup()


class SequenceSink:
    """Writes frames as ``000000.png``, ``000001.png``, ... into a folder that appears only when complete."""

    def __init__(self, path: str | Path, info: VideoInfo | None = None, size: tuple[int, int] | None = None):
        self.path = Path(path)
        self._tmp = _temp_sibling(self.path, directory=True)
        self._done = False
        self.frames_written = 0

    def write(self, rgb: np.ndarray, pts: int) -> None:
        name = self._tmp / f"{self.frames_written:06d}.png"
        if not cv2.imwrite(str(name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OutputError(f"cannot write {name} (disk full or not writable)")
        self.frames_written += 1

    def copy_packet(self, packet: av.Packet) -> None:
        """Image sequences carry no audio: packets are dropped."""

    def commit(self) -> Path:
        if self.frames_written == 0:
            raise OutputError(f"no frames were written to {self.path}")
        if self.path.is_dir():
            self.path.rmdir()  # check_output_path allowed only an empty folder here
        os.replace(self._tmp, self.path)
        self._done = True
        return self.path

    def _cleanup(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> SequenceSink:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None and not self._done:
            try:
                self.commit()
            except BaseException:
                self._cleanup()
                raise
        elif not self._done:
            self._cleanup()


def open_sink(
    path: str | Path,
    info: VideoInfo,
    size: tuple[int, int],
    options: EncodeOptions = EncodeOptions(),
    copy_streams: list[av.stream.Stream] | None = None,
) -> VideoSink | SequenceSink:
    """A video file sink, or a PNG-sequence sink when ``path`` has no video suffix."""
    if is_sequence_path(path):
        if copy_streams:
            log.warning("a PNG sequence cannot hold audio or subtitles: %d stream(s) left out", len(copy_streams))
        return SequenceSink(path, info, size)
    return VideoSink(path, info, size, options, copy_streams)


def _muxer_for(path: Path) -> str | None:
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".m4v": "mp4", ".mp4": "mp4", ".avi": "avi"}.get(
        path.suffix.lower()
    )
