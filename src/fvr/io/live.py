"""Live sources and sinks for ``fvr live``: frames that arrive in real time, and places that show or carry them.

Sources (:func:`open_live_source`, one parser of the SOURCE argument):

* a camera — ``0``, ``1``, ... or ``/dev/videoN`` — read with OpenCV (V4L2 on Linux);
* a network stream — ``rtsp://``, ``rtmp://``, ``http(s)://``, ``udp://``, ``tcp://``, ``srt://`` — decoded with PyAV;
* a file, played at its own frame rate (``realtime``: each frame is released at its timestamp, as a camera would
  give it) or as fast as it decodes.

Each source yields :class:`~fvr.io.source.Frame` s and states a :class:`~fvr.io.source.VideoInfo`; a live source
(camera, stream, paced file) is marked ``live``: when the restorer falls behind, its frames are dropped, never
queued (see :func:`fvr.run.live.run_live`).

Sinks (:func:`open_live_sink`, one parser of ``-o``): a video file (``.mp4``, ``.mkv``, ...; written atomically,
the source's timestamps), ``udp://HOST:PORT`` or ``srt://`` (MPEG-TS over the network), ``mjpeg:PORT`` (an MJPEG
preview on ``http://127.0.0.1:PORT/`` for a browser), ``window`` (a preview window where OpenCV has a GUI and a
display exists), ``virtualcam`` (a virtual camera for Zoom/Meet/OBS through pyvirtualcam and v4l2loopback), ``null``
(discard: for measurements). :class:`MemorySink` keeps frames in a list (tests, the Python API).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from fvr.errors import ConfigError, InputError, OutputError, reason
from fvr.io.source import Frame, MediaSource, VideoInfo

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
CLOCK_BASE = Fraction(1, 1_000_000)
"""Time base of the timestamps a camera's frames get (microseconds of the capture clock)."""


class LiveSource(Protocol):
    """Frames arriving in order; ``live``: they arrive in real time whether or not they are consumed."""

    info: VideoInfo
    live: bool

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


# ------------------------------------------------------------------------------------------------------ sources


class FileSource:
    """A video file (or image folder) as a live source: with ``realtime`` each frame is released at its timestamp
    relative to the first (the pace of a camera), else as fast as it decodes."""

    def __init__(self, path: str | Path, realtime: bool = False):
        self.media = MediaSource(path)
        self.info = self.media.info
        self.live = realtime

    def frames(self) -> Iterator[Frame]:
        start: float | None = None
        first = 0
        for frame in self.media.frames():
            if self.live:
                if start is None:
                    start, first = time.perf_counter(), frame.pts
                due = start + float((frame.pts - first) * self.info.time_base)
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            yield frame

    def close(self) -> None:
        self.media.close()


class CameraSource:
    """A camera through OpenCV: ``device`` an index (0, 1, ...) or a device path (``/dev/video0``). Frames are
    stamped with the capture clock (microseconds since the first frame)."""

    live = True

    def __init__(self, device: int | str):
        self.capture = cv2.VideoCapture(device)
        if not self.capture.isOpened():
            self.capture.release()
            raise InputError(f"no camera at {device!r} (none connected, busy, or no permission to open it)")
        ok, first = self.capture.read()
        if not ok or first is None:
            self.capture.release()
            raise InputError(f"the camera {device!r} opened but gave no frame")
        self._first: np.ndarray | None = first
        fps = self.capture.get(cv2.CAP_PROP_FPS) or 30.0
        h, w = first.shape[:2]
        self.info = VideoInfo(str(device), w, h, Fraction(fps).limit_denominator(1001), CLOCK_BASE, 0, 0.0)

    def frames(self) -> Iterator[Frame]:
        t0 = time.perf_counter()
        index = 0
        while True:
            if self._first is not None:
                bgr, self._first = self._first, None
            else:
                ok, bgr = self.capture.read()
                if not ok or bgr is None:
                    return  # unplugged or closed: the session ends
            pts = int((time.perf_counter() - t0) / CLOCK_BASE)
            yield Frame(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), pts)
            index += 1

    def close(self) -> None:
        self.capture.release()


class StreamSource:
    """A network stream (RTSP, RTMP, HTTP, UDP, TCP, SRT) decoded with PyAV, timestamps as the stream gives them."""

    live = True

    def __init__(self, url: str, timeout: float = 10.0):
        import av

        try:
            self.container = av.open(url, timeout=timeout)
            self.stream = self.container.streams.video[0]
        except (av.error.FFmpegError, IndexError, OSError) as exc:
            raise InputError(f"cannot open the stream {url}: {reason(exc)}") from None
        ctx = self.stream.codec_context
        rate = self.stream.average_rate or self.stream.guessed_rate or Fraction(25)
        time_base = self.stream.time_base or Fraction(1, 90000)
        self.info = VideoInfo(url, int(ctx.width), int(ctx.height), Fraction(rate), Fraction(time_base), 0, 0.0,
                              codec=ctx.name or "")

    def frames(self) -> Iterator[Frame]:
        import av

        index, last = 0, -1
        try:
            for frame in self.container.decode(self.stream):
                pts = frame.pts if frame.pts is not None and frame.pts > last else last + 1
                last = pts
                yield Frame(index, frame.to_ndarray(format="rgb24"), pts)
                index += 1
        except av.error.FFmpegError as exc:
            raise InputError(f"the stream {self.info.path} broke off: {reason(exc)}") from None

    def close(self) -> None:
        self.container.close()


def open_live_source(spec: str, realtime: bool = False) -> LiveSource:
    """The source ``spec`` names: a camera index or ``/dev/video*``, a stream URL, or a file (played at its own
    rate with ``realtime``). A missing file or camera is a one-line :class:`InputError`."""
    if spec.isdigit():
        return CameraSource(int(spec))
    if spec.startswith("/dev/video"):
        if not Path(spec).exists():
            raise InputError(f"no camera at {spec}")
        return CameraSource(spec)
    if spec.lower().startswith(STREAM_SCHEMES):
        return StreamSource(spec)
    return FileSource(spec, realtime=realtime)


# -------------------------------------------------------------------------------------------------------- sinks


class LiveSink(Protocol):
    """Where restored frames go: ``write(rgb, pts)`` in order, then ``close()`` (``close(ok=False)``: abandon)."""

    def write(self, rgb: np.ndarray, pts: int) -> None: ...

    def close(self, ok: bool = True) -> None: ...


class MemorySink:
    """Keeps every written (rgb, pts) in ``frames`` (tests and the Python API)."""

    def __init__(self) -> None:
        self.frames: list[tuple[np.ndarray, int]] = []
        self.closed = False

    def write(self, rgb: np.ndarray, pts: int) -> None:
        self.frames.append((rgb, pts))

    def close(self, ok: bool = True) -> None:
        self.closed = True


class NullSink:
    """Discards frames (for measuring the engine alone)."""

    def write(self, rgb: np.ndarray, pts: int) -> None:
        pass

    def close(self, ok: bool = True) -> None:
        pass


class FileSink:
    """A video file with the source's timestamps, written atomically: closed normally (also when the session is
    stopped with Ctrl-C) it holds every frame written; abandoned, nothing is left."""

    def __init__(self, path: str | Path, info: VideoInfo, size: tuple[int, int], preset: str = "veryfast",
                 crf: int = 20):
        from fvr.io.sink import EncodeOptions, VideoSink

        self.sink = VideoSink(path, info, size, EncodeOptions(crf=crf, preset=preset))
        self.sink.__enter__()
        self.last = -1

    def write(self, rgb: np.ndarray, pts: int) -> None:
        pts = pts if pts > self.last else self.last + 1  # a camera's clock can repeat a microsecond
        self.last = pts
        self.sink.write(rgb, pts)

    def close(self, ok: bool = True) -> None:
        if ok:
            self.sink.__exit__(None, None, None)
        else:
            self.sink.__exit__(OutputError, None, None)


class StreamSink:
    """MPEG-TS over the network (``udp://HOST:PORT``, ``srt://...``), H.264 tuned for low latency."""

    def __init__(self, url: str, info: VideoInfo, size: tuple[int, int]):
        import av

        try:
            self.container = av.open(url, mode="w", format="mpegts")
            self.stream = self.container.add_stream("libx264", rate=Fraction(info.fps or 25).limit_denominator(1001),
                                                    options={"preset": "ultrafast", "tune": "zerolatency"})
        except av.error.FFmpegError as exc:
            raise OutputError(f"cannot stream to {url}: {reason(exc)}") from None
        self.stream.width, self.stream.height, self.stream.pix_fmt = size[0] - size[0] % 2, size[1] - size[1] % 2, \
            "yuv420p"
        self.stream.time_base = info.time_base
        self.time_base = info.time_base

    def write(self, rgb: np.ndarray, pts: int) -> None:
        import av

        h, w = self.stream.height, self.stream.width
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
        frame.pts, frame.time_base = pts, self.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self, ok: bool = True) -> None:
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
        finally:
            self.container.close()


class MjpegSink:
    """An MJPEG preview served on ``http://HOST:PORT/`` (localhost by default): open it in a browser. Only the
    newest frame is sent to each viewer; a slow viewer skips frames, it never slows the session."""

    def __init__(self, port: int, host: str = "127.0.0.1", quality: int = 80):
        self.quality = quality
        self._jpeg: bytes | None = None
        self._cond = threading.Condition()
        self._closed = False
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path not in ("/", "/stream.mjpg"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                last: bytes | None = None
                try:
                    while True:
                        with sink._cond:
                            sink._cond.wait_for(partial(sink.changed, last), timeout=1.0)
                            if sink._closed:
                                return
                            last = sink._jpeg
                        if last is None:
                            continue
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(last)).encode() + b"\r\n\r\n" + last + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, *args: object) -> None:  # quiet: the terminal shows the session's own stats
                pass

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OutputError(f"cannot serve the preview on {host}:{port}: {reason(exc)}") from None
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, name="fvr-mjpeg", daemon=True)
        self.thread.start()

    def changed(self, sent: bytes | None) -> bool:
        """A new frame (or the end) since ``sent``, the frame a viewer got last."""
        return self._closed or self._jpeg is not sent

    def write(self, rgb: np.ndarray, pts: int) -> None:
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            with self._cond:
                self._jpeg = data.tobytes()
                self._cond.notify_all()

    def close(self, ok: bool = True) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()


class WindowSink:
    """A preview window (OpenCV's GUI). Needs a display and an OpenCV built with a GUI backend: the
    ``opencv-python-headless`` that fvr installs has none, so this says what to install instead."""

    def __init__(self, title: str = "fvr live"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise OutputError("-o window needs a display (no DISPLAY or WAYLAND_DISPLAY); use -o mjpeg:8080 and a "
                              "browser instead")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise OutputError("-o window needs OpenCV with a GUI (pip install opencv-python instead of "
                              "opencv-python-headless); or use -o mjpeg:8080 and a browser") from None
        self.title = title

    def write(self, rgb: np.ndarray, pts: int) -> None:
        cv2.imshow(self.title, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.waitKey(1)

    def close(self, ok: bool = True) -> None:
        cv2.destroyWindow(self.title)


class VirtualCamSink:
    """A virtual camera (pyvirtualcam; on Linux the v4l2loopback kernel module) that video-call apps can pick."""

    def __init__(self, size: tuple[int, int], fps: float, device: str | None = None):
        try:
            import pyvirtualcam
        except ImportError:
            raise OutputError("-o virtualcam needs pyvirtualcam (pip install pyvirtualcam) and, on Linux, the "
                              "v4l2loopback kernel module (modprobe v4l2loopback)") from None
        try:
            self.cam = pyvirtualcam.Camera(width=size[0], height=size[1], fps=fps, device=device)
        except (RuntimeError, OSError) as exc:
            raise OutputError(f"no virtual camera: {reason(exc)} (on Linux: sudo modprobe v4l2loopback "
                              f"exclusive_caps=1)") from None

    def write(self, rgb: np.ndarray, pts: int) -> None:
        self.cam.send(np.ascontiguousarray(rgb))

    def close(self, ok: bool = True) -> None:
        self.cam.close()


def open_live_sink(spec: str, info: VideoInfo, size: tuple[int, int], *, overwrite: bool = True) -> LiveSink:
    """The sink ``-o SPEC`` names (see the module docstring); ``size``: (width, height) of the frames written. A
    file is checked first as ``fvr restore`` checks its output (``overwrite=False`` refuses an existing one)."""
    low = spec.lower()
    if low == "null":
        return NullSink()
    if low == "window":
        return WindowSink()
    if low.startswith("virtualcam"):
        _, _, device = spec.partition(":")
        return VirtualCamSink(size, float(info.fps or 30), device or None)
    if low.startswith("mjpeg:"):
        host, _, port = spec[len("mjpeg:"):].rpartition(":")
        if not port.isdigit():
            raise ConfigError(f"-o {spec}: write mjpeg:PORT or mjpeg:HOST:PORT, e.g. mjpeg:8080")
        return MjpegSink(int(port), host or "127.0.0.1")
    if low.startswith(("udp://", "srt://", "tcp://", "rtp://")):
        return StreamSink(spec, info, size)
    from fvr.io.sink import check_output_path, output_kind

    source = Path(info.path)
    check_output_path(spec, source if source.is_file() else None, overwrite=overwrite)
    if output_kind(spec) != "video":
        raise ConfigError(f"-o {spec}: a live session writes a video file (.mp4, .mkv, ...), udp://HOST:PORT, "
                          f"mjpeg:PORT, window, virtualcam or null")
    return FileSink(spec, info, size)
