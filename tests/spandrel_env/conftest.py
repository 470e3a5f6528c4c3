"""tests/spandrel_env run where spandrel imports (``make test-spandrel``'s .venv-spandrel); elsewhere they skip.

With ``FVR_REQUIRE_SPANDREL=1`` (set by ``make test-spandrel``) a spandrel that does not import fails every test
instead, so that a broken second environment cannot pass as "all skipped". The test modules import spandrel only
inside fixtures and tests, so that collecting them works without it.
"""

from __future__ import annotations

import os
import warnings

import pytest


def _spandrel_problem() -> str | None:
    """None when spandrel imports, else why not (one line)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import spandrel
    except Exception as exc:  # ImportError, or a torchvision built for another torch
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if not hasattr(spandrel, "ModelLoader"):
        # this very folder, seen from tests/ on sys.path, imports as an empty namespace package "spandrel"
        return "spandrel is not installed"
    return None


PROBLEM = _spandrel_problem()


@pytest.fixture(autouse=True, scope="session")
def _spandrel_importable() -> None:
    if PROBLEM is None:
        return
    if os.environ.get("FVR_REQUIRE_SPANDREL") == "1":
        pytest.fail(f"FVR_REQUIRE_SPANDREL=1 but spandrel does not import ({PROBLEM})", pytrace=False)
    pytest.skip(f"spandrel does not import here ({PROBLEM}); `make test-spandrel` runs these in .venv-spandrel")
