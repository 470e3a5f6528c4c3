"""Reading: video files through PyAV, and PNG/JPEG image-sequence folders, as streaming iterators.

Frames are yielded one at a time (bounded memory whatever the length). Each :class:`Frame` keeps the input's own
timestamp, so variable frame rate survives a round trip. Frames are returned upright: rotation metadata (the
display matrix) is applied to the pixels.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error
import av.logging
import cv2
import numpy as np

from fvr.errors import InputError, reason

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DEFAULT_SEQUENCE_FPS = Fraction(25)


@dataclass(frozen=True)
class Frame:
    """One decoded video frame.

    rgb: (H, W, 3) uint8 RGB, upright (rotation metadata applied).
    index: 0-based position in presentation order.
    pts: presentation timestamp in units of the source's ``time_base``.
    """

    index: int
    rgb: np.ndarray
    pts: int

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


@dataclass(frozen=True)
class StreamInfo:
    """A stream of the input container, as shown by ``fvr info``."""

    index: int
    type: str
    codec: str
    details: str = ""


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about an input before reading it.

    width/height are the upright (displayed) size; ``rotation`` is the counter-clockwise angle in degrees that was
    applied to the coded pixels. ``num_frames`` is the container's count when it has one (an estimate otherwise,
    0 when unknown).
    """

    path: str
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    num_frames: int
    duration: float
    rotation: int = 0
    codec: str = ""
    pix_fmt: str = ""
    is_image_sequence: bool = False
    is_still: bool = False  # a single photo (PNG, JPEG, ... read by an image demuxer), whatever its file name
    streams: tuple[StreamInfo, ...] = field(default_factory=tuple)


@dataclass
class DecodeErrors:
    """Corrupt data met by one decoding pass. The decoder conceals what it can (those frames may be smeared);
    packets it rejects lose their frames, and the frames after them keep their own timestamps.

    messages: error reports of the demuxer and decoder. packets: video packets rejected outright.
    first/last: frame index (and time in seconds) around which the first and last error happened.
    missing: frames the container announced but that were not decoded (truncated or cut data).
    """

    messages: int = 0
    packets: int = 0
    first: tuple[int, float] | None = None
    last: tuple[int, float] | None = None
    missing: int = 0
    example: str = ""

    def __bool__(self) -> bool:
        return bool(self.messages or self.packets or self.missing)

    def record(self, frame: int, time: float, message: str, *, packet: bool = False) -> None:
        if packet:
            self.packets += 1
        else:
            self.messages += 1
        self.first = self.first or (frame, time)
        self.last = (frame, time)
        self.example = self.example or message.strip()

    def summary(self) -> str:
        """How much and where, e.g. "2 decode error(s) near frames 74-75 (0:02.96-0:03.00, e.g. '...')"."""
        parts = []
        if self.messages or self.packets:
            assert self.first is not None and self.last is not None
            what = f"{self.messages} decode error(s)" + (f", {self.packets} packet(s) lost" if self.packets else "")
            parts.append(f"{what} near frames {self.first[0]}-{self.last[0]} "
                         f"({_clock(self.first[1])}-{_clock(self.last[1])}, e.g. {self.example!r})")
        if self.missing:
            parts.append(f"{self.missing} announced frame(s) missing (truncated file?)")
        return "; ".join(parts)

    def describe(self) -> str:
        """One line for a warning: how much, where, and what it means."""
        return (f"corrupt input: {self.summary()}; the decoder concealed what it could, so those frames may be "
                f"smeared or missing (--strict refuses such input)")


def _clock(seconds: float) -> str:
    m, s = divmod(max(seconds, 0.0), 60)
    return f"{int(m)}:{s:05.2f}"


def _natural_key(path: Path) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def list_image_sequence(folder: Path) -> list[Path]:
    """The image files of a sequence folder in natural order (frame_2 before frame_10)."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=_natural_key)


def _read_image_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"cannot read image {path}")
    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display rotation (counter-clockwise degrees, multiple of 90) to (H, W, 3) pixels."""
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=k)) if k else rgb


class MediaSource:
    """An opened input: a video file or an image-sequence folder.

    Use as a context manager. ``frames()`` streams decoded frames; ``media()`` additionally yields the packets of
    the audio and subtitle streams in container order, for copying them untouched.
    """

    def __init__(self, path: str | Path, *, sequence_fps: Fraction | float | None = None, strict: bool = False):
        self.path = Path(path)
        self.strict = strict  # any decode error raises InputError instead of being counted
        self.decode_errors = DecodeErrors()  # of the last (or current) decoding pass
        self._exact_count = False  # the container states its frame count (not an estimate from the duration)
        self._error_sources: set[str] = set()
        self._container: av.container.InputContainer | None = None
        self._images: list[Path] = []
        self._consumed = False  # a pass has read the container: the next pass must reopen it
        self._pass: Generator | None = None  # the decoding pass in progress (ended before the container closes)
        self._open_log: list[tuple[int, str, str]] = []  # FFmpeg's reports while the pass's container was opened
        if not self.path.exists():
            raise InputError(f"input not found: {self.path}")
        if self.path.is_dir():
            self.info = self._open_sequence(Fraction(sequence_fps or DEFAULT_SEQUENCE_FPS).limit_denominator(100000))
        else:
            self.info = self._open_video()

    # -- opening -------------------------------------------------------------------------------------------------

    def _open_sequence(self, fps: Fraction) -> VideoInfo:
        self._images = list_image_sequence(self.path)
        if not self._images:
            raise InputError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in folder {self.path}")
        first = _read_image_rgb(self._images[0])
        n = len(self._images)
        return VideoInfo(
            path=str(self.path), width=first.shape[1], height=first.shape[0], fps=fps, time_base=1 / fps,
            num_frames=n, duration=float(n / fps), codec=self._images[0].suffix.lower().lstrip("."),
            pix_fmt="rgb24", is_image_sequence=True,
            streams=(StreamInfo(0, "video", "image sequence", f"{n} files"),),
        )

    def _open_container(self) -> av.container.InputContainer:
        """Open the file for a pass. What the demuxer reports while probing it is kept in ``_open_log``: on a short
        file the probe reads to the end, so a truncation is reported here and never again during the pass."""
        try:
            with _error_log() as log:
                container = av.open(str(self.path), mode="r")
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"cannot open {self.path} as a video: {reason(exc)}") from None
        self._open_log = list(log)
        return container

    def _open_video(self) -> VideoInfo:
        c = self._open_container()
        error: InputError | None = None
        try:
            info = self._read_header(c)
        except InputError as exc:
            error = exc
        # Freeing the codec context joins the decoder's frame threads (see close()). Every reference to it was
        # local to _read_header (or held by the error's traceback, dropped here), so it is freed in this block,
        # with logging off, even while another file's pass has FFmpeg's logging raised.
        with _ERROR_LEVEL.off():
            if error is not None:
                error.__traceback__ = None
            c.close()
            del c
        if error is not None:
            raise error
        # A fresh container for the first pass: decoding the first frame above consumed packets.
        self._container = self._open_container()
        return info

    def _read_header(self, c: av.container.InputContainer) -> VideoInfo:
        """What the header and the first frame of the open container ``c`` say."""
        if not c.streams.video:
            raise InputError(f"{self.path} has no video stream")
        v = c.streams.video[0]
        cc = v.codec_context
        if cc is None:  # a stream FFmpeg has no decoder for (a damaged codec id)
            raise InputError(f"{self.path}: the video stream's codec is unknown (corrupt file?)")
        if cc.width <= 0 or cc.height <= 0:
            raise InputError(f"{self.path}: video stream has no frame size (corrupt or truncated file)")
        first = _first_frame(c, self.path)
        rotation = int(round(float(first.rotation or 0) / 90.0)) % 4 * 90
        w, h = (first.height, first.width) if rotation % 180 else (first.width, first.height)
        fps = v.average_rate or v.guessed_rate or v.base_rate or DEFAULT_SEQUENCE_FPS
        tb = v.time_base or Fraction(1, 1000)
        duration = float(v.duration * tb) if v.duration else (c.duration / 1e6 if c.duration else 0.0)
        n = v.frames or int(round(duration * float(fps)))
        still = c.format.name == "image2" or c.format.name.endswith("_pipe")
        n = 1 if still and not n else n
        self._exact_count = bool(v.frames) or still
        self._error_sources = {cc.name, c.format.name}
        info = VideoInfo(
            path=str(self.path), width=w, height=h, fps=Fraction(fps), time_base=Fraction(tb), num_frames=n,
            duration=duration, rotation=rotation, codec=cc.name, pix_fmt=cc.pix_fmt or "",
            is_still=still,
            streams=tuple(_describe(s) for s in c.streams),
        )
        return info

    # -- reading -------------------------------------------------------------------------------------------------

    @property
    def copyable_streams(self) -> list[av.stream.Stream]:
        """Audio and subtitle streams, whose packets are copied to the output without re-encoding."""
        if self._container is None:
            return []
        return [s for s in self._container.streams if s.type in ("audio", "subtitle")]

    def frames(self) -> Iterator[Frame]:
        """Decoded frames in presentation order, upright. Raises InputError on undecodable data."""
        for item in self.media(copy_streams=False):
            assert isinstance(item, Frame)
            yield item

    def media(self, copy_streams: bool = True) -> Iterator[Frame | av.Packet]:
        """Frames of the first video stream, interleaved (when copy_streams) with the packets of the streams in
        :attr:`copyable_streams`, in container order. Packets keep their own stream and timestamps."""
        if self._images:
            yield from self._sequence_frames()
            return
        self.rewind()
        yield from self._tracked(self._video_media(copy_streams))

    def _tracked(self, decoding: Generator) -> Iterator:
        """Run ``decoding`` as the pass in progress, so that :meth:`close` can end it before closing the container
        (a pass abandoned mid-way keeps FFmpeg's logging raised and its frame threads busy until it ends)."""
        self._pass = decoding
        try:
            yield from decoding
        finally:
            if self._pass is decoding:
                self._pass = None

    def _end_pass(self) -> None:
        """End an abandoned pass: its clean-up (FFmpeg's log level, the error capture) runs now, not at GC."""
        decoding, self._pass = self._pass, None
        # a running pass is the caller: it ends itself
        if decoding is not None and inspect.getgeneratorstate(decoding) != inspect.GEN_RUNNING:
            decoding.close()

    def _sequence_frames(self) -> Iterator[Frame]:
        h, w = self.info.height, self.info.width
        for i, path in enumerate(self._images):
            rgb = _read_image_rgb(path)
            if rgb.shape[:2] != (h, w):
                raise InputError(f"{path.name} is {rgb.shape[1]}x{rgb.shape[0]}, the sequence is {w}x{h}")
            yield Frame(index=i, rgb=rgb, pts=i)

    def _video_media(self, copy_streams: bool) -> Generator[Frame | av.Packet, None, None]:
        if self._container is None:
            raise RuntimeError("MediaSource is closed")
        self._consumed = True
        c = self._container
        video = c.streams.video[0]
        video.thread_type = "AUTO"  # frame/slice threads: decode is not the bottleneck, keep it that way
        others = self.copyable_streams if copy_streams else []
        stamps = _TimestampFixer(self.info)
        errors = self.decode_errors = DecodeErrors()
        index, seen = 0, 0
        tb = float(self.info.time_base)
        try:
            with _error_log() as log:
                # demux() ends with one flush packet per stream; decoding it drains the decoder's delayed frames.
                for packet in c.demux([video, *others]):
                    if packet.stream.index != video.index:
                        if packet.dts is not None:
                            yield packet
                        continue
                    try:
                        decoded = video.decode(packet)  # = packet.decode(), typed as video frames
                    except av.error.InvalidDataError as exc:  # a rejected packet: its frame is lost, go on
                        decoded = []
                        errors.record(index, (packet.pts or 0) * tb, reason(exc), packet=True)
                        self._fail_if_strict(errors, index)
                    for vf in decoded:
                        rgb = upright(vf.to_ndarray(format="rgb24"), self.info.rotation)
                        yield Frame(index=index, rgb=rgb, pts=stamps(vf.pts))
                        index += 1
                    seen = self._note_errors(log, seen, errors, index, (packet.pts or 0) * tb)
                seen = self._note_errors(log, seen, errors, index, self.info.duration)
            self._note_errors(self._open_log, 0, errors, index, self.info.duration)
        except av.error.FFmpegError as exc:
            raise InputError(f"{self.path}: corrupt video data at frame {index}: {reason(exc)}") from None
        if index == 0:
            raise InputError(f"{self.path} contains no decodable video frames")
        if self._exact_count and index < self.info.num_frames:
            errors.missing = self.info.num_frames - index
            self._fail_if_strict(errors, index)

    def _note_errors(self, log: list[tuple[int, str, str]], seen: int, errors: DecodeErrors, index: int,
                     time: float) -> int:
        """Record the decoder's error reports since ``seen`` at frame ``index``; returns the new ``seen``."""
        for level, name, message in log[seen:]:
            if level <= av.logging.ERROR and name in self._error_sources:
                errors.record(index, time, message)
        if len(log) > seen:
            self._fail_if_strict(errors, index)
        return len(log)

    def _fail_if_strict(self, errors: DecodeErrors, index: int) -> None:
        if self.strict and errors:
            raise InputError(f"{self.path}: corrupt input refused (--strict): {errors.summary()}")

    def frames_from(self, start: int, pts: np.ndarray) -> Iterator[Frame]:
        """Frames from index ``start`` on, as :meth:`frames` numbers them, without decoding the whole beginning:
        seeks to the last keyframe at or before frame ``start`` and decodes from there.

        pts: (N,) int64, every frame's timestamp as :meth:`frames` returned them (recorded in a first pass). When
        the decoded timestamps after the seek do not match that record (streams whose timestamps fvr had to
        repair), it falls back to decoding from the first frame, so the result is always the same frames.
        """
        if start <= 0 or self._images or start >= len(pts):
            yield from (f for f in self.frames() if f.index >= start)
            return
        self.rewind()
        yield from self._tracked(self._seek_frames(start, pts))

    def _seek_frames(self, start: int, pts: np.ndarray) -> Generator[Frame, None, None]:
        if self._container is None:
            raise RuntimeError("MediaSource is closed")
        self._consumed = True
        video = self._container.streams.video[0]
        video.thread_type = "AUTO"
        target = int(pts[start])
        try:
            self._container.seek(target, stream=video, backward=True, any_frame=False)
            index: int | None = None
            for vf in self._container.decode(video):
                if vf.pts is None:
                    break  # cannot place it: start over below
                if index is None:
                    if vf.pts > target:
                        break  # the seek overshot (no keyframe index): start over below
                    found = int(np.searchsorted(pts, vf.pts))
                    if found >= len(pts) or int(pts[found]) != vf.pts:
                        break
                    index = found
                elif index >= len(pts) or int(pts[index]) != vf.pts:
                    raise InputError(f"{self.path}: frames differ from the first pass at frame {index}")
                if index >= start:
                    yield Frame(index=index, rgb=upright(vf.to_ndarray(format="rgb24"), self.info.rotation),
                                pts=vf.pts)
                index += 1
            else:
                return
        except av.error.FFmpegError as exc:
            raise InputError(f"{self.path}: corrupt video data near frame {start}: {reason(exc)}") from None
        if index is None:  # the seek could not be used: decode from the start (slower, same frames)
            yield from (f for f in self.frames() if f.index >= start)

    def packets(self) -> Iterator[av.Packet]:
        """The packets of :attr:`copyable_streams` (audio, subtitles) alone, in container order, without decoding
        any video (joining restored segments with the input's audio)."""
        if self._images:
            return
        self.rewind()
        if self._container is None:
            raise RuntimeError("MediaSource is closed")
        self._consumed = True
        others = self.copyable_streams
        if not others:
            return
        try:
            for packet in self._container.demux(others):
                if packet.dts is not None:
                    yield packet
        except av.error.FFmpegError as exc:
            raise InputError(f"{self.path}: corrupt data: {reason(exc)}") from None

    def rewind(self) -> None:
        """Start the next :meth:`media`/:meth:`frames` pass from the first frame (reopens a consumed container;
        call it before reading :attr:`copyable_streams` for a second pass)."""
        if self._consumed and not self._images:
            self.close()
            self._container = self._open_container()
            self._consumed = False

    def close(self) -> None:
        self._end_pass()
        if self._container is not None:
            # Closing joins the decoder's frame threads while holding the GIL; a thread that logs then waits for
            # the GIL in PyAV's log callback and both hang (PyAV issues 751, 909). With logging off no new message
            # asks for it, but one a thread began just before (a pass abandoned mid-stream leaves frames in flight)
            # still waits: draining the decoders first lets those threads finish with the GIL free.
            with _ERROR_LEVEL.off():
                container, self._container = self._container, None
                _drain_decoders(container)
                container.close()
                del container  # the last reference: the codec contexts are freed now, logging still off

    def __enter__(self) -> MediaSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TimestampFixer:
    """Keeps input timestamps, and repairs the ones a player would choke on.

    Frames without a pts get one from the previous frame plus one nominal frame duration; non-increasing pts
    (broken muxers) are bumped by one tick so the encoder accepts them.
    """

    def __init__(self, info: VideoInfo):
        self._step = max(1, int(round(1 / (info.fps * info.time_base)))) if info.fps else 1
        self._last: int | None = None

    def __call__(self, pts: int | None) -> int:
        if pts is None:
            pts = 0 if self._last is None else self._last + self._step
        if self._last is not None and pts <= self._last:
            pts = self._last + 1
        self._last = pts
        return pts


def _drain_decoders(container: av.container.InputContainer) -> None:
    """Finish the work in flight of every video decoder of ``container`` (PyAV releases the GIL while it waits),
    so that no decoder thread is busy, or waiting to log, when the container is closed."""
    for stream in container.streams.video:
        try:
            stream.codec_context.decode(None)
        except Exception:  # a decoder never opened or already at its end has nothing in flight
            pass


class _FFmpegErrorLevel:
    """FFmpeg's log level is one setting per process, and decoding passes overlap without nesting (the benchmark
    reads a ground truth and several outputs in step; a pass can be abandoned): a save-and-restore per pass puts
    back a stale level when passes end out of order. So the passes are counted: the first raises the level to
    ERROR (and stops PyAV folding repeated messages), the last puts back what was set before."""

    def __init__(self) -> None:
        # re-entrant: a pass's clean-up can run inside another call here on the same thread (a generator finalised
        # by the garbage collector while a container closes)
        self._lock = threading.RLock()
        self._active = 0
        self._before: tuple[int | None, bool] = (None, True)

    def enter(self) -> None:
        with self._lock:
            if self._active == 0:
                level = av.logging.get_level()
                self._before = (level, av.logging.get_skip_repeated())
                if level is None or level < av.logging.ERROR:
                    av.logging.set_level(av.logging.ERROR)
                # a demuxer that said "File ended prematurely" while the header was probed says it again at the
                # truncation: a folded repeat would never reach the capture
                av.logging.set_skip_repeated(False)
            self._active += 1

    def exit(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                level, skip = self._before
                av.logging.set_skip_repeated(skip)
                av.logging.set_level(level)

    @contextmanager
    def off(self) -> Iterator[None]:
        """Logging off (PyAV's callback that never takes the GIL) for the block; the level is put back after."""
        with self._lock:
            level = av.logging.get_level()
            av.logging.set_level(None)
            try:
                yield
            finally:
                av.logging.set_level(level)


# FFmpeg's logging is process-wide state, so its guard is too (one per process, never reassigned)
_ERROR_LEVEL = _FFmpegErrorLevel()


@contextmanager
def _error_log() -> Iterator[list[tuple[int, str, str]]]:
    """The (level, source, message) reports FFmpeg makes during the block, with FFmpeg's log level at ERROR or
    above meanwhile (PyAV keeps logging off by default; :class:`_FFmpegErrorLevel`)."""
    _ERROR_LEVEL.enter()
    try:
        with av.logging.Capture(local=False) as logs:
            yield logs
    finally:
        _ERROR_LEVEL.exit()


def _first_frame(container: av.container.InputContainer, path: Path) -> av.VideoFrame:
    """Decode the first video frame (its side data carries the rotation; it also proves the stream decodes)."""
    try:
        for frame in container.decode(container.streams.video[0]):
            return frame
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: cannot decode the video stream: {reason(exc)}") from None
    raise InputError(f"{path} contains no decodable video frames")


def _describe(stream: av.stream.Stream) -> StreamInfo:
    cc = stream.codec_context
    if cc is None:  # no decoder for it (unknown or damaged codec id): list it, but say nothing about it
        details = ""
    elif stream.type == "video" and isinstance(cc, av.VideoCodecContext):
        rate = stream.average_rate
        size = f"{cc.width}x{cc.height}"
        details = f"{size} {cc.pix_fmt or ''} {float(rate):.3f} fps" if rate else size
    elif stream.type == "audio" and isinstance(cc, av.AudioCodecContext):
        details = f"{cc.sample_rate} Hz, {cc.channels} ch"
    else:
        details = ""
    lang = stream.metadata.get("language")
    if lang and lang != "und":
        details = f"{details} [{lang}]".strip()
    return StreamInfo(stream.index, stream.type, cc.name if cc else "?", details)


def probe(path: str | Path, *, sequence_fps: Fraction | float | None = None) -> VideoInfo:
    """Open, read the header information, close."""
    with MediaSource(path, sequence_fps=sequence_fps) as src:
        return src.info
