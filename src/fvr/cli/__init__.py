"""The ``fvr`` command line: a thin layer over the library. :mod:`.app` holds the application and :func:`main`,
:mod:`.commands` the commands, :mod:`.options` the option groups they share, :mod:`.progress` the terminal
progress display."""

from fvr.cli import commands as _commands  # noqa: F401  (registers the commands on the app)
from fvr.cli.app import app, main

__all__ = ["app", "main"]
