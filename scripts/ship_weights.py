"""Copy a trained weight file into the package as a shipped model, with a one-line description.

Usage:
    python scripts/ship_weights.py runs/fvr-fast/model.safetensors fvr-fast --description "causal recurrent ..."
    python scripts/ship_weights.py runs/fvr-prior/model.safetensors fvr-prior --description "..." \
        --perceptual runs/fvr-prior-gan/model.safetensors --half --default-fidelity 0.5

``--perceptual`` adds a second run of the same network (the perceptual end of the fidelity control) as
``perceptual.<key>`` tensors, only for the tensors that differ (the trained part; frozen ones are shared);
``--default-fidelity`` is what ``fvr restore`` uses without ``--fidelity``. ``--half`` stores float16 (half the
size; the loader restores in float32). ``--default-stabiliser flow`` makes the model's bare name run with that
stabiliser when it is the default (``fvr restore`` without ``--model``). ``--crop-size`` sets the aligned crop the
model runs at when it differs from the one it was trained at (fully convolutional networks only).

Writes ``src/fvr/weights/NAME.safetensors``: the same tensors and metadata as the run's file, plus ``description``
(shown by ``fvr models``). Refuses files not trained with ``data.permissive_only = true`` and files that name an
eval clip: shipped weights may only learn from permissively licensed training clips.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from fvr.models.nets.core import PERCEPTUAL_PREFIX, read_metadata

ROOT = Path(__file__).resolve().parents[1]


def check_shippable(path: Path) -> None:
    """SystemExit unless ``path`` was trained on permissive clips only, none of them an eval clip."""
    meta = read_metadata(path)
    if meta.get("permissive_only") != "true":
        raise SystemExit(f"{path}: not trained with data.permissive_only = true: cannot be shipped")
    clips = json.loads(meta.get("train_clips", "[]"))
    eval_dir = ROOT.parent / "shared" / "data" / "eval"
    eval_clips = {p.name for p in eval_dir.glob("*")} if eval_dir.is_dir() else set()
    if not clips or any(c in eval_clips for c in clips):
        raise SystemExit(f"{path}: training clips missing or include eval clips: {clips}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("name")
    ap.add_argument("--description", required=True)
    ap.add_argument("--perceptual", type=Path, help="weights of the perceptual end (same architecture)")
    ap.add_argument("--default-fidelity", type=float, default=1.0)
    ap.add_argument("--half", action="store_true", help="store float16 tensors")
    ap.add_argument("--default-stabiliser", help="stabiliser the default model runs with (e.g. flow)")
    ap.add_argument("--crop-size", type=int, help="aligned crop the model runs at (default: its training crop)")
    ap.add_argument("--default-detail", type=float,
                    help="pretrained priors: input-detail pass-through the model runs with, 0..1 (--model-opt detail)")
    ap.add_argument("--out", type=Path, help="write here instead of src/fvr/weights/NAME.safetensors")
    a = ap.parse_args()
    meta = read_metadata(a.weights)
    for path in [a.weights] + ([a.perceptual] if a.perceptual else []):
        check_shippable(path)
    state = load_file(str(a.weights))
    if a.perceptual:
        other_meta = read_metadata(a.perceptual)
        if other_meta.get("arch") != meta.get("arch") or other_meta.get("config") != meta.get("config"):
            raise SystemExit(f"{a.perceptual}: not the same network as {a.weights}")
        other = load_file(str(a.perceptual))
        differ = {k: v for k, v in other.items() if not torch.equal(v, state[k])}
        state.update({PERCEPTUAL_PREFIX + k: v for k, v in differ.items()})
        meta = {**meta, "default_fidelity": str(a.default_fidelity), "perceptual_steps":
                other_meta.get("trained_steps", ""), "perceptual_val": other_meta.get("val", "")}
        print(f"perceptual end: {len(differ)} of {len(other)} tensors differ")
    if a.default_stabiliser:
        meta = {**meta, "default_stabiliser": a.default_stabiliser}
    if a.default_detail is not None:
        if not 0.0 <= a.default_detail <= 1.0:
            raise SystemExit(f"--default-detail must be in [0, 1], got {a.default_detail}")
        meta = {**meta, "default_detail": str(a.default_detail)}
    if a.crop_size:
        meta = {**meta, "crop_size": str(a.crop_size), "train_crop_size": meta.get("crop_size", "")}
    if a.half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    out = a.out or ROOT / "src" / "fvr" / "weights" / f"{a.name}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata={**meta, "description": a.description})
    print(f"{out} ({out.stat().st_size / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
