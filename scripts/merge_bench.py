"""Add or replace methods in a finished `fvr bench` report with those of a later run of the same protocol.

    python scripts/merge_bench.py BASE_DIR NEW_DIR -o OUT_DIR

Both runs must have the same data folder, preset, seed, frame count, clip filter and upscale (checked): then the
degraded inputs are the same (the degradation cache is keyed by them) and every number is comparable. Methods of
NEW replace those of the same name in BASE, others are appended. Writes results.json, results.md, the bar plot and
the per-frame curves into OUT_DIR (the crop grid needs the outputs themselves: it is not redrawn). The merged
results.json records both runs under "merged_from".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fvr.bench.plots import bar_plot, curve_plot
from fvr.bench.report import _means, write_markdown

SAME = ("data", "preset", "seed", "frames", "clips", "real", "upscale", "crop_size", "detector", "mask_coverage")
DEFAULTS = {"mask_coverage": 1.0}  # settings added to fvr bench later: older reports ran with these values


def _setting(run: dict, key: str) -> object:
    return run["config"].get(key, DEFAULTS.get(key))


def merge(base: dict, new: dict) -> dict:
    """The base results with the new run's methods added or replaced (per clip, and the means recomputed)."""
    diff = [k for k in SAME if _setting(base, k) != _setting(new, k)]
    if diff or base["mode"] != new["mode"]:
        raise SystemExit(f"the runs differ in {', '.join(diff) or 'mode'}: their numbers are not comparable")
    clips = {c["name"]: c for c in new["clips"]}
    if set(clips) != {c["name"] for c in base["clips"]}:
        raise SystemExit("the runs do not cover the same clips")
    merged = json.loads(json.dumps(base))
    merged["methods"].update(new["methods"])
    for clip in merged["clips"]:
        clip["results"].update(clips[clip["name"]]["results"])
    merged["mean"] = _means(merged["clips"], list(merged["methods"]), merged["metrics"])
    merged["config"]["methods"] = list(merged["methods"])
    merged["merged_from"] = [{k: run.get(k) for k in ("created", "seconds", "environment")} | {
        "methods": list(run["methods"])} for run in (base, new)]
    return merged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    a = ap.parse_args()
    data = merge(json.loads((a.base / "results.json").read_text()), json.loads((a.new / "results.json").read_text()))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "results.json").write_text(json.dumps(data, indent=1, allow_nan=False))
    write_markdown(data, a.out / "results.md")
    runs = "; ".join(f"{', '.join(r['methods'])} from the run of {r['created']}" for r in data["merged_from"])
    with (a.out / "results.md").open("a") as fh:
        fh.write(f"\nMerged with `scripts/merge_bench.py` (same protocol, same degraded inputs): {runs}; where a "
                 f"method is in both, the later run's numbers are used. The crop grid is not redrawn by a merge.\n")
    bar_plot(data, a.out / "bars.png")
    for key in ("vidd", "flicker_nr") if data["mode"] == "real" else ("ids", "flicker"):
        curve_plot(data, key, a.out / f"curves_{key}.png")
    print(f"wrote {a.out}: methods {', '.join(data['methods'])}")


if __name__ == "__main__":
    main()
