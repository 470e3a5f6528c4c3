"""Saving and loading face tracks (the analysis pass's result), so a resumed or distributed job does not analyse
the video again. One ``.npz`` file of plain arrays (no pickle): per track its ID and per-frame arrays, concatenated.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fvr.errors import InputError, reason
from fvr.faces.track import TRACK_ARRAYS, FaceTracks, Track

FORMAT = 1


def save_tracks(tracks: FaceTracks, path: str | Path) -> Path:
    """Write ``tracks`` to ``path`` (.npz) atomically (temporary file + rename)."""
    path = Path(path)
    lengths = np.array([len(t) for t in tracks.tracks], dtype=np.int64)
    arrays: dict[str, np.ndarray] = {
        "format": np.array([FORMAT], dtype=np.int64),
        "num_frames": np.array([tracks.num_frames], dtype=np.int64),
        "scene_cuts": np.asarray(tracks.scene_cuts, dtype=np.int64),
        "ids": np.array([t.id for t in tracks.tracks], dtype=np.int64),
        "lengths": lengths,
        # each track's whole [start, end) (differs from its frames for a cut: FaceTracks.window)
        "extents": np.array([t.extent for t in tracks.tracks], dtype=np.int64).reshape(-1, 2),
    }
    for name in TRACK_ARRAYS:
        parts = [np.asarray(getattr(t, name)) for t in tracks.tracks]
        arrays[name] = np.concatenate(parts) if parts else np.zeros(0)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    # numpy's stub also types allow_pickle as a keyword; mypy cannot tell that no key is "allow_pickle"
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)
    return path


def load_tracks(path: str | Path) -> FaceTracks:
    """The tracks :func:`save_tracks` wrote; :class:`InputError` (one line) for a damaged file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"][0]) != FORMAT:
                raise InputError(f"{path}: face tracks of an unknown format {int(data['format'][0])}")
            bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
            tracks = [
                Track(int(track_id), *(data[name][bounds[i]:bounds[i + 1]] for name in TRACK_ARRAYS))
                for i, track_id in enumerate(data["ids"])
            ]
            if "extents" in data.files:  # absent in files written before cuts kept their track's extent
                for track, (start, end) in zip(tracks, data["extents"].tolist()):
                    if (start, end) != (track.start, track.end):
                        track.span = (int(start), int(end))
            return FaceTracks(tracks, int(data["num_frames"][0]), [int(c) for c in data["scene_cuts"]])
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read face tracks {path}: {reason(exc)}") from None
