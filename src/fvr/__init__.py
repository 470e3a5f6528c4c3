"""fvr — face video restoration.

Quick use::

    import fvr
    report = fvr.restore_video("in.mp4", "out.mp4", fvr.RestoreConfig(model="classical", upscale=2))

The pipeline's stages are importable on their own: :mod:`fvr.io`, :mod:`fvr.faces`, :mod:`fvr.models`,
:mod:`fvr.compose`; :mod:`fvr.run` runs them over whole videos (docs/architecture.md).
"""

from fvr.errors import ConfigError, FvrError, InputError, OutputError

_LAZY = {"RestoreConfig": "run.config", "RestoreReport": "run.config", "analyse_source": "run.pipeline",
         "restore_video": "run.pipeline", "EncodeOptions": "io", "probe": "io"}


def __getattr__(name: str) -> object:
    # The pipeline pulls in detectors and models, and fvr.io needs PyAV: import them on first use, so that
    # `import fvr.models.nets` works on a machine without PyAV (a GPU training box) and start-up stays light.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"fvr.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'fvr' has no attribute {name!r}")

__version__ = "0.1.0"


def installed_version() -> str:
    """The installed distribution's version (importlib.metadata), else the package's ``__version__`` (a source
    tree on the path)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fvr")
    except PackageNotFoundError:
        return __version__


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
    "installed_version",
    "probe",
    "restore_video",
]
