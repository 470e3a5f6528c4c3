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


class VerificationError(FvrError):
    """A file's Content Credentials or provenance record do not hold: changed since signing, signed by a
    certificate not trusted, or nothing to verify."""

    exit_code = 5


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)`` (Python 3.11), also on Python 3.10, where the notes list is set by hand."""
    notes = getattr(exc, "__notes__", None)
    if notes is None:
        notes = []
        exc.__notes__ = notes  # type: ignore[attr-defined]
    notes.append(note)


def reason(exc: BaseException) -> str:
    """The first line of an exception's message, for embedding in a one-line error."""
    msg = getattr(exc, "strerror", None) or str(exc)
    return str(msg).strip().rstrip(".").split("\n")[0] or type(exc).__name__


def check_range(name: str, value: object, low: float | None, high: float | None, *, integer: bool = False,
                open_low: bool = False, open_high: bool = False) -> None:
    """The one range check of fvr's configs: a one-line :class:`ConfigError` unless ``value`` is a number in
    [low, high] (an open end with ``open_low`` / ``open_high``; None: unbounded on that side) and, with ``integer``,
    an int (a bool is neither). The message names the setting, the range and the value given."""
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value > low if open_low else value >= low  # type: ignore[operator]
    if ok and high is not None:
        ok = value < high if open_high else value <= high  # type: ignore[operator]
    if ok:
        return
    kind = "an integer " if integer else ""
    if low is not None and high is not None:
        closed = integer and not (open_low or open_high)
        span = (f"from {low:g} to {high:g}" if closed else
                f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}")
    elif low is not None:
        span = f"{'>' if open_low else '>='} {low:g}"
    else:
        span = f"{'<' if open_high else '<='} {high:g}"
    raise ConfigError(f"{name} must be {kind}{span}, got {value!r}")
