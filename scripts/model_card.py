"""Write the model card of a shipped model from what was recorded, not from memory.

Usage:
    python scripts/model_card.py fvr-fast --config configs/fvr-fast.toml --run runs/fvr-fast \
        --bench docs/bench/comparison/results.json [--method fvr-fast] [--notes "..."] > docs/model-cards/fvr-fast.md

Reads the shipped file's metadata (architecture, config, crop, steps, training clips, degradations, codec), the
run's ``log.jsonl`` (command-line steps, validation rows, wall time) and, when given, the benchmark's results.json
(the method's mean metrics next to bicubic's). Every figure in the card comes from one of those files.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from fvr.models.learned import weights_dir
from fvr.models.nets import architectures
from fvr.models.nets.core import read_metadata

SHOWN = ("psnr", "ssim", "stlpips", "ids", "ids_facenet", "lmd", "tlme", "ewarp", "flicker", "frame_psnr", "fps")


def _val_rows(run: Path) -> list[dict]:
    log = run / "log.jsonl"
    if not log.is_file():
        return []
    return [r for r in (json.loads(x) for x in log.read_text().splitlines()) if "val/psnr" in r]


def _bench_table(results: dict, method: str) -> list[str]:
    means, labels = results["mean"], results["metrics"]
    rows = [m for m in ("bicubic", method) if m in means]
    keys = [k for k in SHOWN if k in means.get(method, {})]
    out = ["| method | " + " | ".join(labels[k]["label"] if k in labels else k for k in keys) + " |",
           "|---|" + "---|" * len(keys)]
    for m in rows:
        out.append(f"| {m} | " + " | ".join(f"{means[m][k]:.4g}" for k in keys) + " |")
    cfg = results["config"]
    out.append("")
    coverage = cfg.get("mask_coverage", 1.0)
    paste = f" --mask-coverage {coverage:g}" if coverage != 1.0 else ""
    out.append(f"Benchmark: `fvr bench --data {cfg['data']} --preset {cfg['preset']} --frames {cfg['frames']}{paste}` "
               f"(seed {cfg['seed']}, {len(results['clips'])} clips, metrics on {cfg['crop_size']}² crops aligned "
               "with the ground truth's landmarks; fps is end to end on the benchmark machine).")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name")
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--bench", type=Path)
    ap.add_argument("--method")
    ap.add_argument("--notes", default="")
    a = ap.parse_args()
    path = weights_dir() / f"{a.name}.safetensors"
    meta = read_metadata(path)
    steps, seconds = int(meta["trained_steps"]), float(meta["train_seconds"])
    from fvr.train import load_config

    held_out = {Path(v).name for v in load_config(a.config).data.val_clips}
    clips = json.loads(meta["train_clips"])  # the run's data names: training and validation clips
    train_clips = [c for c in clips if c not in held_out]
    lines = [
        f"# Model card: `{a.name}`",
        "",
        meta.get("description", ""),
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{meta['arch']}` (preset `{meta['preset']}`), config `{meta['config']}` |",
        (f"| crop | trained on {meta['crop_size']}² patches of whole frames; runs on whole frames (not face-aware) |"
         if architectures()[meta["arch"]].frame_model else
         f"| crop | {meta['crop_size']}² aligned face crops (FFHQ-style 5-point alignment) |"),
        f"| file | `src/fvr/weights/{a.name}.safetensors`, {path.stat().st_size / 2**20:.2f} MiB, "
        f"{meta.get('weights', 'raw')} weights |",
        f"| training data | {', '.join(train_clips)} — permissively licensed clips only "
        f"(permissive_only = {meta['permissive_only']}); none of the eval clips |",
        f"| validation | {', '.join(sorted(held_out & set(clips))) or 'none'} (held out) |",
        f"| degradations | presets {meta['degrade']}, codec pass: {meta['degrade_codec']}"
        + (f", down-sampling factor drawn per sample {meta['degrade_scales']}" if "degrade_scales" in meta else "")
        + " |",
        f"| training | {steps} steps, {seconds / 60:.1f} min on {platform.machine()} CPU "
        f"({torch.get_num_threads()} threads), torch {torch.__version__} |",
        f"| command | `fvr train --config {a.config}` (config: [{a.config.name}](../../{a.config})) |",
    ]
    if meta.get("teacher"):
        lines.append(f"| teacher | `{meta['teacher']}` (distilled: `[loss] distill`, docs/train.md) |")
    lines.append("")
    vals = _val_rows(a.run)
    if vals:
        last = vals[-1]
        lines += ["## Validation during training (held-out clip, same degradations)", "",
                  "| step | PSNR | SSIM | input PSNR | flicker |", "|---|---|---|---|---|"]
        for r in vals:
            lines.append(f"| {r['step']} | {r['val/psnr']:.2f} | {r.get('val/ssim', float('nan')):.4f} | "
                         f"{r.get('val/lq_psnr', float('nan')):.2f} | {r.get('val/flicker', float('nan')):.3f} |")
        lines += ["", f"Final: PSNR {last['val/psnr']:.2f} dB against {last.get('val/lq_psnr', float('nan')):.2f} dB "
                  "for the network's input (the up-sampled LQ crop).", ""]
    if a.bench:
        results = json.loads(a.bench.read_text())
        lines += ["## Benchmark (eval set, VFHQ protocol)", ""] + _bench_table(results, a.method or a.name) + [""]
    if a.notes:
        lines += ["## Notes", "", a.notes, ""]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
