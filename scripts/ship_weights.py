"""Copy a trained weight file into the package as a shipped model, with a one-line description.

Usage:
    python scripts/ship_weights.py runs/fvr-fast/model.safetensors fvr-fast --description "causal recurrent ..."

Writes ``src/fvr/weights/NAME.safetensors``: the same tensors and metadata as the run's file, plus ``description``
(shown by ``fvr models``). Refuses files not trained with ``data.permissive_only = true`` and files that name an
eval clip: shipped weights may only learn from permissively licensed training clips.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from fvr.models.nets.core import read_metadata

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("name")
    ap.add_argument("--description", required=True)
    a = ap.parse_args()
    meta = read_metadata(a.weights)
    if meta.get("permissive_only") != "true":
        raise SystemExit(f"{a.weights}: not trained with data.permissive_only = true: cannot be shipped")
    clips = json.loads(meta.get("train_clips", "[]"))
    eval_dir = ROOT.parent / "shared" / "data" / "eval"
    eval_clips = {p.name for p in eval_dir.glob("*")} if eval_dir.is_dir() else set()
    if not clips or any(c in eval_clips for c in clips):
        raise SystemExit(f"{a.weights}: training clips missing or include eval clips: {clips}")
    out = ROOT / "src" / "fvr" / "weights" / f"{a.name}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(load_file(str(a.weights)), str(out), metadata={**meta, "description": a.description})
    print(f"{out} ({out.stat().st_size / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
