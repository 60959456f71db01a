"""Pieces every command module shares: the ``--home`` option, consoles, error reporting.

Commands wrap their bodies with :func:`reporting_errors` so a deliberate
:class:`AccessLedgerError` becomes one readable line and exit status 1 both
under the real entry point and under Typer's ``CliRunner`` (which bypasses
``cli.main.main``). A command that writes where the user said wraps the
writing in :func:`writing_to`, so an unwritable path is one line naming it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from crypto.errors import AccessLedgerError, os_error_reason

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


def one_line(text: str) -> str:
    """``text`` on one line, printable whatever its characters.

    Line breaks (from a library's multi-line message) become spaces, and
    characters UTF-8 cannot encode (lone surrogates from undecodable file
    names) become backslash escapes instead of crashing the error report.
    """
    flat = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return flat.encode("utf-8", "backslashreplace").decode("utf-8")


def report_error(exc: AccessLedgerError) -> None:
    """Print a deliberate error as exactly one line on stderr."""
    Console(stderr=True).print(
        one_line(f"error [{exc.code}]: {exc.message}"),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def fail(exc: AccessLedgerError) -> typer.Exit:
    """Report ``exc`` and return the ``typer.Exit`` to raise."""
    report_error(exc)
    return typer.Exit(EXIT_ERROR)


def _concerns(path: Path, filename: object) -> bool:
    """Whether an OSError about ``filename`` is about writing ``path``.

    That is ``path`` itself, a file below it (an output directory), or one of
    its parents (which had to be created). Anything else -- an input read
    along the way -- is not the output's fault and is not reported as such.
    """
    if filename is None:
        return True  # e.g. ENOSPC on write(): it is the output being written
    try:
        failed = Path(os.fsdecode(filename)).absolute()  # type: ignore[arg-type]
    except TypeError:
        return False
    target = path.absolute()
    return failed == target or failed in target.parents or target in failed.parents


def output_error(path: Path, exc: OSError) -> AccessLedgerError:
    """One readable error for an OSError met while writing ``path``."""
    reason = os_error_reason(exc, target=path)
    return AccessLedgerError(f"cannot write {path}: {reason}", code="output_unwritable")


@contextlib.contextmanager
def writing_to(path: Path) -> Iterator[None]:
    """Turn an OSError about writing ``path`` (see :func:`_concerns`) into one readable error."""
    try:
        yield
    except OSError as exc:
        if not _concerns(path, exc.filename):
            raise
        raise output_error(path, exc) from None


def reporting_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command so an AccessLedgerError ends it with one line and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except AccessLedgerError as exc:
            raise fail(exc) from None

    return wrapper
