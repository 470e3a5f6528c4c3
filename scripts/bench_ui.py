"""`fvr ui` against the clock: how long the app takes to start, and a one-frame preview through its API.

  * start: `fvr ui --port P` in a child process, from its start to the first HTTP 200 of the page (imports,
    model registry, Gradio's server);
  * upload: the clip (rescaled to --height lines first, not timed) sent with gradio_client, analysed (faces found
    and tracked, thumbnails): the time until the face list comes back;
  * preview: the middle frame restored with --model, as the page's "Preview this frame" button does, three times
    (the first builds the model).

Usage:
    python scripts/bench_ui.py CLIP [--height 720] [--model fvr-fast] [--port 7870]

Timings are wall-clock on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _wait_ok(url: str, timeout: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"no answer from {url} in {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip")
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--model", default="fvr-fast")
    ap.add_argument("--port", type=int, default=7870)
    a = ap.parse_args()
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        subprocess.run([sys.executable, str(Path(__file__).with_name("bench_pipeline.py")), "--child", "rescale",
                        a.clip, str(clip), str(a.height)], check=True, capture_output=True)
        url = f"http://127.0.0.1:{a.port}/"
        server = subprocess.Popen([sys.executable, "-m", "fvr.cli", "ui", "--port", str(a.port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            start = _wait_ok(url, 120)  # from just after the child started
            client = Client(url, verbose=False)
            t = time.perf_counter()
            info, _, _, frame, _ = client.predict(handle_file(str(clip)), api_name="/upload")
            upload = time.perf_counter() - t
            frame = frame["value"] if isinstance(frame, dict) else frame  # the slider comes back as an update
            faces = int(re.search(r"(\d+) face track", info).group(1))  # type: ignore[union-attr]
            settings = [a.model, 1, 1.0, 1.6, "model's default", "lanczos", [f"face {i}" for i in range(faces)],
                        {"headers": ["face", "strength"], "data": []}, "model's own"]
            previews = []
            for _ in range(3):
                t = time.perf_counter()
                client.predict(int(frame), *settings, api_name="/preview")
                previews.append(time.perf_counter() - t)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"clip: {info}")
    print(f"start (process start -> page served): {start:.1f} s")
    print(f"upload + analysis: {upload:.1f} s")
    print(f"preview of frame {int(frame)} with {a.model}: " + ", ".join(f"{p:.2f} s" for p in previews))


if __name__ == "__main__":
    main()
