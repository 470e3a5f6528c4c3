"""Watch the C heap while an `fvr` command runs in this process: resident memory against glibc's own accounting.

    python scripts/probe_heap.py OUT.json restore in.mp4 -o out.mp4 -q --detect-every 10 --preset ultrafast

Every 2 s a thread records RSS and ``mallinfo2()`` (Linux, glibc >= 2.33): ``arena`` (bytes the heap holds from the
system), ``inuse`` (bytes in live allocations) and ``free`` (held but unused: fragmentation when it grows while
``inuse`` does not). At the end it prints the samples and the slope of each in MB per minute over the second half
of the run, and writes them to OUT.json. This is how the per-frame heap growth of docs/bench/memory.md was told
apart from a leak: the heap grew while the bytes in use stayed flat. A segmented job restores its segments in
worker processes, which this probe does not see: add `--segments-per-process 0` to watch the whole job here.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
import time

import numpy as np


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _sample(libc: ctypes.CDLL, t0: float) -> dict[str, float]:
    info = libc.mallinfo2()
    with open("/proc/self/statm") as fh:
        rss = int(fh.read().split()[1]) * 4096
    mb = 2.0**20
    return {"t": round(time.time() - t0, 1), "rss": rss / mb, "arena": info.arena / mb, "inuse": info.uordblks / mb,
            "free": info.fordblks / mb, "mmap": info.hblkhd / mb}


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_json, argv = sys.argv[1], sys.argv[2:]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    rows: list[dict[str, float]] = []
    done = threading.Event()
    t0 = time.time()

    def sampler() -> None:
        while not done.is_set():
            rows.append(_sample(libc, t0))
            done.wait(2.0)

    threading.Thread(target=sampler, daemon=True).start()
    from fvr.cli import main as fvr_main

    try:
        code = fvr_main(argv)
    finally:
        done.set()
    rows.append(_sample(libc, t0))
    for r in rows[:: max(1, len(rows) // 20)]:
        print(" ".join(f"{k} {v:.0f}" for k, v in r.items()))
    half = rows[len(rows) // 2:]
    if len(half) >= 3:
        t = np.array([r["t"] for r in half])
        slopes = {k: float(np.polyfit(t, [r[k] for r in half], 1)[0] * 60) for k in ("rss", "arena", "inuse", "free")}
        print("second half, MB per minute: " + ", ".join(f"{k} {v:+.1f}" for k, v in slopes.items()))
    with open(out_json, "w") as fh:
        json.dump(rows, fh)
    sys.exit(code)


if __name__ == "__main__":
    main()
