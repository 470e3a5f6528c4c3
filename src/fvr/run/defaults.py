"""The settings a mode starts from, named as the command line's options. Nothing is imported here: the command line
reads them when it starts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LiveDefaults:
    """What `fvr live` and the web app's live tab start with: the causal shipped model, causal smoothing, detection
    every 5 frames on 640-px frames (optical flow in between): MTCNN on every 720p frame alone costs more than a
    frame's time on 2 cores."""

    model: str = "fvr-fast"
    smoothing: str = "one-euro"
    detect_every: int = 5
    detect_size: int = 640


LIVE = LiveDefaults()
