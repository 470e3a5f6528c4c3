"""Run ``fvr train`` on a machine without PyAV (e.g. a GPU box), from a packed training file.

Usage, from the repository root (no install needed)::

    python src/fvr/train/standalone.py --config configs/unet-fast-gpu.toml --device cuda [--resume] [--steps N]

Why a separate entry point: ``import fvr`` imports :mod:`fvr.io`, and :mod:`fvr.degrade` imports its codec pass,
and both import PyAV at module level. Training from a packed file (``data.packed``) never decodes or encodes
video, so when ``av`` is not importable this script registers an inert stand-in module under that name *before*
importing fvr: the imports succeed, and any real use of PyAV fails loudly (AttributeError naming the missing
attribute). The sampler detects the stand-in (:func:`fvr.train.data.codec_available`) and uses the JPEG
stand-in for the codec pass, with a warning. With PyAV installed this script is just ``fvr train``.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path


def install_av_stub() -> bool:
    """Register an inert ``av`` package if PyAV is missing; True when the stand-in was installed."""
    try:
        import av  # noqa: F401
        return False
    except ImportError:
        pass
    stub = types.ModuleType("av")
    stub.__path__ = []  # a package, so "import av.error" works
    stub.__fvr_stub__ = True
    error = types.ModuleType("av.error")

    class FFmpegError(Exception):
        """Never raised: nothing runs FFmpeg without PyAV."""

    error.FFmpegError = FFmpegError
    stub.error = error

    def __getattr__(name: str):  # PEP 562: only for attributes the stand-in lacks
        raise AttributeError(f"PyAV is not installed: av.{name} is unavailable (training from a packed file "
                             "needs no video decoding; install PyAV to decode videos)")

    stub.__getattr__ = __getattr__
    sys.modules["av"] = stub
    sys.modules["av.error"] = error
    return True


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    # Running this file puts its folder first on sys.path, where config.py/data.py would shadow other modules.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    src = str(here.parents[1])
    if src not in sys.path:
        sys.path.insert(0, src)
    install_av_stub()
    if getattr(sys.modules.get("av"), "__fvr_stub__", False):
        print("fvr: PyAV is not installed: training from a packed file with the JPEG codec stand-in",
              file=sys.stderr)
    from fvr.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
