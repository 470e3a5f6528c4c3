"""Termination signals as an exception, so that every ``with`` block on the way out cleans up.

Python turns only SIGINT into an exception (and only when the process did not start with SIGINT ignored, as
background jobs of a non-interactive shell do); SIGTERM and SIGHUP kill it on the spot, leaving temporary files
behind. Inside :func:`signals_raise`, all three raise :class:`Interrupted`, which unwinds like any exception:
sinks delete their temporary outputs, job folders keep their finished segments, and the CLI exits with the
shell's convention, 128 + the signal number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A termination signal arrived. A BaseException (as KeyboardInterrupt is), so that ``except Exception``
    handlers on the way out do not swallow it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal."""
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _raise(signum: int, frame: FrameType | None) -> None:
    # a second signal while cleaning up must not interrupt the clean-up itself
    for s in HANDLED:
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


@contextmanager
def signals_raise(*, respect_ignored: bool = True) -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread; the previous
    handlers are restored on exit. A SIGHUP or SIGINT that was ignored when the block was entered stays ignored
    when ``respect_ignored``: ``nohup`` ignores SIGHUP, and a shell script's background job (``fvr restore ... &``)
    has SIGINT ignored so that Ctrl-C on the script's terminal leaves it running — as Python itself does at start.
    Outside the main thread (where Python cannot install handlers) it does nothing."""
    with _handling(_raise, respect_ignored):
        yield


@contextmanager
def _handling(handler: Callable[[int, FrameType | None], None], respect_ignored: bool) -> Iterator[None]:
    """``handler`` for SIGINT, SIGTERM and SIGHUP within the block (main thread only: elsewhere Python cannot
    install handlers, and nothing changes); a SIGHUP or SIGINT ignored on entry stays ignored when
    ``respect_ignored``; the previous handlers are restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in HANDLED}
    try:
        for s in HANDLED:
            if s in (signal.SIGHUP, signal.SIGINT) and respect_ignored and previous[s] == signal.SIG_IGN:
                continue
            signal.signal(s, handler)
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)


class StopRequest:
    """Set by the first termination signal inside :func:`signals_stop`; ``name`` says which (e.g. "SIGINT")."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.name = ""

    def is_set(self) -> bool:
        return self.event.is_set()


@contextmanager
def signals_stop(*, respect_ignored: bool = True) -> Iterator[StopRequest]:
    """Within the block, the first SIGINT, SIGTERM or SIGHUP only sets the yielded :class:`StopRequest` (a live
    session then ends between two frames, never inside a write); a second one raises :class:`Interrupted` as
    :func:`signals_raise` does. Previous handlers are restored on exit; ignored signals stay ignored as there.
    Outside the main thread it only yields the request."""
    request = StopRequest()

    def stop(signum: int, frame: FrameType | None) -> None:
        if request.is_set():
            _raise(signum, frame)
        request.name = signal.Signals(signum).name
        request.event.set()

    with _handling(stop, respect_ignored):
        yield request
