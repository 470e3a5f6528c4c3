"""Plots of ``fvr bench`` (matplotlib, headless Agg backend; part of the ``metrics`` extra).

* ``bars.png``   — one panel per metric, one bar per method (mean over clips), ↑/↓ in the title;
* ``curves_<metric>.png`` — per-frame curves per clip (identity drift: IDS or VIDD; flicker), one line per method;
* ``crops.png``  — a grid of aligned face crops (ground truth, input, each method) at each clip's middle frame.
  It contains frames of the clips: keep it out of public places when the clips' licences say so.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fvr.errors import ConfigError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ConfigError('plots need matplotlib: pip install "fvr[metrics]"') from None
    matplotlib.use("Agg")  # no display on servers; never opens a window
    import matplotlib.pyplot as plt

    return plt


def write_plots(data: dict, clips: list, out: Path) -> list[Path]:
    """Write every plot into ``out``; returns their paths."""
    paths = [bar_plot(data, out / "bars.png")]
    curve_keys = ("vidd", "flicker_nr") if data["mode"] == "real" else ("ids", "flicker")
    for key in curve_keys:
        p = curve_plot(data, key, out / f"curves_{key}.png")
        if p is not None:
            paths.append(p)
    p = crop_grid(clips, list(data["methods"]), out / "crops.png")
    if p is not None:
        paths.append(p)
    return paths


def bar_plot(data: dict, path: Path) -> Path:
    plt = _pyplot()
    metrics = data["metrics"]
    methods = list(data["methods"])
    keys = [k for k in metrics if any(data["mean"][m].get(k) is not None for m in methods)]
    cols = min(4, max(1, len(keys)))
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes.flat, keys, strict=False):
        values = [data["mean"][m].get(key) for m in methods]
        heights = [v if v is not None else 0.0 for v in values]
        ax.bar(range(len(methods)), heights, color=[colours[i % len(colours)] for i in range(len(methods))])
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
        ax.set_title(metrics[key]["label"], fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
        known = [v for v in values if v is not None]
        if known and min(known) > 0 and (max(known) - min(known)) < 0.2 * max(known):
            lo = min(known) - 0.6 * (max(known) - min(known) + 1e-9)
            ax.set_ylim(bottom=max(0.0, lo))  # small differences stay visible
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(f"fvr bench: mean over {len(data['clips'])} clips", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curve_plot(data: dict, key: str, path: Path) -> Path | None:
    """Per-frame curve of ``key`` for each clip (one panel per clip, one line per method)."""
    clips = [c for c in data["clips"] if any(key in r.get("curves", {}) for r in c["results"].values())]
    if not clips:
        return None
    plt = _pyplot()
    cols = min(4, len(clips))
    rows = math.ceil(len(clips) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.5 * rows), squeeze=False)
    label = data["metrics"].get(key, {}).get("label", key)
    for ax, clip in zip(axes.flat, clips, strict=False):
        for m, r in clip["results"].items():
            ys = np.array([np.nan if v is None else v for v in r["curves"].get(key, [])], dtype=float)
            ax.plot(np.arange(len(ys)), ys, label=m, linewidth=1.1)
        ax.set_title(clip["name"][:32], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("frame", fontsize=7)
    for ax in list(axes.flat)[len(clips):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=8)
    fig.suptitle(f"{label} per frame (longest face track of each clip)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def crop_grid(clips: list, methods: list[str], path: Path, thumb: int = 192) -> Path | None:
    """Rows = clips, columns = GT (when known), input (nearest-neighbour up-sampled, so its pixels show), each
    method; each cell is the aligned crop at the clip's grid frame shrunk to ``thumb`` px."""
    rows = [c for c in clips if c.crops]
    if not rows:
        return None
    plt = _pyplot()
    columns = [k for k in ("GT", "input") if any(k in c.crops for c in rows)] + methods
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(1.9 * len(columns), 1.95 * len(rows)),
                             squeeze=False)
    import cv2

    for i, clip in enumerate(rows):
        for j, col in enumerate(columns):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            crop = clip.crops.get(col)
            if crop is not None:
                ax.imshow(cv2.resize(crop, (thumb, thumb), interpolation=cv2.INTER_AREA))
            if i == 0:
                ax.set_title(col, fontsize=8)
            if j == 0:
                ax.set_ylabel(clip.name[:18], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
