"""Errors that reach the user as one line.

Every failure the user can cause or fix (bad input, unwritable output, unknown model) raises a subclass of
:class:`FvrError`; the CLI prints its message on one line and exits non-zero.
"""

from __future__ import annotations


class FvrError(Exception):
    """Base class: the message is a complete, one-line explanation for the user."""

    exit_code = 1


class InputError(FvrError):
    """The input cannot be read or is not usable (corrupt, not a video, no frames)."""

    exit_code = 2


class OutputError(FvrError):
    """The output cannot be written (unwritable folder, same path as the input, disk full)."""

    exit_code = 3


class ConfigError(FvrError):
    """An option or a model name is invalid."""

    exit_code = 4


def reason(exc: BaseException) -> str:
    """The first line of an exception's message, for embedding in a one-line error."""
    msg = getattr(exc, "strerror", None) or str(exc)
    return str(msg).strip().rstrip(".").split("\n")[0] or type(exc).__name__
