"""The per-frame assembler every restore mode shares: aligned crops of the tracked faces -> the restorer, track by
track in chunks -> paste-back -> finished frames, in order (:class:`FrameAssembler`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from fvr.compose import FacePaste, face_mask, paste_faces
from fvr.compose.background import Background
from fvr.faces import FaceTracks, Track
from fvr.faces.analyse import AlignedFace, aligned_faces
from fvr.io import Frame
from fvr.models import Restorer
from fvr.models.base import chw_clip
from fvr.run.build import build_background
from fvr.run.changes import ChangeRecorder, ForensicGuard, IdentityProbe
from fvr.run.config import RestoreConfig


@dataclass(frozen=True)
class TrackFade:
    """Paste weight of one track over its frames: a linear ramp in over its first ``fade_in`` frames and out over its
    last ``fade_out`` (weights (k + 1) / (ramp + 1), so the frame before the track and the one after it would be 0),
    1 in between.

    start, end: the whole track's [start, end) (:attr:`Track.extent`: a segment's cut of a track fades exactly as
    the whole track does, wherever the segment starts).
    """

    start: int
    end: int
    fade_in: int = 0
    fade_out: int = 0

    @classmethod
    def of(cls, track: Track, tracks: FaceTracks, frames: int) -> TrackFade:
        """The fade of ``track`` (one of ``tracks``) for ``frames`` frames of ramp.

        No fade where the face appears or disappears with the picture itself: at the video's first frame, its last
        analysed frame (``tracks.num_frames``) or a scene cut. A track too short for full ramps gets shorter ones,
        so that at least one frame is pasted at full weight (a 1-frame track: no fade).
        """
        start, end = track.extent
        cuts = set(tracks.scene_cuts)
        fade_in = frames > 0 and start > 0 and start not in cuts
        fade_out = frames > 0 and end < tracks.num_frames and end not in cuts
        sides = int(fade_in) + int(fade_out)
        ramp = min(frames, (end - start - 1) // sides) if sides else 0
        return cls(start, end, ramp if fade_in else 0, ramp if fade_out else 0)

    def weight(self, frame: int) -> float:
        """Paste weight in (0, 1] on ``frame`` (a frame of the track); exactly 1.0 outside the ramps."""
        w = 1.0
        if frame - self.start < self.fade_in:
            w = min(w, (frame - self.start + 1) / (self.fade_in + 1))
        if self.end - 1 - frame < self.fade_out:
            w = min(w, (self.end - frame) / (self.fade_out + 1))
        return w




@dataclass
class FaceCrop:
    """One aligned face of one frame, waiting for the restorer (float crop, the matrix to paste it back, the
    landmarks the restorer is handed, the paste weight)."""

    frame: int
    crop: np.ndarray  # (S, S, 3) float32 [0, 1]
    matrix: np.ndarray  # (2, 3) frame -> crop
    landmarks: np.ndarray  # (5, 2) crop pixels
    weight: float = 1.0  # paste weight (TrackFade)
    strength: float | None = None  # this track's own strength (RestoreConfig.face_strength); None: the run's
    track: int = -1


def face_crop(frame: int, face: AlignedFace, weight: float = 1.0, strength: float | None = None) -> FaceCrop:
    """An aligned face (uint8 crop) as the restorer's input: float32 in [0, 1]."""
    return FaceCrop(frame, face.crop.astype(np.float32) * (1.0 / 255.0), face.matrix, face.landmarks, weight,
                    strength, face.track)


def compose_frame(background: np.ndarray, pastes: list[FacePaste], mask: np.ndarray,
                  config: RestoreConfig) -> np.ndarray:
    """The restored faces pasted onto the (up-sampled) frame with the run's strength and colour matching."""
    return paste_faces(background, pastes, mask, strength=config.strength, color_match=config.color_match)


CHUNK = 16
"""Frames per restorer call per track for models that recompute context or look-ahead at every call."""
CARRIED_CHUNK = 4
"""Frames per call for a causal model that carries its state: the chunk changes neither its output nor its cost."""


def chunk_frames(config: RestoreConfig, restorer: Restorer) -> int:
    """Frames per restorer call per track: ``config.chunk``, or when it is None, 4 for a causal model that carries
    its state (the chunk size then changes neither its output nor its cost per frame, measured in
    docs/bench/carry.md, and a small chunk keeps few decoded frames waiting) and 16 for the others (whose context
    is recomputed per call, or whose look-ahead is)."""
    if config.chunk is not None:
        return config.chunk
    return CARRIED_CHUNK if restorer.carries_state and restorer.spec.future == 0 else CHUNK


class TrackRunner:
    """Feeds one track to the restorer in chunks: with the past context the model declares, or, for a model that
    carries its state along the track, with the state the previous chunk left. ``end``: the frame after the
    track's last (its last chunk runs there); None for a live track, whose end is not known."""

    def __init__(self, restorer: Restorer, chunk: int, end: int | None = None):
        self.end = end
        self.restorer = restorer
        self.chunk = chunk
        self.pending: list[FaceCrop] = []
        self.carry = restorer.carries_state
        self.state: object = None  # carried state after the last restored frame (carrying models)
        past = 0 if self.carry else restorer.spec.past
        self.history: deque[FaceCrop] = deque(maxlen=past)  # LQ context already restored

    def add(self, item: FaceCrop) -> list[tuple[int, FacePaste]]:
        self.pending.append(item)
        final = self.end is not None and item.frame >= self.end - 1
        if final or len(self.pending) >= self.chunk + self.restorer.spec.future:
            return self.run(final)
        return []

    def run(self, final: bool) -> list[tuple[int, FacePaste]]:
        if not self.pending:
            return []
        context = list(self.history) + self.pending
        clip = chw_clip([c.crop for c in context])
        lms = np.stack([c.landmarks for c in context]).astype(np.float32)
        keep = len(self.pending) if final else len(self.pending) - self.restorer.spec.future
        if self.carry:
            out, self.state = self.restorer.step(clip, lms, self.state, keep)
        else:
            out = self.restorer(clip, lms)
        offset = len(self.history)
        results = []
        for k in range(keep):
            item = self.pending[k]
            restored = np.ascontiguousarray(out[offset + k].transpose(1, 2, 0))
            results.append((item.frame, FacePaste(item.matrix, restored, item.crop, weight=item.weight,
                                                  strength=item.strength, track=item.track)))
        self.history.extend(self.pending[:keep])
        self.pending = self.pending[keep:]
        return results


@dataclass
class _Waiting:
    frame: Frame
    background: np.ndarray
    expected: int
    pastes: list[FacePaste] = field(default_factory=list)


class FrameAssembler:
    """The per-frame core of every restore mode (one pass, segments, Ray workers): frames in, in order; for each,
    the aligned crop of every selected face, fed to the restorer track by track in chunks (with the context the
    model declares), pasted back onto the up-sampled frame; finished frames out, in order.

    tracks: smoothed and selected (:class:`FaceTracks`). background: the up-sampler of the frame (None: built from
    ``config`` on its device, :func:`fvr.run.build.build_background`). recorder: measures every finished frame for
    the provenance record (:class:`fvr.run.changes.ChangeRecorder`). With ``config.forensic`` each frame's faces
    pass the :class:`~fvr.run.changes.ForensicGuard` before they are pasted. Frames wait in a short queue (at most
    ``chunk + future`` frames) until all their faces are restored.
    """

    def __init__(self, tracks: FaceTracks, restorer: Restorer, config: RestoreConfig,
                 background: Background | None = None, recorder: ChangeRecorder | None = None):
        self.tracks = tracks
        self.recorder = recorder
        self.guard = None
        if config.forensic:
            probe = recorder.probe if recorder is not None and recorder.probe is not None else IdentityProbe()
            self.guard = ForensicGuard(probe, config.forensic_min_identity, config.strength)
        self.restorer = restorer
        self.config = config
        self.size = restorer.spec.crop_size
        self.mask = face_mask(self.size, feather=config.feather, coverage=config.mask_coverage)
        # built once (a network, maybe), on the device the learned models use
        self.background = background if background is not None else build_background(config)
        chunk = chunk_frames(config, restorer)
        self.runners = {t.id: TrackRunner(restorer, chunk, t.end) for t in tracks.tracks}
        self.fades = {t.id: TrackFade.of(t, tracks, config.fade_frames) for t in tracks.tracks}
        self.queue: deque[_Waiting] = deque()
        self.face_frames = 0

    def push(self, frame: Frame) -> Iterator[tuple[Frame, np.ndarray]]:
        """Add a decoded frame; yield (frame, composed rgb) for every frame that became complete, in order."""
        background = self.background(frame.rgb)
        faces = aligned_faces(background, self.tracks, frame.index, self.size, scale=self.config.upscale)
        waiting = _Waiting(frame, background, expected=len(faces))
        self.queue.append(waiting)
        for face in faces:
            item = face_crop(frame.index, face, self.fades[face.track].weight(frame.index),
                             self.config.face_strength.get(face.track))
            for index, paste in self.runners[face.track].add(item):
                self._deliver(index, paste)
        yield from self._ready()

    def finish(self) -> Iterator[tuple[Frame, np.ndarray]]:
        """End of input: restore what is left (tracks cut short by a shorter second decode) and drain."""
        for runner in self.runners.values():
            for index, paste in runner.run(final=True):
                self._deliver(index, paste)
        for waiting in self.queue:
            waiting.expected = len(waiting.pastes)
        yield from self._ready()

    def _deliver(self, index: int, paste: FacePaste) -> None:
        head = self.queue[0].frame.index
        self.queue[index - head].pastes.append(paste)
        self.face_frames += 1

    def _ready(self) -> Iterator[tuple[Frame, np.ndarray]]:
        while self.queue and len(self.queue[0].pastes) >= self.queue[0].expected:
            w = self.queue.popleft()
            pastes, identity = w.pastes, None
            if pastes and self.guard is not None:
                pastes, identity = self.guard.apply(pastes)
            rgb = compose_frame(w.background, pastes, self.mask, self.config) if pastes else w.background
            if self.recorder is not None:
                self.recorder.observe(w.frame, w.background, rgb, pastes, identity)
            yield w.frame, rgb


