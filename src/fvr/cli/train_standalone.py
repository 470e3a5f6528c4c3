"""Run ``fvr train`` on a machine without PyAV (e.g. a GPU box), from a packed training file.

Usage, from the repository root (no install needed)::

    python src/fvr/cli/train_standalone.py --config configs/unet-fast-gpu.toml --device cuda [--resume] [--steps N]

Why a separate entry point: it runs from a bare checkout (``src`` put on ``sys.path``, no ``pip install``), and
PyAV may be missing there. fvr imports PyAV only where it decodes or encodes video, and training from a packed file
(``data.packed``) does neither; the sampler sees PyAV is missing (:func:`fvr.train.data.codec_available`) and uses
the JPEG stand-in for the codec pass, with a warning. With PyAV installed this script is just ``fvr train``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    # Running this file puts its folder first on sys.path, where app.py/options.py would shadow other modules.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    src = str(here.parents[1])
    if src not in sys.path:
        sys.path.insert(0, src)
    from fvr.train.data import codec_available

    if not codec_available():
        print("fvr: PyAV is not installed: training from a packed file with the JPEG codec stand-in",
              file=sys.stderr)
    from fvr.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
