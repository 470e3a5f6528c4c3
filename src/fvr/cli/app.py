"""The ``fvr`` application: the typer app, its help formatting, logging set-up and :func:`main`, which turns every
failure into one line and an exit code. The commands are in :mod:`fvr.cli.commands`.

Every user-fixable failure ends as one line on stderr and a non-zero exit code; never a traceback (set
``FVR_DEBUG=1`` to see one).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from typer.core import TyperGroup

from fvr import installed_version
from fvr.errors import FvrError


class _HelpFormatter(typer.Context.formatter_class):  # type: ignore[misc,valid-type]
    """click's help formatter, except that a line never breaks at a hyphen: `--segment-frames` and
    docs/external-models.md stay whole (and copyable) at any terminal width."""

    _HYPHEN = "\u2011"  # a non-breaking hyphen while wrapping, a plain one in the output

    def _unprotect(self, start: int) -> None:
        self.buffer[start:] = [part.replace(self._HYPHEN, "-") for part in self.buffer[start:]]

    def write_dl(self, rows: Iterable[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        start = len(self.buffer)
        super().write_dl([(a, b.replace("-", self._HYPHEN)) for a, b in rows], col_max, col_spacing)
        self._unprotect(start)

    def write_text(self, text: str) -> None:
        start = len(self.buffer)
        super().write_text(text.replace("-", self._HYPHEN))
        self._unprotect(start)


class _Context(typer.Context):  # typer's click: recent typer vendors a copy of click of its own
    formatter_class = _HelpFormatter


class _Commands(TyperGroup):
    """fvr's command group: help through :class:`_HelpFormatter`, and `fvr --help` lists each command with its
    first sentence in full, wrapped to the terminal (click cuts it with "..." after a few words)."""

    context_class = _Context

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            command.context_class = _Context
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# rich_markup_mode=None: click's plain help, wrapped to the terminal's width with nothing cut off ("…"), and help
# text shown as written (rich markup would swallow "[spandrel]" in fvr[spandrel])
app = typer.Typer(
    name="fvr",
    help="Face video restoration: sharp, identity-preserving, temporally stable faces in real videos.",
    cls=_Commands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
err = Console(stderr=True)
out = Console()


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"fvr {installed_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print fvr's version and exit.")] = False,
) -> None:
    pass


def setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.ERROR if quiet else logging.WARNING, format="%(message)s", force=True,
        handlers=[RichHandler(console=err, show_time=False, show_path=False, markup=False)],
    )


def require_ready(models: Iterable[str | None]) -> None:
    """Models chosen that do not run as installed (no weights, an extra missing) fail here, before any work, with
    one line naming the models that run (:meth:`fvr.models.ModelRegistry.require_ready`)."""
    from fvr.models import builtin_registry

    registry = builtin_registry()
    for name in models:
        registry.require_ready(name)


def _notes(exc: BaseException) -> str:
    """What the code on the way out added to an interruption (e.g. how to resume), as one line's tail."""
    notes = getattr(exc, "__notes__", None)
    return "; " + "; ".join(notes) if notes else ""


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app, turn every failure into one line and an exit code."""
    from fvr.signals import Interrupted, signals_raise

    debug = os.environ.get("FVR_DEBUG") == "1"
    try:
        with signals_raise():
            result = app(args=argv, prog_name="fvr", standalone_mode=False)
        # click reports an abort (e.g. Ctrl-C at a prompt) as a return value, not an exception
        return result if isinstance(result, int) else 0
    except Interrupted as exc:
        err.print(f"fvr: interrupted ({exc.name}); unfinished output removed{_notes(exc)}", markup=False,
                  highlight=False, soft_wrap=True)
        return exc.exit_code
    except FvrError as exc:
        err.print(f"[red]fvr: error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        return exc.exit_code
    except OSError as exc:  # disk full, permission denied, ... outside the places that already wrap them
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"fvr: error: {exc.strerror or exc}{where}", markup=False, highlight=False, soft_wrap=True)
        return 3
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort) as exc:
        err.print(f"fvr: interrupted (SIGINT); unfinished output removed{_notes(exc)}", markup=False,
                  highlight=False, soft_wrap=True)
        return 130
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # usage errors from the CLI parser
            exc.show()
            return int(exc.exit_code)
        if debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        err.print(f"fvr: internal error: {type(exc).__name__}: {first} (set FVR_DEBUG=1 for the traceback)",
                  markup=False, highlight=False, soft_wrap=True)
        return 1


