"""results.json and results.md of ``fvr bench``.

results.json layout::

    {"fvr_version", "created", "mode": "reference" | "real", "config": {...}, "environment": {...},
     "metrics": {key: {"label", "direction": "up" | "down", "description", "scope": "crop" | "frame"}},
     "methods": {name: {"description", "model", "background"}},
     "clips": [{"name", "frames", "width", "height", "tracks", "face_frames", "upscale", "degradation",
                "warnings", "results": {method: {"crop": {metric: mean}, "frame": {metric: mean},
                                                 "curves": {metric: [per frame]}, "seconds", "fps",
                                                 "peak_rss_mb", "frames", "face_frames"}}}],
     "mean": {method: {metric key: mean over clips, "fps": frames / seconds over all clips,
                       "peak_rss_mb": max over clips}}}

Crop metrics are keyed by their name (``psnr``, ``ids`` ...), full-frame metrics by ``frame_<name>``. Values that
are undefined (no face, identical images giving infinite PSNR) are ``null``.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from fvr.bench.methods import BenchMethod

FRAME_LABELS = {"psnr": "PSNR", "psnr_y": "PSNR-Y", "ssim": "SSIM", "ssim_y": "SSIM-Y"}


def _finite(v: object) -> float | None:
    if v is None:
        return None
    f = float(v)  # type: ignore[arg-type]
    return f if math.isfinite(f) else None


def metric_table(real: bool) -> dict[str, dict]:
    """Metric key -> label, direction, description, scope; in report order."""
    from fvr.metrics import METRICS, NO_REFERENCE_METRICS, REFERENCE_METRICS

    table = {}
    for name in NO_REFERENCE_METRICS if real else REFERENCE_METRICS:
        info = METRICS[name]
        table[name] = {"label": info.label, "direction": info.direction, "description": info.description,
                       "scope": "crop"}
    if not real:
        for name, label in FRAME_LABELS.items():
            table[f"frame_{name}"] = {"label": f"frame {label}↑", "direction": "up",
                                      "description": f"{label} of whole frames against the ground truth",
                                      "scope": "frame"}
    return table


def build_results(config, methods: list[BenchMethod], clips: list, *, seconds: float, environment: dict) -> dict:
    """Assemble the results.json dictionary from the per-clip results (see the module docstring)."""
    from fvr import __version__

    metrics = metric_table(config.real)
    clip_rows = []
    for c in clips:
        results = {}
        for m, r in c.methods.items():
            results[m] = {
                "crop": {k: _finite(v) for k, v in r["crop"].items()},
                "frame": {k: _finite(v) for k, v in r["frame"].items()},
                "curves": {k: [_finite(x) for x in v] for k, v in r["curves"].items()},
                "seconds": r["seconds"], "fps": r["fps"], "peak_rss_mb": r["peak_rss_mb"],
                "frames": r["frames"], "face_frames": r["face_frames"],
            }
        clip_rows.append({
            "name": c.name, "frames": c.frames, "width": c.width, "height": c.height, "tracks": c.tracks,
            "face_frames": c.face_frames, "upscale": c.upscale, "degradation": c.degradation,
            "warnings": c.warnings, "results": results,
        })
    return {
        "fvr_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": "real" if config.real else "reference",
        "seconds": seconds,
        "config": config_dict(config),
        "environment": environment,
        "metrics": metrics,
        "methods": {m.name: {"description": m.description, "model": None if m.skip_faces else m.model,
                             "background": m.background} for m in methods},
        "clips": clip_rows,
        "mean": _means(clip_rows, [m.name for m in methods], metrics),
    }


def _means(clips: list[dict], methods: list[str], metrics: dict[str, dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for m in methods:
        row: dict[str, float | None] = {}
        for key, info in metrics.items():
            scope, name = ("frame", key[6:]) if info["scope"] == "frame" else ("crop", key)
            values = [c["results"][m][scope].get(name) for c in clips if m in c["results"]]
            values = [v for v in values if v is not None]
            row[key] = sum(values) / len(values) if values else None
        runs = [c["results"][m] for c in clips if m in c["results"]]
        total_s = sum(r["seconds"] for r in runs)
        row["fps"] = sum(r["frames"] for r in runs) / total_s if total_s else None
        rss = [r["peak_rss_mb"] for r in runs if r["peak_rss_mb"] is not None]
        row["peak_rss_mb"] = max(rss) if rss else None
        out[m] = row
    return out


def fmt(v: float | None, key: str = "") -> str:
    if v is None:
        return "–"
    if "ssim" in key or key in ("stlpips", "ids", "ids_facenet", "vidd", "lmd_norm"):
        return f"{v:.4f}"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"


def best_value(values: dict[str, float | None], direction: str) -> str | None:
    known = {m: v for m, v in values.items() if v is not None}
    if len(known) < 2:
        return None
    return (max if direction == "up" else min)(known, key=known.__getitem__)


def markdown_table(data: dict) -> str:
    """The mean table: one row per method, one column per metric (↑/↓ in the header, best in bold)."""
    metrics = data["metrics"]
    methods = list(data["methods"])
    mean = data["mean"]
    keys = [k for k in metrics if any(mean[m].get(k) is not None for m in methods)]
    header = ["method"] + [metrics[k]["label"] for k in keys] + ["fps", "peak RSS MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {k: best_value({m: mean[m].get(k) for m in methods}, metrics[k]["direction"]) for k in keys}
    for m in methods:
        cells = [m]
        for k in keys:
            text = fmt(mean[m].get(k), k)
            cells.append(f"**{text}**" if best[k] == m else text)
        cells.append(fmt(mean[m]["fps"], "fps"))
        rss = mean[m]["peak_rss_mb"]
        cells.append("–" if rss is None else f"{rss:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _per_clip_table(data: dict, key: str) -> str:
    info = data["metrics"][key]
    scope, name = ("frame", key[6:]) if info["scope"] == "frame" else ("crop", key)
    methods = list(data["methods"])
    lines = [f"| clip ({info['label']}) | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 1)]
    for c in data["clips"]:
        values = {m: c["results"].get(m, {}).get(scope, {}).get(name) for m in methods}
        best = best_value(values, info["direction"])
        cells = [f"**{fmt(values[m], key)}**" if best == m else fmt(values[m], key) for m in methods]
        lines.append(f"| {c['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _degradation_table(data: dict) -> str:
    lines = ["| clip | frames | ground truth (cropped) | degradation drawn |", "|---|---|---|---|"]
    for c in data["clips"]:
        d = c.get("degradation") or {}
        if d:
            summary = d.get("summary", "").replace("|", "·")
            lines.append(f"| {c['name']} | {c['frames']} | {c['width']}×{c['height']} | {summary} |")
    return "\n".join(lines)


TERMINAL_METRICS = {
    "reference": ("psnr", "ssim", "stlpips", "ids_facenet", "lmd", "tlme", "ewarp", "flicker", "delta_e"),
    "real": ("brisque", "vidd", "flicker_nr", "ewarp_nr", "delta_e_in"),
}


def summary_rows(data: dict) -> tuple[list[str], list[list[str]]]:
    """A short table for the terminal (the key metrics, fps): header and rows of text."""
    keys = [k for k in TERMINAL_METRICS[data["mode"]] if k in data["metrics"]]
    header = ["method"] + [data["metrics"][k]["label"] for k in keys] + ["fps"]
    rows = [[m] + [fmt(data["mean"][m].get(k), k) for k in keys] + [fmt(data["mean"][m]["fps"], "fps")]
            for m in data["methods"]]
    return header, rows


KEY_METRICS = ("psnr", "stlpips", "ids", "ids_facenet", "lmd", "tlme", "ewarp", "flicker",
               "brisque", "vidd", "flicker_nr", "delta_e", "delta_e_in")


def _coverage(cfg: dict) -> str:
    coverage = cfg.get("mask_coverage", 1.0)
    return "" if coverage == 1.0 else f"; faces pasted with --mask-coverage {coverage}"


def write_markdown(data: dict, path: Path) -> None:
    cfg = data["config"]
    env = data["environment"]
    mode = "real low-quality clips, no ground truth" if data["mode"] == "real" else \
        f"degradation preset `{cfg['preset']}`, seed {cfg['seed']}"
    frames = f"first {cfg['frames']} frames of each clip" if cfg.get("frames") else "all frames"
    parts = [
        f"# fvr bench: {Path(cfg['data']).name}",
        "",
        (f"{len(data['clips'])} clips from `{cfg['data']}`, {mode}, {frames}; {cfg['crop_size']}² face crops "
        f"aligned with the {'input' if data['mode'] == 'real' else 'ground truth'}'s smoothed landmarks"
        f"{_coverage(cfg)}. "
        f"Created {data['created']} by fvr {data['fvr_version']} in {data['seconds'] / 60:.1f} min on "
        f"{env['cpu_count']} CPU cores ({env['platform']}, torch {env['torch']})."),
        "",
        ("↑ higher is better, ↓ lower is better; best in **bold**. Metric definitions: docs/metrics.md. "
        "fps is the whole `fvr restore` run (analysis, restoration, PNG writing) on this machine; peak RSS is "
        "the run's own process."),
        "",
        "## Mean over clips",
        "",
        markdown_table(data),
        "",
        "## Methods",
        "",
    ]
    for name, m in data["methods"].items():
        parts.append(f"- `{name}`: {m['description']} (background: {m['background']})")
    parts += ["", "## Per clip", ""]
    for key in KEY_METRICS:
        if key in data["metrics"]:
            parts += [_per_clip_table(data, key), ""]
    if data["mode"] == "reference":
        parts += ["## Degradation drawn per clip", "", _degradation_table(data), ""]
    warnings = [f"- {c['name']}: {w}" for c in data["clips"] for w in c["warnings"]]
    if warnings:
        parts += ["## Warnings", "", *warnings, ""]
    path.write_text("\n".join(parts))


def config_dict(config) -> dict:
    """A benchmark config as JSON-ready values (paths as text)."""
    d = asdict(config)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}
