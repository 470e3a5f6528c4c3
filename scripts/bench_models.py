"""Size and CPU cost of every learned architecture: parameters, GFLOPs per frame, ms per frame at 128² and 256².

For each architecture and size preset (fast, quality) the untrained network runs a clip of T frames (T = 8, or
the model's context + 1 when larger) in inference mode; GFLOPs come from torch's FlopCounterMode (multiply-adds
count 2 FLOPs) divided by T; the time is the median of ``--repeats`` runs after one warm-up, divided by T.
Resolutions: each preset's network at 128² and at 256² (the network is fully convolutional / resolution-agnostic
where it allows; otherwise the cell is empty).

Usage:
    python scripts/bench_models.py [--threads 2] [--repeats 3] [--json docs/models.json] [--only unet,window]

Prints a Markdown table. Timings depend on the machine and its load: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from fvr.faces import face_template
from fvr.models.nets import architectures
from fvr.models.nets.prior import landmark_prior


def _inputs(arch, t: int, size: int):
    x = torch.rand(1, t, 3, size, size)
    lm = torch.from_numpy(face_template(size)).float().view(1, 1, 5, 2).repeat(1, t, 1, 1)
    return x, (landmark_prior(lm, size) if arch.uses_prior else None)


def measure(arch, config, size: int, repeats: int) -> dict:
    torch.manual_seed(0)
    net = arch.build(config).eval()
    past, future = arch.context(config)
    t = max(8, past + future + 1)
    x, prior = _inputs(arch, t, size)
    params = sum(p.numel() for p in net.parameters())
    with torch.inference_mode():
        try:
            with FlopCounterMode(display=False) as counter:
                net(x, prior)
        except Exception as exc:  # a resolution the network does not accept
            return {"params": params, "error": f"{type(exc).__name__}: {exc}"[:120]}
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            net(x, prior)
            times.append(time.perf_counter() - t0)
    return {"params": params, "gflops_per_frame": counter.get_total_flops() / t / 1e9,
            "ms_per_frame": statistics.median(times[1:]) * 1000.0 / t, "frames": t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--only", default=None, help="comma-separated architecture names")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    archs = architectures()
    names = args.only.split(",") if args.only else list(archs)
    rows = []
    for name in names:
        arch = archs[name]
        for preset in ("fast", "quality"):
            crop, config = arch.preset(preset)
            row = {"arch": name, "preset": preset, "crop": crop, "kind": arch.kind, "temporal": arch.temporal,
                   "tags": list(arch.tags), "context": list(arch.context(config))}
            for size in (128, 256):
                row[str(size)] = measure(arch, config, size, args.repeats)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("| model | kind | temporal | context -/+ | crop | params | GFLOPs/frame @128² | ms/frame @128² | "
          "GFLOPs/frame @256² | ms/frame @256² |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = r["arch"] if r["preset"] == "quality" else f"{r['arch']}-fast"
        cells = []
        for size in ("128", "256"):
            m = r[size]
            if "error" in m:
                cells += ["–", "–"]
            else:
                cells += [f"{m['gflops_per_frame']:.2f}", f"{m['ms_per_frame']:.0f}"]
        params = r["128"]["params"]
        print(f"| `{name}` | {r['kind']} | {r['temporal']} | {r['context'][0]}/{r['context'][1]} | {r['crop']} | "
              f"{params / 1e6:.2f} M | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "repeats": args.repeats, "torch": torch.__version__, "rows": rows},
                      fh, indent=1)


if __name__ == "__main__":
    main()
