"""Entry point of the ``accessledger`` command.

Commands register themselves on :data:`app` from their own modules (imported at
the bottom). Every deliberate error (:class:`AccessLedgerError`) becomes one
readable line on stderr and a non-zero exit, never a stack trace (I7).
"""

from __future__ import annotations

import sys

import typer

# Typer vendors its own Click; these are the exception types its parser raises.
from typer._click import exceptions as click_errors

from cli._common import EXIT_ERROR as EXIT_ERROR  # re-exported for command modules
from cli._common import report_error
from crypto.errors import AccessLedgerError

#: Exit status for a command-line usage error (Click's convention).
EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130

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
    """Run the CLI; every failure ends as one readable line on stderr and a non-zero exit.

    Click runs in non-standalone mode so that usage errors (unknown command,
    missing or out-of-range option) become ``error [usage]: ...`` with exit 2
    instead of a multi-line usage panel (I7).
    """
    try:
        status = app(standalone_mode=False)
    except AccessLedgerError as exc:
        report_error(exc)
        sys.exit(EXIT_ERROR)
    except click_errors.NoArgsIsHelpError:
        app(["--help"], standalone_mode=True)
    except click_errors.UsageError as exc:
        report_error(AccessLedgerError(exc.format_message(), code="usage"))
        sys.exit(EXIT_USAGE)
    except click_errors.ClickException as exc:
        report_error(AccessLedgerError(exc.format_message(), code="usage"))
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        report_error(AccessLedgerError("interrupted", code="interrupted"))
        sys.exit(EXIT_INTERRUPTED)
    if isinstance(status, int) and status != 0:
        sys.exit(status)


# Command modules register on `app`; imported last so `app` exists.
from cli import commands as _commands  # noqa: E402,F401
