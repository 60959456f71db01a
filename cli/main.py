"""Entry point of the ``accessledger`` command.

Commands register themselves on :data:`app` from their own modules (imported at
the bottom). Every deliberate error (:class:`AccessLedgerError`) becomes one
readable line on stderr and a non-zero exit, never a stack trace (I7).
"""

from __future__ import annotations

import sys

import typer

from cli._common import EXIT_ERROR as EXIT_ERROR  # re-exported for command modules
from cli._common import report_error
from crypto.errors import AccessLedgerError

app = typer.Typer(
    name="accessledger",
    help="AccessLedger: audited, policy-checked cross-agency access to records about migrants.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """AccessLedger: audited, policy-checked cross-agency access to records about migrants."""


def main() -> None:
    """Run the CLI, turning AccessLedger errors into one line and a non-zero exit."""
    try:
        app()
    except AccessLedgerError as exc:
        report_error(exc)
        sys.exit(EXIT_ERROR)


# Command modules register on `app`; imported last so `app` exists.
from cli import commands as _commands  # noqa: E402,F401
