"""Writing: video files through PyAV (with audio/subtitle packet copy) and PNG sequence folders, atomically.

Everything is written to a temporary name beside the destination and renamed into place only when the whole
output is complete; on any error (including a full disk or Ctrl-C) the temporary output is removed and an existing
file at the destination is left untouched.
"""

from __future__ import annotations

import glob
import io
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import av.error
import cv2
import numpy as np

from fvr.errors import ConfigError, FvrError, OutputError, reason
from fvr.io.source import IMAGE_SUFFIXES, VideoInfo

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v")
"""Video files fvr reads (and finds in folders)."""
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
"""Video files fvr writes, by suffix. AVI is read but not written: it stores one timestamp per frame in a fixed
frame grid, so B-frame reordering and variable frame rate come out of order or re-timed."""
OUTPUT_SUFFIXES = tuple(_MUXERS)
_DEFAULT_CODECS = {"webm": ("libvpx-vp9", "libsvtav1", "libaom-av1")}
"""Encoders tried in order when no codec is given; every other container gets libx264."""
_CRF_CODECS = ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "libaom-av1")
_PRESET_CODECS = ("libx264", "libx265", "libsvtav1")
_OUR_FRAME = re.compile(r"^\d{6}\.png$")


@dataclass(frozen=True)
class EncodeOptions:
    """Video encoder settings.

    codec: an FFmpeg encoder name (libx264, libx265, libsvtav1, libvpx-vp9, ffv1, mpeg4, ...); None picks the
        container's usual one (libx264; libvpx-vp9 for .webm).
    crf: constant rate factor for the codecs that have one (lower = better; 18 is visually lossless for x264).
    preset: encoder speed/size trade-off (x264/x265 names: ultrafast ... veryslow).
    pix_fmt: None picks yuv420p, which every player decodes (odd frame sizes are then padded by one edge pixel
        row/column), or the 10-bit yuv420p10le for 10-bit input when the codec has it.
    extra: further encoder options by FFmpeg name (``tune``, ``x264-params``, ...). libx264 gets
        ``x264-params=mbtree=0`` unless ``x264-params`` is given here: its macroblock tree made the bytes of the same
        frames differ from run to run (docs/provenance.md).
    """

    codec: str | None = None
    crf: int | None = 18
    preset: str | None = "medium"
    pix_fmt: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def output_kind(path: str | Path) -> str:
    """What an output path names: "video" (by suffix), "image" (a single photo, .png/.jpg/...), "sequence" (a
    folder of PNG frames: an existing folder, a name ending in "/", or a name without a suffix), or "unknown"."""
    text = str(path)
    p = Path(path)
    suffix = p.suffix.lower()
    if text.endswith(("/", os.sep)) or p.is_dir() or not suffix:
        return "sequence"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return "unknown"


def is_sequence_path(path: str | Path) -> bool:
    """An output path names a PNG sequence folder (see :func:`output_kind`; paths that passed
    :func:`check_output_path` with an unusual suffix did so as folders)."""
    return output_kind(path) in ("sequence", "unknown")


def _encoder(name: str) -> av.Codec:
    if name not in av.codecs_available:
        raise ConfigError(f"unknown video codec {name!r}")
    try:
        codec = av.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):
        raise ConfigError(f"{name!r} is not a video encoder") from None
    if codec.type != "video":
        raise ConfigError(f"{name!r} is not a video encoder")
    return codec


def _supported(muxer: str) -> set[str]:
    with av.open(io.BytesIO(), mode="w", format=muxer) as probe:
        return set(probe.supported_codecs)


def _encoders_for(muxer: str) -> list[str]:
    """Installed video encoders (of the usual ones) that ``muxer`` can store, for error messages."""
    usual = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "libaom-av1", "ffv1", "prores_ks", "mpeg4")
    names = _supported(muxer)
    return [e for e in usual if e in av.codecs_available and av.Codec(e, "w").name in names]


def resolve_encode(path: str | Path, options: EncodeOptions) -> EncodeOptions:
    """``options`` with the codec chosen for ``path``'s container and checked: the encoder exists, the container
    can store it, and it accepts the pixel format asked for. Raises ConfigError (one line, saying what works)."""
    suffix = Path(path).suffix.lower()
    muxer = _MUXERS[suffix]
    name = options.codec
    if name is None:
        name = next((c for c in _DEFAULT_CODECS.get(muxer, ("libx264",)) if c in av.codecs_available), None)
        if name is None:
            raise ConfigError(f"no encoder for {suffix} is installed; write .mp4 or .mkv instead")
    codec = _encoder(name)
    if codec.name not in _supported(muxer):
        works = ", ".join(_encoders_for(muxer)) or "none installed"
        raise ConfigError(f"{suffix} files cannot hold {name} video; codecs for {suffix}: {works} "
                          f"(or write .mkv, which holds all of them)")
    if options.pix_fmt is not None:
        formats = [f.name for f in codec.video_formats or ()]
        if formats and options.pix_fmt not in formats:
            raise ConfigError(f"{name} cannot encode pixel format {options.pix_fmt!r}; it takes: {', '.join(formats)}")
    return replace(options, codec=name)


def _can_replace_folder(folder: Path) -> bool:
    """A folder fvr may replace with --overwrite: one of its own PNG sequences (NNNNNN.png files only)."""
    return all(p.is_file() and _OUR_FRAME.match(p.name) for p in folder.iterdir())


def check_output_path(output: str | Path, input_path: str | Path | None = None, *,
                      encode: EncodeOptions | None = None, overwrite: bool = True) -> Path:
    """Refuse, before any work is done, outputs that cannot be written, would destroy the input or an existing
    file (unless ``overwrite``), or whose container, codec and pixel format do not go together (``encode``:
    checked for video outputs). Returns the output as a Path. OutputError / ConfigError, one line each."""
    out = Path(output)
    kind = output_kind(output)
    if input_path is not None:
        inp = Path(input_path)
        if out.resolve() == inp.resolve() or (out.exists() and inp.exists() and out.samefile(inp)):
            raise OutputError(f"output {out} is the input file; choose another output path")
    if kind == "unknown":
        raise OutputError(f"unknown output type {out.suffix!r}: give a video ({', '.join(OUTPUT_SUFFIXES)}), an "
                          f"image ({', '.join(IMAGE_SUFFIXES)}) for a photo, or a folder for PNG frames "
                          f"(an existing folder, or end the name with /)")
    if kind == "video" and out.suffix.lower() not in _MUXERS:
        raise OutputError(f"fvr does not write {out.suffix} files (AVI cannot keep modern timestamps); "
                          f"write {', '.join(OUTPUT_SUFFIXES)}")
    if kind == "image" and input_path is not None:
        _check_single_frame(out, Path(input_path))
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {parent} is not writable")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputError(f"output folder {out} exists and is not empty (--overwrite replaces a folder of "
                              f"fvr's PNG frames)")
        if not _can_replace_folder(out):
            raise OutputError(f"output folder {out} holds files other than PNG frames; fvr does not replace it")
    elif out.exists() and not out.is_dir():
        if not overwrite:
            raise OutputError(f"output {out} exists; add --overwrite (-y) to replace it")
        if not os.access(out, os.W_OK):
            raise OutputError(f"output file {out} is not writable")
    if kind == "video" and encode is not None:
        resolve_encode(out, encode)
    return out


def _check_single_frame(out: Path, inp: Path) -> None:
    from fvr.io.source import probe

    if inp.is_dir():
        frames = len([p for p in inp.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES])
    else:
        try:
            frames = probe(inp).num_frames
        except FvrError:
            return  # the input's own error comes next, from the pass that opens it
    if frames > 1:
        raise OutputError(f"output {out} is a single image but the input has {frames} frames; write a video "
                          f"({', '.join(OUTPUT_SUFFIXES)}) or a folder")


TEMP_MARK = ".fvr-tmp-"
STALE_AFTER_S = 24 * 3600
"""A temporary output of another machine (shared folder) counts as abandoned when untouched this long."""


def _temp_prefix(out: Path) -> str:
    # host and pid in the name: a later run can tell an abandoned temporary file from one still being written
    return f".{out.name}{TEMP_MARK}{socket.gethostname()}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


_TEMP_OWNER = re.compile(r"^(?P<host>.+)-(?P<pid>\d+)-[^-]*$")


def _is_abandoned(path: Path, rest: str, now: float) -> bool:
    """``rest``: the name after ``.NAME.fvr-tmp-``, i.e. ``HOST-PID-RANDOM[.suffix]``."""
    try:
        age = now - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    owner = _TEMP_OWNER.match(rest)
    if owner and owner["host"] == socket.gethostname():
        return not _pid_alive(int(owner["pid"]))
    return age > STALE_AFTER_S


def remove_stale_temps(output: str | Path) -> list[Path]:
    """Delete the temporary files and folders that killed earlier runs left for ``output``
    (``.NAME.fvr-tmp-HOST-PID-*`` whose process is gone, or older than a day when written elsewhere).
    Returns what was removed."""
    out = Path(output)
    parent = out.parent if str(out.parent) else Path(".")
    removed: list[Path] = []
    now = time.time()
    prefix = f".{out.name}{TEMP_MARK}"
    for path in parent.glob(f"{glob.escape(prefix)}*"):
        if not _is_abandoned(path, path.name[len(prefix):], now):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) of an earlier interrupted run for %s", len(removed), out)
    return removed


def _temp_sibling(out: Path, *, directory: bool) -> Path:
    parent = out.parent if str(out.parent) else Path(".")
    remove_stale_temps(out)
    if directory:
        return Path(tempfile.mkdtemp(prefix=_temp_prefix(out), dir=parent))
    fd, name = tempfile.mkstemp(prefix=_temp_prefix(out), suffix=out.suffix, dir=parent)
    os.close(fd)
    return Path(name)


def _current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else by the set-and-restore call."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_mode(path: Path, *, directory: bool) -> None:
    """Give a finished temporary output (created private by mkstemp/mkdtemp) the permissions a plainly created
    file would have: 0666 / 0777 less the umask; a PNG folder's files too."""
    mask = _current_umask()
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)
_Sink = TypeVar("_Sink", bound="_AtomicSink")


class _AtomicSink:
    """What every sink does as a context manager: leaving the block normally commits (moves the finished temporary
    output into place); leaving it with an exception, or a failed commit, removes the temporary output.
    Subclasses set ``_done`` in ``commit`` and implement ``_cleanup``."""

    _done: bool

    def commit(self) -> Path:
        raise NotImplementedError

    def _cleanup(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Sink) -> _Sink:
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


class VideoSink(_AtomicSink):
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
        metadata: Mapping[str, str] | None = None,
    ):
        self.path = Path(path)
        self._tmp = _temp_sibling(self.path, directory=False)
        self._done = False
        self.frames_written = 0
        self._pad = (0, 0)  # (right, bottom) edge pixels added for a chroma-subsampled format
        self._convert: dict[int, tuple[str, str]] = {}  # input stream -> (its subtitle codec, the one written)
        # with a template, already encoded video packets are muxed (joining segments): no encoder is opened
        self._remux = video_template is not None
        try:
            muxer = _muxer_for(self.path)
            mux_options = dict(container_options or {})
            if metadata and muxer in ("mp4", "mov"):  # MP4/MOV keep tags other than their few standard ones only so
                mux_options["movflags"] = "+".join(filter(None, (mux_options.get("movflags"), "use_metadata_tags")))
            self._container = av.open(str(self._tmp), mode="w", format=muxer, options=mux_options)
            self._container.metadata.update(dict(metadata or {}))
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
        opts = resolve_encode(self.path, opts)
        assert opts.codec is not None
        width, height = size
        pix_fmt = opts.pix_fmt or _default_pix_fmt(opts.codec, info)
        if pix_fmt.endswith("10le") and "10" not in (opts.pix_fmt or ""):
            log.warning("10-bit input (%s): written as %s; fvr restores at 8 bits per channel, so the extra "
                        "precision of the input is not kept", info.pix_fmt, pix_fmt)
        elif "10" in info.pix_fmt and opts.pix_fmt is None:
            log.warning("10-bit input (%s) is written as 8-bit %s: %s has no 10-bit format here (try --codec "
                        "libx265 or --pix-fmt)", info.pix_fmt, pix_fmt, opts.codec)
        self._pad = _chroma_padding(pix_fmt, width, height)
        if any(self._pad):
            log.warning("frame size %dx%d is odd: padded to %dx%d (edge pixels repeated) for %s, which players "
                        "need; --pix-fmt yuv444p keeps the exact size", width, height, width + self._pad[0],
                        height + self._pad[1], pix_fmt)
        codec_opts = dict(opts.extra)
        if opts.crf is not None and opts.codec in _CRF_CODECS:
            codec_opts.setdefault("crf", str(opts.crf))
            if opts.codec == "libvpx-vp9":
                codec_opts.setdefault("b", "0")  # constant quality: libvpx applies crf only without a bitrate
        if opts.preset and opts.codec in _PRESET_CODECS:
            codec_opts.setdefault("preset", str(opts.preset))
        if opts.codec == "libx264":
            # x264's macroblock-tree rate control made the bytes of identical frames differ from run to run here
            # (4 encodes, 4 files); without it 8 of 8 were identical: a record's re-run must give the same file
            codec_opts.setdefault("x264-params", "mbtree=0")
        rate = Fraction(info.fps).limit_denominator(100000) if info.fps else Fraction(25)
        stream = self._container.add_stream(opts.codec, rate=rate, options=codec_opts)
        if not isinstance(stream, av.VideoStream):  # the codec was checked to be a video encoder
            raise AttributeError(f"'{type(stream).__name__}' object has no attribute 'width'")
        stream.width, stream.height, stream.pix_fmt = width + self._pad[0], height + self._pad[1], pix_fmt
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
                target = _text_target(s, name, supported)
                if target is None:
                    log.warning("the %s stream #%d (%s) cannot be stored in %s and is left out",
                                s.type, s.index, name, self.path.suffix or "this container")
                    continue
                out = self._container.add_mux_stream(target)
                out.time_base = s.time_base
                if s.metadata.get("language"):
                    out.metadata["language"] = s.metadata["language"]
                self._convert[s.index] = (name or "", target)
                log.info("subtitles #%d converted from %s to %s for %s", s.index, name, target, self.path.suffix)
                mapping[s.index] = out
                continue
            try:
                mapping[s.index] = self._container.add_stream_from_template(s)
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("the %s stream #%d is left out: %s", s.type, s.index, reason(exc))
        return mapping

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one (H, W, 3) uint8 RGB frame with presentation timestamp ``pts`` (input time base)."""
        if any(self._pad):
            rgb = np.pad(rgb, ((0, self._pad[1]), (0, self._pad[0]), (0, 0)), mode="edge")
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
        if packet.stream.index in self._convert:
            source, target = self._convert[packet.stream.index]
            packet = _converted_text(packet, source, target)
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
        publish_mode(self._tmp, directory=False)
        os.replace(self._tmp, self.path)
        self._done = True
        return self.path

    def _cleanup(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            try:
                container.close()
            except Exception:  # already failing; the temp file is removed next
                pass
        self._tmp.unlink(missing_ok=True)



class SequenceSink(_AtomicSink):
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
        publish_mode(self._tmp, directory=True)
        old = None
        if self.path.is_dir():  # check_output_path allowed an empty folder, or fvr's own frames with --overwrite
            old = self.path.with_name(f"{self._tmp.name}-old")
            os.replace(self.path, old)
        os.replace(self._tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._done = True
        return self.path

    def _cleanup(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)



class ImageSink(_AtomicSink):
    """Writes a single frame as one image file (a restored photo), atomically; a second frame is an error."""

    JPEG_QUALITY = 95

    def __init__(self, path: str | Path, info: VideoInfo | None = None, size: tuple[int, int] | None = None):
        self.path = Path(path)
        self._tmp = _temp_sibling(self.path, directory=False)
        self._done = False
        self.frames_written = 0

    def write(self, rgb: np.ndarray, pts: int) -> None:
        if self.frames_written:
            raise OutputError(f"output {self.path} is a single image but the input has more than one frame; "
                              f"write a video or a folder")
        params = [cv2.IMWRITE_JPEG_QUALITY, self.JPEG_QUALITY] if self.path.suffix.lower() in (".jpg", ".jpeg") else []
        if not cv2.imwrite(str(self._tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
            raise OutputError(f"cannot write {self.path} (disk full or not writable)")
        self.frames_written += 1

    def copy_packet(self, packet: av.Packet) -> None:
        """A photo carries no audio: packets are dropped."""

    def commit(self) -> Path:
        if self.frames_written == 0:
            raise OutputError(f"no frames were written to {self.path}")
        publish_mode(self._tmp, directory=False)
        os.replace(self._tmp, self.path)
        self._done = True
        return self.path

    def _cleanup(self) -> None:
        self._tmp.unlink(missing_ok=True)



def open_sink(
    path: str | Path,
    info: VideoInfo,
    size: tuple[int, int],
    options: EncodeOptions = EncodeOptions(),
    copy_streams: list[av.stream.Stream] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> VideoSink | SequenceSink | ImageSink:
    """The sink :func:`output_kind` names: a video file, a single image, or a PNG-sequence folder. ``metadata``:
    container tags of a video file (images and sequences have no place for them)."""
    kind = output_kind(path)
    if kind == "video":
        return VideoSink(path, info, size, options, copy_streams, metadata=metadata)
    if copy_streams:
        log.warning("a%s cannot hold audio or subtitles: %d stream(s) left out",
                    "n image" if kind == "image" else " PNG sequence", len(copy_streams))
    return ImageSink(path, info, size) if kind == "image" else SequenceSink(path, info, size)


def _muxer_for(path: Path) -> str | None:
    return _MUXERS.get(path.suffix.lower())


def _default_pix_fmt(codec: str, info: VideoInfo) -> str:
    """yuv420p (what every player decodes), or its 10-bit form for 10-bit input when the encoder has it."""
    formats = [f.name for f in av.Codec(codec, "w").video_formats or ()]
    if "10" in info.pix_fmt and "yuv420p10le" in formats:
        return "yuv420p10le"
    if not formats or "yuv420p" in formats:
        return "yuv420p"
    return formats[0]


def _chroma_padding(pix_fmt: str, width: int, height: int) -> tuple[int, int]:
    """Pixels to add on the right and at the bottom so that a chroma-subsampled format gets even sides."""
    try:
        fmt = av.VideoFormat(pix_fmt, width + 1, height + 1)
    except (ValueError, av.error.FFmpegError):
        return (0, 0)
    first, *others = fmt.components
    # a colour component smaller than the first (luma) one means subsampling along that side
    horizontal = any(c.width < first.width for c in others if not c.is_alpha)
    vertical = any(c.height < first.height for c in others if not c.is_alpha)
    return (width % 2 if horizontal else 0, height % 2 if vertical else 0)


_TEXT_SUBTITLES = ("subrip", "srt", "text", "webvtt", "ass", "ssa", "mov_text")
_TEXT_TARGETS = ("mov_text", "subrip", "webvtt")
_ASS_TAGS = re.compile(r"\{[^}]*\}")
_HTML_TAGS = re.compile(r"</?[a-zA-Z][^>]*>")


def _text_target(stream: av.stream.Stream, name: str | None, supported: set[str]) -> str | None:
    """The text subtitle format a container that cannot hold ``name`` takes instead (mov_text for MP4)."""
    if stream.type != "subtitle" or name not in _TEXT_SUBTITLES:
        return None
    return next((t for t in _TEXT_TARGETS if t in supported), None)


def subtitle_text(payload: bytes, codec: str) -> str:
    """The plain text of one text-subtitle packet (SubRip/WebVTT text, an ASS event line, or mov_text)."""
    if codec == "mov_text":
        n = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
        return payload[2 : 2 + n].decode("utf-8", "replace")
    text = payload.decode("utf-8", "replace")
    if codec in ("ass", "ssa"):
        # ReadOrder, Layer, Style, Name, MarginL, MarginR, MarginV, Effect, Text
        text = text.split(",", 8)[-1]
        text = _ASS_TAGS.sub("", text).replace("\\N", "\n").replace("\\n", "\n")
    return text


def _converted_text(packet: av.Packet, source: str, target: str) -> av.Packet:
    text = subtitle_text(bytes(packet), source)
    if target == "mov_text":
        body = _HTML_TAGS.sub("", text).encode("utf-8")[:65535]
        payload = len(body).to_bytes(2, "big") + body
    else:
        payload = text.encode("utf-8")
    out = av.Packet(payload)
    out.pts, out.dts, out.duration, out.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
    return out
