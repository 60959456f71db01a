"""Entry point of the ``accessledger`` command.

Commands register themselves on :data:`app` from their own modules (imported at
the bottom). Every deliberate error (:class:`AccessLedgerError`) becomes one
readable line on stderr and a non-zero exit, never a stack trace (I7). Any
other exception is a bug: it too is one line, ``error [internal_error]``,
with its own exit status; ``ACCESSLEDGER_DEBUG=1`` shows its traceback.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback

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
#: Exit status after an unexpected exception, a bug (sysexits.h EX_SOFTWARE).
EXIT_INTERNAL = 70
#: OSErrors that say the machine cannot take the output (disk full, quota, I/O
#: error, read-only file system): reported as ``io_error``, not as a bug.
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})
#: Set to 1 to let an unexpected exception show its traceback instead of one line.
DEBUG_VARIABLE = "ACCESSLEDGER_DEBUG"

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
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): nothing to say, nobody to say it to.
        _silence_stdout()
        sys.exit(EXIT_ERROR)
    except (typer.Abort, KeyboardInterrupt):
        report_error(AccessLedgerError("interrupted", code="interrupted"))
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
            report_error(_environment_error(exc))
            sys.exit(EXIT_ERROR)
        # The last resort: every expected failure is an AccessLedgerError by now.
        if os.environ.get(DEBUG_VARIABLE) == "1":
            traceback.print_exc()
            sys.exit(EXIT_INTERNAL)
        report_error(
            AccessLedgerError(
                f"{type(exc).__name__}: {exc} (a bug in AccessLedger; rerun with "
                f"{DEBUG_VARIABLE}=1 to see the traceback)",
                code="internal_error",
            )
        )
        sys.exit(EXIT_INTERNAL)
    if isinstance(status, int) and status != 0:
        sys.exit(status)


def _environment_error(exc: OSError) -> AccessLedgerError:
    """An I/O failure that is the machine's state (disk full, read-only), not a bug."""
    where = f" ({os.fsdecode(exc.filename)})" if isinstance(exc.filename, str | bytes) else ""
    return AccessLedgerError(f"I/O failed: {exc.strerror or exc}{where}", code="io_error")


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


# Command modules register on `app`; imported last so `app` exists.
from cli import commands as _commands  # noqa: E402,F401
