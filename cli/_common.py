"""Pieces every command module shares: the ``--home`` option, consoles, error reporting.

Commands wrap their bodies with :func:`reporting_errors` so a deliberate
:class:`AccessLedgerError` becomes one readable line and exit status 1 both
under the real entry point and under Typer's ``CliRunner`` (which bypasses
``cli.main.main``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from crypto.errors import AccessLedgerError

#: Exit status for a deliberate, explained error (bad input, failed verification).
EXIT_ERROR = 1

#: Where a home lives unless ``--home`` or ``ACCESSLEDGER_HOME`` says otherwise.
DEFAULT_HOME = Path(".accessledger")

HomeOption = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="ACCESSLEDGER_HOME",
        help="Consortium home directory (default: $ACCESSLEDGER_HOME or ./.accessledger).",
        file_okay=False,
    ),
]

#: Width used when stdout is not a terminal (pipes, CI logs), so tables don't fold at 80.
_PIPE_WIDTH = 160

P = ParamSpec("P")
R = TypeVar("R")


def console() -> Console:
    """A stdout console that does not fold tables at 80 columns when piped."""
    out = Console()
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(width=_PIPE_WIDTH)
    return out


def progress_options() -> dict[str, Any]:
    """Keyword arguments for a Rich ``Progress`` on stderr.

    The bar is drawn only on a terminal: piped or captured stderr then holds
    nothing but a possible one-line error (I7), not bar redraws or blank lines.
    """
    err = Console(stderr=True)
    return {"console": err, "disable": not err.is_terminal}


def report_error(exc: AccessLedgerError) -> None:
    """Print a deliberate error as exactly one line on stderr."""
    Console(stderr=True).print(
        f"error [{exc.code}]: {exc.message}", markup=False, highlight=False, soft_wrap=True
    )


def fail(exc: AccessLedgerError) -> typer.Exit:
    """Report ``exc`` and return the ``typer.Exit`` to raise."""
    report_error(exc)
    return typer.Exit(EXIT_ERROR)


def reporting_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command so an AccessLedgerError ends it with one line and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except AccessLedgerError as exc:
            raise fail(exc) from None

    return wrapper
