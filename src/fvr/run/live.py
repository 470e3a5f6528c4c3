"""``fvr live``: face restoration in one causal pass, frame in -> frame out, for cameras, streams and calls.

:class:`LiveAssembler` is the causal twin of :class:`~fvr.run.assemble.FrameAssembler` and shares its per-frame
parts: the face tracker fed one frame at a time (detection every ``detect_every`` frames, optical flow in
between), causal landmark smoothing (:class:`~fvr.faces.smooth.LandmarkSmoother`, the same arithmetic as the
offline one-euro), :func:`~fvr.faces.analyse.align_face`, a :class:`~fvr.run.assemble.TrackRunner` per face
carrying the restorer's state, and :func:`~fvr.run.assemble.compose_frame`. With the same causal settings, one
frame per restorer call (``chunk=1``) and no dropped frame, it gives the frames the offline pipeline gives
wherever the offline tracks need no hindsight (no gap bridged, no short track dropped, no fade).

:func:`run_live` drives it from a :class:`~fvr.io.live.LiveSource` to a :class:`~fvr.io.live.LiveSink` with the
real-time policy: a live source (camera, stream, paced file) is read on its own thread into a one-frame mailbox,
and when the restorer is still busy the waiting frame is replaced by the newer one (latest wins: drops, never a
queue); with ``adapt`` the detector runs less often and on smaller frames while frames are being dropped. A file
read as fast as possible is never dropped. Per frame it records capture -> output latency.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from fvr.compose import face_mask
from fvr.compose.background import Background
from fvr.errors import ConfigError, OutputError, reason
from fvr.faces import FaceTracker, make_detector
from fvr.faces.analyse import align_face
from fvr.faces.smooth import LandmarkSmoother, is_causal
from fvr.io import Frame
from fvr.io.live import LiveSink, LiveSource
from fvr.models import Restorer
from fvr.run.assemble import TrackRunner, compose_frame, face_crop
from fvr.run.build import build_background
from fvr.run.config import RestoreConfig
from fvr.signals import Interrupted, signals_stop

log = logging.getLogger(__name__)

LIVE_SMOOTHING = "one-euro"
"""The causal landmark smoothing a live session uses unless told otherwise."""


def check_causal(restorer: Restorer, config: RestoreConfig) -> None:
    """One-line ConfigError unless the model and the smoothing read no future frame and no track is named by ID."""
    if restorer.spec.future:
        raise ConfigError(f"model {restorer.spec.name} reads {restorer.spec.future} future frame(s): live video "
                          f"needs a causal one (fvr-fast, classical, identity, or MODEL+flow-causal)")
    if not is_causal(config.smoothing):
        raise ConfigError(f"--smoothing {config.smoothing.method} needs future frames: live video takes one-euro "
                          f"or none")
    if config.face_strength or config.faces != "all":
        raise ConfigError("a live session restores every face it sees: --faces and --face-strength choose among "
                          "the tracks of a finished analysis (fvr restore), which live video does not have")


class LiveAssembler:
    """Frames in, restored frames out, one for one and causally (nothing after a frame changes it).

    restorer: causal (``spec.future == 0``). config: the restore settings (smoothing must be causal). fps: the
    source's frame rate (the one-euro filter's clock). Tracks that have not been seen for more than the tracker's
    ``max_gap`` frames are forgotten (their smoothing and restorer state with them).
    """

    def __init__(self, restorer: Restorer, config: RestoreConfig, fps: float, background: Background | None = None):
        check_causal(restorer, config)
        self.restorer = restorer
        self.config = config
        self.fps = fps
        self.size = restorer.spec.crop_size
        self.mask = face_mask(self.size, feather=config.feather, coverage=config.mask_coverage)
        self.background = background if background is not None else build_background(config)
        self.tracker = FaceTracker(make_detector(config.detector), config.tracker)
        self.smoothers: dict[int, LandmarkSmoother] = {}
        self.runners: dict[int, TrackRunner] = {}
        self.seen: dict[int, int] = {}
        self.frames = 0
        self.detect_size = config.detector.max_side

    def push(self, frame: Frame) -> np.ndarray:
        """Restore ``frame`` (its faces tracked from the frames pushed before it): the composed RGB, uint8,
        ``config.upscale`` times the frame's size. Frames are numbered by their order of arrival (``frame.index``
        is not used: a live session drops frames)."""
        index = self.frames
        self.frames += 1
        self.tracker.update(frame.rgb)
        background = self.background(frame.rgb)
        pastes = []
        for key, raw in self.tracker.current():
            if key not in self.runners:
                self.smoothers[key] = LandmarkSmoother(self.config.smoothing, self.fps)
                self.runners[key] = TrackRunner(self.restorer, 1)
            self.seen[key] = index
            face = align_face(background, key, self.smoothers[key](raw), raw, self.size, self.config.upscale)
            for _, paste in self.runners[key].add(face_crop(index, face)):
                pastes.append(paste)
        self._forget(index)
        return compose_frame(background, pastes, self.mask, self.config) if pastes else background

    def warm_up(self, width: int, height: int) -> None:
        """Run the tracking (on frames with a face: every stage of a cascade detector, optical flow and the
        association of a detection to a track, whose solver is imported on first use) and the restorer once before
        the first frame arrives: their first calls are slow (imports, allocations, kernel selection), which a live
        session would pay in dropped frames (120 ms on the first association alone). A throwaway tracker does it:
        the session's tracker and every track state are left untouched."""
        from fvr.synthetic import moving_face_frames

        face = next(moving_face_frames(1, size=min(width, height)))
        frame = np.zeros((height, width, 3), np.uint8)
        frame[: face.shape[0], : face.shape[1]] = face
        rehearsal = FaceTracker(self.tracker.detector, replace(self.tracker.config, detect_every=2, redetect_motion=0))
        for _ in range(3):  # detect, follow by flow, detect and associate
            rehearsal.update(frame)
        s = self.size
        clip = np.zeros((1 + self.restorer.spec.past, 3, s, s), np.float32)
        marks = np.zeros((len(clip), 5, 2), np.float32)
        if self.restorer.carries_state:
            self.restorer.step(clip, marks, None, len(clip))
        else:
            self.restorer(clip, marks)
        self.background(np.zeros((height, width, 3), np.uint8))

    def _forget(self, index: int) -> None:
        for key in [k for k, last in self.seen.items() if index - last > self.config.tracker.max_gap]:
            del self.seen[key], self.smoothers[key], self.runners[key]

    def retune(self, detect_every: int, detect_size: int) -> None:
        """Cheaper (or dearer) face detection from the next frame on: the detector every ``detect_every`` frames
        (optical flow in between), on frames shrunk to ``detect_size`` pixels. Live tracks are kept."""
        if detect_every != self.tracker.config.detect_every:
            self.tracker.config = replace(self.tracker.config, detect_every=detect_every)
        if detect_size != self.detect_size:
            self.tracker.detector = make_detector(replace(self.config.detector, max_side=detect_size))
            self.detect_size = detect_size


# ------------------------------------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class LiveStats:
    """A session's figures. frames_in: frames the source delivered; frames_out: frames written; dropped: frames
    replaced by a newer one before the restorer took them; latency: capture -> written, milliseconds."""

    frames_in: int
    frames_out: int
    dropped: int
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_max: float
    fps_out: float
    seconds: float
    detect_every: int
    detect_size: int
    stopped_by: str = ""

    @property
    def delivered(self) -> float:
        return self.frames_out / self.frames_in if self.frames_in else 0.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "delivered": round(self.delivered, 4)}


def _stats(latencies: list[float], frames_in: int, dropped: int, seconds: float, tuning: tuple[int, int],
           stopped_by: str) -> LiveStats:
    ms = np.asarray(latencies, dtype=np.float64) * 1000.0
    p50, p95, top = (float(np.percentile(ms, q)) for q in (50, 95, 100)) if len(ms) else (0.0, 0.0, 0.0)
    return LiveStats(frames_in, len(latencies), dropped, round(p50, 2), round(p95, 2), round(top, 2),
                     round(len(latencies) / seconds, 2) if seconds > 0 else 0.0, round(seconds, 3), *tuning,
                     stopped_by)


def write_stats(stats: LiveStats, path: str | Path) -> None:
    """The stats as JSON, written atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.fvr-tmp")
    try:
        tmp.write_text(json.dumps(stats.to_dict(), indent=1) + "\n")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write the stats {path}: {reason(exc)}") from None


# ------------------------------------------------------------------------------------------------------ runner


class _Mailbox:
    """One frame slot between the capture thread and the restorer: ``put`` replaces a waiting frame (counted as
    dropped) when ``drop``, else waits for the slot to empty."""

    def __init__(self, drop: bool):
        self.drop = drop
        self.item: tuple[Frame, float] | None = None
        self.ended = False
        self.error: BaseException | None = None
        self.dropped = 0
        self.received = 0
        self.cond = threading.Condition()

    def put(self, frame: Frame, captured: float) -> bool:
        """False when the session is over (the reader stops)."""
        with self.cond:
            if not self.drop:
                self.cond.wait_for(lambda: self.item is None or self.ended)
            if self.ended:
                return False
            if self.item is not None:
                self.dropped += 1
            self.item = (frame, captured)
            self.received += 1
            self.cond.notify_all()
            return True

    def take(self, timeout: float = 0.25) -> tuple[Frame, float] | None:
        with self.cond:
            self.cond.wait_for(lambda: self.item is not None or self.ended, timeout=timeout)
            item, self.item = self.item, None
            self.cond.notify_all()
            return item

    def end(self, error: BaseException | None = None) -> None:
        with self.cond:
            self.ended = True
            self.error = self.error or error
            self.cond.notify_all()


def _read(source: LiveSource, box: _Mailbox) -> None:
    try:
        for frame in source.frames():
            if not box.put(frame, time.perf_counter()):
                return
    except BaseException as exc:  # handed to the session, which reports it in one line
        box.end(exc)
        return
    box.end()


@dataclass
class Tuning:
    """The cheap knobs the real-time policy turns: detector cadence and size, between the given bounds."""

    detect_every: int
    detect_size: int
    max_every: int = 8
    min_size: int = 320

    def cheaper(self) -> bool:
        if self.detect_every < self.max_every:
            self.detect_every = min(self.max_every, self.detect_every * 2)
            return True
        if self.detect_size > self.min_size:
            self.detect_size = max(self.min_size, int(self.detect_size * 0.75))
            return True
        return False


StatsCallback = Callable[[LiveStats], None]


def run_live(source: LiveSource, sink: LiveSink, assembler: LiveAssembler, *, adapt: bool = True,
             side_by_side: bool = False, overlay: bool = False, on_stats: StatsCallback | None = None,
             stats_every: float = 1.0) -> LiveStats:
    """Restore ``source`` into ``sink`` until the source ends, a stop request — Ctrl-C, SIGTERM or SIGHUP, taken
    between two frames, never inside a write: the sink is closed normally and a file keeps every frame written
    (a second signal interrupts at once) — or an error, re-raised once the sink is closed (a file keeps what was
    written before it, unless the sink itself failed). Returns the session's stats; ``on_stats`` gets running
    stats every ``stats_every`` seconds. ``side_by_side``: input | restored; ``overlay``: fps and latency drawn
    on the output.
    """
    box = _Mailbox(drop=source.live)
    reader = threading.Thread(target=_read, args=(source, box), name="fvr-live-source", daemon=True)
    tuning = Tuning(assembler.config.tracker.detect_every, assembler.config.detector.max_side)
    latencies: list[float] = []
    stopped_by = ""
    sink_ok = True
    assembler.warm_up(source.info.width, source.info.height)
    t0 = last_report = time.perf_counter()
    drops_seen = 0
    try:
        with signals_stop() as stop:
            reader.start()
            while not stop.is_set():
                item = box.take()
                if item is None:
                    if box.ended:
                        break
                    continue
                frame, captured = item
                rgb = assembler.push(frame)
                if side_by_side:
                    rgb = _side_by_side(frame.rgb, rgb)
                if overlay:
                    rgb = _overlay(rgb, latencies, t0)
                try:
                    sink.write(rgb, frame.pts)
                except Exception:
                    sink_ok = False
                    raise
                latencies.append(time.perf_counter() - captured)
                now = time.perf_counter()
                if now - last_report >= stats_every:
                    if adapt and box.dropped > drops_seen and tuning.cheaper():
                        assembler.retune(tuning.detect_every, tuning.detect_size)
                        log.info("behind the source: detector every %d frames at %d px", tuning.detect_every,
                                 tuning.detect_size)
                    drops_seen, last_report = box.dropped, now
                    if on_stats is not None:
                        on_stats(_stats(latencies, box.received, box.dropped, now - t0,
                                        (tuning.detect_every, tuning.detect_size), ""))
            stopped_by = stop.name
        if box.error is not None and not stopped_by:
            raise box.error
    except (Interrupted, KeyboardInterrupt) as exc:  # a second signal: stop at once, keep what was written
        stopped_by = getattr(exc, "name", "SIGINT")
    finally:
        box.end()
        reader.join(timeout=2.0)
        source.close()
        sink.close(ok=sink_ok)
    return _stats(latencies, box.received, box.dropped, time.perf_counter() - t0,
                  (tuning.detect_every, tuning.detect_size), stopped_by)


def output_size(width: int, height: int, upscale: int, side_by_side: bool) -> tuple[int, int]:
    """(width, height) of the frames a session writes."""
    w, h = width * upscale, height * upscale
    return (2 * w, h) if side_by_side else (w, h)


def _side_by_side(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    h, w = after.shape[:2]
    left = before if before.shape[:2] == (h, w) else cv2.resize(before, (w, h), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([left, after], axis=1)


def _overlay(rgb: np.ndarray, latencies: list[float], t0: float) -> np.ndarray:
    recent = latencies[-30:]
    fps = len(latencies) / max(time.perf_counter() - t0, 1e-9)
    text = f"{fps:5.1f} fps  {1000 * float(np.mean(recent)) if recent else 0.0:5.0f} ms"
    out = rgb.copy()
    cv2.putText(out, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(out, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return out
