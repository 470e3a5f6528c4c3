"""Fuzz and fault suite for `fvr restore`: mutate valid inputs, run the command on each, check the contract.

For every mutated input (byte flips, truncation at a random point, zeroed ranges, swapped or resized MP4/MKV
boxes, random headers) it runs `fvr restore IN -o OUT --model identity -q --json` in this process and asserts:

- no traceback and no "internal error" on stderr;
- the exit code is in the documented set (0 done, 2 bad input, 3 output problem, 4 bad option);
- exit 0: the output exists and decodes, with as many frames as the intact input had, or else the run's report
  (`--json`) carries a corrupt-input warning (a shortened output is never silent); exit != 0: one error line,
  and no output;
- nothing left behind in the output folder (no temporary files, no job folders).

    python scripts/fuzz.py --cases 2000 --seed 7 --json out/fuzz-2000.json

prints the counts per mutation and per exit code, and exits 1 when any case broke the contract (the failures
are listed with the seed and case number, which reproduce them: `--only N`). A case that runs longer than
--case-timeout seconds counts as a failure (hang).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ALLOWED_CODES = {0, 2, 3, 4}


@dataclass
class CaseResult:
    case: int
    seed_file: str
    mutation: str
    code: int | None
    ok: bool
    problem: str = ""
    seconds: float = 0.0


@dataclass
class Summary:
    cases: int = 0
    failures: list[CaseResult] = field(default_factory=list)
    by_mutation: Counter = field(default_factory=Counter)
    by_code: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"cases": self.cases, "failures": [asdict(f) for f in self.failures],
                "tracebacks": sum("traceback" in f.problem for f in self.failures),
                "leftovers": sum("left behind" in f.problem for f in self.failures),
                "by_mutation": dict(self.by_mutation), "by_code": {str(k): v for k, v in self.by_code.items()},
                "seconds": round(self.seconds, 1)}


# ------------------------------------------------------------------------------------------------- seed inputs


def make_seeds(folder: Path) -> list[Path]:
    """Small valid inputs of each kind fvr reads: MP4 (H.264 + AAC), MKV (with SubRip), WebM, PNG and JPEG."""
    import av
    import cv2

    from fvr.synthetic import moving_face_frames

    frames = list(moving_face_frames(6, size=96))
    seeds = []
    for name, codec, audio, subs in (("a.mp4", "libx264", True, False), ("b.mkv", "libx264", False, True),
                                     ("c.webm", "libvpx-vp9", False, False)):
        path = folder / name
        with av.open(str(path), "w") as out:
            vs = out.add_stream(codec, rate=25, options={"crf": "20"} if codec == "libx264" else {})
            vs.width, vs.height, vs.pix_fmt = 96, 96, "yuv420p"
            aus = out.add_stream("aac", rate=48000) if audio else None
            sub = out.add_mux_stream("subrip") if subs else None
            for i, rgb in enumerate(frames):
                f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                f.pts = i
                out.mux(vs.encode(f))
            out.mux(vs.encode(None))
            if aus is not None:
                samples = (0.1 * np.sin(np.arange(48000 // 4) / 10)).astype(np.float32)
                for start in range(0, len(samples), 1024):
                    af = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
                    af.sample_rate, af.pts = 48000, start
                    out.mux(aus.encode(af))
                out.mux(aus.encode(None))
            if sub is not None:
                from fractions import Fraction

                sub.time_base = Fraction(1, 1000)
                pkt = av.Packet(b"hello")
                pkt.stream, pkt.pts, pkt.dts, pkt.duration, pkt.time_base = sub, 0, 0, 100, Fraction(1, 1000)
                out.mux(pkt)
        seeds.append(path)
    for name in ("d.png", "e.jpg"):
        path = folder / name
        cv2.imwrite(str(path), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
        seeds.append(path)
    return seeds


# --------------------------------------------------------------------------------------------------- mutations


def flip_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for pos in rng.integers(0, len(out), size=int(rng.integers(1, 32))):
        out[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def zero_range(data: bytes, rng: np.random.Generator) -> bytes:
    start = int(rng.integers(0, len(data)))
    length = int(rng.integers(1, max(2, len(data) // 8)))
    out = bytearray(data)
    out[start : start + length] = bytes(min(length, len(out) - start))
    return bytes(out)


def random_header(data: bytes, rng: np.random.Generator) -> bytes:
    n = int(rng.integers(1, 64))
    return rng.integers(0, 256, n, dtype=np.uint8).tobytes() + data[n:]


def _mp4_boxes(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the top-level ISO-BMFF boxes (empty for other formats)."""
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        if size < 8 or pos + size > len(data) or not data[pos + 4 : pos + 8].isalpha():
            break
        boxes.append((pos, size))
        pos += size
    return boxes


def swap_boxes(data: bytes, rng: np.random.Generator) -> bytes:
    """Swap two top-level MP4 boxes, or (one box / not MP4) swap two random blocks."""
    boxes = _mp4_boxes(data)
    if len(boxes) >= 2:
        i, j = sorted(rng.choice(len(boxes), size=2, replace=False))
        (a, sa), (b, sb) = boxes[i], boxes[j]
        return data[:a] + data[b : b + sb] + data[a + sa : b] + data[a : a + sa] + data[b + sb :]
    n = max(1, len(data) // 16)
    a, b = sorted(int(x) for x in rng.integers(0, max(1, len(data) - n), size=2))
    if b - a < n:
        return flip_bytes(data, rng)
    return data[:a] + data[b : b + n] + data[a + n : b] + data[a : a + n] + data[b + n :]


def resize_box(data: bytes, rng: np.random.Generator) -> bytes:
    """Write a wrong size into a top-level MP4 box header (or into the first bytes of any file)."""
    boxes = _mp4_boxes(data)
    pos = boxes[int(rng.integers(0, len(boxes)))][0] if boxes else 0
    out = bytearray(data)
    out[pos : pos + 4] = int(rng.integers(0, 2**32)).to_bytes(4, "big")
    return bytes(out)


MUTATIONS: dict[str, Callable[[bytes, np.random.Generator], bytes]] = {
    "flip": flip_bytes, "truncate": truncate, "zero": zero_range, "header": random_header,
    "swap-boxes": swap_boxes, "box-size": resize_box,
}


# -------------------------------------------------------------------------------------------------------- runs


class _Hang(BaseException):
    pass


def _on_alarm(signum: int, frame: object) -> None:
    raise _Hang()


def run_case(case: int, seed: Path, mutation: str, data: bytes, work: Path, timeout: float,
             intact_frames: int = 0) -> CaseResult:
    """Run `fvr restore` on one mutated input in a fresh folder and check the contract (``intact_frames``: the
    frame count of the unmutated seed; 0 = do not compare)."""
    from fvr.cli import main

    folder = work / f"case-{case}"
    folder.mkdir()
    bad = folder / f"in{seed.suffix}"
    bad.write_bytes(data)
    out_dir = folder / "out"
    out_dir.mkdir()
    # photos go to an image, videos to a video: both output kinds are exercised
    out = out_dir / ("out.png" if seed.suffix in (".png", ".jpg") else "out.mp4")
    stderr, stdout = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    code: int | None = None
    problem = ""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            code = main(["restore", str(bad), "-o", str(out), "--model", "identity", "-q", "--json"])
    except _Hang:
        problem = f"hang: still running after {timeout:.0f} s"
    except BaseException as exc:  # main() must not raise; record what escaped
        problem = f"traceback: {type(exc).__name__} escaped main(): {exc}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - t0
    text = stderr.getvalue()
    # rich wraps long lines at the console width: join them before counting "lines"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not problem:
        problem = _check(code, text, lines, out, out_dir, _warnings(stdout.getvalue()), intact_frames)
    shutil.rmtree(folder, ignore_errors=True)
    return CaseResult(case, seed.name, mutation, code, not problem, problem, round(seconds, 3))


def _warnings(stdout: str) -> list[str]:
    """The warnings of `fvr restore --json`'s report (none when it printed no report)."""
    try:
        return list(json.loads(stdout).get("warnings", []))
    except (json.JSONDecodeError, AttributeError):
        return []


def _check(code: int | None, text: str, lines: list[str], out: Path, out_dir: Path, warnings: list[str],
           intact_frames: int) -> str:
    if "Traceback" in text:
        return "traceback on stderr"
    if "internal error" in text:
        return f"internal error: {text.strip()[:300]}"
    if code not in ALLOWED_CODES:
        return f"exit code {code} is not documented: {text.strip()[:300]}"
    # a finished run writes its provenance record next to the output (docs/provenance.md)
    record = f"{out.name}.fvr.json" if code == 0 else None
    left = sorted(p.name for p in out_dir.iterdir() if p != out and p.name != record)
    if left:
        return f"left behind: {left}"
    if code == 0:
        if not out.exists():
            return "exit 0 but no output"
        try:
            frames = _decodes(out)
        except Exception as exc:
            return f"exit 0 but the output does not decode: {exc}"
        if intact_frames and frames < intact_frames and not any("corrupt input" in w for w in warnings):
            return f"exit 0 with {frames} of {intact_frames} frames and no corrupt-input warning (silent loss)"
        return ""
    if out.exists():
        return f"exit {code} but an output was written"
    if not text.strip().startswith("fvr: error:"):
        return f"exit {code} without the one-line error: {text.strip()[:300]}"
    if text.count("fvr: error:") != 1:
        return f"more than one error line: {text.strip()[:300]}"
    return ""


def _decodes(path: Path) -> int:
    """The number of frames ``path`` decodes to (ValueError when none)."""
    from fvr.io import MediaSource

    with MediaSource(path) as src:
        n = sum(1 for _ in src.frames())
    if n < 1:
        raise ValueError("no frames")
    return n


def fuzz(cases: int, seed: int, *, only: int | None = None, case_timeout: float = 60.0,
         progress: Callable[[int, CaseResult], None] | None = None) -> Summary:
    """Run ``cases`` mutated inputs (case k uses seed ``seed`` + k, so any case reruns alone with ``only``)."""
    import logging

    summary = Summary()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fvr-fuzz-") as tmp:
        work = Path(tmp)
        seeds = make_seeds(work)
        intact = {path: _decodes(path) for path in seeds}
        names = sorted(MUTATIONS)
        for case in range(cases) if only is None else [only]:
            rng = np.random.default_rng([seed, case])
            source = seeds[case % len(seeds)]
            mutation = names[(case // len(seeds)) % len(names)]
            data = MUTATIONS[mutation](source.read_bytes(), rng)
            result = run_case(case, source, mutation, data, work, case_timeout, intact[source])
            logging.getLogger().handlers.clear()  # each main() call installs its own handler
            summary.cases += 1
            summary.by_mutation[mutation] += 1
            summary.by_code[result.code if result.code is not None else "none"] += 1
            if not result.ok:
                summary.failures.append(result)
            if progress is not None:
                progress(case, result)
    summary.seconds = time.perf_counter() - t0
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=int, default=None, help="rerun one case number")
    parser.add_argument("--case-timeout", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    args = parser.parse_args(argv)

    def report(case: int, result: CaseResult) -> None:
        if not result.ok:
            print(f"case {case} ({result.seed_file}, {result.mutation}): {result.problem}", file=sys.stderr)
        elif (case + 1) % 100 == 0:
            print(f"{case + 1} cases", file=sys.stderr)

    summary = fuzz(args.cases, args.seed, only=args.only, case_timeout=args.case_timeout, progress=report)
    data = summary.to_json()
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))
    print(json.dumps({k: v for k, v in data.items() if k != "failures"}))
    print(f"{summary.cases} cases, {len(summary.failures)} failures, {summary.seconds:.0f} s")
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
