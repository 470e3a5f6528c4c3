"""fvr — face video restoration.

Quick use::

    import fvr
    report = fvr.restore_video("in.mp4", "out.mp4", fvr.RestoreConfig(model="classical", upscale=2))

The pipeline's stages are importable on their own: :mod:`fvr.io`, :mod:`fvr.faces`, :mod:`fvr.models`,
:mod:`fvr.compose`.
"""

from fvr.errors import ConfigError, FvrError, InputError, OutputError
from fvr.io import EncodeOptions, probe

_LAZY = {"RestoreConfig", "RestoreReport", "analyse_source", "restore_video"}


def __getattr__(name: str) -> object:
    # the pipeline pulls in the detectors and models: import it on first use, not with the package
    if name in _LAZY:
        from fvr import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'fvr' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "EncodeOptions",
    "FvrError",
    "InputError",
    "OutputError",
    "RestoreConfig",
    "RestoreReport",
    "__version__",
    "analyse_source",
    "probe",
    "restore_video",
]
