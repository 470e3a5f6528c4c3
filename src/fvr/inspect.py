"""``fvr info``: what is in a video — streams, timing, face tracks — and a contact sheet of the tracks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fvr.errors import OutputError
from fvr.faces import FaceTracks
from fvr.faces.analyse import aligned_faces
from fvr.io import MediaSource


def _sample_frames(tracks: FaceTracks, per_track: int) -> dict[int, list[tuple[int, int]]]:
    """frame index -> [(row, column)] of the sheet cells to cut from that frame."""
    wanted: dict[int, list[tuple[int, int]]] = {}
    for row, track in enumerate(tracks.tracks):
        picks = np.unique(np.linspace(track.start, track.end - 1, per_track).round().astype(int))
        for col, frame in enumerate(picks):
            wanted.setdefault(int(frame), []).append((row, col))
    return wanted


def sampled_crops(source: MediaSource, tracks: FaceTracks, per_track: int, cell: int
                  ) -> dict[tuple[int, int], np.ndarray]:
    """(track row, sample) -> the (cell, cell, 3) uint8 aligned crop of ``per_track`` frames spread over each track
    (first to last). One streaming pass over ``source`` until the last sampled frame."""
    wanted = _sample_frames(tracks, per_track)
    crops: dict[tuple[int, int], np.ndarray] = {}
    source.rewind()
    last = max(wanted, default=-1)
    for frame in source.frames():
        if frame.index > last:
            break
        if frame.index not in wanted:
            continue
        faces = {face.track: face.crop for face in aligned_faces(frame.rgb, tracks, frame.index, cell)}
        for row, col in wanted[frame.index]:
            crops[row, col] = faces[tracks.tracks[row].id]
    return crops


def contact_sheet(source: MediaSource, tracks: FaceTracks, path: str | Path, *, per_track: int = 8,
                  cell: int = 112) -> Path:
    """Write a PNG with one row per track: ``per_track`` aligned crops spread over the track, labelled with the
    track ID and frame range. One streaming pass over ``source`` (only the sampled crops are kept)."""
    path = Path(path)
    rows = max(len(tracks.tracks), 1)
    label_w = 150
    sheet = np.full((rows * cell, label_w + per_track * cell, 3), 24, np.uint8)
    for (row, col), crop in sampled_crops(source, tracks, per_track, cell).items():
        sheet[row * cell:(row + 1) * cell, label_w + col * cell:label_w + (col + 1) * cell] = crop
    for row, track in enumerate(tracks.tracks):
        y = row * cell
        for k, text in enumerate([f"track {track.id}", f"frames {track.start}-{track.end - 1}",
                                  f"{len(track.frames)} frames"]):
            cv2.putText(sheet, text, (8, y + 28 + 22 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1,
                        cv2.LINE_AA)
    if not tracks.tracks:
        cv2.putText(sheet, "no faces found", (8, cell // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (230, 230, 230), 1)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OutputError(f"cannot write contact sheet {path}")
    return path
